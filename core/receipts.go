package core

import (
	"context"
	"errors"
	"fmt"

	"github.com/nodevms/nodevms/receipt"
)

// Receipts. A call that asks for one (Request.Receipt) is answered once
// its entry is signed, with the receipt. The host signs on its own cadence
// (SignEvery after the first unsigned append), and sooner while answers
// wait: once signForReceipts of them do, or once it has no call left to
// run. So such an answer waits SignEvery at most, and asking costs the
// host a proof (a few tree nodes, most of them cached) and a share of a
// signature, not a signature of its own.

// awaitingReceipt is a durable call's answer, held until its entry is
// signed.
type awaitingReceipt struct {
	p     *pending
	resp  Response
	entry []byte // the entry's bytes, at resp.Block
}

// holdForReceipt keeps a durable call's answer until its entry is signed.
// It runs where answers are given: under h.run, or on an early commit's
// goroutine.
func (h *Host) holdForReceipt(p *pending, resp Response, entry []byte) {
	h.receiptsMu.Lock()
	h.awaiting = append(h.awaiting, awaitingReceipt{p, resp, entry})
	h.receiptsMu.Unlock()
}

// signForReceipts is how many answers awaiting their receipts make the
// host sign at once, rather than when SignEvery has passed: a signature
// costs about as much as a few calls, and spread over this many it costs
// each little, while waiting would hold every one of their answers back
// for milliseconds (and a caller with calls in flight sends fewer).
const signForReceipts = 32

// awaitingReceipts is how many answers wait for a signature.
func (h *Host) awaitingReceipts() int {
	h.receiptsMu.Lock()
	defer h.receiptsMu.Unlock()
	return len(h.awaiting)
}

// answerReceipts answers the held calls whose entries the log has signed,
// each with its receipt; failed, if set, is why there will be no signature
// (the stores failed), and those calls are answered with their results and
// that error. Entries not signed yet (an early commit appended them while
// the host signed) wait for the next signature. h.run is held.
func (h *Host) answerReceipts(failed error) {
	h.receiptsMu.Lock()
	held := h.awaiting
	h.awaiting = nil
	h.receiptsMu.Unlock()
	var later []awaitingReceipt
	for _, a := range held {
		if failed != nil {
			a.resp.ReceiptErr = fmt.Errorf("no receipt: %w", failed)
			a.p.done(a.resp, nil)
			continue
		}
		if a.p.req.SignedEntry {
			if a.resp.Block >= h.cfg.Log.Published() {
				later = append(later, a)
				continue
			}
			a.resp.Entry = a.entry
			a.p.done(a.resp, nil)
			continue
		}
		r, err := receipt.MakeOf(h.cfg.Log, a.resp.Block, a.entry)
		if errors.Is(err, receipt.ErrNotSigned) {
			later = append(later, a)
			continue
		}
		a.resp.Receipt, a.resp.ReceiptErr = r, err
		a.p.done(a.resp, nil)
	}
	if len(later) > 0 {
		h.receiptsMu.Lock()
		h.awaiting = append(later, h.awaiting...)
		h.receiptsMu.Unlock()
	}
}

// Receipt returns the receipt of the log's entry at index, waiting until
// the host has signed it (within SignEvery of its append) or ctx ends. An
// index past the log's end is ErrNoEntry.
func (h *Host) Receipt(ctx context.Context, index uint64) (*receipt.Receipt, error) {
	log := h.cfg.Log
	for {
		changed := log.Changed()
		if n := log.Length(); index >= n {
			return nil, fmt.Errorf("%w: %d (the log has %d)", ErrNoEntry, index, n)
		}
		r, err := receipt.Make(log, index)
		if !errors.Is(err, receipt.ErrNotSigned) {
			return r, err
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}
