// Package sleep encodes and decodes the fixed-layout parts of SLEEP, the
// on-disk format of Dat 1.0 feeds: the 32-byte header of the tree,
// signatures and bitfield files, and the entries of the tree and signatures
// files. It does no I/O; package hypercore reads and writes the files.
//
// A header is the magic bytes 05 02 57, a file type, a version byte (0), the
// entry size as a big-endian uint16, the length of the algorithm name, and
// the name, zero padded to 32 bytes:
//
//	file        type  entry size  algorithm
//	bitfield    0     3584/3328   (none)
//	signatures  1     64          Ed25519
//	tree        2     40          BLAKE2b
//
// Tree entries are a 32-byte hash followed by the subtree's byte size as a
// big-endian uint64, at offset 32 + 40*index; an entry of all zeros is an
// absent node. Signature entries are 64 bytes at 32 + 64*index; all zeros is
// no signature.
package sleep

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// HeaderSize is the size of every SLEEP header.
const HeaderSize = 32

// File types.
const (
	TypeBitfield   byte = 0
	TypeSignatures byte = 1
	TypeTree       byte = 2
)

// Entry sizes of the tree and signatures files.
const (
	TreeEntrySize      = 40
	SignatureEntrySize = 64
)

// ErrHeader reports a header that is not a valid SLEEP header of the expected
// kind.
var ErrHeader = errors.New("sleep: bad header")

var magic = [3]byte{0x05, 0x02, 0x57}

// Header is a decoded SLEEP header.
type Header struct {
	Type      byte
	EntrySize uint16
	Algorithm string
}

// Standard headers.
var (
	TreeHeader       = Header{Type: TypeTree, EntrySize: TreeEntrySize, Algorithm: "BLAKE2b"}
	SignaturesHeader = Header{Type: TypeSignatures, EntrySize: SignatureEntrySize, Algorithm: "Ed25519"}
)

// BitfieldHeader returns the header of a bitfield file with pages of
// pageSize bytes.
func BitfieldHeader(pageSize int) Header {
	return Header{Type: TypeBitfield, EntrySize: uint16(pageSize)}
}

// Encode returns the 32 bytes of h.
//
// Precondition: len(h.Algorithm) <= 24.
func (h Header) Encode() [HeaderSize]byte {
	var b [HeaderSize]byte
	copy(b[:3], magic[:])
	b[3] = h.Type
	b[4] = 0 // version
	binary.BigEndian.PutUint16(b[5:7], h.EntrySize)
	if h.Algorithm != "" {
		b[7] = byte(len(h.Algorithm))
		copy(b[8:], h.Algorithm)
	}
	return b
}

// ParseHeader decodes a header. It checks the magic, the version and the
// name's length, not which file the header belongs to (see Header.Check).
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, fmt.Errorf("%w: %d bytes, want %d", ErrHeader, len(b), HeaderSize)
	}
	if [3]byte(b[:3]) != magic {
		return Header{}, fmt.Errorf("%w: magic % x", ErrHeader, b[:3])
	}
	if b[4] != 0 {
		return Header{}, fmt.Errorf("%w: version %d", ErrHeader, b[4])
	}
	n := int(b[7])
	if 8+n > HeaderSize {
		return Header{}, fmt.Errorf("%w: algorithm name of %d bytes", ErrHeader, n)
	}
	return Header{
		Type:      b[3],
		EntrySize: binary.BigEndian.Uint16(b[5:7]),
		Algorithm: string(b[8 : 8+n]),
	}, nil
}

// Check reports an error unless h is the header a file of want's type and
// algorithm must have; for a bitfield any supported page size is accepted.
func (h Header) Check(want Header) error {
	if h.Type != want.Type {
		return fmt.Errorf("%w: file type %d, want %d", ErrHeader, h.Type, want.Type)
	}
	if h.Algorithm != want.Algorithm {
		return fmt.Errorf("%w: algorithm %q, want %q", ErrHeader, h.Algorithm, want.Algorithm)
	}
	if h.Type == TypeBitfield {
		if h.EntrySize != 3584 && h.EntrySize != 3328 {
			return fmt.Errorf("%w: bitfield page size %d", ErrHeader, h.EntrySize)
		}
		return nil
	}
	if h.EntrySize != want.EntrySize {
		return fmt.Errorf("%w: entry size %d, want %d", ErrHeader, h.EntrySize, want.EntrySize)
	}
	return nil
}

// TreeOffset returns where tree node index's entry starts in the tree file.
func TreeOffset(index uint64) int64 { return HeaderSize + TreeEntrySize*int64(index) }

// SignatureOffset returns where block index's signature starts.
func SignatureOffset(index uint64) int64 { return HeaderSize + SignatureEntrySize*int64(index) }

// EncodeTreeEntry writes a node's hash and size into b, which must hold
// TreeEntrySize bytes.
func EncodeTreeEntry(b []byte, hash [32]byte, size uint64) {
	copy(b[:32], hash[:])
	binary.BigEndian.PutUint64(b[32:40], size)
}

// DecodeTreeEntry decodes a tree entry; ok is false for an absent node (all
// zeros) or a short entry.
func DecodeTreeEntry(b []byte) (hash [32]byte, size uint64, ok bool) {
	if len(b) < TreeEntrySize {
		return hash, 0, false
	}
	copy(hash[:], b[:32])
	size = binary.BigEndian.Uint64(b[32:40])
	if size == 0 && hash == ([32]byte{}) {
		return hash, 0, false
	}
	return hash, size, true
}

// IsBlank reports whether b is all zeros: an absent entry.
func IsBlank(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
