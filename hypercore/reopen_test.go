package hypercore_test

import (
	"errors"
	"fmt"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/nodevms/nodevms/hypercore"
)

// fullDisk is a memory storage whose files refuse every write while full
// is set, as a full disk refuses the writes that need a new block.
type fullDisk struct {
	*hypercore.MemoryStorage
	full *atomic.Bool
}

func (s fullDisk) Open(name string, create bool) (hypercore.File, error) {
	f, err := s.MemoryStorage.Open(name, create)
	if err != nil {
		return f, err
	}
	return fullDiskFile{f, s.full}, nil
}

type fullDiskFile struct {
	hypercore.File
	full *atomic.Bool
}

func (f fullDiskFile) WriteAt(p []byte, off int64) (int, error) {
	if f.full.Load() {
		return 0, fmt.Errorf("write of %d bytes at %d: %w", len(p), off, syscall.ENOSPC)
	}
	return f.File.WriteAt(p, off)
}

func (f fullDiskFile) Truncate(size int64) error {
	if f.full.Load() {
		return syscall.ENOSPC
	}
	return f.File.(interface{ Truncate(int64) error }).Truncate(size)
}

// TestReopenAfterAFullDisk: a feed whose writes failed on a full disk
// refuses writes until Reopen, which, once there is space, brings it back
// to what was synced, in place; it then appends as if nothing happened,
// and its files pass CheckStored.
func TestReopenAfterAFullDisk(t *testing.T) {
	for _, c := range []struct {
		name string
		cfg  hypercore.Config
	}{
		{"plain", hypercore.Config{}},
		{"write-back, deferred signatures", hypercore.Config{WriteBack: true, DeferSignatures: true}},
		{"line log", hypercore.Config{LineLog: true, WriteBack: true, DeferSignatures: true, AnnounceOnSync: true}},
	} {
		t.Run(c.name, func(t *testing.T) {
			full := &atomic.Bool{}
			cfg := c.cfg
			cfg.Storage = fullDisk{hypercore.NewMemoryStorage(), full}
			cfg.SecretKey = seedKey(13).SecretKey
			cfg.Create = true
			f := mustOpen(t, cfg)
			line := func(i int) []byte { return fmt.Appendf(nil, `{"n":%d}`+"\n", i) }
			for i := range 5 {
				if _, err := f.Append(line(i)); err != nil {
					t.Fatal(err)
				}
			}
			if err := f.Sync(); err != nil {
				t.Fatal(err)
			}
			full.Store(true)
			_, err := f.Append(line(5))
			if err == nil {
				err = f.Sync()
			}
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("writing to a full disk: %v, want ENOSPC", err)
			}
			if _, err := f.Append(line(6)); !errors.Is(err, hypercore.ErrFailed) {
				t.Fatalf("appending after the failure: %v, want ErrFailed", err)
			}
			// On a full disk, Reopen may work (it need not write) or not;
			// either way the feed takes no write there.
			if err := f.Reopen(); err == nil {
				_, err := f.Append(line(6))
				if err == nil {
					err = f.Sync()
				}
				if err == nil {
					t.Fatal("a write on a full disk succeeded")
				}
			}
			full.Store(false)
			if err := f.Reopen(); err != nil {
				t.Fatalf("Reopen with space again: %v", err)
			}
			if f.Length() < 5 {
				t.Fatalf("reopened at length %d, want the 5 synced blocks at least", f.Length())
			}
			for i := int(f.Length()); i < 8; i++ {
				if _, err := f.Append(line(i)); err != nil {
					t.Fatalf("append after Reopen: %v", err)
				}
			}
			if err := f.Sync(); err != nil {
				t.Fatal(err)
			}
			if err := f.Sign(); err != nil {
				t.Fatal(err)
			}
			if err := f.CheckStored(hypercore.CheckOptions{Data: true, AllBlocks: true, Signatures: true}); err != nil {
				t.Fatal(err)
			}
			for i := range 8 {
				if b, err := f.Get(uint64(i)); err != nil || string(b) != string(line(i)) {
					t.Errorf("block %d = %q, %v", i, b, err)
				}
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			cfg.Create = false
			g := mustOpen(t, cfg)
			defer g.Close()
			if g.Length() != 8 {
				t.Errorf("opened afresh at length %d, want 8", g.Length())
			}
		})
	}
}
