package hyperdrive

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nodevms/nodevms/hypercore"
)

// TestRollbackLeavesNoTrace: a transaction's writes, rolled back, leave the
// archive, its folder and, once work goes on, its feeds exactly as an
// archive that never saw them.
func TestRollbackLeavesNoTrace(t *testing.T) {
	kp := hypercore.KeyPairFromSeed(bytes.Repeat([]byte{3}, 32))
	o := WriteOptions{Mtime: time.UnixMilli(5), Ctime: time.UnixMilli(5)}
	open := func(dir string) *Archive {
		a, err := Open(Options{Storage: DatStorage(dir, filepath.Join(dir, ".keys")), SecretKey: kp.SecretKey, Create: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { a.Close() })
		return a
	}
	plainDir, heldDir := t.TempDir(), t.TempDir()
	plain, held := open(plainDir), open(heldDir)
	before := func(a *Archive) {
		must(t, a.WriteFile("/keep.txt", []byte("kept"), o))
		must(t, a.Mkdir("/dir", o))
		must(t, a.WriteFile("/dir/old.txt", []byte("old"), o))
	}
	before(plain)
	before(held)
	must(t, held.Sync())

	must(t, held.Begin())
	must(t, held.WriteFile("/keep.txt", []byte("overwritten in the call"), o))
	must(t, held.WriteFile("/dir/new.bin", bytes.Repeat([]byte{1}, 100_000), o))
	must(t, held.Unlink("/dir/old.txt"))
	must(t, held.Mkdir("/made", o))
	if got, err := held.ReadFile("/keep.txt"); err != nil || string(got) != "overwritten in the call" {
		t.Fatalf("the transaction's own read: %q, %v", got, err)
	}
	if got, _ := os.ReadFile(filepath.Join(heldDir, "keep.txt")); string(got) != "kept" {
		t.Errorf("the folder changed before commit: %q", got)
	}
	if err := held.Sync(); !errors.Is(err, ErrInTransaction) {
		t.Errorf("Sync in a transaction: %v", err)
	}
	must(t, held.Rollback())

	for _, a := range []*Archive{plain, held} {
		if got, err := a.ReadFile("/keep.txt"); err != nil || string(got) != "kept" {
			t.Fatalf("after rollback: %q, %v", got, err)
		}
		if got, err := a.ReadFile("/dir/old.txt"); err != nil || string(got) != "old" {
			t.Fatalf("after rollback: %q, %v", got, err)
		}
		if _, err := a.Stat("/made"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("after rollback /made: %v", err)
		}
	}
	if _, err := os.Stat(filepath.Join(heldDir, "dir", "new.bin")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a rolled-back file is in the folder: %v", err)
	}
	tmps, _ := filepath.Glob(filepath.Join(heldDir, DatDir, "tmp", "*"))
	if len(tmps) > 0 {
		t.Errorf("temporary files left: %q", tmps)
	}

	// Both go on the same way, the held one in a committed transaction.
	after := func(a *Archive) {
		must(t, a.WriteFile("/keep.txt", []byte("second"), o))
		must(t, a.Unlink("/dir/old.txt"))
		must(t, a.WriteFile("/z", []byte("z"), o))
	}
	after(plain)
	must(t, held.Begin())
	after(held)
	must(t, held.Commit())
	for _, a := range []*Archive{plain, held} {
		must(t, a.Sync())
	}
	for _, pair := range [][2]*hypercore.Feed{{plain.Metadata(), held.Metadata()}, {plain.Content(), held.Content()}} {
		p, h := pair[0], pair[1]
		if p.Length() != h.Length() || p.ByteLength() != h.ByteLength() {
			t.Fatalf("lengths differ: %d/%d vs %d/%d", p.Length(), p.ByteLength(), h.Length(), h.ByteLength())
		}
		pr, _ := p.Roots(p.Length())
		hr, _ := h.Roots(h.Length())
		if diff := cmp.Diff(pr, hr); diff != "" {
			t.Errorf("roots differ:\n%s", diff)
		}
	}
	for _, name := range []string{"keep.txt", "z"} {
		a, _ := os.ReadFile(filepath.Join(plainDir, name))
		b, _ := os.ReadFile(filepath.Join(heldDir, name))
		if !bytes.Equal(a, b) {
			t.Errorf("folder file %s: %q vs %q", name, a, b)
		}
	}
	if _, err := os.Stat(filepath.Join(heldDir, "dir", "old.txt")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a committed unlink left the file: %v", err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestNestedTransactions: an inner transaction rolled back inside an outer
// one takes back only its own writes; nothing reaches the folder until the
// outer one commits.
func TestNestedTransactions(t *testing.T) {
	dir := t.TempDir()
	a, err := Open(Options{Storage: DatStorage(dir, filepath.Join(dir, ".keys")), Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	o := WriteOptions{}
	must(t, a.Begin())
	must(t, a.WriteFile("/a", []byte("A"), o))
	must(t, a.Begin())
	must(t, a.WriteFile("/b", []byte("B"), o))
	must(t, a.Rollback())
	must(t, a.Begin())
	must(t, a.WriteFile("/c", []byte("C"), o))
	must(t, a.Commit())
	if _, err := os.Stat(filepath.Join(dir, "c")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the folder changed before the outer commit: %v", err)
	}
	if a.Metadata().Published() != 1 {
		t.Errorf("metadata published %d inside the outer transaction", a.Metadata().Published())
	}
	must(t, a.Commit())
	must(t, a.Sync()) // the folder shows the archive as of its last Sync
	for name, want := range map[string]string{"a": "A", "c": "C"} {
		if got, err := os.ReadFile(filepath.Join(dir, name)); err != nil || string(got) != want {
			t.Errorf("folder %s: %q, %v", name, got, err)
		}
	}
	if _, err := a.Stat("/b"); !errors.Is(err, ErrNotFound) {
		t.Errorf("/b after its rollback: %v", err)
	}
	if a.Metadata().Published() != a.Metadata().Length() {
		t.Errorf("published %d of %d after commit", a.Metadata().Published(), a.Metadata().Length())
	}
}

// TestUnsignedCopyHasTheWritersTreeHashes: a private copy opened with only
// the public keys, given the same operations, has the same tree hashes.
func TestUnsignedCopyHasTheWritersTreeHashes(t *testing.T) {
	writer := newMemoryArchive(t)
	copyOf, err := Open(Options{Storage: MemoryStorage(), Key: writer.Key(), ContentKey: writer.Content().PublicKey(), Unsigned: true, Create: true, Now: writer.now})
	if err != nil {
		t.Fatal(err)
	}
	defer copyOf.Close()
	o := WriteOptions{Mtime: time.UnixMilli(9), Ctime: time.UnixMilli(9)}
	for _, a := range []*Archive{writer, copyOf} {
		must(t, a.WriteFile("/x", bytes.Repeat([]byte{2}, 70000), o))
		must(t, a.Mkdir("/d", o))
		must(t, a.Unlink("/x"))
	}
	for _, pair := range [][2]*hypercore.Feed{{writer.Metadata(), copyOf.Metadata()}, {writer.Content(), copyOf.Content()}} {
		a, errA := pair[0].TreeHash(pair[0].Length())
		b, errB := pair[1].TreeHash(pair[1].Length())
		if errA != nil || errB != nil || a != b {
			t.Errorf("tree hashes %x (%v) and %x (%v)", a, errA, b, errB)
		}
	}
	if _, _, err := copyOf.Metadata().Signature(0); err == nil {
		t.Error("the unsigned copy has a signature")
	}
}

// TestSyncJournal: a Sync cut short after the feeds were flushed is
// finished at the next open; one cut short before is thrown away, and the
// folder never shows what the archive on disk does not have.
func TestSyncJournal(t *testing.T) {
	for _, flushed := range []bool{true, false} {
		dir := t.TempDir()
		keys := filepath.Join(dir, ".keys")
		a, err := Open(Options{Storage: DatStorage(dir, keys), Create: true})
		if err != nil {
			t.Fatal(err)
		}
		must(t, a.WriteFile("/old", []byte("old"), WriteOptions{}))
		must(t, a.Sync())
		must(t, a.WriteFile("/new", []byte("new"), WriteOptions{}))
		must(t, a.Unlink("/old"))
		// The first steps of a Sync, then a crash.
		_, err = a.files.prepareSync(a.metadata.Length())
		must(t, err)
		if flushed {
			must(t, a.content.Sync())
			must(t, a.metadata.Sync())
		}
		b, err := Open(Options{Storage: DatStorage(dir, keys)})
		if err != nil {
			t.Fatal(err)
		}
		_, newErr := os.ReadFile(filepath.Join(dir, "new"))
		_, oldErr := os.ReadFile(filepath.Join(dir, "old"))
		if flushed && (newErr != nil || oldErr == nil) {
			t.Errorf("flushed: /new %v, /old %v; want the sync finished", newErr, oldErr)
		}
		if !flushed && (newErr == nil || oldErr != nil) {
			t.Errorf("not flushed: /new %v, /old %v; want the sync thrown away", newErr, oldErr)
		}
		if got, err := b.Files().ReadFile(map[bool]string{true: "/new", false: "/old"}[flushed]); err != nil || len(got) != 3 {
			t.Errorf("flushed %v: read %q, %v", flushed, got, err)
		}
		if _, err := os.Stat(filepath.Join(dir, DatDir, "pending.json")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the journal is still there: %v", err)
		}
		b.Close()
	}
}

// TestFewRecentEntries: with room for only a few decoded entries, an
// archive whose walks need older ones reads them again and gives the same
// answers (the cache bounds memory; it must not change results).
func TestFewRecentEntries(t *testing.T) {
	a, err := Open(Options{Storage: MemoryStorage(), Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	a.entries.maxRecent = 4
	want := map[string]string{}
	for i := range 300 {
		name := fmt.Sprintf("/d%d/f%d", i%7, i%23)
		text := fmt.Sprint(i)
		if err := a.WriteFile(name, []byte(text), WriteOptions{}); err != nil {
			t.Fatal(err)
		}
		want[name] = text
	}
	if len(a.entries.recent) > 4 {
		t.Fatalf("%d recent entries kept, want at most 4", len(a.entries.recent))
	}
	for name, text := range want {
		got, err := a.ReadFile(name)
		if err != nil || string(got) != text {
			t.Errorf("%s: %q, %v; want %q", name, got, err, text)
		}
	}
	for d := range 7 {
		names, err := a.Readdir(fmt.Sprintf("/d%d", d))
		if err != nil || len(names) == 0 {
			t.Errorf("readdir /d%d: %v, %v", d, names, err)
		}
	}
}
