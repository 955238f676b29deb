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
