package core

import (
	"context"
	"errors"
	"fmt"
	"path"

	"github.com/nodevms/nodevms/calllog"
	"github.com/nodevms/nodevms/hypercore"
	"github.com/nodevms/nodevms/hyperdrive"
)

// FolderReport is what CheckFolder found.
type FolderReport struct {
	// Verdict is the log's replay, and the archive held to the roots it
	// logged. Its Divergence is set if an entry does not replay to what
	// was logged.
	Verdict Verdict
	// Redo is how many of the last entries the archive does not hold yet:
	// a crash came before the archive's next flush, and a start redoes
	// them from the log.
	Redo int
	// Unreferenced is how many content blocks no metadata entry points at:
	// a crash came between the archive's two syncs, and a start takes them
	// back.
	Unreferenced uint64
}

// CheckFolder checks a backend's stores offline, as a start checks them
// before it serves, and more: every signature of the three feeds, every
// block of the log and the metadata, every current file's bytes against
// the archive, then the replay of the log, with the archive held to the
// roots the entries logged. The stores are to be opened read-only, so
// that nothing is written. A store that is damaged gives an error wrapping
// ErrDamaged, naming what and where; an entry that does not replay gives
// a report whose Verdict has a Divergence. What a crash leaves and a start
// repairs is not damage: the report counts it.
func CheckFolder(ctx context.Context, log *hypercore.Feed, archive *hyperdrive.Archive, opts ReplayOptions) (FolderReport, error) {
	var rep FolderReport
	full := hypercore.CheckOptions{Data: true, AllBlocks: true, Signatures: true}
	if err := log.CheckStored(full); err != nil {
		return rep, fmt.Errorf("%w: the call log: %w", ErrDamaged, err)
	}
	if err := archive.Metadata().CheckStored(full); err != nil {
		return rep, fmt.Errorf("%w: the files archive's metadata: %w", ErrDamaged, err)
	}
	content := archive.Content()
	if content == nil {
		return rep, fmt.Errorf("%w: the files archive has no content feed", ErrDamaged)
	}
	if err := content.CheckStored(hypercore.CheckOptions{Signatures: true}); err != nil {
		return rep, fmt.Errorf("%w: the files archive's content: %w", ErrDamaged, err)
	}
	if names := archive.Modified(); len(names) > 0 {
		return rep, fmt.Errorf("%w: %v in the folder is not what the archive holds", ErrDamaged, names)
	}
	if err := readCurrentFiles(ctx, archive); err != nil {
		return rep, err
	}

	// The callers and the archive are checked entry by entry as the
	// entries are decoded, beside the replay, and no entry is kept: the
	// check's memory does not grow with the log.
	version := archive.Version()
	callers := calllog.NewCallers(log.PublicKey(), false)
	var (
		callerDivergence *calllog.Divergence
		damage           error
		entries, held    int
		heldVersion      uint64
		lastHeldRoot     *calllog.Entry // the last held entry with a root
	)
	opts.check = func(block uint64, e *calllog.Entry) {
		entries = int(block) + 1
		if callerDivergence == nil {
			callerDivergence = callers.Check(block, e)
		}
		// The archive holds the effects of the entries up to its version
		// (entries' versions only grow); a start redoes the rest.
		v := entryVersion(e)
		if v > version {
			return
		}
		held, heldVersion = int(block)+1, v
		if e.FilesRoot != nil {
			lastHeldRoot = e
		}
		if damage != nil {
			return
		}
		if d, lacksNodes := checkArchiveEntry(block, e, archive); d != nil && !lacksNodes {
			damage = fmt.Errorf("%w: the files archive after entry %d: %s is %s, the log says %s", ErrDamaged, block, d.Field, d.Replayed, d.Logged)
		}
	}
	r, err := replayLog(ctx, log, log.Length(), opts)
	if err != nil {
		var d *calllog.Divergence
		if errors.As(err, &d) {
			rep.Verdict.Divergence = d
			return rep, nil
		}
		return rep, err
	}
	rep.Verdict = r.Verdict()
	r.Close()
	if rep.Verdict.Divergence != nil {
		return rep, nil
	}
	if callerDivergence != nil {
		rep.Verdict.Divergence = callerDivergence
		return rep, nil
	}
	if held > 0 && heldVersion != version {
		return rep, fmt.Errorf("%w: the files archive: the archive is at version %d, which no log entry reached (entry %d is at %d)", ErrDamaged, version, held-1, heldVersion)
	}
	rep.Redo = entries - held
	if damage != nil {
		return rep, damage
	}
	if last := lastHeldRoot; last != nil {
		referenced, err := archive.ReferencedContent()
		if err != nil {
			return rep, fmt.Errorf("%w: the files archive's metadata: %w", ErrDamaged, err)
		}
		if referenced != last.FilesRoot.ContentLength {
			return rep, fmt.Errorf("%w: the files archive's metadata points at %d content blocks, the log says %d", ErrDamaged, referenced, last.FilesRoot.ContentLength)
		}
		rep.Unreferenced = content.Length() - referenced
	}
	return rep, nil
}

// readCurrentFiles reads every current file of the archive, which checks
// its bytes against the archive's tree.
func readCurrentFiles(ctx context.Context, archive *hyperdrive.Archive) error {
	var walk func(dir string) error
	walk = func(dir string) error {
		names, err := archive.Readdir(dir)
		if err != nil {
			return fmt.Errorf("%w: the files archive: listing %s: %w", ErrDamaged, dir, err)
		}
		for _, n := range names {
			if err := ctx.Err(); err != nil {
				return err
			}
			p := path.Join(dir, n)
			st, err := archive.Stat(p)
			if err != nil {
				return fmt.Errorf("%w: the files archive: %s: %w", ErrDamaged, p, err)
			}
			if st.IsDir() {
				if err := walk(p); err != nil {
					return err
				}
				continue
			}
			if st.Size > 0 && !archive.Content().Has(st.Offset) {
				// Cleared ahead of the metadata by a crash: the folder
				// must still hold the bytes, which a start claims again.
				if err := archive.CheckFolderFile(p); err != nil {
					return fmt.Errorf("%w: %s in the folder: %w", ErrDamaged, p, err)
				}
				continue
			}
			if _, err := archive.ReadFile(p); err != nil {
				return fmt.Errorf("%w: %s in the folder: %w", ErrDamaged, p, err)
			}
		}
		return nil
	}
	return walk("/")
}
