package sandbox

import (
	"context"
	"fmt"
	"runtime"
	"runtime/metrics"
	"sync"
	"time"

	"github.com/dop251/goja"
)

// watchdog interrupts a script's runtime when the call in progress runs
// past its time budget, grows the heap past its memory budget, or its
// context ends.
//
// One timer serves every call of the script: a call that starts while it
// is idle arms it, and it re-arms itself while calls run, every
// memoryCheckEvery (sooner for a deadline nearer than that), so a budget
// is enforced at most that late. Arming timers for each call cost more
// than a small call itself: a timer earlier than any other wakes the
// thread that sleeps in the network poller, and on virtual machines such a
// wake-up costs tens of microseconds.
type watchdog struct {
	rt     *goja.Runtime
	limits Limits

	mu      sync.Mutex
	timer   *time.Timer // nil until the first call
	armed   bool
	running bool
	seq     uint64    // calls begun
	start   time.Time // when the running call began
	base    uint64    // the heap at the running call's first check; 0 before it
	why     error     // what interrupted the running call
	large   bool      // the running call was charged for an allocation
	slow    func()    // the running call's Call.Slow, until called
}

// memoryCheckEvery is how often a running call's budgets are checked.
const memoryCheckEvery = 5 * time.Millisecond

// begin watches a call until the returned end, which says what, if
// anything, interrupted it.
func (w *watchdog) begin(ctx context.Context, slow func()) (end func() error) {
	w.mu.Lock()
	w.running = true
	w.seq++
	seq := w.seq
	w.start = time.Now()
	w.base, w.why, w.large, w.slow = 0, nil, false, slow
	if !w.armed {
		w.armed = true
		first := min(memoryCheckEvery, w.limits.Time)
		if w.timer == nil {
			w.timer = time.AfterFunc(first, w.check)
		} else {
			w.timer.Reset(first)
		}
	}
	w.mu.Unlock()
	stopCtx := func() bool { return false }
	if ctx.Done() != nil {
		stopCtx = context.AfterFunc(ctx, func() {
			w.mu.Lock()
			defer w.mu.Unlock()
			w.interrupt(seq, fmt.Errorf("%w: %w", ErrCanceled, ctx.Err()))
		})
	}
	return func() error {
		stopCtx()
		w.mu.Lock()
		w.running, w.slow = false, nil
		err := w.why
		w.mu.Unlock()
		w.rt.ClearInterrupt()
		return err
	}
}

// interrupt stops call seq, if it is still the one running, for err.
// w.mu is held.
func (w *watchdog) interrupt(seq uint64, err error) {
	if w.running && w.seq == seq && w.why == nil {
		w.why = err
		w.rt.Interrupt(err)
	}
}

// charge returns the error that stops the running call if an allocation
// of n more bytes would take its heap growth past the memory budget.
func (w *watchdog) charge(n float64) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.running {
		return nil
	}
	w.large = true
	used := heapBytes()
	if w.base == 0 {
		w.base = used
	}
	var growth uint64
	if used > w.base {
		growth = used - w.base
	}
	if !(n <= float64(w.limits.Memory)) || float64(growth)+n > float64(w.limits.Memory) {
		return fmt.Errorf("%w (%d MiB): a built-in asked for %.0f MiB more", ErrMemoryBudget, w.limits.Memory>>20, n/(1<<20))
	}
	return nil
}

// charged reports whether the last call was charged for an allocation.
func (w *watchdog) charged() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.large
}

// stopped is what interrupted the running call, if anything did.
func (w *watchdog) stopped() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.why
}

// timeLeft is what is left of the running call's time budget.
func (w *watchdog) timeLeft() time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.running {
		return 0
	}
	return w.limits.Time - time.Since(w.start)
}

// setLimits changes the limits of the calls to come.
func (w *watchdog) setLimits(l Limits) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.limits = l
}

// release drops the runtime of a broken script; no call runs again.
func (w *watchdog) release() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.rt = nil
}

// stop interrupts the running call for err.
func (w *watchdog) stop(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.interrupt(w.seq, err)
}

// check is the timer's: it checks the running call's budgets and re-arms,
// or, with no call running, lets the timer rest.
func (w *watchdog) check() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.running {
		w.armed = false
		return
	}
	elapsed := time.Since(w.start)
	if w.slow != nil && elapsed >= SlowAfter {
		w.slow()
		w.slow = nil
	}
	if elapsed >= w.limits.Time {
		w.interrupt(w.seq, fmt.Errorf("%w (%v)", ErrTimeBudget, w.limits.Time))
	} else if used := heapBytes(); w.base == 0 {
		// The growth counts from here: at most memoryCheckEvery of the
		// call's allocations go unseen, against a budget of many
		// megabytes.
		w.base = used
	} else if used > w.base && used-w.base > w.limits.Memory {
		w.interrupt(w.seq, fmt.Errorf("%w (%d MiB)", ErrMemoryBudget, w.limits.Memory>>20))
	}
	next := memoryCheckEvery
	if rest := w.limits.Time - elapsed; rest > 0 && rest < next {
		next = rest
	}
	w.timer.Reset(next)
}

// heapBytes is the Go heap's objects, live and not yet collected.
func heapBytes() uint64 { return readMetric("/memory/classes/heap/objects:bytes") }

// liveHeapBytes is the heap that the last garbage collection found live.
func liveHeapBytes() uint64 { return readMetric("/gc/heap/live:bytes") }

func readMetric(name string) uint64 {
	sample := []metrics.Sample{{Name: name}}
	metrics.Read(sample)
	if sample[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return sample[0].Value.Uint64()
}

// checkRetained stops a call that leaves the heap's live objects above
// the Retained cap. The heap is measured at most once a millisecond while
// it is well below the cap and no call asked for a large allocation (no
// more than a few megabytes can be allocated in a millisecond without
// one), and collected only when its objects, garbage included, pass the
// cap: a call that keeps little costs a clock read.
func (s *Script) checkRetained() error {
	limit := s.limits.Retained
	now := time.Now()
	if s.heapSeen < limit/2 && now.Sub(s.heapSeenAt) < time.Millisecond && !s.watchdog.charged() {
		return nil
	}
	used := heapBytes()
	s.heapSeen, s.heapSeenAt = used, now
	if used <= limit {
		return nil
	}
	runtime.GC()
	live := liveHeapBytes()
	s.heapSeen = live
	if live > limit {
		return fmt.Errorf("%w: the script keeps %d MiB, more than its cap of %d MiB", ErrMemoryBudget, live>>20, limit>>20)
	}
	return nil
}
