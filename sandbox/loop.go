package sandbox

import (
	"container/heap"
	"errors"
	"fmt"

	"github.com/dop251/goja"
)

// The event loop of a call runs in virtual time: a timer fires when
// everything before it is done, and the call's clock jumps to its due time.
// Nothing waits for the wall clock, so a call's course depends only on its
// recorded environment. Timers still pending when the call's result
// settles are dropped: they belong to the call that set them.

// errRejected says the call's promise was rejected (the reason is in
// callState.rejection).
var errRejected = errors.New("sandbox: the call's promise was rejected")

type timer struct {
	id       int64
	due      int64
	seq      int64 // creation order, for timers due at the same time
	fn       goja.Callable
	args     []goja.Value
	interval int64 // > 0 for setInterval
	index    int
}

type timerQueue struct {
	items []*timer
	byID  map[int64]*timer
}

func (q *timerQueue) Len() int { return len(q.items) }
func (q *timerQueue) Less(i, j int) bool {
	a, b := q.items[i], q.items[j]
	return a.due < b.due || a.due == b.due && a.seq < b.seq
}
func (q *timerQueue) Swap(i, j int) {
	q.items[i], q.items[j] = q.items[j], q.items[i]
	q.items[i].index, q.items[j].index = i, j
}
func (q *timerQueue) Push(x any) {
	t := x.(*timer)
	t.index = len(q.items)
	q.items = append(q.items, t)
}
func (q *timerQueue) Pop() any {
	t := q.items[len(q.items)-1]
	q.items = q.items[:len(q.items)-1]
	return t
}

func (q *timerQueue) add(t *timer) {
	if q.byID == nil {
		q.byID = map[int64]*timer{}
	}
	q.byID[t.id] = t
	heap.Push(q, t)
}

func (q *timerQueue) cancel(id int64) {
	if t, ok := q.byID[id]; ok {
		delete(q.byID, id)
		heap.Remove(q, t.index)
	}
}

func (q *timerQueue) next() (*timer, bool) {
	if len(q.items) == 0 {
		return nil, false
	}
	t := heap.Pop(q).(*timer)
	delete(q.byID, t.id)
	return t, true
}

// settle runs the call's event loop until v, if it is a promise, settles.
// Promise reactions run as goja finishes each call into JavaScript; timers
// run here, in due order.
func (s *Script) settle(st *callState, v goja.Value) (goja.Value, error) {
	p, ok, err := s.promiseOf(v)
	if err != nil || !ok {
		return v, err
	}
	for {
		switch p.State() {
		case goja.PromiseStateFulfilled:
			return p.Result(), nil
		case goja.PromiseStateRejected:
			st.rejection = s.scriptError(p.Result())
			return nil, errRejected
		}
		// A timer whose callback is a built-in runs no instruction of the
		// script's, where the watchdog's interrupt would take effect: so
		// the loop asks the watchdog itself.
		if err := s.watchdog.stopped(); err != nil {
			return nil, err
		}
		t, ok := st.timers.next()
		if !ok {
			st.rejection = &ScriptError{Name: "Error", Message: "the call's promise never settled: nothing was left to wait for"}
			return nil, errRejected
		}
		st.time = max(st.time, t.due)
		if t.interval > 0 {
			t.due = st.time + t.interval
			t.seq = st.nextTimer
			st.nextTimer++
			st.timers.add(t)
		}
		if _, err := t.fn(goja.Undefined(), t.args...); err != nil {
			return nil, err // an exception in a timer fails the call
		}
	}
}

// promiseOf returns v as a promise if it is a thenable (a foreign thenable
// is adopted as Promise.resolve does). Reading then may run the script's
// code: err is what that threw (or a budget).
func (s *Script) promiseOf(v goja.Value) (p *goja.Promise, ok bool, err error) {
	obj, isObj := v.(*goja.Object)
	if !isObj {
		return nil, false, nil
	}
	var then goja.Value
	if err := s.guard(func() {
		then = obj.Get("then")
		if _, thenable := goja.AssertFunction(then); thenable && obj.ClassName() == "Promise" {
			p, ok = obj.Export().(*goja.Promise) // a promise itself: no script code runs
		}
	}); err != nil || ok {
		return p, ok, err
	}
	if _, thenable := goja.AssertFunction(then); !thenable {
		return nil, false, nil
	}
	resolved, err := s.promiseResolve(s.promiseCtor, v)
	if err != nil {
		return nil, false, err
	}
	p, ok = resolved.Export().(*goja.Promise)
	return p, ok, nil
}

// setTimer is setTimeout, setInterval and setImmediate.
func (s *Script) setTimer(call goja.FunctionCall, repeat, immediate bool) goja.Value {
	st := s.call
	fn, ok := goja.AssertFunction(call.Argument(0))
	if !ok {
		panic(s.rt.NewTypeError("the callback must be a function"))
	}
	if st == nil {
		return goja.Undefined()
	}
	delay := int64(0)
	rest := 1
	if !immediate {
		delay = max(call.Argument(1).ToInteger(), 0)
		rest = 2
	}
	var args []goja.Value
	if len(call.Arguments) > rest {
		args = append(args, call.Arguments[rest:]...)
	}
	if st.timers.Len() >= MaxTimers {
		panic(s.rt.NewGoError(fmt.Errorf("more than %d timers pending", MaxTimers)))
	}
	st.nextTimer++
	t := &timer{id: st.nextTimer, due: st.time + delay, seq: st.nextTimer, fn: fn, args: args}
	if repeat {
		t.interval = max(delay, 1)
	}
	st.timers.add(t)
	return s.rt.ToValue(t.id)
}

func (s *Script) clearTimer(call goja.FunctionCall) goja.Value {
	if st := s.call; st != nil {
		st.timers.cancel(call.Argument(0).ToInteger())
	}
	return goja.Undefined()
}
