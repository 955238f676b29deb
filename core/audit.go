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
	// Arriving, if set, says the replicas are still downloading: the
	// replay starts on the log's entries as they arrive, beside the
	// download, rather than after it. Audit calls Arriving once, on a
	// goroutine of its own, and Arriving returns when the download is
	// over, with what Entries would be (which it replaces) or with the
	// download's error, which ends the audit. Until then an entry is
	// replayed only once the archive replica has reached the version the
	// entry leaves it at, so that the replay never passes the snapshot;
	// the archive is checked against the entries once it is all there.
	Arriving func() (entries uint64, err error)
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
	var archivePass chan struct{}
	var runs *rootRuns
	if opts.Arriving != nil {
		ropts.arrivals = newArrivals(log, archive, opts.Arriving)
		runs = newRootRuns(maxRootRuns)
		ropts.checked = runs.close
		archivePass = make(chan struct{})
		stop := make(chan struct{})
		defer func() {
			close(stop)
			<-archivePass
		}()
		go func() {
			defer close(archivePass)
			checkArrivedArchive(ctx, ropts.arrivals, runs, archiveCheck, stop)
		}()
	}
	ropts.check = func(block uint64, e *calllog.Entry) {
		if runs != nil {
			runs.add(block, e)
		} else {
			archiveCheck.check(block, e)
		}
		if callerDivergence == nil {
			callerDivergence = callers.Check(block, e)
		}
	}
	r, err := replayLog(ctx, log, n, ropts)
	if archivePass != nil && err == nil {
		<-archivePass // its results are read below
	}
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

// checkArrivedArchive checks the archive against the entries of the
// snapshot, from the init entry on, once the download is over (the
// archive check of an audit whose replay started while the replicas
// downloaded, when the archive was not all there yet). It takes the
// entries runs kept as the replay decoded them, and reads the rest again
// from the log: those past the runs' bound, and those the replay did not
// reach. It stops at an entry that does not decode (the replay reports
// it), and when stop is closed.
func checkArrivedArchive(ctx context.Context, arr *arrivals, runs *rootRuns, c *archiveChecker, stop <-chan struct{}) {
	select {
	case <-arr.over:
	case <-stop:
		return
	}
	if arr.err != nil {
		return
	}
	c.snapshot = arr.entries > 0
drain:
	for {
		select {
		case r, ok := <-runs.kept:
			if !ok {
				break drain
			}
			c.check(r.block, r.e)
		case <-stop:
			return
		case <-ctx.Done():
			return
		}
	}
	errStop := errors.New("stopped")
	arr.log.BlocksUnchecked(runs.resume, arr.n, func(i uint64, b []byte) error {
		select {
		case <-stop:
			return errStop
		case <-ctx.Done():
			return errStop
		default:
		}
		// The download verified every block as it arrived.
		e, err := decodeEntry(i, b)
		if err != nil {
			return err
		}
		c.check(i, e)
		return nil
	})
}

// rootRuns keeps, as the replay decodes the log, the entries the archive
// check needs, for when the archive is all there: of each run of entries
// that leave the archive at the same version and roots, the first and the
// last, which the checker's answer for the whole run depends on (see
// archiveChecker.check). A counter that writes no file makes one run;
// one that writes a file with every call makes a run of each entry, and
// past maxRootRuns kept entries the rest are read again from the log
// (resume on). Memory stays bounded either way.
type rootRuns struct {
	kept     chan keptEntry // closed by close; then resume is set
	resume   uint64         // the first entry not kept
	next     uint64         // the entry add expects next
	full     bool
	cur      *calllog.Entry // the last entry added, and its block
	curBlock uint64
	curKept  bool // whether cur was kept (it starts its run)
}

type keptEntry struct {
	block uint64
	e     *calllog.Entry
}

// maxRootRuns bounds the entries rootRuns keeps.
const maxRootRuns = 4096

// newRootRuns keeps up to max entries.
func newRootRuns(max int) *rootRuns { return &rootRuns{kept: make(chan keptEntry, max)} }

// add takes the entry at block, the next in log order.
func (r *rootRuns) add(block uint64, e *calllog.Entry) {
	if r.full {
		return
	}
	r.next = block + 1
	if r.cur != nil && sameRoots(r.cur, e) {
		r.cur, r.curBlock, r.curKept = e, block, false
		return
	}
	// A new run: the last run's end, then this entry.
	if r.cur != nil && !r.curKept && !r.keep(r.curBlock, r.cur) {
		return
	}
	r.cur, r.curBlock = e, block
	r.curKept = r.keep(block, e)
}

// keep keeps an entry, or, when too many are kept, has the rest read again
// from this one on.
func (r *rootRuns) keep(block uint64, e *calllog.Entry) bool {
	select {
	case r.kept <- keptEntry{block, e}:
		return true
	default:
		r.full, r.resume = true, block
		return false
	}
}

// close ends the runs: the replay decodes no more.
func (r *rootRuns) close() {
	if !r.full {
		r.resume = r.next
		if r.cur != nil && !r.curKept {
			r.keep(r.curBlock, r.cur)
		}
	}
	close(r.kept)
}

// sameRoots reports whether two entries leave the archive at the same
// version and roots.
func sameRoots(a, b *calllog.Entry) bool {
	if (a.FilesRoot == nil) != (b.FilesRoot == nil) || entryVersion(a) != entryVersion(b) {
		return false
	}
	return a.FilesRoot == nil || *a.FilesRoot == *b.FilesRoot
}
