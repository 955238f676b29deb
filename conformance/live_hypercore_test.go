package conformance

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/nodevms/nodevms/hypercore"
	"github.com/nodevms/nodevms/hypercore/merkle"
)

// jsFeedReport is what js/read-feed.js prints.
type jsFeedReport struct {
	Length     uint64   `json:"length"`
	ByteLength uint64   `json:"byteLength"`
	Blocks     []string `json:"blocks"`
	Audit      struct {
		Valid   int `json:"valid"`
		Invalid int `json:"invalid"`
	} `json:"audit"`
	Signatures []struct {
		Index uint64 `json:"index"`
		Valid bool   `json:"valid"`
	} `json:"signatures"`
}

// liveShape is a sequence of batches for a live cross-check.
type liveShape struct {
	name    string
	batches [][][]byte
}

func liveShapes() []liveShape {
	block := func(i, size int) []byte {
		b := make([]byte, size)
		for j := range b {
			b[j] = byte(i*13 + j)
		}
		return b
	}
	batch := func(start, n, size int) [][]byte {
		var out [][]byte
		for i := range n {
			out = append(out, block(start+i, size))
		}
		return out
	}
	var pages [][][]byte
	for k := range 10 {
		pages = append(pages, batch(k*1000, 1000, 2))
	}
	return []liveShape{
		{"mixed", [][][]byte{{[]byte("hello")}, {{}, {}, []byte("x")}, batch(0, 7, 100), {block(9, 70000)}, {[]byte("end")}}},
		{"pages", pages},
	}
}

func readWithJS(t *testing.T, dir string, legacy bool) jsFeedReport {
	t.Helper()
	args := []string{dir}
	if legacy {
		args = append(args, "legacy")
	}
	var r jsFeedReport
	if err := json.Unmarshal(runNode(t, "read-feed.js", args...), &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// checkJSReport holds the reference's reading of a feed to the blocks and
// batches that went into it.
func checkJSReport(t *testing.T, r jsFeedReport, batches [][][]byte) {
	t.Helper()
	var blocks [][]byte
	var byteLength uint64
	for _, b := range batches {
		blocks = append(blocks, b...)
		for _, x := range b {
			byteLength += uint64(len(x))
		}
	}
	if r.Length != uint64(len(blocks)) || r.ByteLength != byteLength {
		t.Fatalf("reference sees %d blocks / %d bytes, want %d / %d", r.Length, r.ByteLength, len(blocks), byteLength)
	}
	for i, b := range blocks {
		if r.Blocks[i] != hex.EncodeToString(b) {
			t.Fatalf("reference reads block %d as %.40s..., want %.40x...", i, r.Blocks[i], b)
		}
	}
	if r.Audit.Valid != len(blocks) || r.Audit.Invalid != 0 {
		t.Errorf("reference audit: %d valid, %d invalid; want %d valid", r.Audit.Valid, r.Audit.Invalid, len(blocks))
	}
	if len(r.Signatures) != len(batches) {
		t.Errorf("reference found %d signatures, want one per batch (%d)", len(r.Signatures), len(batches))
	}
	for _, s := range r.Signatures {
		if !s.Valid {
			t.Errorf("reference rejects the signature at %d", s.Index)
		}
	}
}

// TestJSReadsGoFeed: the reference opens feed directories that Go wrote,
// audits every block, and verifies every signature; then Go appends to the
// same directory and the reference reads it again.
func TestJSReadsGoFeed(t *testing.T) {
	t.Parallel()
	jsReference(t)
	for _, shape := range liveShapes() {
		t.Run(shape.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			kp := hypercore.KeyPairFromSeed(bytes.Repeat([]byte{0x42}, 32))
			feed, err := hypercore.Open(hypercore.Config{Storage: hypercore.DirStorage{Dir: dir}, SecretKey: kp.SecretKey, Create: true})
			if err != nil {
				t.Fatal(err)
			}
			for _, b := range shape.batches {
				if _, err := feed.Append(b...); err != nil {
					t.Fatal(err)
				}
			}
			if err := feed.Close(); err != nil {
				t.Fatal(err)
			}
			checkJSReport(t, readWithJS(t, dir, false), shape.batches)

			more := append(shape.batches, [][]byte{[]byte("appended"), []byte("after reopening")})
			feed, err = hypercore.Open(hypercore.Config{Storage: hypercore.DirStorage{Dir: dir}})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := feed.Append(more[len(more)-1]...); err != nil {
				t.Fatal(err)
			}
			if err := feed.Close(); err != nil {
				t.Fatal(err)
			}
			checkJSReport(t, readWithJS(t, dir, false), more)
		})
	}
}

// TestGoReadsJSFeed: Go opens feed directories that the reference wrote, in
// the current layout and in hypercore 6.22's 3328-byte bitfield layout,
// verifies every block and signature, appends, and hands the directory back
// to the reference.
func TestGoReadsJSFeed(t *testing.T) {
	t.Parallel()
	jsReference(t)
	for _, legacy := range []bool{false, true} {
		for _, shape := range liveShapes() {
			name := shape.name
			if legacy {
				name += "-legacy-3328"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				dir := t.TempDir()
				seed := bytes.Repeat([]byte{0x24}, 32)
				hexBatches := make([][]string, len(shape.batches))
				for i, b := range shape.batches {
					hexBatches[i] = []string{}
					for _, x := range b {
						hexBatches[i] = append(hexBatches[i], hex.EncodeToString(x))
					}
				}
				batchesFile := filepath.Join(t.TempDir(), "batches.json")
				arg, _ := json.Marshal(hexBatches)
				if err := os.WriteFile(batchesFile, arg, 0o644); err != nil {
					t.Fatal(err)
				}
				args := []string{dir, hex.EncodeToString(seed), batchesFile}
				if legacy {
					args = append(args, "legacy")
				}
				runNode(t, "write-feed.js", args...)

				feed, err := hypercore.Open(hypercore.Config{Storage: hypercore.DirStorage{Dir: dir}})
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(feed.PublicKey(), hypercore.KeyPairFromSeed(seed).PublicKey) {
					t.Fatal("public key differs")
				}
				checkAllBlocksAndSignatures(t, feed, shape.batches)
				more := append(shape.batches, [][]byte{[]byte("from go")})
				if _, err := feed.Append(more[len(more)-1]...); err != nil {
					t.Fatal(err)
				}
				if err := feed.Close(); err != nil {
					t.Fatal(err)
				}
				checkJSReport(t, readWithJS(t, dir, legacy), more)
			})
		}
	}
}

// checkAllBlocksAndSignatures reads every block and verifies every batch's
// signature against the roots it signs.
func checkAllBlocksAndSignatures(t *testing.T, feed *hypercore.Feed, batches [][][]byte) {
	t.Helper()
	var n uint64
	for bi, b := range batches {
		for _, want := range b {
			got, err := feed.Get(n)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("block %d differs", n)
			}
			n++
		}
		sig, at, err := feed.Signature(n - 1)
		if err != nil || at != n-1 {
			t.Fatalf("batch %d: signature at %d: %v", bi, at, err)
		}
		roots, err := feed.Roots(n)
		if err != nil {
			t.Fatal(err)
		}
		th := merkle.TreeHash(roots)
		if !ed25519.Verify(feed.PublicKey(), th[:], sig) {
			t.Errorf("batch %d: signature does not verify", bi)
		}
	}
	if feed.Length() != n {
		t.Fatalf("length %d, want %d", feed.Length(), n)
	}
}
