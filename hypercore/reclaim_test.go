package hypercore_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/nodevms/nodevms/hypercore"
	"github.com/nodevms/nodevms/hypercore/bitfield"
	"github.com/nodevms/nodevms/hypercore/sleep"
)

// tornAt returns the bitfield file a write of next over prev leaves when it
// stops at byte cut: next's bytes before it, prev's after.
func tornAt(prev, next []byte, cut int) []byte {
	out := bytes.Clone(next[:min(cut, len(next))])
	if len(prev) > cut {
		out = append(out, prev[cut:]...)
	}
	return out
}

// TestReclaim: a writer whose bitfield a crash tore (a write of its pages
// cut at a 4 KiB boundary, as Linux cuts a killed process's write) opens
// with every block it had signed before the torn Sync, rebuilt claims, and
// files that pass CheckStored; it appends, and reopens without rebuilding
// again. Before reclaim, each of these refused to open, or opened short of
// blocks whose claims the tear had taken. (A signature changed under whole
// claims is still refused: see TestCorruptFilesAreDetected.)
func TestReclaim(t *testing.T) {
	t.Parallel()
	const page = sleep.HeaderSize + bitfield.PageSize // where page 1 starts
	type feedFiles struct {
		dir  string
		prev []byte // the bitfield before the last Sync
	}
	// build appends first blocks, syncs, keeps the bitfield, and then
	// runs more on the feed and syncs again.
	build := func(t *testing.T, cfg hypercore.Config, first int, more func(*hypercore.Feed)) feedFiles {
		t.Helper()
		dir := t.TempDir()
		cfg.Storage, cfg.SecretKey, cfg.Create = hypercore.DirStorage{Dir: dir}, seedKey(21).SecretKey, true
		f := mustOpen(t, cfg)
		for b := 0; b < first; b += 1000 {
			if _, err := f.Append(blocks(fmt.Sprint("first", b), min(1000, first-b))...); err != nil {
				t.Fatal(err)
			}
			if err := f.Sync(); err != nil {
				t.Fatal(err)
			}
		}
		prev, err := os.ReadFile(filepath.Join(dir, "bitfield"))
		if err != nil {
			t.Fatal(err)
		}
		more(f)
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		return feedFiles{dir, prev}
	}
	appendN := func(n int) func(*hypercore.Feed) {
		return func(f *hypercore.Feed) {
			if _, err := f.Append(blocks("more", n)...); err != nil {
				t.Fatal(err)
			}
		}
	}
	deferred := hypercore.Config{WriteBack: true, DeferSignatures: true}
	for _, c := range []struct {
		name    string
		cfg     hypercore.Config
		first   int
		more    func(*hypercore.Feed)
		tear    func(prev, next []byte) []byte
		length  uint64
		cleared [][2]uint64 // blocks that stay unclaimed
	}{
		{
			// The failure seen: three pages, the third cut at 8 KiB, so
			// that it holds block bits but no tree bits.
			name: "the file ends inside its last page", first: 16000, more: appendN(4000),
			tear:   func(prev, next []byte) []byte { return next[:8192] },
			length: 20000,
		},
		{
			name: "new bits up to the cut, old ones after it", first: 17000, more: appendN(3000),
			tear:   func(prev, next []byte) []byte { return tornAt(prev, next, 8192) },
			length: 20000,
		},
		{
			// Signatures only where a Sync was: the rebuilt length must
			// end on one.
			name: "deferred signatures, cut in the tree bits", cfg: deferred, first: 17000, more: appendN(3000),
			tear:   func(prev, next []byte) []byte { return tornAt(prev, next, 2*page+1024+1024) },
			length: 20000,
		},
		{
			// A power cut can tear a page at any 512-byte sector.
			name: "a sector of the only page", cfg: deferred, first: 2000, more: appendN(500),
			tear:   func(prev, next []byte) []byte { return tornAt(prev, next, 3*512) },
			length: 2500,
		},
		{
			name: "cleared blocks stay cleared", first: 17000,
			more: func(f *hypercore.Feed) {
				if err := f.Clear(100, 200); err != nil {
					t.Fatal(err)
				}
				if _, err := f.Append(blocks("more", 3000)...); err != nil {
					t.Fatal(err)
				}
			},
			tear:    func(prev, next []byte) []byte { return tornAt(prev, next, 8192) },
			length:  20000,
			cleared: [][2]uint64{{100, 200}},
		},
		{
			// Truncate cut the files and signed the new head; the tear
			// brings back the claims past it.
			name: "claims from before a truncation", first: 20000,
			more: func(f *hypercore.Feed) {
				if err := f.Truncate(15000); err != nil {
					t.Fatal(err)
				}
			},
			tear:   func(prev, next []byte) []byte { return tornAt(prev, next, 4096) },
			length: 15000,
		},
		{
			// As a tear leaves it: the block bits are ahead of the
			// tree bits. (Both ahead would be damage: the files lack
			// what they claim, see TestCorruptFilesAreDetected.)
			name: "a block claimed past the tree", first: 20,
			more: func(*hypercore.Feed) {},
			tear: func(prev, next []byte) []byte {
				out := bytes.Clone(next)
				out[sleep.HeaderSize+2] |= 0x08 // block 20
				return out
			},
			length: 20,
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ff := build(t, c.cfg, c.first, c.more)
			path := filepath.Join(ff.dir, "bitfield")
			next, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, c.tear(ff.prev, next), 0o644); err != nil {
				t.Fatal(err)
			}
			cfg := c.cfg
			cfg.Storage = hypercore.DirStorage{Dir: ff.dir}
			f, err := hypercore.Open(cfg)
			if err != nil {
				t.Fatalf("open after the tear: %v", err)
			}
			if f.Reclaimed() == nil {
				t.Error("Reclaimed is nil after a tear")
			}
			check := func(f *hypercore.Feed, length uint64) {
				t.Helper()
				if got := f.Length(); got != length {
					t.Fatalf("length %d, want %d", got, length)
				}
				for i := range length {
					isCleared := false
					for _, r := range c.cleared {
						isCleared = isCleared || r[0] <= i && i < r[1]
					}
					if f.Has(i) == isCleared {
						t.Fatalf("block %d: Has = %v", i, f.Has(i))
					}
				}
				if err := f.CheckStored(hypercore.CheckOptions{Data: true, AllBlocks: c.cleared == nil}); err != nil {
					t.Fatalf("CheckStored: %v", err)
				}
			}
			check(f, c.length)
			if _, err := f.Append([]byte("after the tear")); err != nil {
				t.Fatal(err)
			}
			if err := f.Sync(); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			g := mustOpen(t, cfg)
			if err := g.Reclaimed(); err != nil {
				t.Errorf("rebuilt again on the next open: %v", err)
			}
			check(g, c.length+1)
			if b, err := g.Get(c.length); err != nil || string(b) != "after the tear" {
				t.Fatalf("the block appended after the tear: %q, %v", b, err)
			}
		})
	}
}
