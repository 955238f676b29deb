package hypercore

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nodevms/nodevms/hypercore/flat"
	"github.com/nodevms/nodevms/hypercore/merkle"
	"github.com/nodevms/nodevms/hypercore/sleep"
)

// ErrHeld is returned by Sync while a hold is open.
var ErrHeld = errors.New("hypercore: feed is held")

// hold is what Hold recorded: where a Rollback takes the feed back to.
type hold struct {
	length, byteLength uint64
	cleared            [][2]uint64 // ranges Clear took out during the hold
}

// stage is the feed's staged tail: what appends wrote while a hold was
// open. None of it is in the files until the outermost hold is released,
// so a rollback only forgets it. Reads see it as part of the feed.
type stage struct {
	length     uint64                 // the feed's length at the outermost Hold
	byteLength uint64                 // and its byte length
	data       []byte                 // the staged blocks' bytes, from byteLength on
	nodes      map[uint64]merkle.Node // the tree nodes the staged appends made
}

// Hold starts a group of changes that may yet be taken back, such as the
// file writes of a call that might be aborted. Until the outermost hold is
// released, appends are staged in memory: they are readable here (Get,
// Length, TreeHash see them) but written to no file, signed by no one and
// not shown to peers (Published stays where it was). Rollback forgets the
// appends and Clears since its Hold, which costs no I/O and leaves the
// files as they were: the feed on disk only ever grows. Holds nest: an
// inner one is a save point within an outer one. A writer's feed only;
// Sync is refused while a hold is open, and Close drops what is staged.
func (f *Feed) Hold() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.writableLocked(); err != nil {
		return err
	}
	if len(f.held) == 0 {
		st := f.spareStage
		f.spareStage = nil
		if st == nil {
			st = &stage{nodes: map[uint64]merkle.Node{}}
		}
		st.length, st.byteLength = f.length, f.byteLength
		f.stage = st
	}
	f.held = append(f.held, &hold{length: f.length, byteLength: f.byteLength})
	return nil
}

// StagedBytes returns how many bytes of blocks the open holds staged: the
// memory they keep until the outermost is released or rolled back.
func (f *Feed) StagedBytes() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stage == nil {
		return 0
	}
	return len(f.stage.data)
}

// Release ends the innermost hold, keeping its changes. When it was the
// outermost, the staged blocks and tree nodes are written to the files in
// one pass, the tree they built is signed (once), and peers are shown
// them. A failed write fails the feed (see Failed), as a failed Append
// does.
func (f *Feed) Release() {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := len(f.held)
	if n == 0 {
		return
	}
	h := f.held[n-1]
	f.held = f.held[:n-1]
	if n > 1 {
		// The outer hold must be able to undo what this one kept.
		outer := f.held[n-2]
		outer.cleared = append(outer.cleared, h.cleared...)
		return
	}
	st := f.stage
	f.stage = nil
	if f.closed || f.failed != nil || f.length == h.length {
		f.recycleStage(st)
		return
	}
	err := f.writeStage(st)
	f.recycleStage(st)
	if err != nil {
		f.fail(err)
		return
	}
	if !f.deferSign {
		if f.privateKey != nil {
			// Appends during the hold were not signed: sign the tree they
			// built, once.
			th := f.gen.TreeHash()
			if err := f.writeSignature(ed25519.Sign(f.privateKey, th[:]), f.length-1); err != nil {
				f.fail(err)
				return
			}
		}
		f.notify()
	}
}

// writeStage writes the staged blocks' bytes and tree nodes to the files:
// the bytes in one write at the end of the data file, the nodes in runs of
// consecutive indices (a staged parent may sit between stored nodes).
func (f *Feed) writeStage(st *stage) error {
	if len(st.data) > 0 {
		if f.data == nil {
			var err error
			if f.data, err = f.openData(); err != nil {
				return err
			}
		}
		if _, err := f.data.WriteAt(st.data, int64(st.byteLength)); err != nil {
			return fmt.Errorf("hypercore: write data: %w", err)
		}
	}
	idx := make([]uint64, 0, len(st.nodes))
	for i := range st.nodes {
		idx = append(idx, i)
	}
	slices.Sort(idx)
	var run []byte
	for k := 0; k < len(idx); {
		j := k + 1
		for j < len(idx) && idx[j] == idx[j-1]+1 {
			j++
		}
		run = slices.Grow(run[:0], (j-k)*sleep.TreeEntrySize)[:(j-k)*sleep.TreeEntrySize]
		for m, i := range idx[k:j] {
			nd := st.nodes[i]
			sleep.EncodeTreeEntry(run[m*sleep.TreeEntrySize:], nd.Hash, nd.Size)
		}
		if _, err := f.tree.WriteAt(run, sleep.TreeOffset(idx[k])); err != nil {
			return fmt.Errorf("hypercore: write tree: %w", err)
		}
		k = j
	}
	return nil
}

// maxSpareStage is the most staged bytes a spare stage keeps room for: a
// call that wrote a large file does not pin its buffer for good.
const maxSpareStage = 1 << 20

// maxSpareNodes is the most tree nodes a spare stage's map is kept for.
const maxSpareNodes = 1024

// recycleStage keeps st, emptied, for the next outermost Hold: a host
// holds its archive's feeds for every call, and a new stage's map and
// buffer were most of what a small write allocated. The stage's bytes
// are reused, so nothing may keep them: reads of staged blocks copy, and
// writers must not retain what they are given (io.WriterAt).
func (f *Feed) recycleStage(st *stage) {
	if len(st.nodes) > maxSpareNodes {
		st.nodes = map[uint64]merkle.Node{} // clear would walk its whole table each time
	} else {
		clear(st.nodes)
	}
	st.data = st.data[:0]
	if cap(st.data) > maxSpareStage {
		st.data = nil
	}
	f.spareStage = st
}

// stageAppend records an append made during a hold: its bytes, and the
// tree entries of the batch (treeBatch, from node nodeOffset on, zeros
// where a parent is not complete) and the parents left of it (outside).
func (st *stage) append(data, treeBatch []byte, nodeOffset uint64, outside []merkle.Node) {
	st.data = append(st.data, data...)
	for _, nd := range outside {
		st.nodes[nd.Index] = nd
	}
	for k := 0; k+sleep.TreeEntrySize <= len(treeBatch); k += sleep.TreeEntrySize {
		if hash, size, ok := sleep.DecodeTreeEntry(treeBatch[k:]); ok {
			i := nodeOffset + uint64(k/sleep.TreeEntrySize)
			st.nodes[i] = merkle.Node{Index: i, Hash: hash, Size: size}
		}
	}
}

// Rollback ends the innermost hold by forgetting its changes: the staged
// blocks and tree nodes since its Hold, and its Clears. Nothing is written
// or cut, since nothing of it reached the files.
func (f *Feed) Rollback() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.held) == 0 {
		return nil
	}
	f.rollbackLocked()
	if f.closed {
		return ErrClosed
	}
	return nil
}

// rollbackLocked undoes the innermost hold in memory.
func (f *Feed) rollbackLocked() {
	n := len(f.held)
	h := f.held[n-1]
	f.held = f.held[:n-1]
	for _, r := range h.cleared {
		for i := r[0]; i < r[1]; i++ {
			f.bitfield.Set(i, true)
		}
	}
	for i := h.length; i < f.length; i++ {
		f.bitfield.Set(i, false)
		f.treeBits.UnsetFrom(2 * i)
	}
	st := f.stage
	if n == 1 {
		f.stage = nil
		f.recycleStage(st)
	} else {
		st.data = st.data[:h.byteLength-st.byteLength]
		// A node made since the hold covers a block appended since.
		for i := range st.nodes {
			if flat.RightSpan(i) >= 2*h.length {
				delete(st.nodes, i)
			}
		}
	}
	if f.length == h.length {
		return
	}
	f.length, f.byteLength = h.length, h.byteLength
	f.rollbacks++
	f.nodes, f.lastRead = nodeCache{}, blockSpan{}
	roots, err := f.rootsOf(f.length)
	if err != nil {
		// The roots were readable when the hold began, and nothing since
		// wrote to the files.
		f.fail(fmt.Errorf("rollback: roots: %w", err))
		return
	}
	f.gen = merkle.NewGenerator(roots)
}

// dropStage rolls back every open hold (for Close: what is staged was never
// acknowledged to the feed's files, and a crash would drop it too).
func (f *Feed) dropStage() {
	for len(f.held) > 0 {
		f.rollbackLocked()
	}
}

// Published is the length that peers are shown: Length, or during a hold
// the length where it began.
func (f *Feed) Published() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.publishedLocked()
}

func (f *Feed) publishedLocked() uint64 {
	n := f.length
	if f.announceOnSync {
		n = f.synced
	}
	if f.deferSign {
		n = min(n, f.signedLength)
	}
	if len(f.held) > 0 {
		n = min(n, f.held[0].length)
	}
	return n
}

// Sign signs the tree of everything appended so far, once, and shows it to
// peers. With AnnounceOnSync it signs only what is synced: a block that a
// crash could still lose is never signed, so a crash cannot make the writer
// sign two different trees of one length. Only a feed opened with
// DeferSignatures has anything to sign; for others Sign does nothing. The
// signing itself runs without the feed's lock, so appends go on meanwhile.
func (f *Feed) Sign() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := f.length
	if f.announceOnSync {
		n = min(n, f.synced)
	}
	switch {
	case f.closed:
		return ErrClosed
	case f.failed != nil:
		return f.failed
	case !f.deferSign || n <= f.signedLength:
		return nil
	case len(f.held) > 0 && n > f.held[0].length:
		return ErrHeld
	}
	var th [32]byte
	if n == f.length {
		th = f.gen.TreeHash()
	} else {
		roots, err := f.rootsOf(n)
		if err != nil {
			return fmt.Errorf("hypercore: roots of length %d: %w", n, err)
		}
		th = merkle.NewHasher().Tree(roots)
	}
	rollbacks, key := f.rollbacks, f.privateKey
	f.mu.Unlock()
	sig := ed25519.Sign(key, th[:])
	f.mu.Lock()
	switch {
	case f.closed:
		return ErrClosed
	case f.failed != nil:
		return f.failed
	case f.rollbacks != rollbacks || n <= f.signedLength:
		return nil // undone meanwhile, or signed further by another Sign
	}
	return f.storeSignature(sig, n)
}

// DefersSignatures reports whether the feed was opened with
// DeferSignatures and can sign (so Sign has work to do).
func (f *Feed) DefersSignatures() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.deferSign
}

// signLocked signs the current tree if it is not signed yet.
func (f *Feed) signLocked() error {
	if f.length == f.signedLength {
		return nil
	}
	th := f.gen.TreeHash()
	return f.storeSignature(ed25519.Sign(f.privateKey, th[:]), f.length)
}

// storeSignature writes sig, the signature of the tree of the first n
// blocks, and shows those blocks to peers.
func (f *Feed) storeSignature(sig []byte, n uint64) error {
	if err := f.writeSignature(sig, n-1); err != nil {
		return f.fail(err)
	}
	f.signedLength = n
	f.syncNeeded = true
	f.notify()
	// A signature is the moment to write what WriteBack keeps, at most
	// every writeBackEvery (a host signs as often as callers wait for
	// receipts, and each flush is a few system calls): a line log's Sync
	// leaves it pending, and another feed's Sync would otherwise write it
	// all at once, holding the feed meanwhile. The tree and signatures may
	// reach the files early: only the bitfield claims blocks, and its
	// pages are written at Sync, after the rest is durable.
	if now := time.Now(); now.Sub(f.lastFlush) >= f.flushEvery {
		f.lastFlush = now
		if err := f.flushWriteBacks(); err != nil {
			return f.fail(err)
		}
	}
	return nil
}

// writeBackEvery is how often a signature flushes what WriteBack keeps.
const writeBackEvery = 5 * time.Millisecond

// flushWriteBacks writes out what Config.WriteBack kept pending.
func (f *Feed) flushWriteBacks() error {
	for _, w := range f.writeBacks {
		if err := w.flush(); err != nil {
			return err
		}
	}
	return nil
}
