package sleep_test

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"

	"github.com/nodevms/nodevms/conformance"
	"github.com/nodevms/nodevms/hypercore/sleep"
	"github.com/nodevms/nodevms/internal/fuzzcorpus"
)

// FuzzSleepHeader: any 32 bytes either fail to parse with ErrHeader or
// parse to a header that encodes and parses back to itself.
func FuzzSleepHeader(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := sleep.ParseHeader(b)
		if err != nil {
			if !errors.Is(err, sleep.ErrHeader) {
				t.Fatalf("error %v does not wrap ErrHeader", err)
			}
			return
		}
		enc := h.Encode()
		back, err := sleep.ParseHeader(enc[:])
		if err != nil || back != h {
			t.Fatalf("round trip: %+v -> %+v, %v", h, back, err)
		}
		_ = h.Check(sleep.TreeHeader)
	})
}

// FuzzTreeEntry: a decoded entry encodes back to the same 40 bytes.
func FuzzTreeEntry(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		hash, size, ok := sleep.DecodeTreeEntry(b)
		if !ok {
			return
		}
		var out [sleep.TreeEntrySize]byte
		sleep.EncodeTreeEntry(out[:], hash, size)
		if !bytes.Equal(out[:], b[:sleep.TreeEntrySize]) {
			t.Fatalf("re-encoded %x, want %x", out, b[:sleep.TreeEntrySize])
		}
	})
}

// TestSeedCorpus checks that testdata/fuzz holds the seeds the hypercore
// vectors give (go test . -run TestSeedCorpus -update-corpus rewrites it).
func TestSeedCorpus(t *testing.T) {
	v, err := conformance.LoadHypercoreVectors(filepath.Join("..", "..", "conformance", "testdata"))
	if err != nil {
		t.Fatal(err)
	}
	var s fuzzcorpus.Seeds
	for _, name := range v.FeedNames() {
		fv := v.Feeds[name]
		for _, file := range []string{"tree", "signatures", "bitfield"} {
			if b := fv.Files[file].Hex; len(b) >= sleep.HeaderSize {
				s.Add("FuzzSleepHeader", []byte(b[:sleep.HeaderSize]))
			}
		}
		if tree := fv.Files["tree"].Hex; len(tree) >= sleep.HeaderSize+2*sleep.TreeEntrySize {
			s.Add("FuzzTreeEntry", []byte(tree[sleep.HeaderSize:sleep.HeaderSize+sleep.TreeEntrySize]))
		}
	}
	s.Add("FuzzTreeEntry", make([]byte, sleep.TreeEntrySize))
	fuzzcorpus.Check(t, &s)
}
