package hypercore

import (
	"errors"
	"fmt"

	"github.com/nodevms/nodevms/hypercore/bitfield"
	"github.com/nodevms/nodevms/hypercore/merkle"
	"github.com/nodevms/nodevms/hypercore/sleep"
)

// A writer's bitfield reaches the file after the data, tree and signatures
// it claims (see Sync), so every bit it holds stands for bytes that reached
// their files before it. But the write of its pages can itself be cut
// short: Linux ends a write at a 4 KiB boundary of the file when the
// process is killed, and a power cut can tear a page too. A page may then
// hold new bits up to the cut and old ones after it, or the file may end
// inside a page. The feed's claims then have holes, or disagree with its
// tree bits, and Open rebuilds them (reclaim) instead of refusing to start.

// checkClaims reports how a writer's bitfield, loaded with the feed's
// length derived from it, is not whole: every leaf below the length is in
// the tree bits, nothing at or past it is claimed, and the index summarises
// the block bits.
func (f *Feed) checkClaims() error {
	if last, ok := f.bitfield.LastSet(); ok && last >= f.length {
		return fmt.Errorf("%w: the bitfield claims block %d of %d", ErrCorrupt, last, f.length)
	}
	if last, ok := f.treeBits.LastSet(); ok && (f.length == 0 || last > 2*f.length-2) {
		return fmt.Errorf("%w: the bitfield claims tree node %d of a feed of %d blocks", ErrCorrupt, last, f.length)
	}
	for i := uint64(0); i < f.length; i++ {
		if !f.treeBits.Get(2 * i) {
			return fmt.Errorf("%w: the bitfield lacks tree node %d of a feed of %d blocks", ErrCorrupt, 2*i, f.length)
		}
	}
	if err := f.bitfield.CheckIndex(); err != nil {
		return fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return nil
}

// Reclaimed returns why Open rebuilt the writer's bitfield, which a crash
// had torn, or nil if it did not. A host logs it: the feed is whole, but
// blocks whose claims the tear took are not offered until claimed again.
func (f *Feed) Reclaimed() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reclaimed
}

// reclaim rebuilds a writer's bitfield that cause says is torn. The feed's
// length becomes the longest that anything in the bitfield claims and whose
// stored signature signs the stored tree, with the data file long enough
// for it. Its tree bits become those of that length's whole tree; its block
// bits, those the file claimed below it (a block the tear took the claim of
// is not offered, which costs a download, never a wrong answer; hyperdrive
// claims its own blocks back, see Unclear). The pages are written over the
// torn ones at once.
func (f *Feed) reclaim(cause error) error {
	old := f.bitfield
	upper := f.treeBits.Blocks()
	if last, ok := old.LastSet(); ok {
		upper = max(upper, last+1)
	}
	if last, ok := f.treeBits.LastSet(); ok {
		upper = max(upper, last/2+1)
	}
	// Nor can it be longer than its tree and signatures files hold: n
	// blocks take 2n-1 tree entries and n signatures.
	treeSize, err := f.tree.Size()
	if err != nil {
		return fmt.Errorf("%w (and reading the tree file's size failed: %w)", cause, err)
	}
	sigSize, err := f.signatures.Size()
	if err != nil {
		return fmt.Errorf("%w (and reading the signatures file's size failed: %w)", cause, err)
	}
	entries := uint64(max(0, treeSize-sleep.HeaderSize)) / sleep.TreeEntrySize
	upper = min(upper, (entries+1)/2, uint64(max(0, sigSize-sleep.HeaderSize))/SignatureSize)
	length, byteLength, roots, err := f.lastSigned(upper)
	if err != nil {
		return fmt.Errorf("%w (and finding the last signed length failed: %w)", cause, err)
	}
	b, err := bitfield.New(old.PageSize())
	if err != nil {
		return err
	}
	tree := b.Tree()
	for i := uint64(0); i < length; i++ {
		if old.Get(i) {
			b.Set(i, true)
		}
		tree.Set(2 * i)
	}
	f.bitfield, f.treeBits = b, tree
	f.length, f.byteLength = length, byteLength
	f.gen = merkle.NewGenerator(roots)
	f.nodes = nodeCache{}
	f.reclaimed = cause
	if err := f.writeBitfield(); err != nil {
		return fmt.Errorf("%w (and writing the rebuilt bitfield failed: %w)", cause, err)
	}
	return nil
}

// lastSigned returns the longest length at most upper whose signature,
// stored at length-1, signs the tree stored for it, and whose data the data
// file is long enough for; zero if there is none.
func (f *Feed) lastSigned(upper uint64) (length, byteLength uint64, roots []merkle.Node, err error) {
	for l := upper; l > 0; l-- {
		if _, err := f.readSignature(l - 1); errors.Is(err, ErrNotFound) {
			continue // inside a batch, or never signed
		} else if err != nil {
			return 0, 0, nil, err
		}
		roots, err := f.rootsOf(l)
		if errors.Is(err, ErrNotFound) {
			continue
		} else if err != nil {
			return 0, 0, nil, err
		}
		var n uint64
		for _, r := range roots {
			n += r.Size
		}
		if f.checkSigned(l, roots) != nil || f.checkStored(l, n) != nil {
			continue
		}
		return l, n, roots, nil
	}
	return 0, 0, nil, nil
}

// writeBitfield writes every page of the bitfield, cuts the file after the
// last, and makes it durable.
func (f *Feed) writeBitfield() error {
	pageSize := int64(f.bitfield.PageSize())
	if err := f.bitfield.WriteDirty(func(n uint64, page []byte) error {
		_, err := f.bits.WriteAt(page, sleep.HeaderSize+int64(n)*pageSize)
		return err
	}); err != nil {
		return err
	}
	t, ok := f.bits.(truncater)
	if !ok {
		return errors.New("the storage cannot truncate files")
	}
	if err := t.Truncate(sleep.HeaderSize + int64(f.bitfield.PageCount())*pageSize); err != nil {
		return err
	}
	if err := f.flushWriteBacks(); err != nil {
		return err
	}
	if f.noFsync {
		return nil
	}
	return f.bits.Sync()
}
