package core

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/nodevms/nodevms/calllog"
)

// rootRuns keeps the first and last entry of each run of entries with the
// same roots, and, past its bound, says where to read again.
func TestRootRuns(t *testing.T) {
	entry := func(version uint64, root string) *calllog.Entry {
		e := &calllog.Entry{Type: calllog.TypeCall, Result: &calllog.ResultRecord{FilesVersion: version}}
		if root != "" {
			e.FilesRoot = &calllog.FilesRoot{Metadata: root}
		}
		return e
	}
	// Versions and roots of blocks 0 to 9: runs 0-2, 3, 4-4, 5-8 (no
	// root), 9.
	log := []*calllog.Entry{
		entry(2, "a"), entry(2, "a"), entry(2, "a"),
		entry(3, "b"),
		entry(3, "c"),
		entry(3, ""), entry(3, ""), entry(3, ""), entry(3, ""),
		entry(4, "d"),
	}
	for _, c := range []struct {
		name       string
		max, upTo  int
		wantBlocks []uint64
		wantResume uint64
	}{
		{"all", 100, 10, []uint64{0, 2, 3, 4, 5, 8, 9}, 10},
		{"the replay stopped early", 100, 7, []uint64{0, 2, 3, 4, 5, 6}, 7},
		{"bounded", 4, 10, []uint64{0, 2, 3, 4}, 5},
		{"bounded at a run's end", 1, 10, []uint64{0}, 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newRootRuns(c.max)
			for i, e := range log[:c.upTo] {
				r.add(uint64(i), e)
			}
			r.close()
			var got []uint64
			for k := range r.kept {
				if k.e != log[k.block] {
					t.Errorf("block %d kept another entry", k.block)
				}
				got = append(got, k.block)
			}
			if diff := cmp.Diff(c.wantBlocks, got); diff != "" {
				t.Errorf("kept (-want +got):\n%s", diff)
			}
			if r.resume != c.wantResume {
				t.Errorf("resume %d, want %d", r.resume, c.wantResume)
			}
		})
	}
}
