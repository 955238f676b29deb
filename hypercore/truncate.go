package hypercore

import (
	"crypto/ed25519"
	"fmt"

	"github.com/nodevms/nodevms/hypercore/merkle"
	"github.com/nodevms/nodevms/hypercore/sleep"
)

// truncater is implemented by files that can be cut back.
type truncater interface {
	Truncate(size int64) error
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
	if err := f.writableLocked(); err != nil {
		return err
	}
	switch {
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
	if err := f.cutLocked(length, byteLength); err != nil {
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
func (f *Feed) cutLocked(length, byteLength uint64) error {
	const op = "truncate"
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
	f.nodes, f.lastRead = nodeCache{}, blockSpan{}
	roots, err := f.rootsOf(f.length)
	if err != nil {
		return f.fail(fmt.Errorf("%s: roots: %w", op, err))
	}
	f.gen = merkle.NewGenerator(roots)
	return nil
}
