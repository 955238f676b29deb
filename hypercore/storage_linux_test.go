package hypercore_test

import (
	"testing"

	"github.com/nodevms/nodevms/hypercore"
)

// TestDirStorageStartsWriteback: on Linux a DirStorage file takes the
// writeback hint and syncs its data alone, which a line log relies on.
func TestDirStorageStartsWriteback(t *testing.T) {
	f, err := hypercore.DirStorage{Dir: t.TempDir()}.Open("data", true)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, ok := f.(interface {
		StartWriteback(off, n int64) error
		SyncData() error
	})
	if !ok {
		t.Fatalf("%T has no StartWriteback and SyncData", f)
	}
	if _, err := f.WriteAt([]byte("{}\n"), 0); err != nil {
		t.Fatal(err)
	}
	if err := w.StartWriteback(0, 3); err != nil {
		t.Fatal(err)
	}
	if err := w.SyncData(); err != nil {
		t.Fatal(err)
	}
}
