// Package flat implements flat-tree arithmetic: the numbering that lays a
// binary tree out in a list, as hypercore stores its Merkle tree.
//
// Leaves (data blocks) have even indexes: block i is node 2i. A node at
// depth d and offset o (its position among the nodes of that depth) has index
// 2^(d+1)*o + 2^d - 1, so parents sit between their children:
//
//	      3
//	  1       5
//	0   2   4   6
//
// Functions here are pure and never fail; where a function has a
// precondition it says so, and breaking it gives a meaningless (but not
// panicking) result.
package flat

import "math/bits"

// Index returns the index of the node at depth and offset.
func Index(depth, offset uint64) uint64 {
	return (1+2*offset)<<depth - 1
}

// Depth returns the depth of node i; leaves have depth 0.
func Depth(i uint64) uint64 {
	return uint64(bits.TrailingZeros64(^i))
}

// Offset returns the position of node i among the nodes of its depth.
func Offset(i uint64) uint64 {
	d := Depth(i)
	return i >> (d + 1)
}

// Parent returns the index of i's parent.
func Parent(i uint64) uint64 {
	d := Depth(i)
	return Index(d+1, (i>>(d+1))>>1)
}

// Sibling returns the index of the other child of i's parent.
func Sibling(i uint64) uint64 {
	d := Depth(i)
	return Index(d, (i>>(d+1))^1)
}

// Children returns the left and right children of i; ok is false for a leaf.
func Children(i uint64) (left, right uint64, ok bool) {
	if i&1 == 0 {
		return 0, 0, false
	}
	d := Depth(i)
	o := (i >> (d + 1)) * 2
	return Index(d-1, o), Index(d-1, o+1), true
}

// LeftChild returns the left child of i; ok is false for a leaf.
func LeftChild(i uint64) (uint64, bool) {
	l, _, ok := Children(i)
	return l, ok
}

// RightChild returns the right child of i; ok is false for a leaf.
func RightChild(i uint64) (uint64, bool) {
	_, r, ok := Children(i)
	return r, ok
}

// LeftSpan returns the leftmost leaf under i (i itself for a leaf).
func LeftSpan(i uint64) uint64 {
	d := Depth(i)
	if d == 0 {
		return i
	}
	return (i >> (d + 1)) << (d + 1)
}

// RightSpan returns the rightmost leaf under i (i itself for a leaf).
func RightSpan(i uint64) uint64 {
	d := Depth(i)
	if d == 0 {
		return i
	}
	return ((i>>(d+1))+1)<<(d+1) - 2
}

// Count returns the number of nodes in the subtree rooted at i.
func Count(i uint64) uint64 {
	return 2<<Depth(i) - 1
}

// FullRoots returns, left to right, the roots of the largest perfect
// subtrees that together cover the leaves before leaf index i: for a feed of
// n blocks, FullRoots(2n) are its Merkle roots.
//
// Precondition: i is even (a leaf index).
func FullRoots(i uint64) []uint64 {
	var roots []uint64
	return AppendFullRoots(roots, i)
}

// AppendFullRoots appends FullRoots(i) to roots and returns the result.
func AppendFullRoots(roots []uint64, i uint64) []uint64 {
	n := i / 2
	var offset uint64
	for n > 0 {
		factor := uint64(1) << (bits.Len64(n) - 1)
		roots = append(roots, offset+factor-1)
		offset += 2 * factor
		n -= factor
	}
	return roots
}

// Iterator walks a flat tree one step at a time without recomputing depths.
// It mirrors the iterator of the JavaScript flat-tree module, whose exact
// walks some of hypercore's on-disk structures depend on.
type Iterator struct {
	index  uint64
	offset uint64
	factor uint64 // 2^(depth+1)
}

// NewIterator returns an iterator positioned at i.
func NewIterator(i uint64) *Iterator {
	it := new(Iterator)
	it.Seek(i)
	return it
}

// Seek moves the iterator to node i.
func (it *Iterator) Seek(i uint64) {
	it.index = i
	d := Depth(i)
	it.offset = i >> (d + 1)
	it.factor = 2 << d
}

// Index returns the node the iterator is at.
func (it *Iterator) Index() uint64 { return it.index }

// IsLeft reports whether the current node is a left child.
func (it *Iterator) IsLeft() bool { return it.offset&1 == 0 }

// Prev moves to the previous node at the same depth; at offset 0 it stays.
func (it *Iterator) Prev() uint64 {
	if it.offset == 0 {
		return it.index
	}
	it.offset--
	it.index -= it.factor
	return it.index
}

// Next moves to the next node at the same depth.
func (it *Iterator) Next() uint64 {
	it.offset++
	it.index += it.factor
	return it.index
}

// Sibling moves to the current node's sibling.
func (it *Iterator) Sibling() uint64 {
	if it.IsLeft() {
		return it.Next()
	}
	return it.Prev()
}

// Parent moves to the current node's parent.
func (it *Iterator) Parent() uint64 {
	if it.offset&1 == 1 {
		it.index -= it.factor / 2
		it.offset = (it.offset - 1) / 2
	} else {
		it.index += it.factor / 2
		it.offset /= 2
	}
	it.factor *= 2
	return it.index
}

// LeftChild moves to the current node's left child; a leaf stays put.
func (it *Iterator) LeftChild() uint64 {
	if it.factor == 2 {
		return it.index
	}
	it.factor /= 2
	it.index -= it.factor / 2
	it.offset *= 2
	return it.index
}

// RightChild moves to the current node's right child; a leaf stays put.
func (it *Iterator) RightChild() uint64 {
	if it.factor == 2 {
		return it.index
	}
	it.factor /= 2
	it.index += it.factor / 2
	it.offset = 2*it.offset + 1
	return it.index
}
