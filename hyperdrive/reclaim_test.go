package hyperdrive

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/nodevms/nodevms/hypercore/sleep"
)

// TestTornBitfieldsClaimBack: a writer whose two bitfields a crash tore,
// losing the claims of blocks both feeds hold (here a stretch of metadata
// entries, and the second block of a file whose first block kept its
// claim), opens with every file readable, and opens clean the next time.
// Without the claims taken back, those entries would not read, and the
// file's second block would not be offered to peers.
func TestTornBitfieldsClaimBack(t *testing.T) {
	t.Parallel()
	dir, secrets := t.TempDir(), t.TempDir()
	opts := Options{Storage: DatStorage(dir, secrets), Create: true, DeferSignatures: true, WriteBack: true}
	a, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{}
	write := func(name string, data []byte) {
		t.Helper()
		if err := a.Files().WriteFile(name, data, WriteOptions{}); err != nil {
			t.Fatal(err)
		}
		want[name] = data
	}
	for i := range 50 {
		write(fmt.Sprintf("/early-%d", i), fmt.Appendf(nil, "early %d", i))
	}
	if err := a.Sync(); err != nil {
		t.Fatal(err)
	}
	bitfield := func(feed string) string { return filepath.Join(dir, DatDir, feed+".bitfield") }
	prev := map[string][]byte{}
	for _, feed := range []string{"metadata", "content"} {
		if prev[feed], err = os.ReadFile(bitfield(feed)); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 1000 || a.Content().Length()%8 != 7; i++ {
		write(fmt.Sprintf("/late-%d", i), fmt.Appendf(nil, "late %d", i))
	}
	write("/big", bytes.Repeat([]byte("0123456789abcdef"), 12000)) // three blocks
	st, err := a.Stat("/big")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}

	// The tear: sectors of each file as they were before the last Sync.
	old := func(feed string, from, to int64) {
		b, err := os.ReadFile(bitfield(feed))
		if err != nil {
			t.Fatal(err)
		}
		copy(b[sleep.HeaderSize+from:sleep.HeaderSize+to], prev[feed][sleep.HeaderSize+from:])
		if err := os.WriteFile(bitfield(feed), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	old("metadata", 20, 100) // entries 160 to 799
	second := int64(st.Offset + 1)
	old("content", second/8, second/8+1)

	for round := range 2 {
		opts.Create = false
		a, err := Open(opts)
		if err != nil {
			t.Fatalf("open %d: %v", round, err)
		}
		for _, feed := range []interface{ Reclaimed() error }{a.Metadata(), a.Content()} {
			if err := feed.Reclaimed(); (err != nil) != (round == 0) {
				t.Errorf("open %d: Reclaimed = %v", round, err)
			}
		}
		for name, data := range want {
			got, err := a.Files().ReadFile(name)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("open %d: %s: %d bytes, %v", round, name, len(got), err)
			}
			// Offered to peers, too.
			st, err := a.Stat(name)
			if err != nil {
				t.Fatal(err)
			}
			if !a.Content().HasAll(st.Offset, st.Offset+st.Blocks) {
				t.Fatalf("open %d: %s: content blocks %d to %d not all claimed", round, name, st.Offset, st.Offset+st.Blocks)
			}
		}
		if n := a.Metadata().Length(); !a.Metadata().HasAll(0, n) {
			t.Fatalf("open %d: metadata blocks not all claimed", round)
		}
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
