package merkle

import (
	"fmt"
	"sort"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestAppendBatchMatchesNext: for many starting lengths and batch sizes,
// AppendBatch (sequential and parallel) completes exactly the nodes, and
// leaves exactly the roots, of repeated Next calls.
func TestAppendBatchMatchesNext(t *testing.T) {
	t.Parallel()
	block := func(i int) []byte { return fmt.Appendf(nil, "block %d", i) }
	byIndex := func(nodes []Node) []Node {
		sort.Slice(nodes, func(a, b int) bool { return nodes[a].Index < nodes[b].Index })
		return nodes
	}
	for _, start := range []int{0, 1, 3, 7, 8, 100, 1021} {
		for _, n := range []int{0, 1, 2, 5, 255, 256, 300, 1000, 1025} {
			for _, parallel := range []int{1, 2, 3, 8} {
				seq := NewGenerator(nil)
				for i := range start {
					seq.Next(block(i), nil)
				}
				batch := NewGenerator(seq.Roots())
				var want []Node
				var blocks [][]byte
				for i := start; i < start+n; i++ {
					blocks = append(blocks, block(i))
					want = seq.Next(block(i), want)
				}
				var mu sync.Mutex
				var got []Node
				batch.AppendBatch(blocks, parallel, func(nd Node) {
					mu.Lock()
					got = append(got, nd)
					mu.Unlock()
				})
				if diff := cmp.Diff(byIndex(want), byIndex(got)); diff != "" {
					t.Fatalf("start %d, n %d, parallel %d: nodes differ (-Next +AppendBatch):\n%s", start, n, parallel, diff)
				}
				if diff := cmp.Diff(seq.Roots(), batch.Roots()); diff != "" {
					t.Fatalf("start %d, n %d, parallel %d: roots differ:\n%s", start, n, parallel, diff)
				}
				if seq.Blocks() != batch.Blocks() || seq.TreeHash() != batch.TreeHash() {
					t.Fatalf("start %d, n %d, parallel %d: blocks or tree hash differ", start, n, parallel)
				}
			}
		}
	}
}

func TestHashesOfKnownValues(t *testing.T) {
	t.Parallel()
	// The leaf of "hello" in conformance/testdata/hypercore/single.json.
	got := LeafHash([]byte("hello"))
	if fmt.Sprintf("%x", got) != "6717b25f24d96ccbc95166bacbb671d59eb4263ee5e1aa0f6b1520815cbee80b" {
		t.Errorf("LeafHash(hello) = %x", got)
	}
	a := Node{Index: 0, Hash: LeafHash([]byte("a")), Size: 1}
	b := Node{Index: 2, Hash: LeafHash([]byte("b")), Size: 1}
	if ParentHash(a, b) != ParentHash(b, a) {
		t.Error("ParentHash depends on argument order")
	}
}

// TestGeneratorTreeHashFollowsRoots: the generator's cached tree hash is
// the hash over its roots after every kind of growth.
func TestGeneratorTreeHashFollowsRoots(t *testing.T) {
	t.Parallel()
	g := NewGenerator(nil)
	check := func(when string) {
		t.Helper()
		if got, want := g.TreeHash(), TreeHash(g.Roots()); got != want {
			t.Fatalf("%s: the cached tree hash is stale", when)
		}
	}
	check("empty")
	for i := range 40 {
		g.Next([]byte{byte(i)}, nil)
		check("after Next")
		check("asked again")
		batch := make([][]byte, i%7)
		for k := range batch {
			batch[k] = []byte{byte(i), byte(k)}
		}
		g.AppendBatch(batch, 1, func(Node) {})
		check("after AppendBatch")
	}
}
