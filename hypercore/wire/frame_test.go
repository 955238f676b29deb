package wire

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protowire"
)

// rawFrame is a frame of n bytes in all (header included) on channel 1, a
// Data frame whose body counts up.
func rawFrame(n int) []byte {
	body := make([]byte, n-1)
	for i := range body {
		body[i] = byte(i * 7)
	}
	return AppendRawFrame(nil, 1, TypeData, body)
}

// TestFrameReaderSizes: frames on either side of the sizes where the
// buffer is allocated at once or grown read back whole, fresh or reused,
// and frames over the limit are refused.
func TestFrameReaderSizes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		sizes   []int // frame lengths, header included
		maxSize int
		wantErr error
	}{
		{"small", []int{2, 3, 100}, 0, nil},
		{"around the first chunk", []int{frameChunk - 1, frameChunk, frameChunk + 1, 5}, 0, nil},
		{"grown several times", []int{3*frameChunk + 17, 1 << 20, 10}, 0, nil},
		{"the largest", []int{MaxFrameSize, 2}, 0, nil},
		{"over the largest", []int{MaxFrameSize + 1}, 0, ErrFrameTooLarge},
		{"within MaxSize", []int{4096}, 4096, nil},
		{"over MaxSize", []int{10, 4097}, 4096, ErrFrameTooLarge},
	}
	for _, tt := range tests {
		for _, fresh := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/fresh=%v", tt.name, fresh), func(t *testing.T) {
				t.Parallel()
				var stream []byte
				want := [][]byte{}
				for _, n := range tt.sizes {
					f := rawFrame(n)
					stream = append(stream, f...)
					want = append(want, f[protowire.SizeVarint(uint64(n))+1:])
				}
				fr := NewFrameReader(bytes.NewReader(stream))
				fr.Fresh, fr.MaxSize = fresh, tt.maxSize
				got := [][]byte{}
				var err error
				for {
					var f Frame
					if f, _, err = fr.Next(); err != nil {
						break
					}
					if f.Channel != 1 || f.Type != TypeData {
						t.Fatalf("frame on channel %d of type %v", f.Channel, f.Type)
					}
					got = append(got, bytes.Clone(f.Body))
				}
				if tt.wantErr == nil && !errors.Is(err, io.EOF) || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
					t.Fatalf("Next = %v, want %v", err, tt.wantErr)
				}
				if tt.wantErr != nil {
					want = want[:len(want)-1]
				}
				if diff := cmp.Diff(want, got, cmp.Comparer(bytes.Equal)); diff != "" {
					t.Errorf("bodies differ (-want +got):\n%s", diff)
				}
			})
		}
	}
}

// TestFrameReaderCutShort: a frame that ends early is io.ErrUnexpectedEOF,
// wherever it ends.
func TestFrameReaderCutShort(t *testing.T) {
	t.Parallel()
	f := rawFrame(3*frameChunk + 5)
	for _, cut := range []int{1, 2, frameChunk, frameChunk + 3, 2 * frameChunk, len(f) - 1} {
		fr := NewFrameReader(bytes.NewReader(f[:cut]))
		if _, _, err := fr.Next(); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("cut at %d: Next = %v, want io.ErrUnexpectedEOF", cut, err)
		}
	}
}

// heapInUse is the live heap after a collection.
func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestClaimedFramesCostWhatArrives: readers facing peers that each claim
// an 8 MiB frame and send 100 KiB of it hold about what arrived, not what
// was claimed. (Not parallel: it measures the heap.)
func TestClaimedFramesCostWhatArrives(t *testing.T) {
	const (
		peers = 32
		sent  = 100 << 10
		// Per reader: its 64 KiB bufio buffer and a frame buffer of at most
		// frameChunk, with room to spare; claimed, it would be 8 MiB each.
		perPeer = 512 << 10
	)
	start := heapInUse()
	var wg sync.WaitGroup
	var writers []net.Conn
	errs := make(chan error, peers)
	for range peers {
		r, w := net.Pipe()
		writers = append(writers, w)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer r.Close()
			fr := NewFrameReader(r)
			fr.Fresh = true // as a stream reads: every body new
			_, _, err := fr.Next()
			errs <- err
		}()
	}
	claim := protowire.AppendVarint(nil, MaxFrameSize)
	part := append(claim, make([]byte, sent)...)
	for _, w := range writers {
		// net.Pipe's Write returns once the reader has taken every byte.
		w.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if _, err := w.Write(part); err != nil {
			t.Fatal(err)
		}
	}
	grew := int64(heapInUse()) - int64(start)
	for _, w := range writers {
		w.Close()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("Next = %v, want io.ErrUnexpectedEOF", err)
		}
	}
	t.Logf("%d readers, each sent %d bytes of a claimed %d: heap grew %d bytes", peers, sent, MaxFrameSize, grew)
	if grew > peers*perPeer {
		t.Errorf("heap grew %d bytes, over %d (%d per reader); claimed frames would be %d", grew, peers*perPeer, perPeer, peers*MaxFrameSize)
	}
}

// TestLargeFrameNotKept: a reader that reuses its buffer lets a large
// frame's buffer go once it waits for the next frame.
func TestLargeFrameNotKept(t *testing.T) {
	t.Parallel()
	r, w := net.Pipe()
	defer w.Close()
	fr := NewFrameReader(r)
	go w.Write(rawFrame(MaxFrameSize))
	f, _, err := fr.Next()
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Body) != MaxFrameSize-1 {
		t.Fatalf("body of %d bytes, want %d", len(f.Body), MaxFrameSize-1)
	}
	go w.Write(rawFrame(10))
	if _, _, err := fr.Next(); err != nil {
		t.Fatal(err)
	}
	if c := cap(fr.buf); c > frameChunk {
		t.Errorf("after a small frame the reader holds a %d-byte buffer, over %d", c, frameChunk)
	}
}
