package hypercore

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
)

// TestWriteBackMatchesFile: random writes, reads, truncations and flushes
// through a writeBack read back exactly as the same operations on a plain
// file, before and after the pending writes reach it.
func TestWriteBackMatchesFile(t *testing.T) {
	t.Parallel()
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 7))
		under, want := &memFile{}, &memFile{}
		w, err := newWriteBack(under)
		if err != nil {
			t.Fatal(err)
		}
		for step := range 400 {
			switch op := rng.IntN(10); {
			case op < 5:
				// Mostly appends, some rewrites further back, some holes.
				size, _ := want.Size()
				off := size
				switch rng.IntN(4) {
				case 0:
					off = rng.Int64N(size + 1)
				case 1:
					off = size + rng.Int64N(100)
				}
				p := make([]byte, 1+rng.IntN(300))
				for i := range p {
					p[i] = byte(rng.Uint32())
				}
				want.WriteAt(p, off)
				if _, err := w.WriteAt(p, off); err != nil {
					t.Fatal(err)
				}
			case op < 8:
				size, _ := want.Size()
				off, n := rng.Int64N(size+50), rng.IntN(600)
				got, exp := make([]byte, n), make([]byte, n)
				gn, gerr := w.ReadAt(got, off)
				en, eerr := want.ReadAt(exp, off)
				if gn != en || !bytes.Equal(got[:gn], exp[:en]) || errors.Is(gerr, io.EOF) != errors.Is(eerr, io.EOF) {
					t.Fatalf("seed %d step %d: read %d at %d: got %d bytes (%v), want %d (%v)", seed, step, n, off, gn, gerr, en, eerr)
				}
			case op < 9:
				if err := w.flush(); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(fileBytes(under), fileBytes(want)) {
					t.Fatalf("seed %d step %d: the file after a flush differs", seed, step)
				}
			default:
				size, _ := want.Size()
				cut := rng.Int64N(size + 1)
				want.Truncate(cut)
				if err := w.Truncate(cut); err != nil {
					t.Fatal(err)
				}
			}
			gs, _ := w.Size()
			ws, _ := want.Size()
			if gs != ws {
				t.Fatalf("seed %d step %d: size %d, want %d", seed, step, gs, ws)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(fileBytes(under), fileBytes(want)) {
			t.Fatalf("seed %d: the file after Close differs", seed)
		}
	}
}

func fileBytes(f *memFile) []byte {
	size, _ := f.Size()
	b := make([]byte, size)
	f.ReadAt(b, 0)
	return b
}

// countingFile counts the reads that reach the file.
type countingFile struct {
	File
	reads int
}

func (c *countingFile) ReadAt(p []byte, off int64) (int, error) {
	c.reads++
	return c.File.ReadAt(p, off)
}

// TestWriteBackKeepsTailPages: appends after a flush change the pages it
// just wrote, and must not read them back from the file.
func TestWriteBackKeepsTailPages(t *testing.T) {
	t.Parallel()
	under := &countingFile{File: &memFile{}}
	w, err := newWriteBack(under)
	if err != nil {
		t.Fatal(err)
	}
	block := bytes.Repeat([]byte{7}, 40)
	for i := range 1000 {
		if _, err := w.WriteAt(block, int64(i*len(block))); err != nil {
			t.Fatal(err)
		}
		if i%10 == 9 {
			if err := w.flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if under.reads != 0 {
		t.Fatalf("%d reads of the file underneath, want none", under.reads)
	}
	got := make([]byte, 1000*len(block))
	if _, err := w.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, bytes.Repeat(block, 1000)) {
		t.Fatal("the appends read back wrong")
	}
}

// shortFile takes writes only below limit: past it, it writes what fits
// and fails, as a disk that fills part way through a write.
type shortFile struct {
	*memFile
	limit int64
}

func (f *shortFile) WriteAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) <= f.limit {
		return f.memFile.WriteAt(p, off)
	}
	n := max(0, min(int64(len(p)), f.limit-off))
	f.memFile.WriteAt(p[:n], off)
	return int(n), errors.New("no space left on device")
}

// TestFailedFlushLeavesNoTornEnd: a flush the disk cuts short leaves the
// file as the last good flush did (it used to keep the bytes that fit: a
// signature torn in half, which a later open could take for a whole one).
func TestFailedFlushLeavesNoTornEnd(t *testing.T) {
	under := &shortFile{memFile: &memFile{}, limit: 1 << 20}
	w, err := newWriteBack(under)
	if err != nil {
		t.Fatal(err)
	}
	good := bytes.Repeat([]byte{1}, 5000)
	w.WriteAt(good, 0)
	if err := w.flush(); err != nil {
		t.Fatal(err)
	}
	under.limit = 5000 + 100
	w.WriteAt(bytes.Repeat([]byte{2}, 300), 5000)
	if err := w.flush(); err == nil {
		t.Fatal("a flush past the disk's end succeeded")
	}
	size, _ := under.Size()
	got := make([]byte, size)
	under.ReadAt(got, 0)
	if !bytes.Equal(got, good) {
		t.Errorf("after the failed flush the file has %d bytes, want the %d of the last good flush", size, len(good))
	}
	// Reads still see everything written, from memory.
	all := make([]byte, 5300)
	if n, err := w.ReadAt(all, 0); n != len(all) || err != nil || !bytes.Equal(all[:5000], good) || !bytes.Equal(all[5000:], bytes.Repeat([]byte{2}, 300)) {
		t.Errorf("reading after the failed flush: %d bytes, %v", n, err)
	}
}
