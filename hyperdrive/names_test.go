package hyperdrive

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// snapshot records every entry under dir, symlinks not followed: its
// mode, and its bytes for a file or its target for a symlink.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		v := fi.Mode().String()
		switch {
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			v += " " + string(b)
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			v += " -> " + target
		}
		out[rel] = v
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func newDatArchive(t *testing.T, dir string) *Archive {
	t.Helper()
	a, err := Open(Options{Storage: DatStorage(dir, filepath.Join(dir, ".keys")), Create: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

// TestFilesRefusesHostNames: no Files method reaches a name under .dat,
// in any spelling, or one the folder cannot hold; the archive and the
// folder are left as they were.
func TestFilesRefusesHostNames(t *testing.T) {
	long := strings.Repeat("n", MaxNameBytes+1)
	names := []string{
		"/.dat", ".dat", "/.dat/", "/./.dat", "//.dat", "/a/../.dat", "/.dat/.",
		"/.dat/call-log.data", "/.dat/metadata.key", "/.dat/pending.json", "/.dat/tmp/write-1",
		"/.DAT", "/.Dat/call-log.data", "/.dAt/x",
		"/" + long, "/dir/" + long, long,
		"/" + strings.Repeat("d/", MaxPathBytes/2) + "f",
		"/a\x00b", "/dir/\x00",
	}
	methods := []struct {
		name string
		do   func(f *Files, p string) error
	}{
		{"stat", func(f *Files, p string) error { _, err := f.Stat(p); return err }},
		{"readFile", func(f *Files, p string) error { _, err := f.ReadFile(p); return err }},
		{"readdir", func(f *Files, p string) error { _, err := f.Readdir(p, false); return err }},
		{"readdir recursive", func(f *Files, p string) error { _, err := f.Readdir(p, true); return err }},
		{"writeFile", func(f *Files, p string) error { return f.WriteFile(p, []byte("x"), WriteOptions{}) }},
		{"mkdir", func(f *Files, p string) error { return f.Mkdir(p, WriteOptions{}) }},
		{"unlink", func(f *Files, p string) error { return f.Unlink(p) }},
		{"rmdir", func(f *Files, p string) error { return f.Rmdir(p, false) }},
		{"rmdir recursive", func(f *Files, p string) error { return f.Rmdir(p, true) }},
	}
	dir := t.TempDir()
	a := newDatArchive(t, dir)
	f := a.Files()
	must(t, f.Mkdir("/dir", WriteOptions{}))
	must(t, f.WriteFile("/dir/file", []byte("kept"), WriteOptions{}))
	must(t, a.Sync())
	// A host file the attack went for.
	must(t, os.WriteFile(filepath.Join(dir, DatDir, "call-log.data"), []byte("host log"), 0o600))
	version, before := a.Version(), snapshot(t, dir)
	for _, m := range methods {
		for _, p := range names {
			err := m.do(f, p)
			if !errors.Is(err, InvalidPathError) {
				t.Errorf("%s %q: %v, want InvalidPathError", m.name, p, err)
			}
		}
	}
	// A long name refused before any other check.
	if err := f.Mkdir("/"+long+"/x", WriteOptions{}); !errors.Is(err, InvalidPathError) {
		t.Errorf("mkdir under a long name: %v, want InvalidPathError", err)
	}
	must(t, a.Sync())
	if v := a.Version(); v != version {
		t.Errorf("version %d after refused calls, want %d", v, version)
	}
	if diff := cmp.Diff(before, snapshot(t, dir)); diff != "" {
		t.Errorf("folder changed by refused calls (-before +after):\n%s", diff)
	}
}

// TestFilesNameLimits: the longest names the folder holds are accepted
// and show up in the folder.
func TestFilesNameLimits(t *testing.T) {
	dir := t.TempDir()
	a := newDatArchive(t, dir)
	f := a.Files()
	name := "/" + strings.Repeat("n", MaxNameBytes)
	must(t, f.WriteFile(name, []byte("ok"), WriteOptions{}))
	must(t, f.Mkdir("/.data", WriteOptions{})) // only .dat itself is reserved
	must(t, f.WriteFile("/.data/x", []byte("ok"), WriteOptions{}))
	// A path of 4,022 bytes: longer, with the folder's own path, than
	// the system takes at once, which the folder's walk does not need.
	deep := ""
	for range 20 {
		deep += "/" + strings.Repeat("d", 200)
		must(t, f.Mkdir(deep, WriteOptions{}))
	}
	must(t, f.WriteFile(deep+"/f", []byte("deep"), WriteOptions{}))
	must(t, a.Sync())
	for _, p := range []string{name, "/.data/x"} {
		b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(p)))
		if err != nil || string(b) != "ok" {
			t.Errorf("folder file %.20s...: %q, %v", p, b, err)
		}
		if got, err := f.ReadFile(p); err != nil || string(got) != "ok" {
			t.Errorf("read %.20s...: %q, %v", p, got, err)
		}
	}
	must(t, a.Close())
	a, err := Open(Options{Storage: DatStorage(dir, filepath.Join(dir, ".keys"))})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if mod := a.Modified(); len(mod) > 0 {
		t.Errorf("Modified after reopen: %.40q", mod)
	}
	if got, err := a.Files().ReadFile(deep + "/f"); err != nil || string(got) != "deep" {
		t.Errorf("read the deep file: %q, %v", got, err)
	}
}

// TestDatStorageHoldsNoHostileNames: an archive whose entries name .dat,
// the secret key folder or a name too long (as one written through
// Archive, or made by another Dat program, may) does not touch those
// places; its open and later opens work, and it reports such files as
// modified.
func TestDatStorageHoldsNoHostileNames(t *testing.T) {
	dir := t.TempDir()
	clock := time.UnixMilli(1_600_000_000_000)
	open := func(create bool) *Archive {
		a, err := Open(Options{Storage: DatStorage(dir, filepath.Join(dir, ".keys")), Create: create, Now: func() time.Time { return clock }})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	a := open(true)
	must(t, os.WriteFile(filepath.Join(dir, DatDir, "call-log.data"), []byte("host log"), 0o600))
	hostile := []string{
		"/.dat/call-log.data", "/.DAT/x", "/.dat/tmp/x", "/.keys/ab/cd",
		"/" + strings.Repeat("n", 300), "/dir/" + strings.Repeat("m", 256), "/" + strings.Repeat("l", 256) + "/x",
	}
	for _, p := range hostile {
		must(t, a.WriteFile(p, []byte("evil"), WriteOptions{}))
	}
	must(t, a.Mkdir("/.dat/sub", WriteOptions{}))
	must(t, a.WriteFile("/fine", []byte("fine"), WriteOptions{}))
	must(t, a.Sync())
	before := snapshot(t, dir)
	check := func(when string) {
		t.Helper()
		got := snapshot(t, dir)
		// The hostile file, not its folder: the secret key is kept in
		// .keys/<its discovery key's first two hex digits>/, which is
		// .keys/ab once in 256 runs.
		for _, k := range []string{".dat/call-log.data", ".DAT", ".dat/sub", ".dat/tmp/x", ".keys/ab/cd", strings.Repeat("n", 300)} {
			if v, ok := got[k]; ok && k != ".dat/call-log.data" {
				t.Errorf("%s: the folder has %s (%s)", when, k, v)
			}
		}
		if v := got[".dat/call-log.data"]; !strings.HasSuffix(v, " host log") {
			t.Errorf("%s: the host's call log is %q", when, v)
		}
		if v := got["fine"]; !strings.HasSuffix(v, " fine") {
			t.Errorf("%s: folder file fine is %q", when, v)
		}
	}
	check("after sync")
	if diff := cmp.Diff(sorted(hostile), a.Modified()); diff != "" {
		t.Errorf("Modified (-want +got):\n%s", diff)
	}
	for _, p := range hostile {
		if _, err := a.ReadFile(p); !errors.Is(err, ErrModified) {
			t.Errorf("read %.30s: %v, want ErrModified", p, err)
		}
	}
	must(t, a.Close())

	a = open(false)
	check("after reopen")
	if diff := cmp.Diff(sorted(hostile), a.Modified()); diff != "" {
		t.Errorf("Modified after reopen (-want +got):\n%s", diff)
	}
	if b, err := a.ReadFile("/fine"); err != nil || string(b) != "fine" {
		t.Errorf("read /fine: %q, %v", b, err)
	}
	// Deleting them deletes nothing of the host's.
	for _, p := range hostile {
		must(t, a.Unlink(p))
	}
	must(t, a.Rmdir("/.dat/sub"))
	must(t, a.Close())
	a = open(false)
	defer a.Close()
	check("after unlink")
	if diff := cmp.Diff(before[".keys"], snapshot(t, dir)[".keys"]); diff != "" {
		t.Errorf(".keys changed:\n%s", diff)
	}
}

func sorted(list []string) []string { return slices.Sorted(slices.Values(list)) }

// TestRecoverRefusesAHostileJournal: a journal that names places outside
// the folder, or in .dat, is not followed there; the open still works.
func TestRecoverRefusesAHostileJournal(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "site")
	must(t, os.Mkdir(dir, 0o755))
	a := newDatArchive(t, dir)
	must(t, a.WriteFile("/f", []byte("f"), WriteOptions{}))
	must(t, a.Close())
	must(t, os.WriteFile(filepath.Join(root, "victim"), []byte("victim"), 0o600))
	must(t, os.MkdirAll(filepath.Join(dir, DatDir, "tmp"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, DatDir, "tmp", "write-1"), []byte("evil"), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, DatDir, "tmp", "write-2"), []byte("evil"), 0o644))
	must(t, os.WriteFile(filepath.Join(root, "write-3"), []byte("outside tmp"), 0o644))
	journal := `{"metadataLength":0,"ops":[` +
		`{"kind":0,"name":"/../escaped","tmp":"write-1"},` +
		`{"kind":0,"name":"/.dat/call-log.data","tmp":"write-2"},` +
		`{"kind":0,"name":"/moved","tmp":"../../write-3"},` +
		`{"kind":1,"name":"/../victim"},` +
		`{"kind":2,"name":"/../site"}]}`
	must(t, os.WriteFile(filepath.Join(dir, DatDir, "pending.json"), []byte(journal), 0o644))
	before := snapshot(t, root)
	a, err := Open(Options{Storage: DatStorage(dir, filepath.Join(dir, ".keys"))})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	after := snapshot(t, root)
	for _, k := range []string{"victim", "write-3"} {
		if before[k] != after[k] {
			t.Errorf("%s changed: %q -> %q", k, before[k], after[k])
		}
	}
	for _, k := range []string{"escaped", "site/.dat/call-log.data", "site/moved"} {
		if v, ok := after[k]; ok {
			t.Errorf("the journal made %s (%s)", k, v)
		}
	}
}

// TestNormalizeResolvesFromTheRoot: Normalize is path.resolve('/', p),
// whether or not p is rooted already.
func TestNormalizeResolvesFromTheRoot(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"", "/"}, {"/", "/"}, {"//", "/"}, {"a", "/a"}, {"/a", "/a"},
		{"//a", "/a"}, {"/a/", "/a"}, {"a/b/", "/a/b"}, {"/a//b", "/a/b"},
		{"/./a", "/a"}, {"/a/../..", "/"}, {"../a", "/a"}, {"/a/./b/../c", "/a/c"},
	} {
		if got := Normalize(tt.in); got != tt.want {
			t.Errorf("Normalize(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
