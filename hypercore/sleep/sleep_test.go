package sleep

import (
	"encoding/hex"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestHeaderBytes(t *testing.T) {
	t.Parallel()
	// The headers hypercore 6.26.0 writes (see conformance/testdata/hypercore/empty.json).
	tests := []struct {
		name string
		h    Header
		hex  string
	}{
		{"bitfield", BitfieldHeader(3584), "05025700000e0000000000000000000000000000000000000000000000000000"},
		{"legacy bitfield", BitfieldHeader(3328), "05025700000d0000000000000000000000000000000000000000000000000000"},
		{"signatures", SignaturesHeader, "0502570100004007456432353531390000000000000000000000000000000000"},
		{"tree", TreeHeader, "0502570200002807424c414b4532620000000000000000000000000000000000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := tt.h.Encode()
			if got := hex.EncodeToString(b[:]); got != tt.hex {
				t.Errorf("Encode() = %s, want %s", got, tt.hex)
			}
			parsed, err := ParseHeader(b[:])
			if err != nil {
				t.Fatalf("ParseHeader: %v", err)
			}
			if diff := cmp.Diff(tt.h, parsed); diff != "" {
				t.Errorf("round trip mismatch (-want +got):\n%s", diff)
			}
			if err := parsed.Check(tt.h); err != nil {
				t.Errorf("Check: %v", err)
			}
		})
	}
}

func TestParseHeaderRejects(t *testing.T) {
	t.Parallel()
	good := TreeHeader.Encode()
	mutate := func(f func(b []byte)) []byte {
		b := good
		f(b[:])
		return b[:]
	}
	tests := []struct {
		name string
		b    []byte
	}{
		{"short", good[:31]},
		{"empty", nil},
		{"magic", mutate(func(b []byte) { b[0] = 6 })},
		{"version", mutate(func(b []byte) { b[4] = 1 })},
		{"name length", mutate(func(b []byte) { b[7] = 25 })},
	}
	for _, tt := range tests {
		if _, err := ParseHeader(tt.b); !errors.Is(err, ErrHeader) {
			t.Errorf("%s: err = %v, want ErrHeader", tt.name, err)
		}
	}
}

func TestHeaderCheck(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		got, want Header
		ok        bool
	}{
		{"tree", TreeHeader, TreeHeader, true},
		{"tree as signatures", TreeHeader, SignaturesHeader, false},
		{"wrong algorithm", Header{Type: TypeTree, EntrySize: 40, Algorithm: "SHA256"}, TreeHeader, false},
		{"wrong entry size", Header{Type: TypeTree, EntrySize: 41, Algorithm: "BLAKE2b"}, TreeHeader, false},
		{"legacy bitfield", BitfieldHeader(3328), BitfieldHeader(3584), true},
		{"odd bitfield", BitfieldHeader(4096), BitfieldHeader(3584), false},
	}
	for _, tt := range tests {
		err := tt.got.Check(tt.want)
		if (err == nil) != tt.ok {
			t.Errorf("%s: Check() = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}

func TestTreeEntry(t *testing.T) {
	t.Parallel()
	var b [TreeEntrySize]byte
	if _, _, ok := DecodeTreeEntry(b[:]); ok {
		t.Error("zero entry decoded as present")
	}
	if _, _, ok := DecodeTreeEntry(b[:39]); ok {
		t.Error("short entry decoded as present")
	}
	hash := [32]byte{1, 2, 3}
	EncodeTreeEntry(b[:], hash, 1<<40+5)
	h, size, ok := DecodeTreeEntry(b[:])
	if !ok || h != hash || size != 1<<40+5 {
		t.Errorf("DecodeTreeEntry = %x, %d, %v", h, size, ok)
	}
	// An empty block's leaf has size 0 but a non-zero hash: present.
	EncodeTreeEntry(b[:], hash, 0)
	if _, _, ok := DecodeTreeEntry(b[:]); !ok {
		t.Error("size-0 entry with a hash decoded as absent")
	}
}
