package hypercore_test

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nodevms/nodevms/hypercore"
	"github.com/nodevms/nodevms/hypercore/sleep"
)

// TestLineLogRecovers: a line log whose tree, signatures and bitfield were
// lost (never synced) or damaged reopens from its data file alone, to the
// same blocks, tree hash and signature.
func TestLineLogRecovers(t *testing.T) {
	kp := seedKey(4)
	lines := func(prefix string, n int) [][]byte {
		out := make([][]byte, n)
		for i := range out {
			out[i] = fmt.Appendf(nil, `{"%s":%d}`+"\n", prefix, i)
		}
		return out
	}
	for _, c := range []struct {
		damage    string
		writeBack bool
	}{{"lost", false}, {"torn bitfield", false}, {"torn parent", false}, {"torn leaf", false}, {"torn tree index", false}, {"tail only", false}, {"lost", true}, {"tail only", true}} {
		damage := c.damage
		t.Run(fmt.Sprintf("%s/writeback=%v", damage, c.writeBack), func(t *testing.T) {
			dir := t.TempDir()
			cfg := hypercore.Config{Storage: hypercore.DirStorage{Dir: dir}, SecretKey: kp.SecretKey, Create: true, LineLog: true, WriteBack: c.writeBack}
			f, err := hypercore.Open(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.Append([]byte("not a line")); err == nil {
				t.Error("a block without a newline was taken")
			}
			for i := range 3 {
				if _, err := f.Append(lines(fmt.Sprint(i), i+2)...); err != nil {
					t.Fatal(err)
				}
				if damage == "tail only" && i == 0 {
					// A clean state on disk, then more lines synced as
					// data only (the default for a line log).
					if err := f.Sync(); err != nil {
						t.Fatal(err)
					}
					for _, name := range []string{"tree", "signatures", "bitfield"} {
						copyFile(t, filepath.Join(dir, name), filepath.Join(dir, name+".kept"))
					}
				}
			}
			if err := f.Sync(); err != nil {
				t.Fatal(err)
			}
			want, _ := f.TreeHash(f.Length())
			wantSig, _, _ := f.Signature(f.Length() - 1)
			length := f.Length()
			f.Close()
			// What a crash could leave.
			switch damage {
			case "lost":
				for _, name := range []string{"tree", "signatures", "bitfield"} {
					os.Truncate(filepath.Join(dir, name), 32)
				}
			case "torn bitfield":
				b, _ := os.ReadFile(filepath.Join(dir, "bitfield"))
				for i := 32; i < len(b) && i < 200; i++ {
					b[i] ^= 0x5a
				}
				os.WriteFile(filepath.Join(dir, "bitfield"), b, 0o644)
			case "torn tree index":
				// The tree-node bits of nodes 8 to 15 (leaf 4 among them)
				// lost, while the block bits, the tree and the data agree.
				b, _ := os.ReadFile(filepath.Join(dir, "bitfield"))
				b[sleep.HeaderSize+1024+1] = 0
				os.WriteFile(filepath.Join(dir, "bitfield"), b, 0o644)
			case "tail only":
				for _, name := range []string{"tree", "signatures", "bitfield"} {
					copyFile(t, filepath.Join(dir, name+".kept"), filepath.Join(dir, name))
				}
			case "torn parent", "torn leaf":
				// Node 3 (blocks 0 to 3) is no root of the 9 blocks, so
				// only a check of the tree against the data sees it.
				node := map[string]int64{"torn parent": 3, "torn leaf": 4}[damage]
				b, _ := os.ReadFile(filepath.Join(dir, "tree"))
				b[sleep.TreeOffset(uint64(node))] ^= 0x5a
				os.WriteFile(filepath.Join(dir, "tree"), b, 0o644)
			}
			torn := readFile(t, dir, "bitfield")
			tornTree := readFile(t, dir, "tree")
			// A torn line at the end was never synced; it is dropped.
			df, _ := os.OpenFile(filepath.Join(dir, "data"), os.O_APPEND|os.O_WRONLY, 0)
			df.Write([]byte(`{"torn":`))
			df.Close()

			g, err := hypercore.Open(hypercore.Config{Storage: hypercore.DirStorage{Dir: dir}, SecretKey: kp.SecretKey, LineLog: true})
			if err != nil {
				t.Fatal(err)
			}
			defer g.Close()
			got, err := g.TreeHash(g.Length())
			if g.Length() != length || err != nil || got != want {
				t.Fatalf("reopened at length %d (want %d), tree hash %x (%v), want %x", g.Length(), length, got, err, want)
			}
			if sig, _, err := g.Signature(g.Length() - 1); err != nil || !bytes.Equal(sig, wantSig) && damage == "tail only" {
				t.Errorf("signature %x (%v), want %x", sig, err, wantSig)
			}
			for i := range g.Length() {
				if _, err := g.Get(i); err != nil {
					t.Fatalf("block %d: %v", i, err)
				}
			}
			if _, err := g.Get(g.Length()); !errors.Is(err, hypercore.ErrNotFound) {
				t.Errorf("the torn line became a block: %v", err)
			}
			if damage == "torn parent" || damage == "torn leaf" {
				if kept, err := os.ReadFile(filepath.Join(dir, "tree.replaced")); err != nil || !bytes.Equal(kept, tornTree) {
					t.Errorf("tree.replaced: %v; want the torn tree's %d bytes", err, len(tornTree))
				}
			}
			if damage == "torn bitfield" || damage == "torn tree index" {
				// Rebuilt from the data, after keeping a copy.
				if kept, err := os.ReadFile(filepath.Join(dir, "bitfield.replaced")); err != nil || !bytes.Equal(kept, torn) {
					t.Errorf("bitfield.replaced: %v; want the torn bitfield's %d bytes", err, len(torn))
				}
			}
		})
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestDeferSignatures: appends stay unsigned and unshown until Sign, which
// signs once; Close signs what is left; a crash before Sign loses nothing,
// since Open re-signs the lines from the data.
func TestDeferSignatures(t *testing.T) {
	kp := seedKey(5)
	dir := t.TempDir()
	open := func(dir string) *hypercore.Feed {
		t.Helper()
		f, err := hypercore.Open(hypercore.Config{Storage: hypercore.DirStorage{Dir: dir}, SecretKey: kp.SecretKey, Create: true,
			LineLog: true, AnnounceOnSync: true, DeferSignatures: true, WriteBack: true})
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	signedAt := func(f *hypercore.Feed, length uint64) {
		t.Helper()
		sig, at, err := f.Signature(length - 1)
		if err != nil || at != length-1 {
			t.Fatalf("signature of length %d: at %d, %v", length, at, err)
		}
		th, err := f.TreeHash(length)
		if err != nil || !ed25519.Verify(f.PublicKey(), th[:], sig) {
			t.Fatalf("the signature of length %d does not verify (%v)", length, err)
		}
	}
	line := func(i int) []byte { return fmt.Appendf(nil, `{"n":%d}`+"\n", i) }

	f := open(dir)
	for i := range 3 {
		if _, err := f.Append(line(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if f.Length() != 3 || f.Published() != 0 {
		t.Fatalf("before Sign: length %d, published %d; want 3, 0", f.Length(), f.Published())
	}
	if _, _, err := f.Signature(0); err == nil {
		t.Fatal("a block has a signature before Sign")
	}
	if err := f.Sign(); err != nil {
		t.Fatal(err)
	}
	if f.Published() != 3 {
		t.Fatalf("after Sign: published %d, want 3", f.Published())
	}
	signedAt(f, 3)

	if err := f.Hold(); err != nil {
		t.Fatal(err)
	}
	f.Append(line(99))
	f.Sync() // refused during a hold: the held line stays unsynced, so unsigned
	if err := f.Sign(); err != nil || f.Published() != 3 {
		t.Errorf("Sign during a hold: %v, published %d; want nothing signed", err, f.Published())
	}
	if err := f.Rollback(); err != nil {
		t.Fatal(err)
	}

	// What is not synced is not signed: a crash could still lose it.
	f.Append(line(3))
	if err := f.Sign(); err != nil {
		t.Fatal(err)
	}
	if _, at, err := f.Signature(3); err == nil {
		t.Fatalf("an unsynced block was signed (at %d)", at)
	}

	// A crash after more synced appends: the files as they are now.
	f.Append(line(4))
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	crashed := t.TempDir()
	for _, name := range []string{"key", "secret_key", "tree", "data", "bitfield", "signatures"} {
		copyFile(t, filepath.Join(dir, name), filepath.Join(crashed, name))
	}
	g := open(crashed)
	if g.Length() != 5 || g.Published() != 5 {
		t.Fatalf("after a crash: length %d, published %d; want 5, 5", g.Length(), g.Published())
	}
	signedAt(g, 5)
	g.Close()

	// A clean close signs; a plain reader then opens it.
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := hypercore.Open(hypercore.Config{Storage: hypercore.DirStorage{Dir: dir}, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Length() != 5 {
		t.Fatalf("reopened at length %d, want 5", r.Length())
	}
	signedAt(r, 5)

	// Any other feed is signed by Sync, so its files always end signed.
	other := t.TempDir()
	p, err := hypercore.Open(hypercore.Config{Storage: hypercore.DirStorage{Dir: other}, SecretKey: kp.SecretKey, Create: true, DeferSignatures: true, WriteBack: true})
	if err != nil {
		t.Fatal(err)
	}
	p.Append([]byte("a"), []byte("b"))
	if p.Published() != 0 {
		t.Fatalf("before Sync: published %d", p.Published())
	}
	if err := p.Sync(); err != nil {
		t.Fatal(err)
	}
	if p.Published() != 2 {
		t.Fatalf("after Sync: published %d", p.Published())
	}
	p.Append([]byte("c"))
	p.Release() // no hold: nothing to do
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	q, err := hypercore.Open(hypercore.Config{Storage: hypercore.DirStorage{Dir: other}, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if q.Length() != 3 {
		t.Fatalf("reopened at length %d, want 3", q.Length())
	}
	signedAt(q, 3)
}

// TestPreallocate: a line log that preallocates keeps zeros past its end
// while open, and its files are byte for byte those of one that does not
// once closed; after a crash the zeros, and any unsynced line in them, are
// not blocks, and Open cuts them off.
func TestPreallocate(t *testing.T) {
	kp := seedKey(5)
	batch := func(round, n int) [][]byte {
		out := make([][]byte, n)
		for i := range out {
			out[i] = fmt.Appendf(nil, `{"round":%d,"i":%d,"pad":"%s"}`+"\n", round, i, bytes.Repeat([]byte("x"), round*7))
		}
		return out
	}
	open := func(t *testing.T, dir string, prealloc int64, create bool) *hypercore.Feed {
		t.Helper()
		f, err := hypercore.Open(hypercore.Config{Storage: hypercore.DirStorage{Dir: dir}, SecretKey: kp.SecretKey, Create: create,
			LineLog: true, WriteBack: true, DeferSignatures: true, Preallocate: prealloc})
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	// write appends rounds [from, to) and syncs after each; round 3 is
	// rolled back.
	write := func(t *testing.T, f *hypercore.Feed, from, to int) {
		t.Helper()
		for r := from; r < to; r++ {
			if r == 3 {
				if err := f.Hold(); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := f.Append(batch(r, r%4+1)...); err != nil {
				t.Fatal(err)
			}
			if r == 3 {
				if err := f.Rollback(); err != nil {
					t.Fatal(err)
				}
			}
			if err := f.Sync(); err != nil {
				t.Fatal(err)
			}
		}
	}
	dataSize := func(t *testing.T, dir string) int64 {
		t.Helper()
		st, err := os.Stat(filepath.Join(dir, "data"))
		if err != nil {
			t.Fatal(err)
		}
		return st.Size()
	}
	files := []string{"data", "tree", "signatures", "bitfield", "key", "secret_key"}
	sameFiles := func(t *testing.T, got, want string, names []string) {
		t.Helper()
		for _, name := range names {
			a, _ := os.ReadFile(filepath.Join(got, name))
			b, _ := os.ReadFile(filepath.Join(want, name))
			if !bytes.Equal(a, b) {
				t.Errorf("%s: %d bytes differ from the %d written without preallocating", name, len(a), len(b))
			}
		}
	}

	plain := t.TempDir()
	f := open(t, plain, 0, true)
	write(t, f, 0, 12)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	t.Run("closed", func(t *testing.T) {
		dir := t.TempDir()
		f := open(t, dir, 100, true) // small chunks: many grow steps
		write(t, f, 0, 12)
		if n := dataSize(t, dir); uint64(n) <= f.ByteLength() {
			t.Errorf("open, the data file has %d bytes for a %d-byte log: nothing preallocated", n, f.ByteLength())
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		sameFiles(t, dir, plain, files)
	})

	for _, tail := range []string{"zeros", "torn line", "line after a gap"} {
		t.Run("crash/"+tail, func(t *testing.T) {
			dir, crashed := t.TempDir(), t.TempDir()
			f := open(t, dir, 4096, true)
			write(t, f, 0, 6)
			length, byteLength := f.Length(), f.ByteLength()
			// A crash now: what the files hold, with the feed still open.
			for _, name := range files {
				copyFile(t, filepath.Join(dir, name), filepath.Join(crashed, name))
			}
			f.Close()
			df, err := os.OpenFile(filepath.Join(crashed, "data"), os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			switch tail {
			case "torn line": // an unsynced append, partly written
				df.WriteAt([]byte(`{"torn":`), int64(byteLength))
			case "line after a gap": // its first page lost, its second written
				df.WriteAt([]byte("{\"late\":1}\n"), int64(byteLength)+100)
			}
			df.Close()
			if n := dataSize(t, crashed); uint64(n) <= byteLength {
				t.Fatalf("the crashed data file has %d bytes, no zeros past the log's %d", n, byteLength)
			}

			g := open(t, crashed, 4096, false)
			if g.Length() != length {
				t.Fatalf("reopened at length %d, want %d", g.Length(), length)
			}
			if n := dataSize(t, crashed); uint64(n) != byteLength {
				t.Errorf("reopened, the data file has %d bytes, want the log's %d", n, byteLength)
			}
			write(t, g, 6, 12)
			if err := g.Sign(); err != nil {
				t.Fatal(err)
			}
			if _, _, err := g.Signature(g.Length() - 1); err != nil {
				t.Error(err)
			}
			if err := g.Close(); err != nil {
				t.Fatal(err)
			}
			// Not the signatures: Open signed the recovered lines, where the
			// plain feed signed at each Sync.
			sameFiles(t, crashed, plain, slices.DeleteFunc(slices.Clone(files), func(n string) bool { return n == "signatures" }))
		})
	}

	t.Run("NUL refused", func(t *testing.T) {
		f := open(t, t.TempDir(), 4096, true)
		defer f.Close()
		if _, err := f.Append([]byte("{\"a\":\"\x00\"}\n")); err == nil {
			t.Error("a line log took a block holding a NUL byte")
		}
	})
}

// TestSignWritesPendingPages: with WriteBack, Sign writes the tree and
// signature pages kept since the last Sync (so that Sync has less to write
// at once), but not the bitfield: a crash after Sign and before Sync
// reopens at the synced length.
func TestSignWritesPendingPages(t *testing.T) {
	kp := seedKey(6)
	dir, crashed := t.TempDir(), t.TempDir()
	f, err := hypercore.Open(hypercore.Config{Storage: hypercore.DirStorage{Dir: dir}, SecretKey: kp.SecretKey, Create: true,
		DeferSignatures: true, WriteBack: true})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	hypercore.SetFlushEvery(f, 0) // every signature flushes
	block := func(i int) []byte { return fmt.Appendf(nil, "block %d", i) }
	for i := range 10 {
		if _, err := f.Append(block(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	for i := 10; i < 300; i++ {
		if _, err := f.Append(block(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Sign(); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]int64{
		"tree":       sleep.TreeOffset(2*300-2) + sleep.TreeEntrySize,
		"signatures": sleep.HeaderSize + 300*hypercore.SignatureSize,
	} {
		if st, err := os.Stat(filepath.Join(dir, name)); err != nil || st.Size() < want {
			t.Errorf("after Sign, %s: %v, %v; want %d bytes written", name, st.Size(), err, want)
		}
	}
	for _, name := range []string{"data", "tree", "signatures", "bitfield", "key", "secret_key"} {
		copyFile(t, filepath.Join(dir, name), filepath.Join(crashed, name))
	}
	g, err := hypercore.Open(hypercore.Config{Storage: hypercore.DirStorage{Dir: crashed}, SecretKey: kp.SecretKey, DeferSignatures: true, WriteBack: true})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if g.Length() != 10 {
		t.Fatalf("after a crash between Sign and Sync, length %d, want the synced 10", g.Length())
	}
	for i := range uint64(10) {
		if b, err := g.Get(i); err != nil || !bytes.Equal(b, block(int(i))) {
			t.Fatalf("block %d: %q, %v", i, b, err)
		}
	}
	if _, err := g.Append(block(10)); err != nil {
		t.Fatal(err)
	}
	if err := g.Sync(); err != nil {
		t.Fatal(err)
	}
}

// TestSignFlushesAtMostEvery: a signature within the flush interval of
// the last flush leaves the pages pending (a host that signs for every few
// receipts would otherwise pay for the writes each time), and Sync writes
// them.
func TestSignFlushesAtMostEvery(t *testing.T) {
	kp := seedKey(7)
	dir := t.TempDir()
	f, err := hypercore.Open(hypercore.Config{Storage: hypercore.DirStorage{Dir: dir}, SecretKey: kp.SecretKey, Create: true,
		DeferSignatures: true, WriteBack: true})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	hypercore.SetFlushEvery(f, time.Hour)
	size := func(name string) int64 {
		t.Helper()
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return st.Size()
	}
	appendAndSign := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			if _, err := f.Append(fmt.Appendf(nil, "block %d", i)); err != nil {
				t.Fatal(err)
			}
		}
		if err := f.Sign(); err != nil {
			t.Fatal(err)
		}
	}
	appendAndSign(0, 300) // the first signature flushes
	tree, sigs := size("tree"), size("signatures")
	if want := sleep.TreeOffset(2*300-2) + sleep.TreeEntrySize; tree < want {
		t.Fatalf("after the first Sign, tree: %d bytes, want %d", tree, want)
	}
	appendAndSign(300, 600) // within the hour: pending
	if got := size("tree"); got != tree {
		t.Errorf("after a Sign within the interval, tree: %d bytes, want %d (nothing written)", got, tree)
	}
	if got := size("signatures"); got != sigs {
		t.Errorf("after a Sign within the interval, signatures: %d bytes, want %d (nothing written)", got, sigs)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if got, want := size("signatures"), sleep.HeaderSize+600*int64(hypercore.SignatureSize); got < want {
		t.Errorf("after Sync, signatures: %d bytes, want %d", got, want)
	}
}

// limitedStorage is a memory storage whose data file refuses writes that
// would end past limit bytes, as a full disk does.
type limitedStorage struct {
	*hypercore.MemoryStorage
	limit int64
}

func (s limitedStorage) Open(name string, create bool) (hypercore.File, error) {
	f, err := s.MemoryStorage.Open(name, create)
	if err != nil || name != "data" {
		return f, err
	}
	return limitedFile{f, s.limit}, nil
}

type limitedFile struct {
	hypercore.File
	limit int64
}

func (f limitedFile) WriteAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > f.limit {
		return 0, fmt.Errorf("write of %d bytes at %d: %w", len(p), off, syscall.ENOSPC)
	}
	return f.File.WriteAt(p, off)
}

func (f limitedFile) Truncate(size int64) error {
	return f.File.(interface{ Truncate(int64) error }).Truncate(size)
}

// TestPreallocateOnAFullDisk: when the zeros do not fit, appends that do
// go on, without preallocating, and Close still leaves only the log.
func TestPreallocateOnAFullDisk(t *testing.T) {
	kp := seedKey(8)
	st := limitedStorage{hypercore.NewMemoryStorage(), 4096}
	f, err := hypercore.Open(hypercore.Config{Storage: st, SecretKey: kp.SecretKey, Create: true, LineLog: true, Preallocate: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	line := []byte(`{"a":"line"}` + "\n")
	n := 0
	for ; (n+1)*len(line) <= 4096; n++ {
		if _, err := f.Append(line); err != nil {
			t.Fatalf("append %d, %d bytes in all: %v", n, (n+1)*len(line), err)
		}
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.Append(line); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("an append past the disk's end: %v, want ENOSPC", err)
	}
	if err := f.Close(); !errors.Is(err, hypercore.ErrFailed) {
		t.Errorf("closing after the failed append: %v, want ErrFailed", err)
	}
	if got, want := len(st.Bytes("data")), n*len(line); got != want {
		t.Errorf("the data file has %d bytes, want the %d synced", got, want)
	}
	g, err := hypercore.Open(hypercore.Config{Storage: st, SecretKey: kp.SecretKey, LineLog: true, Preallocate: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if g.Length() != uint64(n) {
		t.Errorf("reopened at length %d, want %d", g.Length(), n)
	}
}

// syncRecorder is a memory storage whose data file records the writeback
// hints and syncs the feed asks of it.
type syncRecorder struct {
	*hypercore.MemoryStorage
	data *recordingFile
}

func (s *syncRecorder) Open(name string, create bool) (hypercore.File, error) {
	f, err := s.MemoryStorage.Open(name, create)
	if err != nil || name != "data" {
		return f, err
	}
	s.data = &recordingFile{File: f}
	return s.data, nil
}

type recordingFile struct {
	hypercore.File
	writebacks       [][2]int64 // offset, length
	syncs, dataSyncs int
}

func (f *recordingFile) StartWriteback(off, n int64) error {
	f.writebacks = append(f.writebacks, [2]int64{off, n})
	return nil
}

func (f *recordingFile) Sync() error     { f.syncs++; return f.File.Sync() }
func (f *recordingFile) SyncData() error { f.dataSyncs++; return f.File.Sync() }

func (f *recordingFile) Truncate(size int64) error {
	return f.File.(interface{ Truncate(int64) error }).Truncate(size)
}

// TestLineLogStartsWriteback: a line log that fsyncs starts each append's
// data on its way to the disk as soon as it is written, and Sync makes
// the data file durable with SyncData (its size, not its times, matters).
// Other feeds, and a line log without fsync, do neither.
func TestLineLogStartsWriteback(t *testing.T) {
	lines := func(round int) [][]byte {
		return [][]byte{fmt.Appendf(nil, `{"r":%d}`+"\n", round), fmt.Appendf(nil, `{"r":%d,"b":"second"}`+"\n", round)}
	}
	for _, tc := range []struct {
		name          string
		cfg           hypercore.Config
		wantWriteback bool
	}{
		{"line log", hypercore.Config{LineLog: true, WriteBack: true, DeferSignatures: true}, true},
		{"preallocated line log", hypercore.Config{LineLog: true, WriteBack: true, Preallocate: 1 << 10}, true},
		{"line log without fsync", hypercore.Config{LineLog: true, NoFsync: true}, false},
		{"plain feed", hypercore.Config{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := &syncRecorder{MemoryStorage: hypercore.NewMemoryStorage()}
			cfg := tc.cfg
			cfg.Storage, cfg.SecretKey, cfg.Create = st, seedKey(9).SecretKey, true
			f, err := hypercore.Open(cfg)
			if err != nil {
				t.Fatal(err)
			}
			var want [][2]int64
			for r := range 3 {
				before := int64(f.ByteLength())
				if _, err := f.Append(lines(r)...); err != nil {
					t.Fatal(err)
				}
				want = append(want, [2]int64{before, int64(f.ByteLength()) - before})
				if err := f.Sync(); err != nil {
					t.Fatal(err)
				}
			}
			if !tc.wantWriteback {
				want = nil
			}
			if diff := cmp.Diff(want, st.data.writebacks); diff != "" {
				t.Errorf("writebacks started (-want +got):\n%s", diff)
			}
			switch {
			case tc.wantWriteback && (st.data.dataSyncs != 3 || st.data.syncs != 0):
				t.Errorf("data file: %d SyncData and %d Sync, want 3 and 0", st.data.dataSyncs, st.data.syncs)
			case !tc.wantWriteback && st.data.dataSyncs != 0:
				t.Errorf("data file: %d SyncData, want none", st.data.dataSyncs)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestLineLogRefusesChangedData: a line log whose data file was changed
// after it was signed refuses to open, naming the block, and changes no
// file; it never redoes (and signs) a tree of other lines.
func TestLineLogRefusesChangedData(t *testing.T) {
	kp := seedKey(5)
	for _, c := range []struct {
		name   string
		change func(data []byte) []byte
		want   string
	}{
		{"a digit of block 1", func(d []byte) []byte { d[bytes.IndexByte(d, '\n')+6] ^= 1; return d }, "data: block 1 (bytes 12 to 24)"},
		{"the last line cut", func(d []byte) []byte { return d[:len(d)-4] }, "ends before it"},
		{"a line removed", func(d []byte) []byte { i := bytes.IndexByte(d, '\n'); return d[i+1:] }, "ends before it"},
		{"two lines swapped", func(d []byte) []byte { return slices.Concat(d[12:24], d[:12], d[24:]) }, "data: block 0 (bytes 0 to 12)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := hypercore.Config{Storage: hypercore.DirStorage{Dir: dir}, SecretKey: kp.SecretKey, Create: true, LineLog: true, WriteBack: true}
			f, err := hypercore.Open(cfg)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 4 {
				if _, err := f.Append(fmt.Appendf(nil, `{"n":%05d}`+"\n", i)); err != nil {
					t.Fatal(err)
				}
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			data := readFile(t, dir, "data")
			if err := os.WriteFile(filepath.Join(dir, "data"), c.change(slices.Clone(data)), 0o644); err != nil {
				t.Fatal(err)
			}
			before := map[string][]byte{}
			for _, name := range []string{"data", "tree", "signatures", "bitfield"} {
				before[name] = readFile(t, dir, name)
			}
			cfg.Create = false
			_, err = hypercore.Open(cfg)
			if !errors.Is(err, hypercore.ErrDataChanged) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Open = %v, want ErrDataChanged naming %q", err, c.want)
			}
			for name, b := range before {
				if !bytes.Equal(b, readFile(t, dir, name)) {
					t.Errorf("the refused open changed %s", name)
				}
			}
		})
	}
}

// TestLineLogTornAtEveryOffset: a crash can leave the last append's line
// cut at any byte (the data file is synced per commit, and a commit that
// did not finish was never acknowledged). At every offset the log opens,
// to the lines before it, with the writer's signature; a whole line that
// was written but whose sync never returned is kept.
func TestLineLogTornAtEveryOffset(t *testing.T) {
	kp := seedKey(14)
	dir := t.TempDir()
	cfg := hypercore.Config{Storage: hypercore.DirStorage{Dir: dir}, SecretKey: kp.SecretKey, Create: true, LineLog: true, WriteBack: true, DeferSignatures: true}
	f := mustOpen(t, cfg)
	for i := range 6 {
		if _, err := f.Append(fmt.Appendf(nil, `{"n":%d}`+"\n", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	last := []byte(`{"n":"the last append, torn"}` + "\n")
	files := map[string][]byte{}
	for _, name := range []string{"data", "tree", "signatures", "bitfield", "key", "secret_key"} {
		files[name] = readFile(t, dir, name)
	}
	cfg.Create = false
	for cut := 0; cut <= len(last); cut++ {
		at := filepath.Join(t.TempDir(), "feed")
		if err := os.MkdirAll(at, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, b := range files {
			if name == "data" {
				b = slices.Concat(b, last[:cut])
			}
			if err := os.WriteFile(filepath.Join(at, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		c := cfg
		c.Storage = hypercore.DirStorage{Dir: at}
		g, err := hypercore.Open(c)
		if err != nil {
			t.Fatalf("cut at byte %d of the last line: %v", cut, err)
		}
		want := uint64(6)
		if cut == len(last) {
			want = 7
		}
		if g.Length() != want {
			t.Errorf("cut at byte %d: length %d, want %d", cut, g.Length(), want)
		}
		if err := g.Sign(); err != nil {
			t.Fatal(err)
		}
		if err := g.CheckStored(hypercore.CheckOptions{Data: true, AllBlocks: true, Signatures: true}); err != nil {
			t.Errorf("cut at byte %d: %v", cut, err)
		}
		g.Close()
	}
}
