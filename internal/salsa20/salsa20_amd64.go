//go:build amd64 && !purego

package salsa20

import "golang.org/x/sys/cpu"

// hasWide is whether the CPU (and the OS, which must save the 512-bit
// registers) supports the AVX-512 instructions the wide path uses.
var hasWide = cpu.X86.HasAVX512F

// xorChunks XORs n chunks of 1 KiB of keystream over src into dst. state is
// the Salsa20 input matrix of the first block; the counter's low word
// (state[8]) must not wrap within the n chunks.
//
//go:noescape
func xorChunks(dst, src *byte, n int, state *[16]uint32)
