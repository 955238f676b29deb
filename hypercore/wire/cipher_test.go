package wire

import (
	"bytes"
	"testing"

	"golang.org/x/crypto/salsa20"
)

// TestStreamMatchesOneShot: the keystream cut into pieces of any size is the
// one-shot XSalsa20 of x/crypto/salsa20.
func TestStreamMatchesOneShot(t *testing.T) {
	t.Parallel()
	key := bytes.Repeat([]byte{7}, 32)
	nonce := []byte("0123456789abcdefghijklmn")
	msg := make([]byte, 5000)
	for i := range msg {
		msg[i] = byte(i * 31)
	}
	var k [32]byte
	copy(k[:], key)
	want := make([]byte, len(msg))
	salsa20.XORKeyStream(want, msg, nonce, &k)

	for _, pieces := range [][]int{{1}, {63}, {64}, {65}, {1, 64, 3}, {100, 1, 1, 128, 7}, {5000}} {
		s := NewStream(key, nonce)
		got := make([]byte, len(msg))
		for off, i := 0, 0; off < len(msg); i++ {
			n := min(pieces[i%len(pieces)], len(msg)-off)
			s.XORKeyStream(got[off:off+n], msg[off:off+n])
			off += n
		}
		if !bytes.Equal(got, want) {
			t.Errorf("pieces %v: keystream differs at byte %d", pieces, firstDiff(got, want))
		}
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestEncodeFrameMatchesAppendFrame: both ways of framing give the same
// bytes, across the sizes where the length varint grows.
func TestEncodeFrameMatchesAppendFrame(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 1, 100, 125, 126, 127, 128, 16380, 16390, 1 << 20} {
		m := &Data{Index: 3, Value: bytes.Repeat([]byte{9}, n)}
		for _, ch := range []uint64{0, 7, 255} {
			if a, b := AppendFrame(nil, ch, m), EncodeFrame(ch, m); !bytes.Equal(a, b) {
				t.Fatalf("value of %d bytes on channel %d: frames differ", n, ch)
			}
		}
	}
}
