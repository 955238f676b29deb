package core

import (
	"context"
	"errors"

	"github.com/nodevms/nodevms/calllog"
	"github.com/nodevms/nodevms/hypercore"
	"github.com/nodevms/nodevms/hyperdrive"
)

// AuditOptions configure Audit.
type AuditOptions struct {
	ReplayOptions
	// Signed says the host takes signed calls only for named callers (not
	// in debug mode): a call that names a caller without a signature fails.
	Signed bool
	// Entries, if not zero, audits the log's first Entries entries only: a
	// snapshot whose last entry is where the archive replica's metadata
	// ends (see SnapshotLength), since a live host's log runs on past it.
	// The archive's content may then run on past the snapshot too: those
	// blocks are left for a later audit.
	Entries uint64
}

// SnapshotLength returns how many of a log replica's first entries make a
// consistent snapshot with an archive replica: the longest prefix whose
// last entry leaves the archive at its version, and whether there is one.
// A host signs its archive before the log entries that explain it, so an
// archive downloaded while the host serves can be ahead of the log (fetch
// the log again), and the log ahead of the archive (audit the prefix).
func SnapshotLength(log *hypercore.Feed, archive *hyperdrive.Archive) (uint64, bool, error) {
	v := archive.Version()
	for n := log.Length(); n > 0; n-- {
		e, err := readEntry(log, n-1)
		if err != nil {
			return 0, false, err
		}
		switch ev := entryVersion(e); {
		case ev == v:
			return n, true, nil
		case ev < v:
			return log.Length(), false, nil
		}
	}
	return log.Length(), false, nil
}

// Audit checks a host's published call log and files archive (replicas
// whose blocks their feeds verified against the writers' signatures): it
// replays the log through the core, checks every signed call, and holds the
// archive to the roots the log names. The verdict names the earliest
// divergence any of these finds.
func Audit(ctx context.Context, log *hypercore.Feed, archive *hyperdrive.Archive, opts AuditOptions) (Verdict, error) {
	n := log.Length()
	if opts.Entries > 0 {
		n = min(n, opts.Entries)
	}
	// The archive and the callers are checked entry by entry as the
	// entries are decoded, beside the replay (on another core), and
	// nothing is kept: an audit's memory does not grow with the log.
	archiveCheck := &archiveChecker{archive: archive, snapshot: opts.Entries > 0}
	callers := calllog.NewCallers(log.PublicKey(), opts.Signed)
	var callerDivergence *calllog.Divergence
	ropts := opts.ReplayOptions
	ropts.check = func(block uint64, e *calllog.Entry) {
		archiveCheck.check(block, e)
		if callerDivergence == nil {
			callerDivergence = callers.Check(block, e)
		}
	}
	r, err := replayLog(ctx, log, n, ropts)
	if err != nil {
		var d *calllog.Divergence
		if errors.As(err, &d) { // the init entry itself
			return Verdict{Divergence: d}, nil
		}
		return Verdict{}, err
	}
	v := r.Verdict()
	r.Close()
	// After a divergence the replay stops early, and with it the checks:
	// those of the entries before it were done, as decoding runs ahead.
	checked := archiveCheck.checked
	checks := []*calllog.Divergence{archiveCheck.finish(checked < log.Length()), callerDivergence}
	if checked >= log.Length() {
		// Only the host's current files are in its folder: a snapshot the
		// log has moved past may have files whose bytes it replaced since.
		checks = append(checks, CheckCurrentFiles(archive, checked))
	}
	for _, d := range checks {
		if d != nil && (v.Divergence == nil || d.Block < v.Divergence.Block) {
			v.Divergence = d
		}
	}
	return v, nil
}
