package core

import (
	"context"
	"time"

	"github.com/nodevms/nodevms/calllog"
	"github.com/nodevms/nodevms/hypercore"
	"github.com/nodevms/nodevms/hyperdrive"
)

// arrivals is a log replica that is still downloading, with its archive
// replica (AuditOptions.Arriving): the replay reads the log's blocks as
// they arrive, and learns where the snapshot it audits ends once the
// download is over.
type arrivals struct {
	log     *hypercore.Feed
	archive *hyperdrive.Archive

	over    chan struct{} // closed when the download is over; then:
	entries uint64        // Arriving's entries (0: the whole log)
	n       uint64        // the entries to audit
	err     error         // the download's error
}

// The replay reads the log's arrived blocks a chunk at a time: at most
// maxArrivalChunk, as hypercore reads a chunk, and, when it has caught up
// with the download, after a pause of arrivalPause unless
// minArrivalChunk have arrived (a fast replay that woke for each block
// as it arrived spent more on waking than on replaying).
const (
	maxArrivalChunk = 4096
	minArrivalChunk = 256
	arrivalPause    = 5 * time.Millisecond
)

// arrivedFrom returns the end of the run of blocks here from block i on,
// at most maxArrivalChunk long.
func (a *arrivals) arrivedFrom(i uint64) uint64 {
	end := i
	for end < i+maxArrivalChunk && a.log.Has(end) {
		end++
	}
	return end
}

// newArrivals waits for the download's end on a goroutine of its own,
// with arriving (see AuditOptions.Arriving).
func newArrivals(log *hypercore.Feed, archive *hyperdrive.Archive, arriving func() (uint64, error)) *arrivals {
	a := &arrivals{log: log, archive: archive, over: make(chan struct{})}
	go func() {
		defer close(a.over)
		a.entries, a.err = arriving()
		a.n = log.Length()
		if a.entries > 0 {
			a.n = min(a.n, a.entries)
		}
	}()
	return a
}

// wait waits for block i. ok is false if the download ended without it.
func (a *arrivals) wait(ctx context.Context, i uint64) (ok bool, err error) {
	for {
		if a.log.Has(i) {
			return true, nil
		}
		changed := a.log.Changed()
		if a.log.Has(i) {
			return true, nil
		}
		select {
		case <-changed:
		case <-a.over:
			return a.log.Has(i), nil
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
}

// block returns block i, waiting for it; ok is false if the download
// ended without it.
func (a *arrivals) block(ctx context.Context, i uint64) (b []byte, ok bool, err error) {
	if ok, err := a.wait(ctx, i); !ok || err != nil {
		return nil, false, err
	}
	b, err = a.log.Get(i)
	return b, err == nil, err
}

// blocks calls fn with the log's blocks from start on, in order, as they
// arrive, and, once the download is over, up to the snapshot's end. An
// error from fn stops it (replayLog's fn stops at an entry admits does
// not take).
func (a *arrivals) blocks(ctx context.Context, start uint64, fn func(i uint64, b []byte) error) error {
	for i := start; ; {
		select {
		case <-a.over:
			if a.err != nil {
				return a.err
			}
			if i >= a.n {
				return nil
			}
			// The download checked that every block up to its end is here.
			return a.log.Blocks(i, a.n, fn)
		default:
		}
		ok, err := a.wait(ctx, i)
		if err != nil {
			return err
		}
		if !ok {
			continue // over: read on up to the snapshot's end
		}
		end := a.arrivedFrom(i)
		if end-i < minArrivalChunk {
			// Caught up with the download: let a chunk arrive rather than
			// wake for every block.
			select {
			case <-a.over:
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(arrivalPause):
			}
			end = a.arrivedFrom(i)
		}
		if err := a.log.Blocks(i, end, fn); err != nil {
			return err
		}
		i = end
	}
}

// admits reports whether entry i belongs to the snapshot the audit
// checks, once the download is over. Before, an entry that leaves the
// archive at a version the archive replica has already reached does: the
// snapshot ends at the last entry at the replica's final version (see
// SnapshotLength), which is no lower, and entries' versions only grow.
// For an entry past the replica it waits for the download's end.
func (a *arrivals) admits(ctx context.Context, i uint64, e *calllog.Entry) (bool, error) {
	select {
	case <-a.over:
	default:
		if entryVersion(e) <= a.archive.Version() {
			return true, nil
		}
	}
	return a.within(ctx, i)
}

// within waits for the download's end and reports whether entry i belongs
// to the snapshot.
func (a *arrivals) within(ctx context.Context, i uint64) (bool, error) {
	select {
	case <-a.over:
		return a.err == nil && i < a.n, a.err
	case <-ctx.Done():
		return false, ctx.Err()
	}
}
