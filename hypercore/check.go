package hypercore

import (
	"crypto/ed25519"
	"errors"
	"fmt"

	"github.com/nodevms/nodevms/hypercore/flat"
	"github.com/nodevms/nodevms/hypercore/merkle"
)

// checkReadSize is how much of the data file CheckStored reads at a time.
const checkReadSize = 1 << 20

// CheckOptions says what CheckStored reads.
type CheckOptions struct {
	// Data: hash every block the bitfield claims against its leaf (reads
	// the whole data file).
	Data bool
	// AllBlocks: every block of the feed must be present (a writer that
	// never clears, such as a files archive's metadata).
	AllBlocks bool
	// Signatures: verify every stored signature against the tree of its
	// length, not just the last (one Ed25519 verification each).
	Signatures bool
}

// CheckStored checks a feed's files as a writer, or a replica with every
// node, holds them: every node of the tree of its length is stored and
// hashes from its children, the last signature signs the roots, the
// bitfield claims no block or node past the length and its index
// summarises its block bits, and, as opts asks, every block is present
// and hashes to its leaf. Errors wrap ErrCorrupt (the files disagree with
// each other) or ErrDataChanged (a block is not the one signed), and name
// the file and the block or node. It reads the whole tree (twice, a chunk
// at a time), and the data with opts.Data: it is for a start and for an
// offline check.
func (f *Feed) CheckStored(opts CheckOptions) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return ErrClosed
	}
	n := f.length
	hs := merkle.NewHasher()
	// The tree is read forward a chunk at a time, and each parent checked
	// when its last leaf has been read: stored parents wait in a map until
	// then (one per level at most), so that a long feed's check does not
	// hold its tree in memory.
	tree := &treeScanner{file: f.tree}
	if n > 0 {
		tree.n = 2*n - 1
	}
	waiting := map[uint64]merkle.Node{}
	var stack []merkle.Node // the complete subtrees so far, as Generator keeps roots
	var next uint64         // the next tree entry to read
	// takeIn reads tree entries up to leaf 2i, and returns the leaf.
	takeIn := func(i uint64) (merkle.Node, error) {
		var leaf merkle.Node
		for ; next <= 2*i; next++ {
			if flat.RightSpan(next) >= 2*n {
				continue // not a node of the tree of n blocks
			}
			if !f.treeBits.Get(next) {
				return leaf, fmt.Errorf("%w: %s: tree node %d is not marked present", ErrCorrupt, f.fileName("bitfield"), next)
			}
			hash, size, ok, err := tree.entry(next)
			if err != nil {
				return leaf, fmt.Errorf("%w: %s: %v", ErrCorrupt, f.fileName("tree"), err)
			}
			if !ok {
				return leaf, fmt.Errorf("%w: %s: node %d is blank", ErrCorrupt, f.fileName("tree"), next)
			}
			nd := merkle.Node{Index: next, Hash: hash, Size: size}
			if next%2 == 1 {
				waiting[next] = nd
			} else {
				leaf = nd
			}
		}
		stack = append(stack, leaf)
		for len(stack) > 1 {
			left, right := stack[len(stack)-2], stack[len(stack)-1]
			p := flat.Parent(left.Index)
			if p != flat.Parent(right.Index) {
				break
			}
			nd, ok := waiting[p]
			if !ok || nd.Hash != hs.Parent(left, right) || nd.Size != left.Size+right.Size {
				return leaf, fmt.Errorf("%w: %s: node %d does not hash from its children", ErrCorrupt, f.fileName("tree"), p)
			}
			delete(waiting, p)
			stack = append(stack[:len(stack)-2], nd)
		}
		return leaf, nil
	}

	for i := range n {
		if _, err := takeIn(i); err != nil {
			return err
		}
	}
	if n > 0 && !f.unsigned {
		roots, err := f.rootsOf(n)
		if err != nil {
			return fmt.Errorf("%w: %s: roots: %v", ErrCorrupt, f.fileName("tree"), err)
		}
		sig, err := f.readSignature(n - 1)
		if err != nil {
			return fmt.Errorf("%w: %s: %v", ErrCorrupt, f.fileName("signatures"), err)
		}
		th := hs.Tree(roots)
		if !ed25519.Verify(f.publicKey, th[:], sig) {
			return fmt.Errorf("%w: %s: the signature of block %d does not sign the stored tree", ErrCorrupt, f.fileName("signatures"), n-1)
		}
	}
	if opts.Signatures && !f.unsigned {
		for i := range n {
			sig, err := f.readSignature(i)
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return fmt.Errorf("%w: %s: %v", ErrCorrupt, f.fileName("signatures"), err)
			}
			roots, err := f.rootsOf(i + 1)
			if err != nil {
				return fmt.Errorf("%w: %s: roots of %d blocks: %v", ErrCorrupt, f.fileName("tree"), i+1, err)
			}
			th := hs.Tree(roots)
			if !ed25519.Verify(f.publicKey, th[:], sig) {
				return fmt.Errorf("%w: %s: the signature of block %d does not sign the stored tree", ErrCorrupt, f.fileName("signatures"), i)
			}
		}
	}
	var off uint64 // block i's first byte in the data file
	var buf []byte
	var bufAt uint64 // the data file offset buf starts at
	// The blocks, once the tree they are checked against is known good:
	// the leaves are read again, forward.
	leaves := &treeScanner{file: f.tree, n: tree.n}
	for i := range n {
		hash, size, _, err := leaves.entry(2 * i)
		if err != nil {
			return fmt.Errorf("%w: %s: %v", ErrCorrupt, f.fileName("tree"), err)
		}
		leaf := merkle.Node{Index: 2 * i, Hash: hash, Size: size}
		start := off
		off += leaf.Size
		if !f.bitfield.Get(i) {
			if opts.AllBlocks {
				return fmt.Errorf("%w: %s: block %d is not marked present", ErrCorrupt, f.fileName("bitfield"), i)
			}
			continue
		}
		if !opts.Data {
			continue
		}
		if start < bufAt || off > bufAt+uint64(len(buf)) {
			// Read on from block i, a few blocks' worth at a time.
			bufAt = start
			b, err := f.readData(i, start, max(leaf.Size, min(checkReadSize, f.byteLength-start)))
			if err != nil {
				return fmt.Errorf("%s: %w", f.fileName("data"), err)
			}
			buf = b
		}
		if hs.Leaf(buf[start-bufAt:off-bufAt]) != leaf.Hash {
			return fmt.Errorf("%w: %s: block %d (bytes %d to %d) does not hash to its tree leaf", ErrDataChanged, f.fileName("data"), i, start, off)
		}
	}
	if i, ok := f.bitfield.FirstSetFrom(n); ok {
		return fmt.Errorf("%w: %s: block %d is marked present, and the feed has %d", ErrCorrupt, f.fileName("bitfield"), i, n)
	}
	for j, ok := f.treeBits.FirstSetFrom(0); ok; j, ok = f.treeBits.FirstSetFrom(j + 1) {
		if flat.RightSpan(j) >= 2*n {
			return fmt.Errorf("%w: %s: tree node %d is marked present, past the feed's %d blocks", ErrCorrupt, f.fileName("bitfield"), j, n)
		}
	}
	if err := f.bitfield.CheckIndex(); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrCorrupt, f.fileName("bitfield"), err)
	}
	return nil
}

// fileName names one of the feed's files for messages: its path, when the
// storage has one (DirStorage), else its name.
func (f *Feed) fileName(name string) string {
	if p, ok := f.storage.(interface{ Path(string) string }); ok {
		return p.Path(name)
	}
	return name
}
