package bitfield_test

import (
	"path/filepath"
	"testing"

	"github.com/nodevms/nodevms/conformance"
	"github.com/nodevms/nodevms/hypercore/bitfield"
	"github.com/nodevms/nodevms/hypercore/sleep"
	"github.com/nodevms/nodevms/internal/fuzzcorpus"
)

// FuzzBitfieldPages loads arbitrary page bytes as a bitfield and works it:
// nothing may panic, and bits set read back as set.
func FuzzBitfieldPages(f *testing.F) {
	f.Fuzz(func(t *testing.T, legacy bool, data []byte, probe uint64) {
		pageSize := bitfield.PageSize
		if legacy {
			pageSize = bitfield.LegacyPageSize
		}
		var pages [][]byte
		for off := 0; off+pageSize <= len(data) && len(pages) < 4; off += pageSize {
			pages = append(pages, data[off:off+pageSize])
		}
		if rest := len(data) % pageSize; rest > 0 && len(pages) < 4 {
			// Short tails are padded, so that small inputs still reach Load.
			page := make([]byte, pageSize)
			copy(page, data[len(data)-rest:])
			pages = append(pages, page)
		}
		b, err := bitfield.Load(pageSize, pages)
		if err != nil {
			t.Fatal(err)
		}
		tree := b.Tree()
		n := tree.Blocks()
		_ = tree.Roots()
		probe %= 1 << 20
		_ = tree.Digest(2 * probe)
		_, _ = tree.Proof(2*probe, probe, probe&1 == 1, nil)
		_ = tree.VerifiedBy(probe)
		b.Set(probe, true)
		if !b.Get(probe) {
			t.Fatalf("block %d not set after Set", probe)
		}
		tree.Set(2 * probe)
		if !tree.Get(2 * probe) {
			t.Fatalf("node %d not set after Set", 2*probe)
		}
		_ = n
		b.WriteDirty(func(_ uint64, page []byte) error {
			if len(page) != pageSize {
				t.Fatalf("dirty page of %d bytes", len(page))
			}
			return nil
		})
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
		if bits := fv.Files["bitfield"].Hex; len(bits) > sleep.HeaderSize {
			s.Add("FuzzBitfieldPages", bits[5] == 0x0d, []byte(bits[sleep.HeaderSize:]), uint64(len(fv.Batches)))
		}
	}
	fuzzcorpus.Check(t, &s)
}
