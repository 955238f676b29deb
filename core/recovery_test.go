package core

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestCrashWithContentAheadOfMetadata: the archive's content feed reached
// the disk further than its metadata feed (a crash between the two syncs
// of a flush); a restart recovers, and the log's history stands.
func TestCrashWithContentAheadOfMetadata(t *testing.T) {
	for _, flushedAfter := range []int{0, 2} {
		t.Run(fmt.Sprintf("archive flushed after %d calls", flushedAfter), func(t *testing.T) {
			b := deployScript(t, script(t, "persistent-counter.js"), nil)
			for i := range 4 {
				if i == flushedAfter {
					if err := b.archive.Sync(); err != nil {
						t.Fatal(err)
					}
				}
				b.call(t, "increment", nil)
			}
			if err := b.archive.Content().Sync(); err != nil {
				t.Fatal(err)
			}
			archive, log := openStores(t, b.dir, false)
			b.host = nil // the crashed host is never closed
			h, err := Open(context.Background(), testConfig(archive, log))
			if err != nil {
				t.Fatal(err)
			}
			defer func() { h.Close(); archive.Close(); log.Close() }()
			if got, err := h.Call(context.Background(), Request{Method: "increment"}); err != nil || string(got.Res) != "5" {
				t.Fatalf("after the crash: %s, %v", got.Res, err)
			}
			if got, _ := archive.ReadFile("/counter"); string(got) != "5" {
				t.Errorf("/counter = %q", got)
			}
		})
	}
}

// TestChangedFileStopsTheStart: a real file of the archive changed on disk
// stops the start, naming it, and the folder is left as it was: the host
// never answers from, or signs over, what it cannot stand behind.
func TestChangedFileStopsTheStart(t *testing.T) {
	b := deployScript(t, script(t, "persistent-counter.js"), nil)
	for range 3 {
		b.call(t, "increment", nil)
	}
	b.close(t)
	counter := filepath.Join(b.dir, "counter")
	if err := os.WriteFile(counter, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, b.dir)
	archive, log := openStores(t, b.dir, false)
	_, err := Open(context.Background(), testConfig(archive, log))
	archive.Close()
	log.Close()
	if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "/counter") {
		t.Fatalf("Open = %v, want ErrDamaged naming /counter", err)
	}
	if diff := cmp.Diff(before, snapshot(t, b.dir)); diff != "" {
		t.Errorf("the refused start changed the folder (-before +after):\n%s", diff)
	}
}

// snapshot maps each file under dir (but the lock) to its bytes.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		rel, _ := filepath.Rel(dir, path)
		out[rel] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
