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
	h   hash.Hash
	buf [1 + 8]byte
	sum [HashSize]byte
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
	hs.h.Write(hs.buf[:])
	hs.h.Write(data)
	return hs.finish()
}

// Parent returns the hash of the parent of a and b, which must be siblings;
// the one with the lower index is hashed first.
func (hs *Hasher) Parent(a, b Node) [HashSize]byte {
	if a.Index > b.Index {
		a, b = b, a
	}
	hs.h.Reset()
	hs.buf[0] = parentType
	binary.BigEndian.PutUint64(hs.buf[1:], a.Size+b.Size)
	hs.h.Write(hs.buf[:])
	hs.h.Write(a.Hash[:])
	hs.h.Write(b.Hash[:])
	return hs.finish()
}

// Tree returns the hash over a feed's roots (left to right), the value a
// feed's signatures sign.
func (hs *Hasher) Tree(roots []Node) [HashSize]byte {
	hs.h.Reset()
	hs.h.Write([]byte{rootType})
	var b [16]byte
	for _, r := range roots {
		hs.h.Write(r.Hash[:])
		binary.BigEndian.PutUint64(b[:8], r.Index)
		binary.BigEndian.PutUint64(b[8:], r.Size)
		hs.h.Write(b[:])
	}
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
	roots  []Node
	blocks uint64
	hasher *Hasher
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

// ByteLength returns the bytes of data in the tree.
func (g *Generator) ByteLength() uint64 {
	var n uint64
	for _, r := range g.roots {
		n += r.Size
	}
	return n
}

// Next adds a block and appends to nodes the leaf and every parent it
// completes, lowest first; it returns the extended slice.
func (g *Generator) Next(data []byte, nodes []Node) []Node {
	leaf := Node{Index: 2 * g.blocks, Hash: g.hasher.Leaf(data), Size: uint64(len(data))}
	g.blocks++
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
func (g *Generator) TreeHash() [HashSize]byte { return g.hasher.Tree(g.roots) }
