// Package fuzzcorpus keeps a package's fuzz seed corpora (testdata/fuzz/
// TARGET/seed-NNN, in the go test fuzz v1 format) the same as the seeds its
// tests make, usually from the conformance vectors. A package's
// TestSeedCorpus builds a Seeds and calls Check, which fails on a stale
// corpus or, with -update-corpus, rewrites it.
package fuzzcorpus

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Update is the -update-corpus flag of every package that uses Check.
var Update = flag.Bool("update-corpus", false, "rewrite testdata/fuzz from the seeds the tests make")

// Seeds are seed inputs per fuzz target, in the order they were added,
// without repeats.
type Seeds struct {
	inputs map[string][][]any
	seen   map[string]bool
}

// Add adds one input of target: []byte, uint64, uint8 and bool values.
func (s *Seeds) Add(target string, args ...any) {
	if s.inputs == nil {
		s.inputs, s.seen = map[string][][]any{}, map[string]bool{}
	}
	key := target + "\x00" + string(Marshal(args))
	if !s.seen[key] {
		s.seen[key] = true
		s.inputs[target] = append(s.inputs[target], args)
	}
}

// Marshal writes one input in the go test fuzz v1 format.
func Marshal(args []any) []byte {
	var b strings.Builder
	b.WriteString("go test fuzz v1\n")
	for _, a := range args {
		switch v := a.(type) {
		case []byte:
			fmt.Fprintf(&b, "[]byte(%s)\n", strconv.Quote(string(v)))
		case string:
			fmt.Fprintf(&b, "string(%s)\n", strconv.Quote(v))
		case uint64:
			fmt.Fprintf(&b, "uint64(%d)\n", v)
		case uint8:
			fmt.Fprintf(&b, "byte(%d)\n", v)
		case bool:
			fmt.Fprintf(&b, "bool(%v)\n", v)
		default:
			panic(fmt.Sprintf("fuzzcorpus: unsupported value %T", a))
		}
	}
	return []byte(b.String())
}

// Check compares testdata/fuzz/TARGET/seed-* under the current directory
// (a package's, under go test) with s, target by target, or rewrites them
// when Update is set.
func Check(t testing.TB, s *Seeds) {
	t.Helper()
	targets := make([]string, 0, len(s.inputs))
	for target := range s.inputs {
		targets = append(targets, target)
	}
	sort.Strings(targets)
	for _, target := range targets {
		dir := filepath.Join("testdata", "fuzz", target)
		want := map[string][]byte{}
		for i, args := range s.inputs[target] {
			want[fmt.Sprintf("seed-%03d", i)] = Marshal(args)
		}
		if *Update {
			old, _ := filepath.Glob(filepath.Join(dir, "seed-*"))
			for _, p := range old {
				os.Remove(p)
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			for name, b := range want {
				if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			continue
		}
		got := map[string][]byte{}
		paths, _ := filepath.Glob(filepath.Join(dir, "seed-*"))
		for _, p := range paths {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			got[filepath.Base(p)] = b
		}
		if diff := cmp.Diff(want, got, cmp.Comparer(bytes.Equal)); diff != "" {
			t.Errorf("%s: seed corpus is stale; run: go test . -run TestSeedCorpus -update-corpus\n%s", target, diff)
		}
	}
}
