package hyperdrive_test

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nodevms/nodevms/hypercore"
	"github.com/nodevms/nodevms/hyperdrive"
)

// model is what a files archive should hold: files with their bytes and
// folders, by path.
type model struct {
	files map[string][]byte
	dirs  map[string]bool
}

func (m *model) exists(p string) bool { return p == "/" || m.dirs[p] || m.files[p] != nil }

// modelPaths are the paths the model test picks from: few enough that
// operations collide often.
var modelPaths = []string{"/a", "/b", "/a/x", "/a/y", "/a/b", "/a/b/z", "/b/x", "/c"}

// runModel applies the operations that ops encodes to an archive (through
// the DatArchive API) and to the model, and compares them after each one.
// Each operation takes two bytes: the op and the path (and the size of a
// write). With reopenEvery > 0 the archive is kept in a folder (DatStorage),
// reopened every so many operations, and the folder's files are checked
// too; otherwise it is kept in memory.
func runModel(t *testing.T, ops []byte, reopenEvery int) {
	dir := t.TempDir()
	mem := hyperdrive.MemoryStorage()
	storage := func() hyperdrive.Storage {
		if reopenEvery > 0 {
			return hyperdrive.DatStorage(dir, dir+"/.secret")
		}
		return mem
	}
	a, err := hyperdrive.Open(hyperdrive.Options{Storage: storage(), Create: true, Now: func() time.Time { return time.UnixMilli(1) }})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if a != nil {
			a.Close()
		}
	}()
	key := a.Key()
	m := &model{files: map[string][]byte{}, dirs: map[string]bool{}}
	for i := 0; i+1 < len(ops); i += 2 {
		op, p := ops[i]%5, modelPaths[int(ops[i+1])%len(modelPaths)]
		size := int(ops[i+1]) * 37 % 70000
		if op == 0 && ops[i+1] < 64 {
			size = 0
		}
		f := a.Files()
		var err error
		var desc string
		parentOK := m.dirs[path.Dir(p)] || path.Dir(p) == "/"
		switch op {
		case 0, 1: // writeFile
			data := bytes.Repeat([]byte{byte(i)}, size)
			desc = fmt.Sprintf("writeFile %s (%d bytes)", p, size)
			err = f.WriteFile(p, data, hyperdrive.WriteOptions{})
			switch {
			case !parentOK:
				wantErr(t, desc, err, hyperdrive.ParentFolderDoesntExistError)
			case m.dirs[p]:
				wantErr(t, desc, err, hyperdrive.EntryAlreadyExistsError)
			default:
				wantErr(t, desc, err, nil)
				m.files[p] = data
			}
		case 2: // mkdir
			desc = "mkdir " + p
			err = f.Mkdir(p, hyperdrive.WriteOptions{})
			switch {
			case m.exists(p):
				wantErr(t, desc, err, hyperdrive.EntryAlreadyExistsError)
			case !parentOK:
				wantErr(t, desc, err, hyperdrive.ParentFolderDoesntExistError)
			default:
				wantErr(t, desc, err, nil)
				m.dirs[p] = true
			}
		case 3: // unlink
			desc = "unlink " + p
			err = f.Unlink(p)
			switch {
			case m.files[p] != nil:
				wantErr(t, desc, err, nil)
				delete(m.files, p)
			case m.dirs[p]:
				wantErr(t, desc, err, hyperdrive.NotAFileError)
			default:
				wantErr(t, desc, err, hyperdrive.NotFoundError)
			}
		case 4: // rmdir, recursive when the path byte is odd
			recursive := ops[i+1]&1 == 1
			desc = fmt.Sprintf("rmdir %s (recursive %v)", p, recursive)
			err = f.Rmdir(p, recursive)
			switch {
			case m.files[p] != nil:
				wantErr(t, desc, err, hyperdrive.NotAFolderError)
			case !m.dirs[p]:
				wantErr(t, desc, err, hyperdrive.NotFoundError)
			case len(m.children(p)) > 0 && !recursive:
				wantErr(t, desc, err, hyperdrive.DestDirectoryNotEmpty)
			default:
				wantErr(t, desc, err, nil)
				m.removeTree(p)
			}
		}
		if t.Failed() {
			t.FailNow()
		}
		if reopenEvery > 0 && (i/2)%reopenEvery == reopenEvery-1 {
			if err := a.Close(); err != nil {
				t.Fatal(err)
			}
			a, err = hyperdrive.Open(hyperdrive.Options{Storage: storage(), Key: key})
			if err != nil {
				t.Fatalf("reopen after %s: %v", desc, err)
			}
			if mod := a.Modified(); len(mod) > 0 {
				t.Fatalf("reopen after %s: files reported modified: %q", desc, mod)
			}
		}
		folder := ""
		if reopenEvery > 0 {
			folder = dir
			// The folder shows the archive as of its last Sync.
			if err := a.Sync(); err != nil {
				t.Fatalf("sync after %s: %v", desc, err)
			}
		}
		m.check(t, a.Files(), folder, desc)
	}
}

func wantErr(t *testing.T, desc string, err error, want *hyperdrive.Error) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Errorf("%s: %v", desc, err)
		}
		return
	}
	if !errors.Is(err, want) {
		t.Errorf("%s: error %v, want %s", desc, err, want.Name)
	}
}

func (m *model) children(dir string) []string {
	var out []string
	for _, set := range []map[string]bool{m.dirs, keys(m.files)} {
		for p := range set {
			if path.Dir(p) == dir && p != "/" {
				out = append(out, path.Base(p))
			}
		}
	}
	sort.Strings(out)
	return out
}

func keys(files map[string][]byte) map[string]bool {
	out := map[string]bool{}
	for p := range files {
		out[p] = true
	}
	return out
}

func (m *model) removeTree(dir string) {
	for p := range m.dirs {
		if p == dir || strings.HasPrefix(p, dir+"/") {
			delete(m.dirs, p)
		}
	}
	for p := range m.files {
		if strings.HasPrefix(p, dir+"/") {
			delete(m.files, p)
		}
	}
}

// check compares the archive, and the folder that shows it unless dir is
// "", with the model.
func (m *model) check(t *testing.T, f *hyperdrive.Files, dir, after string) {
	t.Helper()
	for _, p := range append([]string{"/"}, modelPaths...) {
		st, err := f.Stat(p)
		switch {
		case m.files[p] != nil:
			got, err := f.ReadFile(p)
			if err != nil || !st.IsFile() || !bytes.Equal(got, m.files[p]) {
				t.Fatalf("after %s: %s: read %d bytes (%v), file %v; want %d bytes", after, p, len(got), err, st.IsFile(), len(m.files[p]))
			}
		case m.exists(p):
			if err != nil || !st.IsDirectory() {
				t.Fatalf("after %s: %s: stat %+v, %v; want a folder", after, p, st, err)
			}
			list, err := f.Readdir(p, false)
			if err != nil {
				t.Fatalf("after %s: readdir %s: %v", after, p, err)
			}
			sort.Strings(list)
			if diff := cmp.Diff(m.children(p), list, cmp.Comparer(func(a, b []string) bool { return len(a) == 0 && len(b) == 0 || cmp.Equal(a, b) })); diff != "" {
				t.Fatalf("after %s: readdir %s (-model +archive):\n%s", after, p, diff)
			}
		default:
			if !errors.Is(err, hyperdrive.NotFoundError) {
				t.Fatalf("after %s: %s: stat %+v, %v; want NotFoundError", after, p, st, err)
			}
		}
		if dir == "" {
			continue
		}
		// The folder shows the current files as ordinary files.
		real, rerr := os.ReadFile(filepath.Join(dir, filepath.FromSlash(p)))
		if want := m.files[p]; want != nil && (rerr != nil || !bytes.Equal(real, want)) {
			t.Fatalf("after %s: the folder's %s has %d bytes (%v), want %d", after, p, len(real), rerr, len(want))
		}
		if m.files[p] == nil && rerr == nil {
			t.Fatalf("after %s: the folder still has a file %s", after, p)
		}
	}
}

// TestHyperdriveModel runs long random operation sequences through the
// model, reopening the archive from disk now and then.
func TestHyperdriveModel(t *testing.T) {
	for seed := uint64(1); seed <= 4; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Parallel()
			r := rand.New(rand.NewPCG(seed, 0))
			ops := make([]byte, 2*300)
			for i := range ops {
				ops[i] = byte(r.Uint32())
			}
			runModel(t, ops, 50)
		})
	}
}

// FuzzHyperdriveModel: any sequence of operations leaves the archive as
// the model says.
func FuzzHyperdriveModel(f *testing.F) {
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) > 2*32 {
			ops = ops[:2*32]
		}
		runModel(t, ops, 0)
	})
}

// FuzzArchiveMetadata opens an archive whose metadata feed holds arbitrary
// blocks (behind a real key): the first as the index, the rest as tree
// entries. Opening and every read must fail cleanly or succeed; nothing may
// panic or loop.
func FuzzArchiveMetadata(f *testing.F) {
	kp := hypercore.KeyPairFromSeed(bytes.Repeat([]byte{7}, 32))
	content := hyperdrive.ContentKeyPair(kp.SecretKey)
	f.Fuzz(func(t *testing.T, blocks []byte) {
		meta := hypercore.NewMemoryStorage()
		feed, err := hypercore.Open(hypercore.Config{Storage: meta, SecretKey: kp.SecretKey, Create: true})
		if err != nil {
			t.Fatal(err)
		}
		// The fuzzer's bytes become blocks: each is a length byte and that
		// many bytes. An input that starts with 0xff gets a valid index
		// first, so that the entries are reached more often.
		if len(blocks) > 0 && blocks[0] == 0xff {
			idx := append([]byte{0x0a, 0x0a}, "hyperdrive"...)
			idx = append(append(idx, 0x12, 0x20), content.PublicKey...)
			if _, err := feed.Append(idx); err != nil {
				t.Fatal(err)
			}
			blocks = blocks[1:]
		}
		for len(blocks) > 0 {
			n := min(int(blocks[0]), len(blocks)-1)
			if _, err := feed.Append(blocks[1 : 1+n]); err != nil {
				t.Fatal(err)
			}
			blocks = blocks[1+n:]
		}
		if err := feed.Close(); err != nil {
			t.Fatal(err)
		}
		a, err := hyperdrive.Open(hyperdrive.Options{
			Storage: hyperdrive.FeedStorage(meta, hypercore.NewMemoryStorage()),
			Key:     kp.PublicKey,
			Create:  true, // a replica: the content feed starts empty
		})
		if err != nil {
			return
		}
		defer a.Close()
		files := a.Files()
		for _, p := range []string{"/", "/a", "/a/b", "/hello.txt", ""} {
			files.Stat(p)
			files.ReadFile(p)
			files.Readdir(p, true)
		}
		a.History(0)
		for v := uint64(0); v <= a.Version(); v++ {
			if co, err := a.Checkout(v); err == nil {
				co.Readdir("/")
			}
		}
	})
}

// datFiles are the names DatStorage keeps in .dat after a Sync.
var datFiles = map[string]bool{
	"metadata.key": true, "metadata.tree": true, "metadata.data": true, "metadata.bitfield": true,
	"metadata.signatures": true, "metadata.ogd": true, "content.key": true, "content.tree": true,
	"content.bitfield": true, "content.signatures": true, "tmp": true,
}

// FuzzFolderPath: whatever path a script passes to Files, it is refused
// with an *Error or it names a place in the folder, outside .dat; and
// whatever path an archive's entry has (written through Archive, as an
// archive made by another program may), the folder is left inside its
// bounds: nothing appears outside it or in .dat, and it opens again.
func FuzzFolderPath(f *testing.F) {
	for _, p := range []string{
		"/a", "/.dat", "/.DAT/x", "//.dat/call-log.data", "/./.dat", "/a/../.dat", ".dat/",
		"/../x", "/../../x", "/a/../../x", "/" + strings.Repeat("n", 255), "/" + strings.Repeat("n", 256),
		"/a\x00b", "/.keys", "/a/./b", "/.dat/tmp/write-1", "/.dat/pending.json",
	} {
		f.Add([]byte(p))
	}
	f.Fuzz(func(t *testing.T, name []byte) {
		if len(name) > 5000 {
			return
		}
		p := string(name)
		root := t.TempDir()
		dir, secrets := filepath.Join(root, "site"), filepath.Join(root, "secrets")
		if err := os.WriteFile(filepath.Join(root, "outside"), []byte("outside"), 0o600); err != nil {
			t.Fatal(err)
		}
		a, err := hyperdrive.Open(hyperdrive.Options{Storage: hyperdrive.DatStorage(dir, secrets), Create: true})
		if err != nil {
			t.Fatal(err)
		}
		key := a.Key()
		files := a.Files()
		files.Stat(p)
		files.ReadFile(p)
		files.Readdir(p, true)
		for _, err := range []error{
			files.Mkdir(p, hyperdrive.WriteOptions{}),
			files.WriteFile(p, []byte("x"), hyperdrive.WriteOptions{}),
			files.WriteFile(p+"/f", []byte("y"), hyperdrive.WriteOptions{}),
		} {
			var e *hyperdrive.Error
			if err != nil && !errors.As(err, &e) {
				t.Fatalf("%q: %v is not an *Error", p, err)
			}
		}
		for _, q := range []string{p, p + "/f"} {
			if _, err := files.Stat(q); err != nil {
				continue
			}
			n := hyperdrive.Normalize(q)
			first, _, _ := strings.Cut(strings.TrimPrefix(n, "/"), "/")
			if strings.EqualFold(first, ".dat") || len(n) > hyperdrive.MaxPathBytes+2 {
				t.Fatalf("Files let %q be written as %q", q, n)
			}
			for _, c := range strings.Split(n, "/") {
				if len(c) > hyperdrive.MaxNameBytes || strings.ContainsRune(c, 0) {
					t.Fatalf("Files let %q be written", q)
				}
			}
		}
		// The archive itself takes any name.
		a.WriteFile(p, []byte("raw"), hyperdrive.WriteOptions{})
		a.WriteFile(p+"/sub", []byte("raw"), hyperdrive.WriteOptions{})
		a.Unlink(p + "/.." + "/x")
		if err := a.Close(); err != nil {
			t.Fatalf("close: %v", err)
		}
		checkBounds(t, root, false)
		a, err = hyperdrive.Open(hyperdrive.Options{Storage: hyperdrive.DatStorage(dir, secrets), Key: key})
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		a.Close()
		checkBounds(t, root, true)
	})
}

// checkBounds fails unless root holds only the folder site, the secret
// key folder and the file outside as it was, and site/.dat only
// DatStorage's own files; with reopened, no temporary file either (a
// file the archive has where the folder has a folder keeps one until
// then).
func checkBounds(t *testing.T, root string, reopened bool) {
	t.Helper()
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if n := e.Name(); n != "site" && n != "secrets" && n != "outside" {
			t.Fatalf("%s written outside the folder", n)
		}
	}
	if b, err := os.ReadFile(filepath.Join(root, "outside")); err != nil || string(b) != "outside" {
		t.Fatalf("the file outside is %q (%v)", b, err)
	}
	dat, err := os.ReadDir(filepath.Join(root, "site", hyperdrive.DatDir))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range dat {
		if !datFiles[e.Name()] {
			t.Fatalf(".dat/%s written", e.Name())
		}
	}
	tmp, _ := os.ReadDir(filepath.Join(root, "site", hyperdrive.DatDir, "tmp"))
	for _, e := range tmp {
		if reopened {
			t.Fatalf(".dat/tmp/%s left", e.Name())
		}
	}
}
