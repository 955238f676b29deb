package main

import (
	"runtime/debug"
	"testing"
)

func TestAuditHeapLimit(t *testing.T) {
	for _, c := range []struct {
		live uint64
		want int64
	}{
		{0, auditHeapFloor},
		{40 << 20, auditHeapFloor},
		{auditHeapFloor / 3, auditHeapFloor},
		{100 << 20, 300 << 20},
		{1 << 30, 3 << 30},
	} {
		if got := auditHeapLimit(c.live); got != c.want {
			t.Errorf("auditHeapLimit(%d) = %d, want %d", c.live, got, c.want)
		}
	}
}

// The governor sets the limit while an audit runs and restores the one
// before when it stops; with GOMEMLIMIT set, it leaves the limit alone.
func TestGovernAuditHeap(t *testing.T) {
	const before = 1 << 40
	old := debug.SetMemoryLimit(before)
	defer debug.SetMemoryLimit(old)
	t.Setenv("GOMEMLIMIT", "")
	stop := governAuditHeap()
	if got := debug.SetMemoryLimit(-1); got < auditHeapFloor || got >= before {
		t.Errorf("limit while governed: %d, want at least %d", got, auditHeapFloor)
	}
	stop()
	if got := debug.SetMemoryLimit(-1); got != before {
		t.Errorf("limit after: %d, want %d", got, int64(before))
	}
	t.Setenv("GOMEMLIMIT", "1GiB")
	governAuditHeap()()
	if got := debug.SetMemoryLimit(-1); got != before {
		t.Errorf("with GOMEMLIMIT set, the limit became %d", got)
	}
}
