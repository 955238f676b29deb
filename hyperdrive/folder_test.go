package hyperdrive

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// TestDatStorageFollowsNoSymlink: a folder or a file of the archive
// swapped for a symlink to somewhere outside is reported as modified and
// never followed: nothing outside is written, renamed, removed or has its
// mode changed, and the archive still opens.
func TestDatStorageFollowsNoSymlink(t *testing.T) {
	tests := []struct {
		name string
		// swap is the entry of the folder replaced by a symlink to the
		// outside folder (to its file "file" for a file).
		swap, target string
		// do is what the archive does next.
		do func(f *Files) error
		// modified is what the archive reports changed after the swap.
		modified []string
		// refused: the write fails with ErrModified, before anything
		// changes, rather than being acknowledged and then lost (the
		// folder cannot hold its content, which lives there).
		refused bool
	}{
		{"rewrite a file in a swapped folder", "sub", "", func(f *Files) error {
			return f.WriteFile("/sub/file", []byte("evil"), WriteOptions{})
		}, []string{"/sub/file"}, true},
		{"new file in a swapped folder", "sub", "", func(f *Files) error {
			return f.WriteFile("/sub/new", []byte("evil"), WriteOptions{})
		}, []string{"/sub/file"}, true},
		{"new folder and file in a swapped folder", "sub", "", func(f *Files) error {
			if err := f.Mkdir("/sub/deeper", WriteOptions{}); err != nil {
				return err
			}
			return f.WriteFile("/sub/deeper/file", []byte("evil"), WriteOptions{})
		}, []string{"/sub/file"}, true},
		{"unlink in a swapped folder", "sub", "", func(f *Files) error {
			return f.Unlink("/sub/file")
		}, []string{}, false},
		{"rmdir a swapped folder", "sub", "", func(f *Files) error {
			return f.Rmdir("/sub", true)
		}, []string{}, false},
		{"rewrite a swapped file", "top", "file", func(f *Files) error {
			return f.WriteFile("/top", []byte("evil"), WriteOptions{})
		}, []string{"/top"}, true},
		{"unlink a swapped file", "top", "file", func(f *Files) error {
			return f.Unlink("/top")
		}, []string{}, false},
		{"write next to a swapped file", "top", "file", func(f *Files) error {
			return f.WriteFile("/other", []byte("fine"), WriteOptions{})
		}, []string{"/top"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			dir, outside := filepath.Join(root, "site"), filepath.Join(root, "outside")
			must(t, os.Mkdir(dir, 0o755))
			must(t, os.Mkdir(outside, 0o700))
			must(t, os.WriteFile(filepath.Join(outside, "file"), []byte("outside"), 0o600))
			secrets := filepath.Join(root, "secrets")
			a, err := Open(Options{Storage: DatStorage(dir, secrets), Create: true})
			if err != nil {
				t.Fatal(err)
			}
			f := a.Files()
			must(t, f.Mkdir("/sub", WriteOptions{}))
			must(t, f.WriteFile("/sub/file", []byte("inside"), WriteOptions{}))
			must(t, f.WriteFile("/top", []byte("top"), WriteOptions{}))
			must(t, a.Close())

			swapped := filepath.Join(dir, tt.swap)
			must(t, os.RemoveAll(swapped))
			must(t, os.Symlink(filepath.Join(outside, tt.target), swapped))
			before := snapshot(t, outside)

			a, err = Open(Options{Storage: DatStorage(dir, secrets)})
			if err != nil {
				t.Fatalf("open with a symlink in the folder: %v", err)
			}
			defer func() { a.Close() }()
			inFile := "/sub/file"
			if tt.swap == "top" {
				inFile = "/top"
			}
			if _, err := a.ReadFile(inFile); !errors.Is(err, ErrModified) {
				t.Errorf("read %s through the symlink: %v, want ErrModified", inFile, err)
			}
			if err := tt.do(a.Files()); tt.refused != errors.Is(err, ErrModified) || !tt.refused && err != nil {
				t.Errorf("got %v; want it refused with ErrModified: %v", err, tt.refused)
			}
			if err := a.Sync(); err != nil {
				t.Errorf("sync: %v", err)
			}
			if diff := cmp.Diff(tt.modified, a.Modified()); diff != "" {
				t.Errorf("Modified after the change (-want +got):\n%s", diff)
			}
			must(t, a.Close())
			if diff := cmp.Diff(before, snapshot(t, outside)); diff != "" {
				t.Errorf("outside folder changed (-before +after):\n%s", diff)
			}
			a, err = Open(Options{Storage: DatStorage(dir, secrets)})
			if err != nil {
				t.Fatalf("reopen: %v", err)
			}
			if diff := cmp.Diff(before, snapshot(t, outside)); diff != "" {
				t.Errorf("outside folder changed by the reopen (-before +after):\n%s", diff)
			}
		})
	}
}

// TestDatStorageReadsNoFIFO: a FIFO in a file's place is a modification;
// reading it neither blocks nor succeeds.
func TestDatStorageReadsNoFIFO(t *testing.T) {
	dir := t.TempDir()
	a := newDatArchive(t, dir)
	must(t, a.WriteFile("/f", []byte("f"), WriteOptions{}))
	must(t, a.Sync())
	must(t, os.Remove(filepath.Join(dir, "f")))
	if err := mkfifo(filepath.Join(dir, "f")); err != nil {
		t.Skip(err)
	}
	if _, err := a.ReadFile("/f"); !errors.Is(err, ErrModified) {
		t.Errorf("read of a FIFO: %v, want ErrModified", err)
	}
}

func mkfifo(p string) error { return unix.Mkfifo(p, 0o644) }
