package fuzz

import (
	"bytes"
	"errors"
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
