package core

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nodevms/nodevms/calllog"
)

// TestCallsWithReceipts: a call that asks for a receipt is answered with
// one that verifies against the log's key and holds the call's entry, its
// result included; a call whose script throws gets one too (the error is
// what the log holds); a call that does not ask gets none.
func TestCallsWithReceipts(t *testing.T) {
	b := deployScript(t, `let n = 0
		exports.increment = () => ++n
		exports.fail = () => { throw new Error('no') }`, nil)
	key := b.log.PublicKey()
	for i, tt := range []struct {
		method  string
		receipt bool
		res     string
		thrown  bool
	}{
		{"increment", true, "1", false},
		{"increment", false, "2", false},
		{"fail", true, "null", true},
		{"increment", true, "3", false},
	} {
		resp, err := b.host.Call(context.Background(), Request{Method: tt.method, Receipt: tt.receipt})
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if (resp.Err != nil) != tt.thrown || string(resp.Res) != tt.res {
			t.Errorf("call %d: %s, %v", i, resp.Res, resp.Err)
		}
		if !tt.receipt {
			if resp.Receipt != nil {
				t.Errorf("call %d asked for no receipt and got one", i)
			}
			continue
		}
		r := resp.Receipt
		if r == nil || resp.ReceiptErr != nil {
			t.Fatalf("call %d: no receipt: %v", i, resp.ReceiptErr)
		}
		if err := r.Verify(key); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if r.Index != resp.Block {
			t.Errorf("call %d: a receipt of entry %d, the call's is %d", i, r.Index, resp.Block)
		}
		e, err := calllog.DecodeEntry(r.Entry)
		if err != nil {
			t.Fatal(err)
		}
		if e.Call.MethodName != tt.method || string(e.Result.Res) != tt.res || (e.Error != nil) != tt.thrown {
			t.Errorf("call %d: the receipt's entry is %s", i, r.Entry)
		}
	}
	b.verify(t)
}

// TestReceiptsInAGroupWithALongCall: in a group whose long call commits the
// calls before it early (on another goroutine), every call that asked for
// a receipt gets one, of its own entry.
func TestReceiptsInAGroupWithALongCall(t *testing.T) {
	b := deployScript(t, `let n = 0
		exports.add = () => ++n
		exports.slow = () => { let x = 0; for (let i = 0; i < 1e6; i++) x += i; return ++n }`, nil)
	start := b.idleHost(t)
	// slow runs past sandbox.SlowAfter (5 ms) everywhere, and must not
	// reach its budget under the race detector on a loaded machine.
	b.host.cfg.Limits.Time = time.Minute
	b.host.m.setLimits(b.host.cfg.Limits)
	methods := []string{"add", "add", "slow", "add"}
	resps := make([]Response, len(methods))
	errs := make([]error, len(methods))
	var wg sync.WaitGroup
	var batch Batch
	for i, m := range methods {
		wg.Add(1)
		b.host.Add(&batch, context.Background(), Request{Method: m, Receipt: i != 1}, func(r Response, err error) {
			resps[i], errs[i] = r, err
			wg.Done()
		})
	}
	b.host.SubmitBatch(&batch)
	start() // in case a signature is left to the loop's timer
	wg.Wait()
	for i, r := range resps {
		if errs[i] != nil {
			t.Fatalf("call %d: %v", i, errs[i])
		}
		if want := json.RawMessage([]byte{byte('1' + i)}); string(r.Res) != string(want) {
			t.Errorf("call %d answered %s, want %s", i, r.Res, want)
		}
		if i == 1 {
			continue
		}
		if r.Receipt == nil {
			t.Fatalf("call %d: no receipt: %v", i, r.ReceiptErr)
		}
		if err := r.Receipt.Verify(b.log.PublicKey()); err != nil || r.Receipt.Index != r.Block {
			t.Errorf("call %d: receipt of entry %d (the call's is %d): %v", i, r.Receipt.Index, r.Block, err)
		}
	}
}

// TestReceiptOfAnyEntry: Host.Receipt gives the receipt of any entry, the
// init entry and others' calls included, waiting for its signature; past
// the log's end it is ErrNoEntry.
func TestReceiptOfAnyEntry(t *testing.T) {
	b := deployScript(t, script(t, "counter.js"), nil)
	for range 5 {
		b.call(t, "increment", nil)
	}
	ctx := context.Background()
	for i := range b.log.Length() {
		r, err := b.host.Receipt(ctx, i)
		if err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		if err := r.Verify(b.log.PublicKey()); err != nil {
			t.Errorf("entry %d: %v", i, err)
		}
		want, _ := b.log.Get(i)
		if diff := cmp.Diff(want, r.Entry); diff != "" {
			t.Errorf("entry %d (-log +receipt):\n%s", i, diff)
		}
	}
	if _, err := b.host.Receipt(ctx, b.log.Length()); !errors.Is(err, ErrNoEntry) {
		t.Errorf("past the end: %v, want ErrNoEntry", err)
	}
}

// TestHeldAnswersWhenTheStoresFail: calls held for their receipts are
// answered with their results and the reason there is no receipt when the
// stores fail before their entries are signed, and stay held while their
// entries are merely not signed yet.
func TestHeldAnswersWhenTheStoresFail(t *testing.T) {
	b := deployScript(t, script(t, "counter.js"), nil)
	h := b.host
	var got []Response
	hold := func(block uint64) {
		p := &pending{req: Request{Method: "increment", Receipt: true}, done: func(r Response, err error) {
			if err != nil {
				t.Error(err)
			}
			got = append(got, r)
		}}
		h.holdForReceipt(p, Response{Res: json.RawMessage("7"), Block: block}, []byte("{}\n"))
	}
	h.run.Lock()
	defer h.run.Unlock()
	hold(b.log.Length()) // not appended, so not signed
	h.answerReceipts(nil)
	if len(got) != 0 {
		t.Fatalf("an answer whose entry is not signed was given: %+v", got)
	}
	h.answerReceipts(errors.New("disk full"))
	if len(got) != 1 || got[0].Receipt != nil || got[0].ReceiptErr == nil || string(got[0].Res) != "7" {
		t.Fatalf("after the stores failed: %+v", got)
	}
	if got[0].ReceiptErr.Error() != "no receipt: disk full" {
		t.Errorf("the reason: %v", got[0].ReceiptErr)
	}
}

// TestManyAwaitingReceiptsAreSignedAtOnce: answers held for their
// receipts wait for the signing interval while the host has other calls to
// run, unless signForReceipts or more wait; then, or once the host has
// nothing left to run, it signs at once.
func TestManyAwaitingReceiptsAreSignedAtOnce(t *testing.T) {
	b := deployScript(t, `let n = 0
		exports.increment = () => ++n`, nil)
	clock := newManualClock()
	b.host.cfg.Clock, b.host.cfg.SignEvery = clock.Now, time.Hour // the interval never passes
	start := b.idleHost(t)
	defer start()
	h := b.host
	t.Cleanup(func() {
		// Answers still held (the test failed) are let go, so that the
		// host can close.
		h.run.Lock()
		h.sign()
		h.run.Unlock()
	})
	var mu sync.Mutex
	answered := 0
	batchOf := func(n int, signedEntry bool) *Batch {
		var batch Batch
		for range n {
			h.Add(&batch, context.Background(), Request{Method: "increment", SignedEntry: signedEntry}, func(resp Response, err error) {
				if err != nil || resp.ReceiptErr != nil || (signedEntry && resp.Entry == nil) {
					t.Errorf("an answer: %+v, %v", resp, err)
				}
				mu.Lock()
				answered++
				mu.Unlock()
			})
		}
		return &batch
	}
	// runBusy runs n calls as a group while another call is counted as
	// queued: the host has more to run afterwards.
	runBusy := func(n int, signedEntry bool) {
		batch := batchOf(n, signedEntry)
		h.queued.Add(1)
		h.run.Lock()
		h.runGroupAndSign(batch.calls)
		h.run.Unlock()
		h.queued.Add(-1)
	}
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return answered
	}
	h.SubmitBatch(batchOf(1, false)) // the first group signs: the log was never signed
	runBusy(signForReceipts-1, true)
	if got := count(); got != 1 {
		t.Fatalf("%d answers awaiting their receipts were given before a signature, with calls queued", got-1)
	}
	runBusy(1, true)
	if got := count(); got != 1+signForReceipts {
		t.Fatalf("with %d answers awaiting receipts, %d were given; want all", signForReceipts, got-1)
	}
	if pub := b.log.Published(); pub != b.log.Length() {
		t.Errorf("the log is signed to %d of %d", pub, b.log.Length())
	}
	// Nothing queued: the host signs for even one.
	h.SubmitBatch(batchOf(1, true))
	if got := count(); got != 2+signForReceipts {
		t.Fatalf("an answer awaiting its receipt on an idle host was not given (%d of %d)", got, 2+signForReceipts)
	}
	if pub := b.log.Published(); pub != b.log.Length() {
		t.Errorf("the idle host signed the log to %d of %d", pub, b.log.Length())
	}
}
