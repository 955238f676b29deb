package hypercore_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/nodevms/nodevms/hypercore"
	"github.com/nodevms/nodevms/hypercore/sleep"
)

// TestRollbackLeavesNoTrace: appends and clears made during a hold and then
// rolled back leave the feed's files exactly as a feed that never saw them,
// once both carry on with the same appends.
func TestRollbackLeavesNoTrace(t *testing.T) {
	for _, storage := range []string{"memory", "dir"} {
		t.Run(storage, func(t *testing.T) {
			kp := seedKey(9)
			open := func() (*hypercore.Feed, func(string) []byte) {
				if storage == "memory" {
					st := hypercore.NewMemoryStorage()
					return mustOpen(t, hypercore.Config{Storage: st, SecretKey: kp.SecretKey, Create: true}), st.Bytes
				}
				dir := t.TempDir()
				return mustOpen(t, hypercore.Config{Storage: hypercore.DirStorage{Dir: dir}, SecretKey: kp.SecretKey, Create: true}),
					func(name string) []byte { return readFile(t, dir, name) }
			}
			plain, plainBytes := open()
			held, heldBytes := open()
			for _, f := range []*hypercore.Feed{plain, held} {
				if _, err := f.Append(blocks("before", 3)...); err != nil {
					t.Fatal(err)
				}
			}
			if err := held.Hold(); err != nil {
				t.Fatal(err)
			}
			changed := held.Changed()
			if _, err := held.Append(blocks("taken back", 5)...); err != nil {
				t.Fatal(err)
			}
			if _, err := held.Append(bytes.Repeat([]byte{1}, 70000)); err != nil {
				t.Fatal(err)
			}
			if err := held.Clear(0, 2); err != nil {
				t.Fatal(err)
			}
			select {
			case <-changed:
				t.Error("a held append was announced")
			default:
			}
			if held.Published() != 3 || held.Length() != 9 {
				t.Errorf("published %d, length %d; want 3 and 9", held.Published(), held.Length())
			}
			if err := held.Sync(); !errors.Is(err, hypercore.ErrHeld) {
				t.Errorf("Sync during a hold: %v, want ErrHeld", err)
			}
			if err := held.Rollback(); err != nil {
				t.Fatal(err)
			}
			if held.Length() != 3 || held.Published() != 3 || !held.Has(0) {
				t.Fatalf("after rollback: length %d, published %d, has(0) %v", held.Length(), held.Published(), held.Has(0))
			}
			if _, err := held.Get(3); !errors.Is(err, hypercore.ErrNotFound) {
				t.Errorf("a rolled-back block is still readable: %v", err)
			}
			for _, f := range []*hypercore.Feed{plain, held} {
				if _, err := f.Append(blocks("after", 4)...); err != nil {
					t.Fatal(err)
				}
				if _, err := f.Append([]byte("last")); err != nil {
					t.Fatal(err)
				}
				if err := f.Sync(); err != nil {
					t.Fatal(err)
				}
			}
			for _, name := range []string{"data", "tree", "signatures", "bitfield"} {
				if a, b := plainBytes(name), heldBytes(name); !bytes.Equal(a, b) {
					t.Errorf("%s differs after the rollback (%d vs %d bytes)", name, len(a), len(b))
				}
			}
			for i := uint64(0); i < held.Length(); i++ {
				if _, err := held.Get(i); err != nil {
					t.Errorf("block %d: %v", i, err)
				}
			}
		})
	}
}

// TestReleaseShowsHeldAppends: Release announces what the hold kept back.
func TestReleaseShowsHeldAppends(t *testing.T) {
	f := mustOpen(t, hypercore.Config{Storage: hypercore.NewMemoryStorage(), Create: true})
	if err := f.Hold(); err != nil {
		t.Fatal(err)
	}
	if err := f.Hold(); err != nil { // an inner save point
		t.Fatal(err)
	}
	changed := f.Changed()
	if _, err := f.Append([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if got := f.HaveBitfield(0, 0); len(got) != 0 {
		t.Errorf("the have-bitfield shows a held block: %x", got)
	}
	f.Release()
	select {
	case <-changed:
		t.Error("releasing the inner hold announced the append")
	default:
	}
	if f.Published() != 0 {
		t.Errorf("published %d inside the outer hold", f.Published())
	}
	f.Release()
	select {
	case <-changed:
	default:
		t.Error("Release did not announce the append")
	}
	if f.Published() != 1 || len(f.HaveBitfield(0, 0)) == 0 {
		t.Errorf("after Release: published %d, bitfield %x", f.Published(), f.HaveBitfield(0, 0))
	}
}

func readFile(t *testing.T, dir, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestNestedRollback: rolling back an inner hold keeps the outer one's
// appends; rolling back the outer one then takes everything back.
func TestNestedRollback(t *testing.T) {
	f := mustOpen(t, hypercore.Config{Storage: hypercore.NewMemoryStorage(), Create: true})
	f.Append([]byte("a"))
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(f.Hold())
	f.Append([]byte("b"))
	must(f.Hold())
	f.Append([]byte("c"))
	must(f.Clear(0, 1))
	must(f.Rollback())
	if f.Length() != 2 || !f.Has(0) {
		t.Fatalf("after the inner rollback: length %d, has(0) %v", f.Length(), f.Has(0))
	}
	must(f.Hold())
	must(f.Clear(0, 1))
	f.Release() // the clear now belongs to the outer hold
	must(f.Rollback())
	if f.Length() != 1 || !f.Has(0) {
		t.Fatalf("after the outer rollback: length %d, has(0) %v", f.Length(), f.Has(0))
	}
	if b, err := f.Get(0); err != nil || string(b) != "a" {
		t.Fatalf("block 0: %q, %v", b, err)
	}
}

// TestAnnounceOnSync: such a feed shows peers only what was synced.
func TestAnnounceOnSync(t *testing.T) {
	f := mustOpen(t, hypercore.Config{Storage: hypercore.NewMemoryStorage(), Create: true, AnnounceOnSync: true})
	changed := f.Changed()
	f.Append([]byte("x"))
	if f.Published() != 0 {
		t.Errorf("published %d before Sync", f.Published())
	}
	select {
	case <-changed:
		t.Fatal("an unsynced append was announced")
	default:
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
	default:
		t.Fatal("Sync did not announce")
	}
	if f.Published() != 1 {
		t.Errorf("published %d after Sync", f.Published())
	}
}

// TestHoldSignsOnce: appends during a hold are signed once, at Release,
// over the tree they built; the feed then verifies as any other.
func TestHoldSignsOnce(t *testing.T) {
	st := hypercore.NewMemoryStorage()
	kp := seedKey(6)
	f := mustOpen(t, hypercore.Config{Storage: st, SecretKey: kp.SecretKey, Create: true})
	f.Append([]byte("a"))
	if err := f.Hold(); err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{"b", "c", "d"} {
		f.Append([]byte(b))
	}
	f.Release()
	for i := uint64(1); i < 3; i++ {
		if sig, at, err := f.Signature(i); err != nil || at != 3 {
			t.Errorf("block %d: signature at %d (%x, %v), want the one at 3", i, at, sig, err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	g := mustOpen(t, hypercore.Config{Storage: st, PublicKey: kp.PublicKey})
	if g.Length() != 4 {
		t.Fatalf("reopened at length %d", g.Length())
	}
}

// TestTruncateThenAppendAgain: a writer that truncates blocks and appends
// the same ones again has the files of one that never lost them, after a
// reopen too; the cut reaches the disk with the next Sync.
func TestTruncateThenAppendAgain(t *testing.T) {
	kp := seedKey(11)
	plainDir, cutDir := t.TempDir(), t.TempDir()
	plain := mustOpen(t, hypercore.Config{Storage: hypercore.DirStorage{Dir: plainDir}, SecretKey: kp.SecretKey, Create: true})
	cut := mustOpen(t, hypercore.Config{Storage: hypercore.DirStorage{Dir: cutDir}, SecretKey: kp.SecretKey, Create: true})
	if _, err := plain.Append(blocks("kept", 7)...); err != nil {
		t.Fatal(err)
	}
	if _, err := cut.Append(blocks("kept", 7)...); err != nil {
		t.Fatal(err)
	}
	if _, err := cut.Append(bytes.Repeat([]byte{2}, 5000), []byte("cut")); err != nil {
		t.Fatal(err)
	}
	if err := cut.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := cut.Truncate(4); err != nil {
		t.Fatal(err)
	}
	if cut.Length() != 4 || cut.Has(4) {
		t.Fatalf("after Truncate(4): length %d, has block 4: %v", cut.Length(), cut.Has(4))
	}
	if err := cut.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := cut.Close(); err != nil {
		t.Fatal(err)
	}
	cut = mustOpen(t, hypercore.Config{Storage: hypercore.DirStorage{Dir: cutDir}})
	if cut.Length() != 4 {
		t.Fatalf("reopened: length %d, want 4", cut.Length())
	}
	if _, err := cut.Append(blocks("kept", 7)[4:]...); err != nil {
		t.Fatal(err)
	}
	for _, f := range []*hypercore.Feed{plain, cut} {
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"data", "tree", "signatures", "bitfield"} {
		want, got := readFile(t, plainDir, name), readFile(t, cutDir, name)
		if name == "signatures" {
			// The cut feed signed its new head, length 4, as well.
			at := sleep.HeaderSize + 3*hypercore.SignatureSize
			if bytes.Equal(got[at:at+hypercore.SignatureSize], make([]byte, hypercore.SignatureSize)) {
				t.Error("the new head was not signed")
			}
			copy(got[at:], make([]byte, hypercore.SignatureSize))
		}
		if !bytes.Equal(want, got) {
			t.Errorf("%s differs from a feed that never had the cut blocks", name)
		}
	}
}

// writeCounter is a storage that counts the writes and truncations its
// files receive.
type writeCounter struct {
	hypercore.Storage
	writes *int
}

func (s writeCounter) Open(name string, create bool) (hypercore.File, error) {
	f, err := s.Storage.Open(name, create)
	if err != nil {
		return nil, err
	}
	return countedFile{f, s.writes}, nil
}

type countedFile struct {
	hypercore.File
	writes *int
}

func (f countedFile) WriteAt(p []byte, off int64) (int, error) {
	*f.writes++
	return f.File.WriteAt(p, off)
}

func (f countedFile) Truncate(size int64) error {
	*f.writes++
	if t, ok := f.File.(interface{ Truncate(int64) error }); ok {
		return t.Truncate(size)
	}
	return nil
}

// TestHeldAppendsTouchNoFile: what is appended during a hold is staged in
// memory, readable and hashed, but reaches no file until Release; rolled
// back (or dropped by Close) it costs no write and no truncation, so the
// files only ever grow.
func TestHeldAppendsTouchNoFile(t *testing.T) {
	for _, end := range []string{"rollback", "close", "release"} {
		t.Run(end, func(t *testing.T) {
			writes := 0
			st := hypercore.NewMemoryStorage()
			kp := seedKey(4)
			f := mustOpen(t, hypercore.Config{Storage: writeCounter{st, &writes}, SecretKey: kp.SecretKey, Create: true})
			if _, err := f.Append(blocks("kept", 5)...); err != nil {
				t.Fatal(err)
			}
			if err := f.Sync(); err != nil {
				t.Fatal(err)
			}
			before := map[string][]byte{}
			for _, name := range []string{"data", "tree", "signatures", "bitfield"} {
				before[name] = bytes.Clone(st.Bytes(name))
			}
			committed, err := f.TreeHash(5)
			if err != nil {
				t.Fatal(err)
			}
			writes = 0
			if err := f.Hold(); err != nil {
				t.Fatal(err)
			}
			if _, err := f.Append(blocks("staged", 7)...); err != nil {
				t.Fatal(err)
			}
			if err := f.Hold(); err != nil {
				t.Fatal(err)
			}
			if _, err := f.Append(bytes.Repeat([]byte{7}, 3*65536)); err != nil {
				t.Fatal(err)
			}
			if err := f.Rollback(); err != nil { // the inner save point
				t.Fatal(err)
			}
			if _, err := f.Append([]byte("staged too")); err != nil {
				t.Fatal(err)
			}
			if b, err := f.Get(12); err != nil || string(b) != "staged too" {
				t.Fatalf("a staged block reads %q, %v", b, err)
			}
			if b, err := f.Get(6); err != nil || !bytes.Equal(b, blocks("staged", 7)[1]) {
				t.Fatalf("a staged block reads %q, %v", b, err)
			}
			if writes != 0 {
				t.Fatalf("%d file writes during the hold", writes)
			}
			switch end {
			case "rollback":
				if err := f.Rollback(); err != nil {
					t.Fatal(err)
				}
				if writes != 0 {
					t.Errorf("the rollback wrote %d times", writes)
				}
				if th, err := f.TreeHash(f.Length()); err != nil || th != committed || f.Length() != 5 {
					t.Errorf("after the rollback: length %d, tree hash %x (%v), want 5, %x", f.Length(), th, err, committed)
				}
			case "close":
				if err := f.Close(); err != nil {
					t.Fatal(err)
				}
			case "release":
				f.Release()
				if writes == 0 {
					t.Fatal("Release wrote nothing")
				}
				if err := f.Close(); err != nil {
					t.Fatal(err)
				}
				g := mustOpen(t, hypercore.Config{Storage: st, PublicKey: kp.PublicKey})
				if g.Length() != 13 {
					t.Fatalf("reopened at length %d, want 13", g.Length())
				}
				for i := uint64(0); i < 13; i++ {
					if _, err := g.Get(i); err != nil {
						t.Errorf("block %d: %v", i, err)
					}
				}
				return
			}
			for name, b := range before {
				if !bytes.Equal(st.Bytes(name), b) {
					t.Errorf("%s changed", name)
				}
			}
		})
	}
}
