package hyperdrive

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func newMemoryArchive(t *testing.T) *Archive {
	t.Helper()
	clock := time.UnixMilli(1_600_000_000_000)
	a, err := Open(Options{Storage: MemoryStorage(), Create: true, Now: func() time.Time {
		clock = clock.Add(time.Millisecond)
		return clock
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

func TestFilesErrors(t *testing.T) {
	f := newMemoryArchive(t).Files()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(f.Mkdir("/dir", WriteOptions{}))
	must(f.WriteFile("/dir/file", []byte("x"), WriteOptions{}))
	must(f.WriteFile("/top", []byte("y"), WriteOptions{}))

	tests := []struct {
		name string
		do   func() error
		want *Error
	}{
		{"write into a missing folder", func() error { return f.WriteFile("/nope/file", nil, WriteOptions{}) }, ParentFolderDoesntExistError},
		{"write under a file", func() error { return f.WriteFile("/top/file", nil, WriteOptions{}) }, ParentFolderDoesntExistError},
		{"write over a folder", func() error { return f.WriteFile("/dir", nil, WriteOptions{}) }, EntryAlreadyExistsError},
		{"write with a trailing slash", func() error { return f.WriteFile("/dir/x/", nil, WriteOptions{}) }, InvalidPathError},
		{"write a path with a space", func() error { return f.WriteFile("/a b", nil, WriteOptions{}) }, InvalidPathError},
		{"mkdir over a file", func() error { return f.Mkdir("/top", WriteOptions{}) }, EntryAlreadyExistsError},
		{"mkdir twice", func() error { return f.Mkdir("/dir", WriteOptions{}) }, EntryAlreadyExistsError},
		{"mkdir /", func() error { return f.Mkdir("/", WriteOptions{}) }, EntryAlreadyExistsError},
		{"mkdir in a missing folder", func() error { return f.Mkdir("/x/y", WriteOptions{}) }, ParentFolderDoesntExistError},
		{"read a missing file", func() error { _, err := f.ReadFile("/missing"); return err }, NotFoundError},
		{"read a folder", func() error { _, err := f.ReadFile("/dir"); return err }, NotAFileError},
		{"stat a missing file", func() error { _, err := f.Stat("/missing"); return err }, NotFoundError},
		{"unlink a folder", func() error { return f.Unlink("/dir") }, NotAFileError},
		{"unlink a missing file", func() error { return f.Unlink("/missing") }, NotFoundError},
		{"rmdir a file", func() error { return f.Rmdir("/top", false) }, NotAFolderError},
		{"rmdir a missing folder", func() error { return f.Rmdir("/missing", false) }, NotFoundError},
		{"rmdir a full folder", func() error { return f.Rmdir("/dir", false) }, DestDirectoryNotEmpty},
		{"readdir a file", func() error { _, err := f.Readdir("/top", false); return err }, NotAFolderError},
		{"readdir a missing folder", func() error { _, err := f.Readdir("/missing", false); return err }, NotFoundError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.do()
			var e *Error
			if !errors.Is(err, tt.want) || !errors.As(err, &e) || e.Message == "" {
				t.Fatalf("error = %v, want a %s with a message", err, tt.want.Name)
			}
		})
	}

	co, err := f.Checkout(1)
	if err != nil {
		t.Fatal(err)
	}
	if err := co.WriteFile("/x", nil, WriteOptions{}); !errors.Is(err, ArchiveNotWritableError) {
		t.Errorf("write to a checkout: %v, want ArchiveNotWritableError", err)
	}
}

func TestFilesKeepsCtimeAndRmdirRecursive(t *testing.T) {
	f := newMemoryArchive(t).Files()
	t0, t1 := time.UnixMilli(1000).UTC(), time.UnixMilli(2000).UTC()
	if err := f.WriteFile("/f", []byte("1"), WriteOptions{Mtime: t0, Ctime: t0}); err != nil {
		t.Fatal(err)
	}
	if err := f.WriteFile("/f", []byte("2"), WriteOptions{Mtime: t1, Ctime: t1}); err != nil {
		t.Fatal(err)
	}
	st, err := f.Stat("/f")
	if err != nil {
		t.Fatal(err)
	}
	if !st.Ctime.Equal(t0) || !st.Mtime.Equal(t1) {
		t.Errorf("ctime %v mtime %v, want %v and %v", st.Ctime, st.Mtime, t0, t1)
	}
	for _, d := range []string{"/a", "/a/b", "/a/b/c"} {
		if err := f.Mkdir(d, WriteOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := f.WriteFile(d+"/file", []byte(d), WriteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := f.Readdir("/a", true)
	if err != nil {
		t.Fatal(err)
	}
	// The reference lists children in the order they last changed.
	want := []string{"file", "b", "b/file", "b/c", "b/c/file"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("recursive readdir (-want +got):\n%s", diff)
	}
	if err := f.Rmdir("/a", true); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Stat("/a"); !errors.Is(err, NotFoundError) {
		t.Errorf("stat after recursive rmdir: %v", err)
	}
	root, err := f.Readdir("/", false)
	if err != nil || !cmp.Equal(root, []string{"f"}) {
		t.Errorf("root = %q, %v; want [f]", root, err)
	}
}

func TestEncodings(t *testing.T) {
	data := []byte("héllo\x00")
	for _, tt := range []struct {
		enc  string
		want any
	}{
		{"utf8", "héllo\x00"},
		{"hex", "68c3a96c6c6f00"},
		{"base64", "aMOpbGxvAA=="},
		{"binary", data},
	} {
		got, err := DecodeContent(data, tt.enc)
		if err != nil || !cmp.Equal(got, tt.want) {
			t.Errorf("DecodeContent(%s) = %v, %v; want %v", tt.enc, got, err, tt.want)
		}
		if s, ok := tt.want.(string); ok {
			back, err := EncodeContent(s, tt.enc)
			if err != nil || !cmp.Equal(back, data) {
				t.Errorf("EncodeContent(%s) = %x, %v", tt.enc, back, err)
			}
		}
	}
	v, err := DecodeContent([]byte(`{"n":1}`), "json")
	if err != nil || !cmp.Equal(v, map[string]any{"n": 1.0}) {
		t.Errorf("json = %v, %v", v, err)
	}
	if _, err := DecodeContent([]byte(`{`), "json"); !errors.Is(err, InvalidEncodingError) {
		t.Errorf("bad json: %v", err)
	}
	if _, err := EncodeContent("zz", "hex"); !errors.Is(err, InvalidEncodingError) {
		t.Errorf("bad hex: %v", err)
	}
	if _, err := DecodeContent(data, "ucs9"); !errors.Is(err, InvalidEncodingError) {
		t.Errorf("unknown encoding: %v", err)
	}
}

// TestRecursiveOperationsStop: a recursive Readdir or Rmdir, one call
// that may walk a whole archive, asks the view's stop function before
// each entry and ends with its error; and a deep chain of folders lists
// in the order a recursion gives, each path built once.
func TestRecursiveOperationsStop(t *testing.T) {
	a := newMemoryArchive(t)
	f := a.Files()
	dir := ""
	for i := 0; i < 50; i++ {
		dir += "/d"
		must(t, f.Mkdir(dir, WriteOptions{}))
		must(t, f.WriteFile(dir+"/f", []byte("x"), WriteOptions{}))
	}
	list, err := f.Readdir("/", true)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 100 || list[0] != "d" || list[1] != "d/f" || list[2] != "d/d" || list[len(list)-1] != strings.Repeat("d/", 50)+"f" {
		t.Errorf("listing of the chain: %d entries, %q ... %q", len(list), list[:2], list[len(list)-1])
	}
	errStop := errors.New("stopped")
	for _, op := range []struct {
		name string
		do   func(*Files) error
	}{
		{"readdir", func(f *Files) error { _, err := f.Readdir("/", true); return err }},
		{"rmdir", func(f *Files) error { return f.Rmdir("/d", true) }},
	} {
		asked := 0
		view := a.Files()
		view.SetStop(func() error {
			if asked++; asked > 10 {
				return errStop
			}
			return nil
		})
		if err := op.do(view); !errors.Is(err, errStop) || asked != 11 {
			t.Errorf("%s: got %v after %d asks, want it stopped at the 11th", op.name, err, asked)
		}
	}
}
