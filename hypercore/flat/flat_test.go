package flat

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestIndexArithmetic(t *testing.T) {
	t.Parallel()
	tests := []struct {
		i                   uint64
		depth, offset       uint64
		parent, sibling     uint64
		leftSpan, rightSpan uint64
		count               uint64
	}{
		{i: 0, depth: 0, offset: 0, parent: 1, sibling: 2, leftSpan: 0, rightSpan: 0, count: 1},
		{i: 2, depth: 0, offset: 1, parent: 1, sibling: 0, leftSpan: 2, rightSpan: 2, count: 1},
		{i: 1, depth: 1, offset: 0, parent: 3, sibling: 5, leftSpan: 0, rightSpan: 2, count: 3},
		{i: 5, depth: 1, offset: 1, parent: 3, sibling: 1, leftSpan: 4, rightSpan: 6, count: 3},
		{i: 3, depth: 2, offset: 0, parent: 7, sibling: 11, leftSpan: 0, rightSpan: 6, count: 7},
		{i: 11, depth: 2, offset: 1, parent: 7, sibling: 3, leftSpan: 8, rightSpan: 14, count: 7},
		{i: 9, depth: 1, offset: 2, parent: 11, sibling: 13, leftSpan: 8, rightSpan: 10, count: 3},
		{i: 23, depth: 3, offset: 1, parent: 15, sibling: 7, leftSpan: 16, rightSpan: 30, count: 15},
	}
	for _, tt := range tests {
		got := []uint64{Depth(tt.i), Offset(tt.i), Parent(tt.i), Sibling(tt.i), LeftSpan(tt.i), RightSpan(tt.i), Count(tt.i)}
		want := []uint64{tt.depth, tt.offset, tt.parent, tt.sibling, tt.leftSpan, tt.rightSpan, tt.count}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("node %d: [depth offset parent sibling leftSpan rightSpan count] mismatch (-want +got):\n%s", tt.i, diff)
		}
		if Index(tt.depth, tt.offset) != tt.i {
			t.Errorf("Index(%d, %d) = %d, want %d", tt.depth, tt.offset, Index(tt.depth, tt.offset), tt.i)
		}
	}
}

func TestChildren(t *testing.T) {
	t.Parallel()
	if _, _, ok := Children(4); ok {
		t.Error("Children(4) ok = true for a leaf")
	}
	for _, tt := range []struct{ i, l, r uint64 }{{1, 0, 2}, {3, 1, 5}, {11, 9, 13}, {7, 3, 11}} {
		l, r, ok := Children(tt.i)
		if !ok || l != tt.l || r != tt.r {
			t.Errorf("Children(%d) = %d, %d, %v; want %d, %d, true", tt.i, l, r, ok, tt.l, tt.r)
		}
		if Parent(l) != tt.i || Parent(r) != tt.i {
			t.Errorf("children of %d do not have it as parent", tt.i)
		}
	}
}

func TestFullRoots(t *testing.T) {
	t.Parallel()
	tests := []struct {
		i    uint64
		want []uint64
	}{
		{0, nil},
		{2, []uint64{0}},
		{8, []uint64{3}},
		{14, []uint64{3, 9, 12}},
		{16, []uint64{7}},
		{20, []uint64{7, 17}},
		{22, []uint64{7, 17, 20}},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, FullRoots(tt.i)); diff != "" {
			t.Errorf("FullRoots(%d) mismatch (-want +got):\n%s", tt.i, diff)
		}
	}
}

// TestFullRootsCoverPrefix checks the defining property for many lengths:
// the roots are disjoint, left to right, and cover exactly blocks [0, n).
func TestFullRootsCoverPrefix(t *testing.T) {
	t.Parallel()
	for n := uint64(0); n < 1200; n++ {
		next := uint64(0)
		for _, r := range FullRoots(2 * n) {
			if LeftSpan(r) != next {
				t.Fatalf("n=%d: root %d starts at %d, want %d", n, r, LeftSpan(r), next)
			}
			next = RightSpan(r) + 2
		}
		if next != 2*n {
			t.Fatalf("n=%d: roots cover up to %d, want %d", n, next, 2*n)
		}
	}
}

func TestIteratorMatchesFunctions(t *testing.T) {
	t.Parallel()
	for i := uint64(0); i < 2000; i++ {
		it := NewIterator(i)
		if it.IsLeft() != (Offset(i)%2 == 0) {
			t.Fatalf("IsLeft(%d) wrong", i)
		}
		if got := NewIterator(i).Parent(); got != Parent(i) {
			t.Fatalf("iterator Parent(%d) = %d, want %d", i, got, Parent(i))
		}
		if got := NewIterator(i).Sibling(); got != Sibling(i) {
			t.Fatalf("iterator Sibling(%d) = %d, want %d", i, got, Sibling(i))
		}
		if l, r, ok := Children(i); ok {
			if got := NewIterator(i).LeftChild(); got != l {
				t.Fatalf("iterator LeftChild(%d) = %d, want %d", i, got, l)
			}
			if got := NewIterator(i).RightChild(); got != r {
				t.Fatalf("iterator RightChild(%d) = %d, want %d", i, got, r)
			}
		}
		// Parent after Sibling is the same parent.
		it = NewIterator(i)
		it.Sibling()
		if it.Parent() != Parent(i) {
			t.Fatalf("Sibling then Parent from %d left the family", i)
		}
	}
}
