package hypercore

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"testing"
)

// TestMemoryFile exercises the sparse memory file across page boundaries.
func TestMemoryFile(t *testing.T) {
	t.Parallel()
	st := NewMemoryStorage()
	if _, err := st.Open("data", false); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Open missing = %v", err)
	}
	f, err := st.Open("data", true)
	if err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("0123456789"), 20000) // spans many pages
	if _, err := f.WriteAt(big, memPageSize-7); err != nil {
		t.Fatal(err)
	}
	if size, _ := f.Size(); size != memPageSize-7+int64(len(big)) {
		t.Fatalf("Size = %d", size)
	}
	got := make([]byte, len(big))
	if _, err := f.ReadAt(got, memPageSize-7); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("ReadAt = %v, equal %v", err, bytes.Equal(got, big))
	}
	head := make([]byte, 10)
	head[0] = 1
	if _, err := f.ReadAt(head, 0); err != nil || !bytes.Equal(head, make([]byte, 10)) {
		t.Fatalf("hole reads as %x, %v", head, err)
	}
	tail := make([]byte, 10)
	if n, err := f.ReadAt(tail, memPageSize-7+int64(len(big))-4); n != 4 || err != io.EOF {
		t.Fatalf("read past the end = %d, %v", n, err)
	}
	if _, err := f.WriteAt([]byte{1}, -1); err == nil {
		t.Error("negative offset accepted")
	}
	if b := st.Bytes("data"); !bytes.Equal(b[memPageSize-7:], big) {
		t.Error("Bytes differs")
	}
}
