package salsa20

import (
	"encoding/binary"

	//lint:ignore SA1019 Dat's cipher continues one XSalsa20 keystream across messages, at any offset: only the core function allows that.
	"golang.org/x/crypto/salsa20/salsa"
)

// chunk is what the wide path computes at once: 16 blocks of 64 bytes.
const chunk = 16 * 64

// XORKeyStream XORs in with the Salsa20/20 keystream for key, starting at the
// block that counter names, into out. counter holds the 8-byte nonce and
// then the 8-byte little-endian block counter; like x/crypto's function of
// the same signature it is not advanced, and the caller adds
// ceil(len(in)/64) blocks itself.
//
// Precondition: len(out) >= len(in); out and in overlap entirely or not at
// all.
func XORKeyStream(out, in []byte, counter *[16]byte, key *[32]byte) {
	xorKeyStream(out, in, counter, key, hasWide)
}

// xorKeyStream is XORKeyStream with the choice of path explicit, so tests
// check the wide path against the narrow one on the same machine.
func xorKeyStream(out, in []byte, counter *[16]byte, key *[32]byte, wide bool) {
	if len(out) < len(in) {
		panic("salsa20: output smaller than input")
	}
	if !wide || len(in) < chunk {
		salsa.XORKeyStream(out[:len(in)], in, counter, key)
		return
	}
	var state [16]uint32
	state[0], state[5], state[10], state[15] = 0x61707865, 0x3320646e, 0x79622d32, 0x6b206574
	for i := range 4 {
		state[1+i] = binary.LittleEndian.Uint32(key[4*i:])
		state[11+i] = binary.LittleEndian.Uint32(key[16+4*i:])
	}
	state[6] = binary.LittleEndian.Uint32(counter[0:])
	state[7] = binary.LittleEndian.Uint32(counter[4:])
	block := binary.LittleEndian.Uint64(counter[8:])

	for len(in) >= chunk {
		// The wide path adds lane numbers to the counter's low word only,
		// so a run of chunks stops before that word would wrap; the chunk
		// that straddles the wrap goes the narrow way.
		lo := uint32(block)
		n := min(len(in)/chunk, int((1<<32-uint64(lo))/16))
		if n == 0 {
			var c [16]byte
			copy(c[:8], counter[:8])
			binary.LittleEndian.PutUint64(c[8:], block)
			salsa.XORKeyStream(out[:chunk], in[:chunk], &c, key)
			n = 1
		} else {
			state[8], state[9] = lo, uint32(block>>32)
			xorChunks(&out[0], &in[0], n, &state)
		}
		block += uint64(n) * 16
		out, in = out[n*chunk:], in[n*chunk:]
	}
	if len(in) > 0 {
		var c [16]byte
		copy(c[:8], counter[:8])
		binary.LittleEndian.PutUint64(c[8:], block)
		salsa.XORKeyStream(out[:len(in)], in, &c, key)
	}
}
