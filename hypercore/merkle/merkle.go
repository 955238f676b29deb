// Package merkle computes the hashes of hypercore's Merkle tree (the Dat 1.0
// profile) and builds the tree incrementally as blocks are appended.
//
// All hashes are BLAKE2b with a 32-byte digest (BLAKE2b-256, not a truncated
// BLAKE2b-512), with a one-byte type prefix against second-preimage attacks:
//
//	leaf    0x00 || u64be(len(data)) || data
//	parent  0x01 || u64be(left.Size + right.Size) || left.Hash || right.Hash
//	tree    0x02 || for each root, left to right: hash || u64be(index) || u64be(size)
//
// The tree hash over a feed's roots is what the feed's writer signs.
package merkle

import (
	"encoding/binary"
	"hash"
	"sync"

	"golang.org/x/crypto/blake2b"

	"github.com/nodevms/nodevms/hypercore/flat"
)

// HashSize is the size of every hash in the tree.
const HashSize = 32

// Node is one node of a feed's Merkle tree.
type Node struct {
	Index uint64         // flat-tree index; block i is node 2i
	Hash  [HashSize]byte // the node's hash
	Size  uint64         // bytes of block data under the node
}

const (
	leafType   = 0
	parentType = 1
	rootType   = 2
)

// Hasher computes tree hashes, reusing its state between calls. The zero
// value is not usable; use NewHasher. A Hasher is not safe for concurrent use.
type Hasher struct {
	h    hash.Hash
	buf  [1 + 8 + 2*HashSize]byte // a parent's whole input; a leaf's prefix
	tree []byte                   // a tree hash's input
	sum  [HashSize]byte
}

// NewHasher returns a Hasher.
func NewHasher() *Hasher {
	h, err := blake2b.New256(nil)
	if err != nil {
		panic(err) // unreachable: New256 fails only on an over-long key
	}
	return &Hasher{h: h}
}

// Leaf returns the hash of a block.
func (hs *Hasher) Leaf(data []byte) [HashSize]byte {
	hs.h.Reset()
	hs.buf[0] = leafType
	binary.BigEndian.PutUint64(hs.buf[1:], uint64(len(data)))
	hs.h.Write(hs.buf[:9])
	hs.h.Write(data)
	return hs.finish()
}

// Parent returns the hash of the parent of a and b, which must be siblings;
// the one with the lower index is hashed first.
func (hs *Hasher) Parent(a, b Node) [HashSize]byte {
	if a.Index > b.Index {
		a, b = b, a
	}
	// One Write from the Hasher's own buffer: writing a.Hash[:] directly
	// would make a and b escape to the heap on every call.
	hs.h.Reset()
	hs.buf[0] = parentType
	binary.BigEndian.PutUint64(hs.buf[1:], a.Size+b.Size)
	copy(hs.buf[9:], a.Hash[:])
	copy(hs.buf[9+HashSize:], b.Hash[:])
	hs.h.Write(hs.buf[:])
	return hs.finish()
}

// Tree returns the hash over a feed's roots (left to right), the value a
// feed's signatures sign.
func (hs *Hasher) Tree(roots []Node) [HashSize]byte {
	// The whole input in the Hasher's own buffer, written once: small
	// writes through the hash.Hash interface each escape to the heap.
	in := append(hs.tree[:0], rootType)
	for _, r := range roots {
		in = append(in, r.Hash[:]...)
		in = binary.BigEndian.AppendUint64(in, r.Index)
		in = binary.BigEndian.AppendUint64(in, r.Size)
	}
	hs.tree = in
	hs.h.Reset()
	hs.h.Write(in)
	return hs.finish()
}

func (hs *Hasher) finish() [HashSize]byte {
	hs.h.Sum(hs.sum[:0])
	return hs.sum
}

// LeafHash returns the hash of a block.
func LeafHash(data []byte) [HashSize]byte { return NewHasher().Leaf(data) }

// ParentHash returns the hash of the parent of siblings a and b.
func ParentHash(a, b Node) [HashSize]byte { return NewHasher().Parent(a, b) }

// TreeHash returns the hash over a feed's roots.
func TreeHash(roots []Node) [HashSize]byte { return NewHasher().Tree(roots) }

// Generator grows a Merkle tree one block at a time, keeping only its roots.
// It is the writer's side: each Next returns the nodes that the new block
// completes, which the writer stores.
type Generator struct {
	roots   []Node
	blocks  uint64
	hasher  *Hasher
	scratch []Node // AppendBatch's node levels, reused

	// treeHash caches TreeHash until the roots change: a writer is asked
	// for it after every call, appended to or not.
	treeHash    [HashSize]byte
	treeHashSet bool
}

// NewGenerator returns a generator for a feed whose current roots are roots
// (left to right; none for an empty feed).
//
// Precondition: roots are the full roots of a feed, as flat.FullRoots lists
// them.
func NewGenerator(roots []Node) *Generator {
	g := &Generator{roots: append([]Node(nil), roots...), hasher: NewHasher()}
	if n := len(roots); n > 0 {
		g.blocks = flat.RightSpan(roots[n-1].Index)/2 + 1
	}
	return g
}

// Blocks returns the number of blocks in the tree.
func (g *Generator) Blocks() uint64 { return g.blocks }

// Roots returns the current roots, left to right. The slice is the
// generator's own; callers must not modify it.
func (g *Generator) Roots() []Node { return g.roots }

// Next adds a block and appends to nodes the leaf and every parent it
// completes, lowest first; it returns the extended slice.
func (g *Generator) Next(data []byte, nodes []Node) []Node {
	leaf := Node{Index: 2 * g.blocks, Hash: g.hasher.Leaf(data), Size: uint64(len(data))}
	g.blocks++
	g.treeHashSet = false
	g.roots = append(g.roots, leaf)
	nodes = append(nodes, leaf)
	for len(g.roots) > 1 {
		n := len(g.roots)
		left, right := g.roots[n-2], g.roots[n-1]
		if flat.Parent(left.Index) != flat.Parent(right.Index) {
			break
		}
		parent := Node{
			Index: flat.Parent(left.Index),
			Hash:  g.hasher.Parent(left, right),
			Size:  left.Size + right.Size,
		}
		g.roots = g.roots[:n-1]
		g.roots[n-2] = parent
		nodes = append(nodes, parent)
	}
	return nodes
}

// TreeHash returns the hash over the current roots.
func (g *Generator) TreeHash() [HashSize]byte {
	if !g.treeHashSet {
		g.treeHash, g.treeHashSet = g.hasher.Tree(g.roots), true
	}
	return g.treeHash
}

// ParallelThreshold is the batch size from which AppendBatch hashes on
// several goroutines; below it the goroutines cost more than they save,
// and AppendBatch hashes, and calls visit, on the calling goroutine.
const ParallelThreshold = 256

// AppendBatch adds blocks to the tree, as repeated calls to Next would, and
// calls visit once for every node the blocks complete (the nodes Next would
// return, in no particular order). It hashes with up to parallel goroutines,
// and visit is called from them concurrently; the result does not depend on
// parallel. A batch of fewer than ParallelThreshold blocks is hashed on
// the calling goroutine, which also calls visit.
//
// Each goroutine takes a contiguous share of the batch and hashes its
// leaves and every parent whose subtree lies inside its share. The few
// parents that span shares, or join the batch to the older roots, are hashed
// afterwards on the calling goroutine, in order of their last block.
func (g *Generator) AppendBatch(blocks [][]byte, parallel int, visit func(Node)) {
	n := uint64(len(blocks))
	if n == 0 {
		return
	}
	if n < ParallelThreshold {
		// Few blocks, the common case (a call's writes): one at a time,
		// which needs none of the batch's levels, closures or hasher.
		for _, b := range blocks {
			nodes := g.Next(b, g.scratch[:0])
			for _, nd := range nodes {
				visit(nd)
			}
			g.scratch = nodes[:0]
		}
		return
	}
	start := g.blocks
	end := start + n

	// levels[d][j] is the node of depth d and offset first(d)+j: the nodes
	// whose subtrees lie inside the batch. Slots a share could not fill
	// (spanning nodes) keep a zero Index.
	first := func(d int) uint64 { return (start + (1 << d) - 1) >> d }
	total := 0
	for d := 0; d < 64 && end>>d > first(d); d++ {
		total += int(end>>d - first(d))
	}
	if cap(g.scratch) < total {
		g.scratch = make([]Node, total)
	}
	buf := g.scratch[:total]
	clear(buf)
	var levels [][]Node
	for d := 0; d < 64; d++ {
		lo, hi := first(d), end>>d
		if hi <= lo {
			break
		}
		levels = append(levels, buf[:hi-lo:hi-lo])
		buf = buf[hi-lo:]
	}
	known := func(i uint64) (Node, bool) {
		d := int(flat.Depth(i))
		if d >= len(levels) {
			return Node{}, false
		}
		o, f := flat.Offset(i), first(d)
		if o < f || o-f >= uint64(len(levels[d])) {
			return Node{}, false
		}
		nd := levels[d][o-f]
		return nd, nd.Index == i
	}

	// A climb stopped where a share's node is a right child whose left
	// sibling is outside the share: its parent spans shares (or reaches
	// into the older roots) and is hashed afterwards.
	type stop struct{ node Node }
	shares := (len(blocks) + max(parallel, 1) - 1) / max(parallel, 1)
	stops := make([][]stop, (len(blocks)+shares-1)/shares)
	hashShare := func(lo, hi int) {
		h := NewHasher()
		shareStart := start + uint64(lo)
		var mine []stop
		for k := lo; k < hi; k++ {
			b := start + uint64(k)
			cur := Node{Index: 2 * b, Hash: h.Leaf(blocks[k]), Size: uint64(len(blocks[k]))}
			levels[0][k] = cur
			visit(cur)
			for d := 1; ; d++ {
				o := b >> (d - 1) // cur's offset at depth d-1
				if o&1 == 0 {
					break // a left child: the parent is not complete yet
				}
				if (o-1)<<(d-1) < shareStart {
					mine = append(mine, stop{cur})
					break
				}
				left := levels[d-1][o-1-first(d-1)]
				cur = Node{Index: flat.Index(uint64(d), o>>1), Hash: h.Parent(left, cur), Size: left.Size + cur.Size}
				levels[d][o>>1-first(d)] = cur
				visit(cur)
			}
		}
		stops[lo/shares] = mine
	}
	parallelForShares(len(blocks), shares, hashShare)

	older := g.roots
	var spanning []Node
	find := func(i uint64) Node {
		if nd, ok := known(i); ok {
			return nd
		}
		for _, nd := range spanning {
			if nd.Index == i {
				return nd
			}
		}
		for _, nd := range older {
			if nd.Index == i {
				return nd
			}
		}
		panic("merkle: missing node") // unreachable: every left sibling is one of the above
	}
	for _, share := range stops {
		for _, st := range share {
			cur := st.node
			for {
				d := flat.Depth(cur.Index) + 1
				o := flat.Offset(cur.Index)
				if o&1 == 0 {
					break
				}
				left := find(flat.Index(d-1, o-1))
				cur = Node{Index: flat.Index(d, o>>1), Hash: g.hasher.Parent(left, cur), Size: left.Size + cur.Size}
				spanning = append(spanning, cur)
				visit(cur)
			}
		}
	}
	roots := flat.FullRoots(2 * end)
	newRoots := make([]Node, len(roots))
	for k, r := range roots {
		newRoots[k] = find(r)
	}
	g.roots = newRoots
	g.blocks = end
	g.treeHashSet = false
}

// parallelForShares calls fn on the parts [k*share, (k+1)*share) of
// [0, n), each on its own goroutine when there is more than one.
func parallelForShares(n, share int, fn func(lo, hi int)) {
	if share >= n {
		fn(0, n)
		return
	}
	// The first share runs on the calling goroutine, which would otherwise
	// only wait: one goroutine fewer to wake.
	var wg sync.WaitGroup
	for lo := share; lo < n; lo += share {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(lo, min(lo+share, n))
		}()
	}
	fn(0, share)
	wg.Wait()
}
