package evidence_test

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/nodevms/nodevms/evidence"
	"github.com/nodevms/nodevms/hypercore"
	"github.com/nodevms/nodevms/internal/fuzzcorpus"
)

// histories are two logs under one key: the same first `common` blocks,
// then different ones, n and m blocks long.
func histories(t testing.TB, common, n, m int) (*hypercore.Feed, *hypercore.Feed) {
	t.Helper()
	kp := hypercore.KeyPairFromSeed(bytes.Repeat([]byte{4}, 32))
	open := func(length int, tag string) *hypercore.Feed {
		f, err := hypercore.Open(hypercore.Config{Storage: hypercore.NewMemoryStorage(), SecretKey: kp.SecretKey, Create: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		for i := range length {
			b := fmt.Appendf(nil, "entry %d", i)
			if i >= common {
				b = fmt.Appendf(b, " of history %s", tag)
			}
			if _, err := f.Append(b); err != nil {
				t.Fatal(err)
			}
		}
		return f
	}
	return open(n, "a"), open(m, "b")
}

func head(t testing.TB, f *hypercore.Feed, length uint64) evidence.Head {
	t.Helper()
	h, err := evidence.HeadOf(f, length)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestForks: for histories that part at every point, heads of equal and
// unequal lengths (either first) give evidence that verifies and survives
// Marshal and Parse; heads of one history give none.
func TestForks(t *testing.T) {
	for common := 0; common < 9; common++ {
		for _, lengths := range [][2]uint64{{9, 9}, {9, 13}, {13, 9}, {uint64(common) + 1, 13}} {
			a, b := histories(t, common, int(lengths[0]), int(lengths[1]))
			ha, hb := head(t, a, lengths[0]), head(t, b, lengths[1])
			longer := b
			if lengths[0] > lengths[1] {
				longer = a
			}
			e, err := evidence.Find(a.PublicKey(), ha, hb, longer)
			if err != nil {
				t.Fatalf("parting after %d, lengths %v: %v", common, lengths, err)
			}
			data, err := e.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			back, err := evidence.Parse(data)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(e, back, cmpopts.EquateEmpty()); diff != "" {
				t.Fatalf("parsed back (-found +parsed):\n%s", diff)
			}
			if _, err := back.Verify(); err != nil {
				t.Errorf("parting after %d, lengths %v: %v", common, lengths, err)
			}
		}
	}
	// One history at two lengths is no fork.
	a, _ := histories(t, 5, 13, 13)
	if _, err := evidence.Find(a.PublicKey(), head(t, a, 7), head(t, a, 13), a); !errors.Is(err, evidence.ErrInvalid) {
		t.Errorf("one history: %v, want ErrInvalid", err)
	}
	if _, err := evidence.Find(a.PublicKey(), head(t, a, 13), head(t, a, 13), nil); !errors.Is(err, evidence.ErrInvalid) {
		t.Errorf("one head twice: %v, want ErrInvalid", err)
	}
}

// TestTamperedEvidence: evidence changed in any part does not verify.
func TestTamperedEvidence(t *testing.T) {
	// Parting at block 4: length 5's root 8 is three levels under length
	// 13's root 7, so the conflict has a path.
	a, b := histories(t, 4, 5, 13)
	e, err := evidence.Find(a.PublicKey(), head(t, a, 5), head(t, b, 13), b)
	if err != nil {
		t.Fatal(err)
	}
	if len(e.Conflict.Path) != 3 {
		t.Fatalf("a path of %d nodes, want 3", len(e.Conflict.Path))
	}
	other := hypercore.KeyPairFromSeed(bytes.Repeat([]byte{9}, 32)).PublicKey
	for name, mutate := range map[string]func(e *evidence.Evidence){
		"a root's hash":       func(e *evidence.Evidence) { e.A.Roots[0].Hash[0] ^= 1 },
		"a signature":         func(e *evidence.Evidence) { e.B.Signature[3] ^= 1 },
		"a length":            func(e *evidence.Evidence) { e.A.Length++ },
		"the conflict's node": func(e *evidence.Evidence) { e.Conflict.Node = e.A.Roots[0] },
		"a path node":         func(e *evidence.Evidence) { e.Conflict.Path[0].Hash[0] ^= 1 },
		"the path cut":        func(e *evidence.Evidence) { e.Conflict.Path = e.Conflict.Path[:len(e.Conflict.Path)-1] },
		"no conflict":         func(e *evidence.Evidence) { e.Conflict = nil },
		"another key":         func(e *evidence.Evidence) { e.Log = other },
		"the same head twice": func(e *evidence.Evidence) { e.B, e.Conflict = e.A, nil },
	} {
		data, _ := e.Marshal()
		c, _ := evidence.Parse(data)
		mutate(c)
		if _, err := c.Verify(); err == nil {
			t.Errorf("%s: still verifies", name)
		}
	}
}

func TestParseRefuses(t *testing.T) {
	a, b := histories(t, 4, 9, 13)
	e, _ := evidence.Find(a.PublicKey(), head(t, a, 9), head(t, b, 13), b)
	good, _ := e.Marshal()
	for name, data := range map[string][]byte{
		"empty":           nil,
		"another version": bytes.Replace(good, []byte(evidence.Format), []byte("nodevms-fork-evidence-v2"), 1),
		"unknown field":   bytes.Replace(good, []byte(`"format"`), []byte(`"x": 1, "format"`), 1),
		"trailing data":   append(bytes.Clone(good), "{}"...),
		"short hash":      bytes.Replace(good, []byte(`"hash": "`), []byte(`"hash": "0`), 1),
	} {
		if _, err := evidence.Parse(data); !errors.Is(err, evidence.ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}

func TestSeedCorpus(t *testing.T) {
	var s fuzzcorpus.Seeds
	a, b := histories(t, 4, 9, 13)
	for _, pair := range [][2]evidence.Head{{head(t, a, 9), head(t, b, 13)}, {head(t, a, 9), head(t, b, 9)}} {
		e, err := evidence.Find(a.PublicKey(), pair[0], pair[1], b)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := e.Marshal()
		s.Add("FuzzParse", data)
	}
	fuzzcorpus.Check(t, &s)
}

// FuzzParse: any bytes are refused or parse to evidence whose Verify
// does not panic.
func FuzzParse(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := evidence.Parse(data)
		if err != nil {
			return
		}
		e.Verify()
		e.Marshal()
	})
}
