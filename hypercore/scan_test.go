package hypercore_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/nodevms/nodevms/hypercore"
)

// TestBlocksReadsAsGet: Blocks gives every block as Get does, across
// chunks, blocks of any size (empty ones too) and a staged tail; it
// stops at a cleared block with ErrNotFound and at damaged data with
// ErrCorrupt, as Get does.
func TestBlocksReadsAsGet(t *testing.T) {
	dir := t.TempDir()
	kp := seedKey(5)
	f := mustOpen(t, hypercore.Config{Storage: hypercore.DirStorage{Dir: dir}, SecretKey: kp.SecretKey, Create: true})
	var want [][]byte
	for i := range 20000 {
		b := bytes.Repeat([]byte{byte(i)}, i%300)
		if i%4999 == 0 {
			b = bytes.Repeat([]byte{7}, 5<<20) // more than a chunk
		}
		want = append(want, b)
	}
	for k := 0; k < len(want); k += 1000 {
		if _, err := f.Append(want[k : k+1000]...); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Hold(); err != nil {
		t.Fatal(err)
	}
	staged := [][]byte{[]byte("staged"), {}, []byte("too")}
	if _, err := f.Append(staged...); err != nil {
		t.Fatal(err)
	}
	want = append(want, staged...)
	read := func(start, end uint64) ([][]byte, error) {
		var got [][]byte
		err := f.Blocks(start, end, func(i uint64, b []byte) error {
			if i != start+uint64(len(got)) {
				t.Fatalf("block %d after %d blocks from %d", i, len(got), start)
			}
			got = append(got, b)
			return nil
		})
		return got, err
	}
	got, err := read(0, f.Length())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d blocks, want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("block %d: %d bytes, want %d", i, len(got[i]), len(want[i]))
		}
	}
	if got, err := read(17, 23); err != nil || len(got) != 6 || !bytes.Equal(got[0], want[17]) {
		t.Fatalf("blocks 17 to 22: %d blocks, %v", len(got), err)
	}
	stop := errors.New("stop")
	if err := f.Blocks(0, 10, func(i uint64, _ []byte) error {
		if i == 3 {
			return stop
		}
		return nil
	}); err != stop {
		t.Errorf("fn's error: got %v", err)
	}
	if err := f.Rollback(); err != nil {
		t.Fatal(err)
	}

	if err := f.Clear(12000, 12001); err != nil {
		t.Fatal(err)
	}
	if got, err := read(11000, 13000); !errors.Is(err, hypercore.ErrNotFound) || len(got) != 1000 {
		t.Errorf("across a cleared block: %d blocks, %v; want 1000 and ErrNotFound", len(got), err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	// Damage one byte of block 15001's data.
	data, _ := os.ReadFile(filepath.Join(dir, "data"))
	var off int
	for _, b := range want[:15001] {
		off += len(b)
	}
	data[off] ^= 1
	os.WriteFile(filepath.Join(dir, "data"), data, 0o644)
	f = mustOpen(t, hypercore.Config{Storage: hypercore.DirStorage{Dir: dir}, PublicKey: kp.PublicKey})
	defer f.Close()
	if got, err := read(14000, 16000); !errors.Is(err, hypercore.ErrCorrupt) || len(got) > 1001 {
		t.Errorf("across damaged data: %d blocks, %v; want at most 1001 and ErrCorrupt", len(got), err)
	}
	unchecked := 0
	if err := f.BlocksUnchecked(14000, 16000, func(uint64, []byte) error { unchecked++; return nil }); err != nil || unchecked != 2000 {
		t.Errorf("unchecked, across damaged data: %d blocks, %v; want 2000", unchecked, err)
	}
}

// readCounter is a storage that counts the reads of its tree file.
type readCounter struct {
	hypercore.Storage
	reads *int
}

func (s readCounter) Open(name string, create bool) (hypercore.File, error) {
	f, err := s.Storage.Open(name, create)
	if err != nil || name != "tree" {
		return f, err
	}
	return countedReads{f, s.reads}, nil
}

type countedReads struct {
	hypercore.File
	reads *int
}

func (f countedReads) ReadAt(p []byte, off int64) (int, error) {
	*f.reads++
	return f.File.ReadAt(p, off)
}

// TestForwardGetsReadOneNode: a block read after the one before it is
// placed from that one's end, with one tree read, not one per root to its
// left (a replica serving a download, or a replay, reads forward).
func TestForwardGetsReadOneNode(t *testing.T) {
	reads := 0
	st := readCounter{hypercore.NewMemoryStorage(), &reads}
	f := mustOpen(t, hypercore.Config{Storage: st, SecretKey: seedKey(6).SecretKey, Create: true})
	const n = 1 << 14
	var blocks [][]byte
	for i := range n {
		blocks = append(blocks, []byte{byte(i), byte(i >> 8), 1, 2, 3}[:1+i%5])
	}
	if _, err := f.Append(blocks...); err != nil {
		t.Fatal(err)
	}
	reads = 0
	for i := range uint64(n) {
		b, err := f.GetUnchecked(i)
		if err != nil || !bytes.Equal(b, blocks[i]) {
			t.Fatalf("block %d: %x, %v", i, b, err)
		}
	}
	if reads > n+64 {
		t.Errorf("%d tree reads for %d blocks read forward, want about one each", reads, n)
	}
}
