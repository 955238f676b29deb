package hyperdrive

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func archiveSize(a *Archive) int64 {
	return int64(a.Metadata().ByteLength() + a.Content().ByteLength())
}

// quotaOps are writes of each kind, with what they need in the archive.
var quotaOps = []struct {
	name  string
	setup func(f *Files) error
	do    func(f *Files) error
}{
	{"write an empty file", nil, func(f *Files) error { return f.WriteFile("/f", nil, WriteOptions{}) }},
	{"write a small file", nil, func(f *Files) error { return f.WriteFile("/f", []byte("hello"), WriteOptions{}) }},
	{"write a big file", nil, func(f *Files) error {
		return f.WriteFile("/f", bytes.Repeat([]byte("x"), 3*ChunkSize+5), WriteOptions{})
	}},
	{"overwrite a file", func(f *Files) error { return f.WriteFile("/f", []byte("old"), WriteOptions{}) },
		func(f *Files) error { return f.WriteFile("/f", []byte("new!"), WriteOptions{}) }},
	{"write in a full folder", func(f *Files) error {
		for i := range 50 {
			if err := f.WriteFile(fmt.Sprintf("/f%d", i), []byte("x"), WriteOptions{}); err != nil {
				return err
			}
		}
		return nil
	}, func(f *Files) error { return f.WriteFile("/g", []byte("y"), WriteOptions{}) }},
	{"mkdir", nil, func(f *Files) error { return f.Mkdir("/d", WriteOptions{}) }},
	{"unlink", func(f *Files) error { return f.WriteFile("/f", []byte("x"), WriteOptions{}) },
		func(f *Files) error { return f.Unlink("/f") }},
	{"rmdir", func(f *Files) error { return f.Mkdir("/d", WriteOptions{}) },
		func(f *Files) error { return f.Rmdir("/d", false) }},
	{"rmdir recursive", func(f *Files) error {
		if err := f.Mkdir("/d", WriteOptions{}); err != nil {
			return err
		}
		if err := f.Mkdir("/d/e", WriteOptions{}); err != nil {
			return err
		}
		if err := f.WriteFile("/d/e/f", []byte("x"), WriteOptions{}); err != nil {
			return err
		}
		return f.WriteFile("/d/g", []byte("y"), WriteOptions{})
	}, func(f *Files) error { return f.Rmdir("/d", true) }},
}

// TestQuotaBoundaries: each kind of write is let through with exactly
// the bytes it adds to the feeds, and refused, with nothing written, with
// one byte less, by either limit.
func TestQuotaBoundaries(t *testing.T) {
	for _, op := range quotaOps {
		t.Run(op.name, func(t *testing.T) {
			// What the write adds, measured on an archive without quota.
			fresh := func() (*Archive, int64) {
				a := newMemoryArchive(t)
				if op.setup != nil {
					must(t, op.setup(a.Files()))
				}
				return a, archiveSize(a)
			}
			a, before := fresh()
			must(t, op.do(a.Files()))
			cost := archiveSize(a) - before
			if cost <= 0 {
				t.Fatalf("the write added %d bytes", cost)
			}
			for _, limit := range []struct {
				name string
				q    func(base int64) Quota
				msg  string
			}{
				{"call", func(base int64) Quota { return Quota{CallBytes: base} }, "call would exceed its write quota of %d bytes"},
				{"archive", func(base int64) Quota { return Quota{ArchiveBytes: base} }, "archive would exceed its quota of %d bytes"},
			} {
				// Exactly enough.
				a, before := fresh()
				base := cost
				if limit.name == "archive" {
					base += before
				}
				if err := op.do(a.Files().WithQuota(limit.q(base))); err != nil {
					t.Errorf("%s quota of exactly the cost: %v", limit.name, err)
				}
				// One byte short.
				a, before = fresh()
				version := a.Version()
				list, _ := a.Files().Readdir("/", true)
				err := op.do(a.Files().WithQuota(limit.q(base - 1)))
				want := fmt.Sprintf("QuotaExceededError: "+limit.msg, base-1)
				if err == nil || err.Error() != want {
					t.Errorf("%s quota one byte short: %v, want %s", limit.name, err, want)
				}
				if !errors.Is(err, ErrQuotaExceeded) || !errors.Is(err, QuotaExceededError) {
					t.Errorf("%s quota: errors.Is(%v) fails", limit.name, err)
				}
				var e *Error
				if !errors.As(err, &e) || e.Name != "QuotaExceededError" {
					t.Errorf("%s quota: %#v is not a QuotaExceededError", limit.name, err)
				}
				if v, size := a.Version(), archiveSize(a); v != version || size != before {
					t.Errorf("%s quota: refused write left version %d and size %d, want %d and %d", limit.name, v, size, version, before)
				}
				after, _ := a.Files().Readdir("/", true)
				if diff := cmp.Diff(list, after); diff != "" {
					t.Errorf("%s quota: refused write changed the files (-before +after):\n%s", limit.name, diff)
				}
			}
		})
	}
}

// TestQuotaLoops: loops of writes that add no data still reach the
// quota; a view counts all its writes, and a new view starts from zero.
func TestQuotaLoops(t *testing.T) {
	loops := []struct {
		name string
		step func(f *Files, i int) error
	}{
		{"mkdir", func(f *Files, i int) error { return f.Mkdir(fmt.Sprintf("/d%d", i), WriteOptions{}) }},
		{"mkdir and rmdir", func(f *Files, i int) error {
			if err := f.Mkdir("/d", WriteOptions{}); err != nil {
				return err
			}
			return f.Rmdir("/d", false)
		}},
		{"empty write and unlink", func(f *Files, i int) error {
			if err := f.WriteFile("/f", nil, WriteOptions{}); err != nil {
				return err
			}
			return f.Unlink("/f")
		}},
		{"small writes", func(f *Files, i int) error { return f.WriteFile("/f", []byte("abc"), WriteOptions{}) }},
	}
	for _, loop := range loops {
		for _, q := range []Quota{{CallBytes: 2000}, {ArchiveBytes: 2000}} {
			t.Run(fmt.Sprintf("%s %+v", loop.name, q), func(t *testing.T) {
				a := newMemoryArchive(t)
				f := a.Files().WithQuota(q)
				var err error
				i := 0
				for ; i < 10000 && err == nil; i++ {
					err = loop.step(f, i)
				}
				if !errors.Is(err, ErrQuotaExceeded) {
					t.Fatalf("after %d steps: %v, want ErrQuotaExceeded", i, err)
				}
				if size := archiveSize(a); q.ArchiveBytes > 0 && size > q.ArchiveBytes {
					t.Errorf("archive of %d bytes, over its quota", size)
				}
				if q.CallBytes > 0 {
					// A new view starts from zero.
					if err := loop.step(a.Files().WithQuota(q), i); err != nil {
						t.Errorf("a new view: %v", err)
					}
				}
			})
		}
	}
}

// TestQuotaOnDisk: a refused write leaves nothing in the folder, and a
// recursive rmdir refused half way is taken back whole.
func TestQuotaOnDisk(t *testing.T) {
	dir := t.TempDir()
	a := newDatArchive(t, dir)
	f := a.Files()
	must(t, f.Mkdir("/d", WriteOptions{}))
	for i := range 10 {
		must(t, f.WriteFile(fmt.Sprintf("/d/f%d", i), []byte("x"), WriteOptions{}))
	}
	must(t, a.Sync())
	before, version := snapshot(t, dir), a.Version()
	big := bytes.Repeat([]byte("y"), 100<<10)
	if err := f.WithQuota(Quota{CallBytes: 100 << 10}).WriteFile("/big", big, WriteOptions{}); !errors.Is(err, ErrQuotaExceeded) {
		t.Errorf("write of 100 KiB with a quota of 100 KiB: %v", err)
	}
	if err := f.WithQuota(Quota{CallBytes: 60}).Rmdir("/d", true); !errors.Is(err, ErrQuotaExceeded) {
		t.Errorf("rmdir of 11 entries with a quota of 60 bytes: %v", err)
	}
	must(t, a.Sync())
	if v := a.Version(); v != version {
		t.Errorf("version %d, want %d", v, version)
	}
	list, err := f.Readdir("/d", false)
	if err != nil || len(list) != 10 {
		t.Errorf("readdir /d after a refused rmdir: %q, %v", list, err)
	}
	if diff := cmp.Diff(before, snapshot(t, dir)); diff != "" {
		t.Errorf("folder changed by refused writes (-before +after):\n%s", diff)
	}
	if _, err := os.Stat(filepath.Join(dir, "big")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("refused file in the folder: %v", err)
	}
}
