package core

import (
	"encoding/hex"
	"errors"
	"fmt"
	"path"

	"github.com/nodevms/nodevms/calllog"
	"github.com/nodevms/nodevms/hypercore"
	"github.com/nodevms/nodevms/hyperdrive"
)

// CheckArchive checks a published files archive (a replica, with the blocks
// it needs) against a log's entries: after each entry, the archive's signed
// tree hashes at the lengths the entry names must be the ones it logged. A
// write to the archive that no call explains shows up as the first entry
// whose root the archive does not have. It returns nil when all agree.
func CheckArchive(entries []*calllog.Entry, archive *hyperdrive.Archive) *calllog.Divergence {
	return checkArchive(entries, archive, false, false)
}

// checkArchive is CheckArchive; for a snapshot (AuditOptions.Entries), the
// content may run on past the last entry, written by calls after it. If
// the log has moved on past the snapshot (moved), the host may have
// replaced the snapshot's current files since, and a content root the
// replica cannot compute is not held against it: the metadata, which
// names every block, was checked.
func checkArchive(entries []*calllog.Entry, archive *hyperdrive.Archive, snapshot, moved bool) *calllog.Divergence {
	c := &archiveChecker{archive: archive, snapshot: snapshot}
	for i, e := range entries {
		c.check(uint64(i), e)
	}
	return c.finish(moved)
}

// archiveChecker is checkArchive an entry at a time, in log order, so that
// an audit checks entries as it decodes them rather than keeping them all.
type archiveChecker struct {
	archive  *hyperdrive.Archive
	snapshot bool

	checked uint64              // entries seen
	found   *calllog.Divergence // the first divergence, once found
	last    *calllog.Entry      // the last entry with a root so far
	// passed is the last entry whose roots the archive had, or nil: most
	// entries (every call that writes no file) log the roots the one
	// before them did, and computing two tree hashes again for each was a
	// tenth of an audit's CPU time.
	passed *calllog.Entry
	// lacking is the last entry's divergence if the replica lacks the
	// nodes of its content root: held against the archive only if no
	// later entry has a root (a replica of a folder-backed archive lacks
	// replaced files' blocks, and with them the nodes of older roots; the
	// metadata, which names every block, is checked).
	lacking *calllog.Divergence
}

// check checks the entry at block, the next in log order.
func (c *archiveChecker) check(block uint64, e *calllog.Entry) {
	c.checked = block + 1
	if c.found != nil || e.FilesRoot == nil {
		return
	}
	c.last, c.lacking = e, nil
	if p := c.passed; p != nil && *p.FilesRoot == *e.FilesRoot && entryVersion(p) == entryVersion(e) {
		// The same roots at the same version: checkArchiveEntry's answer
		// depends on nothing else (the replica only grows).
		return
	}
	c.passed = nil
	d, lacksNodes := checkArchiveEntry(block, e, c.archive)
	if d == nil && !lacksNodes {
		c.passed = e
	}
	content := c.archive.Content()
	contentAhead := c.snapshot && content != nil && content.Length() > e.FilesRoot.ContentLength
	switch {
	case lacksNodes && !contentAhead:
		c.lacking = d
	case lacksNodes:
	case d != nil:
		c.found = d
	}
}

// finish returns the first divergence of the entries checked, or what
// follows the last logged change: moved is as for checkArchive.
func (c *archiveChecker) finish(moved bool) *calllog.Divergence {
	if c.found != nil {
		return c.found
	}
	if c.lacking != nil && !moved {
		return c.lacking
	}
	// Nothing may follow the last logged change: a write no call explains.
	meta, content := c.archive.Metadata(), c.archive.Content()
	if last := c.last; last != nil && content != nil {
		version := entryVersion(last)
		if meta.Length() > version+1 || content.Length() > last.FilesRoot.ContentLength && !c.snapshot {
			return &calllog.Divergence{
				Block: c.checked, Method: "(none)", Field: "filesVersion", Kind: calllog.KindTampering,
				Logged:   fmt.Sprintf("version %d, %d content blocks after the last call", version, last.FilesRoot.ContentLength),
				Replayed: fmt.Sprintf("the archive at version %d with %d content blocks", meta.Length()-1, content.Length()),
			}
		}
	}
	return nil
}

func treeHash(f *hypercore.Feed, length uint64) (string, error) {
	if length > f.Length() {
		return "", fmt.Errorf("the feed has only %d blocks, not %d", f.Length(), length)
	}
	h, err := f.TreeHash(length)
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(h[:]), nil
}

func describeHash(what, got string, err error) string {
	if err != nil {
		return what + ": " + err.Error()
	}
	return what + " " + got
}

// checkArchiveEntry holds the archive to one entry's roots. lacksNodes says
// the content root could not be computed because the replica lacks the
// nodes, or is shorter (the divergence then describes that).
func checkArchiveEntry(block uint64, e *calllog.Entry, archive *hyperdrive.Archive) (d *calllog.Divergence, lacksNodes bool) {
	if e.FilesRoot == nil {
		return nil, false
	}
	meta, content := archive.Metadata(), archive.Content()
	method := e.Type // init, reload
	if e.Call != nil {
		method = e.Call.MethodName
	}
	d = &calllog.Divergence{Block: block, Method: method, Field: "filesRoot", Kind: calllog.KindTampering}
	if content == nil {
		d.Logged, d.Replayed = e.FilesRoot.Metadata, "an archive without its content feed"
		return d, false
	}
	got, err := treeHash(meta, entryVersion(e)+1)
	if err != nil || got != e.FilesRoot.Metadata {
		d.Logged, d.Replayed = e.FilesRoot.Metadata, describeHash("the archive's metadata", got, err)
		return d, false
	}
	if content.Length() < e.FilesRoot.ContentLength {
		// A replica of a live folder-backed host may not reach a length
		// whose last blocks the host replaced before they were fetched.
		d.Logged, d.Replayed = e.FilesRoot.Content, fmt.Sprintf("a replica of %d content blocks, not %d", content.Length(), e.FilesRoot.ContentLength)
		return d, true
	}
	got, err = treeHash(content, e.FilesRoot.ContentLength)
	if errors.Is(err, hypercore.ErrNotFound) {
		d.Logged, d.Replayed = e.FilesRoot.Content, "a replica without the nodes of the content root"
		return d, true
	}
	if err != nil || got != e.FilesRoot.Content {
		d.Logged, d.Replayed = e.FilesRoot.Content, describeHash("the archive's content", got, err)
		return d, false
	}
	return nil, false
}

// CheckCurrentFiles checks that a replica holds every content block of
// every current file: a host that does not serve one (such as a file edited
// on its disk, which the host refuses to serve as it no longer matches its
// hash) is reported at the first such file. block is what the divergence
// names (the entry after the log's last).
func CheckCurrentFiles(archive *hyperdrive.Archive, block uint64) *calllog.Divergence {
	content := archive.Content()
	var found *calllog.Divergence
	var walk func(dir string) error
	walk = func(dir string) error {
		names, err := archive.Readdir(dir)
		if err != nil {
			return err
		}
		for _, n := range names {
			if found != nil {
				return nil
			}
			p := path.Join(dir, n)
			st, err := archive.Stat(p)
			if err != nil {
				continue
			}
			if st.IsDir() {
				if err := walk(p); err != nil {
					return err
				}
				continue
			}
			for b := st.Offset; b < st.Offset+st.Blocks; b++ {
				if content == nil || !content.Has(b) {
					found = &calllog.Divergence{
						Block: block, Method: "(none)", Field: "content of " + p, Kind: calllog.KindTampering,
						Logged:   fmt.Sprintf("content block %d, part of the current %s", b, p),
						Replayed: "the host did not serve it (a file changed on its disk is not served)",
					}
					return nil
				}
			}
		}
		return nil
	}
	if err := walk("/"); err != nil && found == nil {
		return &calllog.Divergence{Block: block, Method: "(none)", Field: "files", Logged: "a readable archive", Replayed: err.Error(), Kind: calllog.KindInvalid}
	}
	return found
}
