package wire_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/nodevms/nodevms/conformance"
	"github.com/nodevms/nodevms/internal/fuzzcorpus"
)

// TestSeedCorpus checks that testdata/fuzz holds the seeds the wire
// vectors give (go test . -run TestSeedCorpus -update-corpus rewrites it).
func TestSeedCorpus(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "conformance", "testdata", "wire", "vectors.json"))
	if err != nil {
		t.Fatal(err)
	}
	var wv struct {
		Messages []struct {
			Type uint8
			Body conformance.HexBytes
		}
		Frames []struct{ Frame conformance.HexBytes }
		RLE    []struct{ Encoded conformance.HexBytes }
	}
	if err := json.Unmarshal(b, &wv); err != nil {
		t.Fatal(err)
	}
	var s fuzzcorpus.Seeds
	var stream []byte
	for _, m := range wv.Messages {
		s.Add("FuzzDecodeMessage", uint8(m.Type), []byte(m.Body))
	}
	for _, fr := range wv.Frames {
		stream = append(stream, fr.Frame...)
	}
	s.Add("FuzzFrameReader", stream, false)
	s.Add("FuzzFrameReader", append([]byte{0x80, 0x80, 0x80, 0x08}, stream...), false)
	// Behind a frame that grows its buffer, in pieces of one byte and of
	// 256, within limits that stop it at once, in the middle, or never.
	s.Add("FuzzFrameReaderDelivery", stream, uint64(300<<10), uint8(0), true, uint64(0))
	s.Add("FuzzFrameReaderDelivery", stream, uint64(200<<10), uint8(255), false, uint64(64<<10))
	s.Add("FuzzFrameReaderDelivery", stream, uint64(5), uint8(6), false, uint64(40))
	s.Add("FuzzFrameReaderDelivery", []byte{0x80, 0x80, 0x80, 0x04, 1, 2, 3}, uint64(1<<20-1), uint8(99), true, uint64(1<<20+8))
	for _, r := range wv.RLE {
		s.Add("FuzzRLE", []byte(r.Encoded))
	}
	fuzzcorpus.Check(t, &s)
}
