package bitfield

import (
	"errors"
	"slices"
	"testing"
)

// TestWriteDirty: each changed page is written once, and a page whose
// write failed (and those after it) is offered again.
func TestWriteDirty(t *testing.T) {
	b, err := New(PageSize)
	if err != nil {
		t.Fatal(err)
	}
	// Blocks far apart, so that their bits (and index bytes) land on
	// different pages.
	for _, i := range []uint64{0, 100_000, 200_000} {
		b.Set(i, true)
	}
	written := func(fail uint64) ([]uint64, error) {
		var got []uint64
		err := b.WriteDirty(func(n uint64, page []byte) error {
			if len(page) != PageSize {
				t.Fatalf("page %d of %d bytes", n, len(page))
			}
			if n == fail {
				return errors.New("disk full")
			}
			got = append(got, n)
			return nil
		})
		return got, err
	}
	all, _ := written(^uint64(0))
	if len(all) < 3 {
		t.Fatalf("wrote pages %v, want at least 3", all)
	}
	if again, _ := written(^uint64(0)); len(again) != 0 {
		t.Fatalf("clean pages written again: %v", again)
	}
	for _, i := range []uint64{1, 100_001, 200_001} {
		b.Set(i, true)
	}
	got, err := written(all[1])
	if err == nil || len(got) != 1 {
		t.Fatalf("a failing write: wrote %v, error %v", got, err)
	}
	rest, err := written(^uint64(0))
	if err != nil || !slices.Contains(rest, all[1]) || slices.Contains(rest, got[0]) {
		t.Fatalf("after a failed write: wrote %v (first time %v), error %v", rest, got, err)
	}
}
