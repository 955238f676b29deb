package hypercore_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/nodevms/nodevms/hypercore"
	"github.com/nodevms/nodevms/hypercore/merkle"
)

func seedKey(b byte) hypercore.KeyPair {
	return hypercore.KeyPairFromSeed(bytes.Repeat([]byte{b}, 32))
}

func mustOpen(t *testing.T, cfg hypercore.Config) *hypercore.Feed {
	t.Helper()
	f, err := hypercore.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func blocks(prefix string, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = fmt.Appendf(nil, "%s-%d", prefix, i)
	}
	return out
}

func readAll(t *testing.T, f *hypercore.Feed) [][]byte {
	t.Helper()
	var out [][]byte
	for i := range f.Length() {
		b, err := f.Get(i)
		if err != nil {
			t.Fatalf("get %d: %v", i, err)
		}
		out = append(out, b)
	}
	return out
}

func TestAppendReopen(t *testing.T) {
	t.Parallel()
	st := hypercore.NewMemoryStorage()
	kp := seedKey(1)
	f := mustOpen(t, hypercore.Config{Storage: st, SecretKey: kp.SecretKey, Create: true})
	want := append(blocks("a", 3), blocks("b", 5)...)
	if seq, err := f.Append(want[:3]...); err != nil || seq != 0 {
		t.Fatalf("Append = %d, %v", seq, err)
	}
	if seq, err := f.Append(want[3:]...); err != nil || seq != 3 {
		t.Fatalf("Append = %d, %v", seq, err)
	}
	if seq, err := f.Append(); err != nil || seq != 8 {
		t.Fatalf("empty Append = %d, %v; want 8, nil", seq, err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	g := mustOpen(t, hypercore.Config{Storage: st})
	if !g.Writable() || !g.PublicKey().Equal(kp.PublicKey) {
		t.Fatalf("reopened: writable %v, key %x", g.Writable(), g.PublicKey())
	}
	if diff := cmp.Diff(want, readAll(t, g)); diff != "" {
		t.Errorf("blocks after reopen (-want +got):\n%s", diff)
	}
	var byteLength uint64
	for _, b := range want {
		byteLength += uint64(len(b))
	}
	if g.ByteLength() != byteLength {
		t.Errorf("ByteLength = %d, want %d", g.ByteLength(), byteLength)
	}
	// One signature per batch, at its last block.
	for i, wantAt := range []uint64{2, 2, 2, 7, 7, 7, 7, 7} {
		_, at, err := g.Signature(uint64(i))
		if err != nil || at != wantAt {
			t.Errorf("Signature(%d) at %d, %v; want at %d", i, at, err, wantAt)
		}
	}
	if _, err := g.Get(8); !errors.Is(err, hypercore.ErrNotFound) {
		t.Errorf("Get past the end = %v, want ErrNotFound", err)
	}
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	written := hypercore.NewMemoryStorage()
	kp := seedKey(2)
	f := mustOpen(t, hypercore.Config{Storage: written, SecretKey: kp.SecretKey, Create: true})
	if _, err := f.Append([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	other := seedKey(3)
	tests := []struct {
		name string
		cfg  hypercore.Config
		want error
	}{
		{"nothing stored", hypercore.Config{Storage: hypercore.NewMemoryStorage()}, hypercore.ErrNoFeed},
		{"another public key", hypercore.Config{Storage: written, PublicKey: other.PublicKey}, hypercore.ErrKeyMismatch},
		{"another secret key", hypercore.Config{Storage: written, SecretKey: other.SecretKey}, hypercore.ErrKeyMismatch},
		{"mismatched pair", hypercore.Config{Storage: hypercore.NewMemoryStorage(), PublicKey: kp.PublicKey, SecretKey: other.SecretKey, Create: true}, hypercore.ErrKeyMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := hypercore.Open(tt.cfg)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Open = %v, want %v", err, tt.want)
			}
		})
	}
	if _, err := hypercore.Open(hypercore.Config{}); err == nil {
		t.Error("Open without storage succeeded")
	}
}

func TestReplicaIsNotWritable(t *testing.T) {
	t.Parallel()
	kp := seedKey(4)
	r := mustOpen(t, hypercore.Config{Storage: hypercore.NewMemoryStorage(), PublicKey: kp.PublicKey, Create: true})
	if r.Writable() {
		t.Fatal("a replica without the secret key is writable")
	}
	if _, err := r.Append([]byte("x")); !errors.Is(err, hypercore.ErrNotWritable) {
		t.Errorf("Append on a replica = %v, want ErrNotWritable", err)
	}
}

// writeDirFeed writes a feed of two batches to a fresh directory.
func writeDirFeed(t *testing.T) (dir string, kp hypercore.KeyPair, want [][]byte) {
	t.Helper()
	dir = t.TempDir()
	kp = seedKey(5)
	f, err := hypercore.Open(hypercore.Config{Storage: hypercore.DirStorage{Dir: dir}, SecretKey: kp.SecretKey, Create: true})
	if err != nil {
		t.Fatal(err)
	}
	want = blocks("block", 20)
	if _, err := f.Append(want[:10]...); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Append(want[10:]...); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return dir, kp, want
}

func TestReadOnlyTouchesNothing(t *testing.T) {
	t.Parallel()
	dir, _, want := writeDirFeed(t)
	before := snapshot(t, dir)
	f := mustOpen(t, hypercore.Config{Storage: hypercore.DirStorage{Dir: dir, ReadOnly: true}, ReadOnly: true})
	if f.Writable() {
		t.Error("read-only feed is writable")
	}
	if diff := cmp.Diff(want, readAll(t, f)); diff != "" {
		t.Errorf("blocks (-want +got):\n%s", diff)
	}
	if _, err := f.Append([]byte("no")); !errors.Is(err, hypercore.ErrNotWritable) {
		t.Errorf("Append = %v, want ErrNotWritable", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(before, snapshot(t, dir)); diff != "" {
		t.Errorf("read-only open changed files (-before +after):\n%s", diff)
	}

	// Without the secret key file, a read-only open still works.
	if err := os.Remove(filepath.Join(dir, "secret_key")); err != nil {
		t.Fatal(err)
	}
	g := mustOpen(t, hypercore.Config{Storage: hypercore.DirStorage{Dir: dir, ReadOnly: true}, ReadOnly: true})
	if g.Length() != uint64(len(want)) {
		t.Errorf("length without secret key = %d", g.Length())
	}
}

func snapshot(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = b
	}
	return out
}

// TestCorruptFilesAreDetected damages a stored feed one way at a time: each
// must make Open fail with a clear error, never a panic or a feed that
// serves wrong data.
func TestCorruptFilesAreDetected(t *testing.T) {
	t.Parallel()
	type damage func(t *testing.T, dir string)
	truncate := func(name string, by int64) damage {
		return func(t *testing.T, dir string) {
			p := filepath.Join(dir, name)
			st, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(p, st.Size()-by); err != nil {
				t.Fatal(err)
			}
		}
	}
	overwrite := func(name string, off int64, b []byte) damage {
		return func(t *testing.T, dir string) {
			f, err := os.OpenFile(filepath.Join(dir, name), os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.WriteAt(b, off); err != nil {
				t.Fatal(err)
			}
		}
	}
	zeros := make([]byte, 40)
	tests := []struct {
		name   string
		damage damage
		want   error
	}{
		{"tree truncated", truncate("tree", 40), hypercore.ErrCorrupt},
		// 20 blocks: the roots are nodes 15 and 35.
		{"root node zeroed", overwrite("tree", 32+40*35, zeros), hypercore.ErrCorrupt},
		{"root hash changed", overwrite("tree", 32+40*15, []byte{0xff}), hypercore.ErrCorrupt},
		{"root size changed", overwrite("tree", 32+40*35+39, []byte{0xff}), hypercore.ErrCorrupt},
		{"last signature changed", overwrite("signatures", 32+64*19+5, []byte{0xff}), hypercore.ErrCorrupt},
		{"last signature zeroed", overwrite("signatures", 32+64*19, make([]byte, 64)), hypercore.ErrCorrupt},
		{"data truncated", truncate("data", 1), hypercore.ErrCorrupt},
		{"tree header", overwrite("tree", 0, []byte{9}), hypercore.ErrCorrupt},
		{"signatures header algorithm", overwrite("signatures", 8, []byte("X")), hypercore.ErrCorrupt},
		{"bitfield header page size", overwrite("bitfield", 5, []byte{0x10, 0x00}), hypercore.ErrCorrupt},
		{"key file short", truncate("key", 1), hypercore.ErrCorrupt},
		{"bitfield claims an extra block", func(t *testing.T, dir string) {
			// Bit 20 of the block bits and leaf 40 of the tree bits: the
			// claims hang together, and the tree file lacks node 40.
			overwrite("bitfield", 32+2, []byte{0xf8})(t, dir)
			overwrite("bitfield", 32+1024+5, []byte{0x80})(t, dir)
		}, hypercore.ErrCorrupt},
		{"secret key of another feed", overwrite("secret_key", 0, bytes.Repeat([]byte{9}, 32)), hypercore.ErrKeyMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir, _, _ := writeDirFeed(t)
			tt.damage(t, dir)
			f, err := hypercore.Open(hypercore.Config{Storage: hypercore.DirStorage{Dir: dir}})
			if err == nil {
				f.Close()
				t.Fatal("Open succeeded on damaged files")
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Open = %v, want %v", err, tt.want)
			}
		})
	}
}

// TestDataEditedOnDisk: a block whose bytes were changed on disk is reported
// by Get, not served.
func TestDataEditedOnDisk(t *testing.T) {
	t.Parallel()
	dir, _, _ := writeDirFeed(t)
	p := filepath.Join(dir, "data")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[0] ^= 1
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	src := mustOpen(t, hypercore.Config{Storage: hypercore.DirStorage{Dir: dir}})
	if _, err := src.Get(0); !errors.Is(err, hypercore.ErrCorrupt) {
		t.Fatalf("Get of an edited block = %v, want ErrCorrupt", err)
	}
	if _, err := src.Get(1); err != nil {
		t.Fatalf("Get of an intact block: %v", err)
	}
}

// crashStorage wraps a storage and can freeze it: a frozen copy is what a
// crash would leave on disk if every write so far had reached it.
type crashStorage struct {
	*hypercore.MemoryStorage
	failWrites bool
}

func (c *crashStorage) Open(name string, create bool) (hypercore.File, error) {
	f, err := c.MemoryStorage.Open(name, create)
	if err != nil {
		return nil, err
	}
	return &crashFile{File: f, s: c}, nil
}

type crashFile struct {
	hypercore.File
	s *crashStorage
}

func (f *crashFile) WriteAt(p []byte, off int64) (int, error) {
	if f.s.failWrites {
		return 0, errors.New("disk full")
	}
	return f.File.WriteAt(p, off)
}

func copyStorage(t *testing.T, from *hypercore.MemoryStorage) *hypercore.MemoryStorage {
	t.Helper()
	to := hypercore.NewMemoryStorage()
	for _, name := range []string{"key", "secret_key", "tree", "data", "bitfield", "signatures"} {
		b := from.Bytes(name)
		if b == nil {
			continue
		}
		f, err := to.Open(name, true)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt(b, 0); err != nil {
			t.Fatal(err)
		}
	}
	return to
}

// TestCrashBeforeSync: everything appended after the last Sync may be lost
// in a crash, but what a reopened feed holds is always a valid, signed prefix
// that can be appended to.
func TestCrashBeforeSync(t *testing.T) {
	t.Parallel()
	st := &crashStorage{MemoryStorage: hypercore.NewMemoryStorage()}
	kp := seedKey(6)
	f := mustOpen(t, hypercore.Config{Storage: st, SecretKey: kp.SecretKey, Create: true})
	synced := blocks("synced", 4)
	if _, err := f.Append(synced...); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Append(blocks("lost", 3)...); err != nil {
		t.Fatal(err)
	}
	// The crash: the files as they are now, without a Sync.
	crashed := copyStorage(t, st.MemoryStorage)
	g := mustOpen(t, hypercore.Config{Storage: crashed})
	if diff := cmp.Diff(synced, readAll(t, g)); diff != "" {
		t.Fatalf("after the crash (-synced +got):\n%s", diff)
	}
	if _, err := g.Append([]byte("after the crash")); err != nil {
		t.Fatal(err)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	h := mustOpen(t, hypercore.Config{Storage: crashed})
	if diff := cmp.Diff(append(synced, []byte("after the crash")), readAll(t, h)); diff != "" {
		t.Fatalf("after appending past the crash (-want +got):\n%s", diff)
	}
}

// TestFailedWriteIsSticky: after a write fails the feed refuses to write
// (it cannot know what reached the disk), and reopening it recovers exactly
// what was synced.
func TestFailedWriteIsSticky(t *testing.T) {
	t.Parallel()
	for _, n := range []int{1, 300} { // the small and the large batch paths
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			st := &crashStorage{MemoryStorage: hypercore.NewMemoryStorage()}
			kp := seedKey(7)
			f, err := hypercore.Open(hypercore.Config{Storage: st, SecretKey: kp.SecretKey, Create: true})
			if err != nil {
				t.Fatal(err)
			}
			synced := blocks("ok", 3)
			if _, err := f.Append(synced...); err != nil {
				t.Fatal(err)
			}
			if err := f.Sync(); err != nil {
				t.Fatal(err)
			}
			st.failWrites = true
			if _, err := f.Append(blocks("fails", n)...); !errors.Is(err, hypercore.ErrFailed) {
				t.Fatalf("Append with failing writes = %v, want ErrFailed", err)
			}
			st.failWrites = false
			if f.Length() != 3 {
				t.Errorf("length after a failed append = %d, want 3", f.Length())
			}
			if _, err := f.Get(3); !errors.Is(err, hypercore.ErrNotFound) {
				t.Errorf("Get of a failed block = %v, want ErrNotFound", err)
			}
			if _, err := f.Append([]byte("refused")); !errors.Is(err, hypercore.ErrFailed) {
				t.Errorf("Append after a failure = %v, want ErrFailed", err)
			}
			if err := f.Sync(); !errors.Is(err, hypercore.ErrFailed) {
				t.Errorf("Sync after a failure = %v, want ErrFailed", err)
			}
			if err := f.Close(); !errors.Is(err, hypercore.ErrFailed) {
				t.Errorf("Close after a failure = %v, want ErrFailed", err)
			}
			g := mustOpen(t, hypercore.Config{Storage: st})
			if diff := cmp.Diff(synced, readAll(t, g)); diff != "" {
				t.Fatalf("after reopening (-synced +got):\n%s", diff)
			}
			if _, err := g.Append([]byte("then works")); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestWait(t *testing.T) {
	t.Parallel()
	kp := seedKey(8)
	f := mustOpen(t, hypercore.Config{Storage: hypercore.NewMemoryStorage(), SecretKey: kp.SecretKey, Create: true})
	got := make(chan []byte, 1)
	go func() {
		b, err := f.Wait(context.Background(), 2)
		if err != nil {
			t.Error(err)
		}
		got <- b
	}()
	for i := range 3 {
		// Not a synchronisation: the test passes whether the waiter is
		// blocked yet or not; the pause makes it likely to be, so that
		// the appends wake it rather than beat it there.
		time.Sleep(time.Millisecond)
		if _, err := f.Append(fmt.Appendf(nil, "b%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case b := <-got:
		if string(b) != "b2" {
			t.Errorf("Wait = %q, want b2", b)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Wait did not return after the block was appended")
	}
	if n, err := f.WaitLength(context.Background(), 3); err != nil || n != 3 {
		t.Errorf("WaitLength = %d, %v", n, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := f.Wait(ctx, 100); !errors.Is(err, context.Canceled) {
		t.Errorf("Wait with a cancelled context = %v", err)
	}
}

// TestReplicateByProofs moves every block of a feed into a replica through
// proofs, in a scattered order, and checks the replica verifies and serves
// them all.
func TestReplicateByProofs(t *testing.T) {
	t.Parallel()
	kp := seedKey(9)
	src := mustOpen(t, hypercore.Config{Storage: hypercore.NewMemoryStorage(), SecretKey: kp.SecretKey, Create: true})
	want := blocks("r", 37)
	for i := 0; i < len(want); i += 5 {
		if _, err := src.Append(want[i:min(i+5, len(want))]...); err != nil {
			t.Fatal(err)
		}
	}
	replica := mustOpen(t, hypercore.Config{Storage: hypercore.NewMemoryStorage(), PublicKey: kp.PublicKey, Create: true})
	for k := range want {
		i := uint64(k*17) % uint64(len(want))
		proof, err := src.Proof(i, hypercore.ProofRequest{Digest: replica.Digest(i)})
		if err != nil {
			t.Fatal(err)
		}
		data, err := src.Get(i)
		if err != nil {
			t.Fatal(err)
		}
		if err := replica.Put(i, data, proof); err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
	}
	if diff := cmp.Diff(want, readAll(t, replica)); diff != "" {
		t.Errorf("replica blocks (-want +got):\n%s", diff)
	}
	roots, err := replica.Roots(replica.Length())
	if err != nil {
		t.Fatal(err)
	}
	sig, _, err := replica.Signature(replica.Length() - 1)
	if err != nil {
		t.Fatal(err)
	}
	th := merkle.TreeHash(roots)
	if !ed25519.Verify(kp.PublicKey, th[:], sig) {
		t.Error("replica's last signature does not verify")
	}
}

// TestPrefixedFiles: feeds sharing a directory keep their files apart by
// prefix, and the secret key is readable by the owner only.
func TestPrefixedFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for i, prefix := range []string{"call-log.", "metadata."} {
		kp := seedKey(byte(20 + i))
		f := mustOpen(t, hypercore.Config{Storage: hypercore.DirStorage{Dir: dir, Prefix: prefix}, SecretKey: kp.SecretKey, Create: true})
		if _, err := f.Append([]byte(prefix)); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	var names []string
	for name := range snapshot(t, dir) {
		names = append(names, name)
	}
	want := []string{
		"call-log.bitfield", "call-log.data", "call-log.key", "call-log.secret_key", "call-log.signatures", "call-log.tree",
		"metadata.bitfield", "metadata.data", "metadata.key", "metadata.secret_key", "metadata.signatures", "metadata.tree",
	}
	if diff := cmp.Diff(want, names, cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
	st, err := os.Stat(filepath.Join(dir, "call-log.secret_key"))
	if err != nil {
		t.Fatal(err)
	}
	if perm := st.Mode().Perm(); perm != 0o600 {
		t.Errorf("secret key file mode %o, want 600", perm)
	}
	g := mustOpen(t, hypercore.Config{Storage: hypercore.DirStorage{Dir: dir, Prefix: "call-log."}})
	if b, err := g.Get(0); err != nil || string(b) != "call-log." {
		t.Errorf("Get = %q, %v", b, err)
	}
}

// AppendNodes reads what Node reads, in the order asked, and refuses a
// node the feed does not hold.
func TestAppendNodes(t *testing.T) {
	t.Parallel()
	f := mustOpen(t, hypercore.Config{Storage: hypercore.NewMemoryStorage(), SecretKey: seedKey(3).SecretKey, Create: true})
	for _, b := range blocks("n", 11) {
		if _, err := f.Append(b); err != nil {
			t.Fatal(err)
		}
	}
	indexes := []uint64{20, 3, 0, 7, 18}
	got, err := f.AppendNodes(nil, indexes)
	if err != nil {
		t.Fatal(err)
	}
	var want []merkle.Node
	for _, i := range indexes {
		n, err := f.Node(i)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, n)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("AppendNodes against Node (-want +got):\n%s", diff)
	}
	// Node 23 spans blocks 8 to 15, past the feed's 11.
	if _, err := f.AppendNodes(nil, []uint64{0, 23}); !errors.Is(err, hypercore.ErrNotFound) {
		t.Errorf("a node not held: %v, want ErrNotFound", err)
	}
}
