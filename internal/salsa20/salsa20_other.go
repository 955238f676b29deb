//go:build !amd64 || purego

package salsa20

const hasWide = false

func xorChunks(dst, src *byte, n int, state *[16]uint32) {
	panic("salsa20: no wide path on this platform")
}
