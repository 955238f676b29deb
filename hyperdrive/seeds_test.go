package hyperdrive_test

import (
	"path/filepath"
	"testing"

	"github.com/nodevms/nodevms/conformance"
	"github.com/nodevms/nodevms/internal/fuzzcorpus"
)

// TestSeedCorpus checks that testdata/fuzz holds the seeds the hyperdrive
// vectors give (go test . -run TestSeedCorpus -update-corpus rewrites it).
func TestSeedCorpus(t *testing.T) {
	hv, err := conformance.LoadHyperdriveVectors(filepath.Join("..", "conformance", "testdata"))
	if err != nil {
		t.Fatal(err)
	}
	var s fuzzcorpus.Seeds
	// The reference's metadata entries, each behind its length byte, as a
	// hostile archive would start; and cut short after each one.
	entries := []byte{0xff}
	s.Add("FuzzArchiveMetadata", []byte{})
	s.Add("FuzzArchiveMetadata", []byte{2, 0x0a, 0x00})
	for _, step := range hv.Steps {
		for _, b := range step.Metadata.Blocks {
			if len(b) < 256 {
				entries = append(entries, byte(len(b)))
				entries = append(entries, b...)
				s.Add("FuzzArchiveMetadata", append([]byte{}, entries...))
			}
		}
	}
	// Operation sequences for the model: each op, then the sequences of
	// ops that build a tree, fill it and tear it down.
	for op := byte(0); op < 5; op++ {
		s.Add("FuzzHyperdriveModel", []byte{op, 0, op, 1, op, 2})
	}
	s.Add("FuzzHyperdriveModel", []byte{2, 0, 2, 1, 2, 4, 0, 2, 0, 3, 0, 5, 1, 6, 3, 2, 4, 0, 4, 1, 2, 0, 0, 2})
	s.Add("FuzzHyperdriveModel", []byte{2, 0, 0, 200, 2, 4, 0, 5, 3, 2, 4, 4, 4, 9, 0, 7})
	fuzzcorpus.Check(t, &s)
}
