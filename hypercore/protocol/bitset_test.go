package protocol

import "testing"

func TestBitsetRanges(t *testing.T) {
	t.Parallel()
	b := bitset{}
	b.setRange(5, 200)   // unaligned start, whole words, unaligned end
	b.setRange(4090, 10) // across a page boundary
	for i := uint64(0); i < 5000; i++ {
		want := (i >= 5 && i < 205) || (i >= 4090 && i < 4100)
		if b.get(i) != want {
			t.Fatalf("bit %d = %v, want %v", i, b.get(i), want)
		}
	}
	b.clearRange(100, 50)
	if b.get(120) || !b.get(99) || !b.get(150) {
		t.Error("clearRange cleared the wrong bits")
	}
}
