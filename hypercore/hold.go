package hypercore

import (
	"crypto/ed25519"
	"errors"
	"fmt"

	"github.com/nodevms/nodevms/hypercore/merkle"
	"github.com/nodevms/nodevms/hypercore/sleep"
)

// ErrHeld is returned by Sync while a hold is open.
var ErrHeld = errors.New("hypercore: feed is held")

// truncater is implemented by files that can be cut back.
type truncater interface {
	Truncate(size int64) error
}

// hold is what Hold recorded.
type hold struct {
	length, byteLength uint64
	cleared            [][2]uint64 // ranges Clear took out during the hold
}

// Hold starts a group of changes that may yet be taken back, such as the
// file writes of a call that might be aborted. Until Release, appends are
// readable here but not shown to peers (Published stays where it was), and
// Rollback undoes appends and Clears back to this point. Holds nest: an
// inner one is a save point within an outer one, and peers are shown
// nothing until the outermost is released. A writer's feed only; Sync is
// refused while a hold is open, so that nothing of it reaches the bitfield
// on disk.
func (f *Feed) Hold() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.closed:
		return ErrClosed
	case f.privateKey == nil && !f.unsigned:
		return ErrNotWritable
	case f.failed != nil:
		return f.failed
	}
	f.held = append(f.held, &hold{length: f.length, byteLength: f.byteLength})
	return nil
}

// Release ends the innermost hold, keeping its changes; when it was the
// outermost, the tree they built is signed (once) and peers are shown them.
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
	if f.length > h.length && !f.deferSign {
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

// Rollback ends a hold by undoing its changes: the bitfield, the tree
// index and the signer's roots are as they were at Hold, the signatures
// written since are erased (a stale one could be taken for a later block's),
// and the data and tree files are cut back where the storage allows (bytes
// left past the end are overwritten by later appends).
func (f *Feed) Rollback() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := len(f.held)
	if n == 0 {
		return nil
	}
	h := f.held[n-1]
	f.held = f.held[:n-1]
	if f.closed {
		return ErrClosed
	}
	for _, r := range h.cleared {
		for i := r[0]; i < r[1]; i++ {
			f.bitfield.Set(i, true)
		}
	}
	return f.cutLocked(h.length, h.byteLength, "rollback")
}

// Truncate forgets the blocks from length on. It is for a writer
// recovering from a crash that left blocks nothing refers to, such as a
// files archive's content that reached the disk before the metadata that
// would point at it. A block peers may have been shown must only be taken
// back this way if the writer will append the same block again: another
// block at a signed index is a fork. The files are cut at once; the
// bitfield reaches the disk with the next Sync, and until then a crash
// leaves the blocks as they were.
func (f *Feed) Truncate(length uint64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.closed:
		return ErrClosed
	case f.privateKey == nil && !f.unsigned:
		return ErrNotWritable
	case f.failed != nil:
		return f.failed
	case len(f.held) > 0:
		return ErrHeld
	case length >= f.length:
		return nil
	}
	roots, err := f.rootsOf(length)
	if err != nil {
		return fmt.Errorf("hypercore: truncate: %w", err)
	}
	var byteLength uint64
	for _, r := range roots {
		byteLength += r.Size
	}
	f.syncNeeded = true
	if err := f.cutLocked(length, byteLength, "truncate"); err != nil {
		return err
	}
	if f.privateKey != nil && length > 0 {
		// The new head needs a signature of its own: the feed may never
		// have been signed at this length. (It is a prefix of what was
		// signed, not another history.)
		th := f.gen.TreeHash()
		if err := f.writeSignature(ed25519.Sign(f.privateKey, th[:]), length-1); err != nil {
			return f.fail(fmt.Errorf("truncate: %w", err))
		}
		f.signedLength = length
	}
	return nil
}

// cutLocked takes the feed back to length blocks of byteLength bytes: the
// bitfield, the tree index and the signer's roots, the signatures written
// past it (erased: a stale one could be taken for a later block's), and the
// data and tree files, cut where the storage allows (bytes left past the
// end are overwritten by later appends).
func (f *Feed) cutLocked(length, byteLength uint64, op string) error {
	for i := length; i < f.length; i++ {
		f.bitfield.Set(i, false)
		f.treeBits.UnsetFrom(2 * i)
	}
	if f.length > length {
		zero := make([]byte, SignatureSize)
		for i := length; i < f.length; i++ {
			if _, err := f.signatures.WriteAt(zero, sleep.HeaderSize+int64(i)*SignatureSize); err != nil {
				return f.fail(fmt.Errorf("%s: signatures: %w", op, err))
			}
		}
		cuts := []struct {
			file File
			size int64
		}{
			{f.signatures, sleep.HeaderSize + int64(length)*SignatureSize},
			{f.data, int64(byteLength)},
		}
		if length > 0 {
			cuts = append(cuts, struct {
				file File
				size int64
			}{f.tree, sleep.TreeOffset(2*length - 1)})
		}
		for _, c := range cuts {
			if t, ok := c.file.(truncater); ok {
				if err := t.Truncate(c.size); err != nil {
					return f.fail(fmt.Errorf("%s: %w", op, err))
				}
				if c.file == f.data {
					f.dataEnd = uint64(c.size)
				}
			}
		}
	}
	f.length, f.byteLength = length, byteLength
	f.synced = min(f.synced, f.length)
	f.signedLength = min(f.signedLength, f.length)
	f.rollbacks++
	f.nodes = nodeCache{}
	roots, err := f.rootsOf(f.length)
	if err != nil {
		return f.fail(fmt.Errorf("%s: roots: %w", op, err))
	}
	f.gen = merkle.NewGenerator(roots)
	return nil
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
	// A signature is the moment to write what WriteBack keeps (every few
	// milliseconds at most): a line log's Sync leaves it pending, and
	// another feed's Sync would otherwise write it all at once, holding
	// the feed meanwhile. The tree and signatures may reach the files
	// early: only the bitfield claims blocks, and its pages are written at
	// Sync, after the rest is durable.
	if err := f.flushWriteBacks(); err != nil {
		return f.fail(err)
	}
	return nil
}

// flushWriteBacks writes out what Config.WriteBack kept pending.
func (f *Feed) flushWriteBacks() error {
	for _, w := range f.writeBacks {
		if err := w.flush(); err != nil {
			return err
		}
	}
	return nil
}
