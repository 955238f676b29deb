package salsa20

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"

	//lint:ignore SA1019 Dat's cipher continues one XSalsa20 keystream across messages, at any offset: only the core function allows that.
	"golang.org/x/crypto/salsa20/salsa"
)

// TestMatchesXCrypto: both paths give x/crypto's bytes for lengths around
// the chunk size and for counters next to the low word's wrap.
func TestMatchesXCrypto(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	var key [32]byte
	for i := range key {
		key[i] = byte(rng.Uint32())
	}
	in := make([]byte, 70_000)
	for i := range in {
		in[i] = byte(rng.Uint32())
	}
	lengths := []int{0, 1, 63, 64, 1023, 1024, 1025, 2048, 3000, 16 << 10, 65536 + 37}
	counters := []uint64{0, 1, 1<<32 - 16, 1<<32 - 17, 1<<32 - 5, 1<<32 - 1, 1 << 32, 1<<63 + 99, 1<<64 - 3}
	for _, wide := range []bool{false, true} {
		if wide && !hasWide {
			t.Log("no AVX-512 here: the wide path is not tested")
			continue
		}
		for _, n := range lengths {
			for _, c := range counters {
				t.Run(fmt.Sprintf("wide=%v/len=%d/counter=%#x", wide, n, c), func(t *testing.T) {
					var counter [16]byte
					copy(counter[:8], "nonce!!!")
					binary.LittleEndian.PutUint64(counter[8:], c)
					want := make([]byte, n)
					salsa.XORKeyStream(want, in[:n], &counter, &key)
					got := make([]byte, n+1)
					xorKeyStream(got, in[:n], &counter, &key, wide)
					if !bytes.Equal(got[:n], want) {
						t.Fatalf("differs from x/crypto at byte %d", firstDiff(got, want))
					}
					if got[n] != 0 {
						t.Fatal("wrote past the input's length")
					}
					// In place, as the wire protocol uses it.
					buf := append([]byte(nil), in[:n]...)
					xorKeyStream(buf, buf, &counter, &key, wide)
					if !bytes.Equal(buf, want) {
						t.Fatalf("in place: differs from x/crypto at byte %d", firstDiff(buf, want))
					}
				})
			}
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

func BenchmarkXORKeyStream64KiB(b *testing.B) {
	for _, wide := range []bool{false, true} {
		if wide && !hasWide {
			continue
		}
		b.Run(fmt.Sprintf("wide=%v", wide), func(b *testing.B) {
			var key [32]byte
			var counter [16]byte
			buf := make([]byte, 64<<10)
			b.SetBytes(int64(len(buf)))
			for b.Loop() {
				xorKeyStream(buf, buf, &counter, &key, wide)
			}
		})
	}
}
