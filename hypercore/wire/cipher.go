package wire

import (
	"crypto/cipher"
	"encoding/binary"

	//lint:ignore SA1019 Dat's cipher continues one XSalsa20 keystream across messages, at any offset: only the core function allows that.
	"golang.org/x/crypto/salsa20/salsa"

	"github.com/nodevms/nodevms/internal/salsa20"
)

// NonceSize is the size of the nonce each side sends in its first Feed
// message.
const NonceSize = 24

// xsalsa20 is one continuous XSalsa20 keystream, XORed over everything a
// side sends after its first Feed message, as libsodium's
// crypto_stream_xor_instance does. It is built on x/crypto's Salsa20 core:
// HSalsa20 derives the subkey from the first 16 nonce bytes, then Salsa20
// (internal/salsa20, 16 blocks at a time where the CPU allows) runs with the
// last 8 as its nonce and a block counter.
type xsalsa20 struct {
	key     [32]byte
	counter [16]byte // the Salsa20 nonce, then the little-endian block counter
	block   [64]byte // keystream of the current partial block
	used    int      // bytes of block already used; 64 when none is left
}

// NewStream returns the XSalsa20 keystream for key and a 24-byte nonce.
//
// Precondition: len(key) == 32 and len(nonce) == NonceSize.
func NewStream(key, nonce []byte) cipher.Stream {
	s := &xsalsa20{used: 64}
	var k [32]byte
	copy(k[:], key)
	var n [16]byte
	copy(n[:], nonce[:16])
	salsa.HSalsa20(&s.key, &n, &k, &salsa.Sigma)
	copy(s.counter[:8], nonce[16:24])
	return s
}

func (s *xsalsa20) advance(blocks uint64) {
	c := binary.LittleEndian.Uint64(s.counter[8:])
	binary.LittleEndian.PutUint64(s.counter[8:], c+blocks)
}

// XORKeyStream implements cipher.Stream.
func (s *xsalsa20) XORKeyStream(dst, src []byte) {
	if len(dst) < len(src) {
		panic("wire: output smaller than input")
	}
	// Use up the rest of the current block.
	for s.used < 64 && len(src) > 0 {
		dst[0] = src[0] ^ s.block[s.used]
		s.used++
		dst, src = dst[1:], src[1:]
	}
	if full := len(src) / 64 * 64; full > 0 {
		salsa20.XORKeyStream(dst[:full], src[:full], &s.counter, &s.key)
		s.advance(uint64(full / 64))
		dst, src = dst[full:], src[full:]
	}
	if len(src) > 0 {
		var zero [64]byte
		salsa.XORKeyStream(s.block[:], zero[:], &s.counter, &s.key)
		s.advance(1)
		for i := range src {
			dst[i] = src[i] ^ s.block[i]
		}
		s.used = len(src)
	}
}
