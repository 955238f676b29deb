package core

import (
	"encoding/hex"
	"fmt"

	"github.com/nodevms/nodevms/hypercore"
	"github.com/nodevms/nodevms/hyperdrive"
)

// CheckArchive checks a published files archive (a replica, with the blocks
// it needs) against a log's entries: after each entry, the archive's signed
// tree hashes at the lengths the entry names must be the ones it logged. A
// write to the archive that no call explains shows up as the first entry
// whose root the archive does not have. It returns nil when all agree.
func CheckArchive(entries []*Entry, archive *hyperdrive.Archive) *Divergence {
	meta, content := archive.Metadata(), archive.Content()
	for i, e := range entries {
		if e.FilesRoot == nil {
			continue
		}
		method := TypeInit
		version := entryVersion(e, archive)
		if e.Call != nil {
			method = e.Call.MethodName
		}
		d := &Divergence{Block: uint64(i), Method: method, Field: "filesRoot", Kind: KindTampering}
		if content == nil {
			d.Logged, d.Replayed = e.FilesRoot.Metadata, "an archive without its content feed"
			return d
		}
		got, err := treeHash(meta, version+1)
		if err != nil || got != e.FilesRoot.Metadata {
			d.Logged, d.Replayed = e.FilesRoot.Metadata, describeHash("the archive's metadata", got, err)
			return d
		}
		got, err = treeHash(content, e.FilesRoot.ContentLength)
		if err != nil || got != e.FilesRoot.Content {
			d.Logged, d.Replayed = e.FilesRoot.Content, describeHash("the archive's content", got, err)
			return d
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
