package core

import (
	"context"
	"fmt"
	"testing"
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
