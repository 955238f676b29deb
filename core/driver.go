package core

import (
	"bytes"
	"sync/atomic"

	"github.com/nodevms/nodevms/calllog"
)

// The host works in two steps, in the manner of raft's Ready and Advance.
// Running calls (runGroup, runCall, the machine) does no I/O of its own:
// a call's archive writes are staged in memory (hyperdrive.Archive.Begin)
// and its entry is only built. What the calls leave is a ready: the
// entries for the log, in order, and whom each answers. The driver's step
// (commitGroup, or earlyCommit while a long call runs) then appends the
// entries in one batch and flushes the log, commits the archive (which
// writes the staged blocks), lets the standby know, and answers. A call
// stopped before it is in a ready leaves nothing to undo but its staged
// writes.

// ready is what running a group's calls hands the driver: entries for the
// log, in order, and the caller each answers (nil for a reload entry,
// which answers no one).
type ready struct {
	entries []*calllog.Entry
	callers []*pending
}

// add appends an entry and its caller.
func (r *ready) add(e *calllog.Entry, p *pending) {
	r.entries = append(r.entries, e)
	r.callers = append(r.callers, p)
}

// from returns the part of r from entry i on.
func (r ready) from(i int) ready {
	return ready{entries: r.entries[i:], callers: r.callers[i:]}
}

// answer answers r's callers, whose entries are durable from log block
// first on, as blocks; those that asked for receipts are held until h
// signs.
func (r ready) answer(h *Host, first uint64, blocks [][]byte) {
	for i, p := range r.callers {
		if p != nil {
			answer(h, p, r.entries[i], first+uint64(i), blocks[i])
		}
	}
}

// fail answers r's callers with err.
func (r ready) fail(err error) { failAll(r.callers, err) }

// failAll answers calls with err.
func failAll(calls []*pending, err error) {
	for _, p := range calls {
		if p != nil {
			p.done(Response{}, err)
		}
	}
}

// answer answers a call whose entry is durable at block, or holds the
// answer until the entry is signed if the call asked for a receipt (with a
// copy of the entry's bytes, which the receipt carries: reading them back
// from the log would cost a read and a hash).
func answer(h *Host, p *pending, e *calllog.Entry, block uint64, data []byte) {
	resp := Response{Res: e.Result.Res, Err: e.Error, FilesVersion: e.Result.FilesVersion, Block: block}
	if p.req.Receipt || p.req.SignedEntry {
		h.holdForReceipt(p, resp, bytes.Clone(data))
		return
	}
	p.done(resp, nil)
}

// persist appends r's entries to the log in one batch and flushes it (as
// the log's durability mode says), then tells the standby: from here the
// calls stand. It returns the log block of r's first entry, and the
// entries' bytes (in buf's memory). buf, if set, is a buffer to encode into
// and keep.
func (h *Host) persist(r ready, buf *[]byte) (uint64, [][]byte, error) {
	log := h.cfg.Log
	first := log.Length()
	blocks, err := appendEntryBlocks(log, r.entries, buf)
	if err != nil {
		return 0, nil, err
	}
	if s := h.standby; s != nil {
		s.noteDurable(first, r.callers, log.Length())
	}
	return first, blocks, nil
}

// commitGroup is the driver's step at the end of a group: it makes r
// durable (persist), commits the group's archive transaction, and answers.
// If the stores failed, under the group or now, the transaction is rolled
// back and r's callers are told the host is unavailable; it then reports
// false. h.run is held.
func (h *Host) commitGroup(r ready) bool {
	a := h.cfg.Archive
	if h.storeErr != nil {
		a.Rollback()
		r.fail(unavailable(h.storeErr, false))
		return false
	}
	first, blocks, err := h.persist(r, &h.encoded)
	if err != nil {
		a.Rollback()
		// The log refuses writes now; the entries, and the state the calls
		// made, are redone from the log, or were never acknowledged, when
		// recoverStores reopens it.
		h.storesFailed("appending to the call log", err)
		r.fail(unavailable(err, true))
		return false
	}
	if err := a.Commit(); err != nil {
		// The entries are durable, so the calls stand: the archive gets
		// their writes again from the log.
		h.storesFailed("committing to the files archive", err)
	}
	r.answer(h, first, blocks)
	return true
}

// earlyCommit is the driver's step while the host runs a call that has
// run long (sandbox.Call.Slow): on its own goroutine, it persists the
// group's entries so far and answers their callers. The archive's group
// transaction stays open: the entries are durable, so the calls stand
// whatever follows (a crash, or a failure later in the group, redoes their
// writes from the log, as after any append).
type earlyCommit struct {
	h        *Host
	r        ready
	started  atomic.Bool
	finished chan struct{} // made by start
	err      error         // the append's, once finished
	slow     func()        // start, as a func made once
}

// reset readies c for the next call of its group, with the group's
// entries not yet in the log.
func (c *earlyCommit) reset(r ready) {
	c.r, c.finished, c.err = r, nil, nil
	c.started.Store(false)
}

// start begins the commit; it is sandbox.Call.Slow, which must not block.
func (c *earlyCommit) start() {
	c.finished = make(chan struct{})
	c.started.Store(true)
	go func() {
		defer close(c.finished)
		first, blocks, err := c.h.persist(c.r, nil)
		if c.err = err; err == nil {
			c.r.answer(c.h, first, blocks)
		}
	}()
}

// settle waits for the commit if it started, and reports a failed append
// as the stores failing (h.run is held).
func (c *earlyCommit) settle() {
	if c == nil || !c.started.Load() {
		return
	}
	<-c.finished
	if c.err != nil {
		c.h.storesFailed("appending to the call log while a long call ran", c.err)
	}
}

// committed reports whether the commit appended its entries (after settle).
func (c *earlyCommit) committed() bool {
	return c != nil && c.started.Load() && c.err == nil
}
