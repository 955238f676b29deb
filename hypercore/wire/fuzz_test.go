package wire_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nodevms/nodevms/hypercore/wire"
)

// FuzzFrameReader reads an arbitrary byte stream as frames, in the clear and
// encrypted: every outcome is a frame, a keep-alive or a clean error, and no
// frame is larger than the limit.
func FuzzFrameReader(f *testing.F) {
	f.Fuzz(func(t *testing.T, stream []byte, encrypted bool) {
		fr := wire.NewFrameReader(bytes.NewReader(stream))
		if encrypted {
			fr.Decrypt(wire.NewStream(make([]byte, 32), make([]byte, wire.NonceSize)))
		}
		for {
			fr, _, err := fr.Next()
			if err != nil {
				if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) &&
					!errors.Is(err, wire.ErrFrameTooLarge) && !errors.Is(err, wire.ErrBadHeader) {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if len(fr.Body) > wire.MaxFrameSize {
				t.Fatalf("frame body of %d bytes", len(fr.Body))
			}
			_, _ = wire.Decode(fr.Type, fr.Body)
		}
	})
}

// FuzzDecodeMessage decodes arbitrary bodies as every message type: a body
// that decodes re-encodes to a body that decodes to the same message.
func FuzzDecodeMessage(f *testing.F) {
	f.Fuzz(func(t *testing.T, typ uint8, body []byte) {
		m, err := wire.Decode(wire.Type(typ&15), body)
		if err != nil {
			if !errors.Is(err, wire.ErrMessage) {
				t.Fatalf("error %v does not wrap ErrMessage", err)
			}
			return
		}
		again, err := wire.Decode(m.Type(), m.AppendBody(nil))
		if err != nil {
			t.Fatalf("re-encoded %v does not decode: %v", m.Type(), err)
		}
		if diff := cmp.Diff(m, again); diff != "" {
			t.Fatalf("round trip changed the message (-first +second):\n%s", diff)
		}
	})
}

// FuzzRLE decodes arbitrary run-length encodings within a size limit; what
// decodes re-encodes to something that decodes to the same bits.
func FuzzRLE(f *testing.F) {
	f.Fuzz(func(t *testing.T, encoded []byte) {
		const limit = 1 << 16
		bits, err := wire.DecodeRLE(encoded, limit)
		if err != nil {
			if !errors.Is(err, wire.ErrRLE) {
				t.Fatalf("error %v does not wrap ErrRLE", err)
			}
			return
		}
		if len(bits) > limit {
			t.Fatalf("decoded %d bytes past the limit", len(bits))
		}
		back, err := wire.DecodeRLE(wire.EncodeRLE(bits), limit)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(back, bytes.TrimRight(bits, "\x00")) {
			t.Fatalf("re-encoding changed the bits")
		}
	})
}

// FuzzFrameReaderDelivery reads a stream, led by a frame of up to 1 MiB
// (so that its buffer grows as it arrives), in pieces of any size, fresh or
// reused, within any MaxSize: it reads the frames it reads in one piece,
// unlimited, up to the first frame over MaxSize, which is refused.
func FuzzFrameReaderDelivery(f *testing.F) {
	f.Fuzz(func(t *testing.T, stream []byte, lead uint64, piece uint8, fresh bool, maxSize uint64) {
		body := make([]byte, lead%(1<<20))
		for i := range body {
			body[i] = byte(i)
		}
		full := append(wire.AppendRawFrame(nil, 1, wire.TypeData, body), stream...)
		limit := int(maxSize % (wire.MaxFrameSize + 1))

		want, wantErr := readFrames(wire.NewFrameReader(bytes.NewReader(full)), 0)
		fr := wire.NewFrameReader(&pieceReader{b: full, n: int(piece) + 1})
		fr.Fresh, fr.MaxSize = fresh, limit
		got, err := readFrames(fr, limit)
		if len(got) > len(want) {
			t.Fatalf("%d frames in pieces, %d at once", len(got), len(want))
		}
		if diff := cmp.Diff(want[:len(got)], got, cmp.Comparer(bytes.Equal)); diff != "" {
			t.Fatalf("frames differ in pieces (-at once +in pieces):\n%s", diff)
		}
		switch {
		case len(got) < len(want) || limit > 0 && errors.Is(err, wire.ErrFrameTooLarge):
			if limit == 0 || !errors.Is(err, wire.ErrFrameTooLarge) {
				t.Fatalf("stopped after %d of %d frames with %v", len(got), len(want), err)
			}
		case !errors.Is(err, wantErr) && err.Error() != wantErr.Error():
			t.Fatalf("in pieces: %v; at once: %v", err, wantErr)
		}
	})
}

// frame is what a test keeps of a wire.Frame: its body copied.
type frame struct {
	Channel uint64
	Type    wire.Type
	Body    []byte
}

// readFrames reads frames until an error, checking each against limit
// (if positive).
func readFrames(fr *wire.FrameReader, limit int) ([]frame, error) {
	out := []frame{}
	for range 1 << 20 {
		f, keepAlive, err := fr.Next()
		if err != nil {
			return out, err
		}
		if keepAlive {
			continue
		}
		if limit > 0 && len(f.Body) >= limit {
			return out, fmt.Errorf("a %d-byte body passed the %d-byte limit", len(f.Body), limit)
		}
		out = append(out, frame{f.Channel, f.Type, bytes.Clone(f.Body)})
	}
	return out, errors.New("too many frames")
}

// pieceReader returns at most n bytes a read, as a slow peer's bytes
// arrive.
type pieceReader struct {
	b []byte
	n int
}

func (r *pieceReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	k := copy(p[:min(len(p), r.n)], r.b)
	r.b = r.b[k:]
	return k, nil
}
