package core

import (
	"context"
	"errors"
	"log/slog"
	"runtime"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nodevms/nodevms/calllog"
	"github.com/nodevms/nodevms/hypercore"
)

// errNoStandby: the host runs without a standby (see standby.tooLarge).
var errNoStandby = errors.New("core: the backend keeps too much memory for a standby runtime")

// standby is a second runtime of the backend that follows the call log in
// the host's idle time, replaying each entry once the host has made it
// durable. A call the host stops leaves the host's runtime in an unknown
// state; the standby takes its place (take), replaying first what it had
// not reached, so that a stop costs the standby's lag, not a replay of the
// whole log.
//
// It follows only while the host is idle (no call has run for idleGap),
// holding the host's run lock one entry at a time and giving it back as
// soon as a call waits: a busy host pays nothing for it (a call that
// arrives during a turn waits for the one entry being replayed; an entry
// the host took long to run is replayed only once the host has been idle
// as long, so that a caller rarely waits for it), and a
// call's memory budget, which counts the process's heap growth, never
// counts the standby's. Under a load that never pauses the lag grows, and
// a stop then costs that lag; the standby catches up once the load
// pauses.
//
// Following is also a self-check: an entry the standby cannot reproduce is
// a divergence that the host's own log shows at once, rather than an
// auditor later.
//
// A standby replays into its own copy of the archive in memory, as an
// audit does, and under the replay limits (sandbox.Limits.ForReplay). It
// holds a second copy of what the backend keeps: once the process's live
// heap passes maxHeap (half the host's Limits.Retained, which counts the
// whole process), it gives itself up (tooLarge), so that a call is never
// stopped for what the standby holds, and a backend that keeps a lot is
// served as without one, its stops costing a replay of the log.
type standby struct {
	log      *hypercore.Feed
	opts     ReplayOptions
	logger   *slog.Logger
	maxHeap  uint64
	turns    turns
	tooLarge atomic.Bool
	ctx      context.Context
	cancel   context.CancelFunc
	done     chan struct{} // closed when follow returns

	mu      sync.Mutex
	changed *sync.Cond // durable or stopped changed
	durable uint64     // log blocks the host has made durable
	stopped bool       // taken or closed: follow returns
	// long holds the entries the host took long to run (block: how long),
	// not yet replayed. Replaying one holds the host's run lock about as
	// long, so the standby starts it only once the host has been idle that
	// long: a call that arrives meanwhile would wait for all of it.
	long map[uint64]time.Duration

	// What follow has built, written only under the host's run lock (or
	// once follow has returned).
	r       *Replayer // nil until the init entry is replayed
	applied uint64    // log blocks replayed
	failed  error     // the standby gave up (a divergence, or a replay error)
}

// turns is how a standby shares the host: it may replay an entry only
// while it holds the host's run lock, and only when the host is idle.
type turns struct {
	run      *sync.Mutex
	lastBusy *atomic.Int64 // when the host last ran calls (UnixNano by clock)
	clock    func() time.Time
	waiting  func() bool // whether calls wait for the host
}

// idle is how long the host has run no call, by its clock.
func (t turns) idle() time.Duration {
	return t.clock().Sub(time.Unix(0, t.lastBusy.Load()))
}

// idleGap is how long the host must have run no call before the standby
// takes a turn: a host under load pauses between calls for less, and a
// turn taken in such a pause would delay the next call. While the host
// stays busy the standby looks again less and less often, up to every
// maxIdlePoll.
const (
	idleGap     = 2 * time.Millisecond
	maxIdlePoll = 32 * time.Millisecond
)

// turnSlice bounds one turn; a call arriving ends it sooner.
const turnSlice = 5 * time.Millisecond

// newStandby starts a standby that follows the first durable blocks of
// log, and then the blocks the host reports (setDurable).
func newStandby(log *hypercore.Feed, durable uint64, opts ReplayOptions, maxHeap uint64, t turns, logger *slog.Logger) *standby {
	ctx, cancel := context.WithCancel(context.Background())
	s := &standby{log: log, opts: opts, logger: logger, maxHeap: maxHeap, turns: t, ctx: ctx, cancel: cancel, done: make(chan struct{}), durable: durable}
	s.changed = sync.NewCond(&s.mu)
	go s.follow()
	return s
}

// longEntry is how long a call must run for its entry to be a long one
// (standby.long): a turn's length.
const longEntry = turnSlice

// noteLong tells the standby that the host took d to run the entry at
// block (called before setDurable reports the block).
func (s *standby) noteLong(block uint64, d time.Duration) {
	s.mu.Lock()
	if s.long == nil {
		s.long = map[uint64]time.Duration{}
	}
	s.long[block] = d
	s.mu.Unlock()
}

// idleNeeded is how long the host must have been idle for the standby to
// replay block.
func (s *standby) idleNeeded(block uint64) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return max(idleGap, s.long[block])
}

// noteDurable tells the standby that the log's first n blocks are
// durable, and which of them, from block first on (one per call, nil for
// an entry of no call), the host took long to run.
func (s *standby) noteDurable(first uint64, calls []*pending, n uint64) {
	for i, p := range calls {
		if p != nil && p.took >= longEntry {
			s.noteLong(first+uint64(i), p.took)
		}
	}
	s.setDurable(n)
}

// setDurable tells the standby that the log's first n blocks are durable.
func (s *standby) setDurable(n uint64) {
	s.mu.Lock()
	if n > s.durable {
		s.durable = n
		s.changed.Broadcast()
	}
	s.mu.Unlock()
}

func (s *standby) follow() {
	defer close(s.done)
	for {
		s.mu.Lock()
		for s.applied >= s.durable && !s.stopped {
			s.changed.Wait()
		}
		stopped, to := s.stopped, s.durable
		s.mu.Unlock()
		if stopped || !s.awaitTurn() {
			return
		}
		err := s.turn(to)
		if err != nil {
			s.fail(err)
		}
		s.turns.run.Unlock()
		if err != nil {
			return
		}
	}
}

// awaitTurn waits until the host has been idle for idleGap and takes its
// run lock. It reports false if the standby was stopped meanwhile.
func (s *standby) awaitTurn() bool {
	wait := idleGap
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return false
		case <-timer.C:
		}
		since := s.turns.idle()
		need := s.idleNeeded(s.applied)
		if since >= need && !s.turns.waiting() && s.turns.run.TryLock() {
			if !s.turns.waiting() {
				return true
			}
			s.turns.run.Unlock()
		}
		wait = min(2*wait, maxIdlePoll)
		timer.Reset(max(wait, need-since))
	}
}

// turn replays entries up to block to, for at most turnSlice or until a
// call waits. The host's run lock is held.
func (s *standby) turn(to uint64) error {
	start := time.Now()
	for s.applied < to {
		if err := s.step(s.ctx); err != nil {
			return err
		}
		if s.heapTooLarge() {
			return errNoStandby
		}
		if s.turns.waiting() || time.Since(start) > turnSlice {
			break
		}
		if s.turns.idle() < s.idleNeeded(s.applied) {
			break // a long entry next: it waits for an idle host of its own
		}
	}
	return nil
}

// step replays the next log block (the init entry first) and checks it.
func (s *standby) step(ctx context.Context) error {
	e, err := readEntry(s.log, s.applied)
	if err != nil {
		return err
	}
	if s.r == nil {
		s.r, err = NewReplayer(ctx, e, s.opts)
	} else {
		err = s.r.Apply(ctx, s.applied, e)
	}
	if err != nil {
		return err
	}
	if d := s.r.Verdict().Divergence; d != nil {
		return d
	}
	s.mu.Lock()
	delete(s.long, s.applied)
	s.mu.Unlock()
	s.applied++
	return nil
}

// heapTooLarge reports (and records) whether the process's live heap is
// past maxHeap. It collects garbage to tell, but only once the heap's
// objects, garbage included, are past it.
func (s *standby) heapTooLarge() bool {
	if !s.tooLarge.Load() && readMetric("/memory/classes/heap/objects:bytes") > s.maxHeap {
		runtime.GC()
		if readMetric("/gc/heap/live:bytes") > s.maxHeap {
			s.tooLarge.Store(true)
		}
	}
	return s.tooLarge.Load()
}

func readMetric(name string) uint64 {
	sample := []metrics.Sample{{Name: name}}
	metrics.Read(sample)
	if sample[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return sample[0].Value.Uint64()
}

// fail gives the standby up, and says why in the host's log.
func (s *standby) fail(err error) {
	s.failed = err
	if s.r != nil {
		s.r.Close()
		s.r = nil
	}
	var d *calllog.Divergence
	switch {
	case s.ctx.Err() != nil:
	case errors.Is(err, errNoStandby):
		s.logger.Info("the backend and its standby runtime keep more than half of what the host may (--max-retained): no standby; a stopped call will replay the log")
	case errors.As(err, &d):
		s.logger.Error("self-check: the standby runtime's replay of the log diverges from it; no replay will reproduce this log", "divergence", d.Error())
	default:
		s.logger.Warn("the standby runtime stopped following the log", "error", err)
	}
}

// take stops the standby and returns its replayer, brought to the log's
// first n blocks (n at most what setDurable reported), which is the
// caller's to close. It is called with the host's run lock held, so the
// replay it still has to do is the lag the stop costs.
func (s *standby) take(n uint64) (*Replayer, error) {
	s.stop()
	if s.failed != nil {
		return nil, s.failed
	}
	for s.applied < n {
		if err := s.step(context.Background()); err != nil {
			s.fail(err)
			return nil, err
		}
	}
	r := s.r
	s.r = nil
	return r, nil
}

// stop ends follow and waits for it.
func (s *standby) stop() {
	s.mu.Lock()
	s.stopped = true
	s.changed.Broadcast()
	s.mu.Unlock()
	s.cancel()
	<-s.done
}

// close stops the standby and releases its runtime.
func (s *standby) close() {
	s.stop()
	if s.r != nil {
		s.r.Close()
		s.r = nil
	}
}
