package folderlock

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

func TestSecondAcquireIsRefusedUntilRelease(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	first, err := Acquire(path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Acquire(path)
	var held *HeldError
	if !errors.As(err, &held) || held.PID != os.Getpid() {
		t.Fatalf("second Acquire: %v, want a HeldError naming pid %d", err, os.Getpid())
	}
	if err := first.Release(); err != nil {
		t.Fatal(err)
	}
	second, err := Acquire(path)
	if err != nil {
		t.Fatalf("Acquire after Release: %v", err)
	}
	second.Release()
}

func TestStaleFileIsNoObstacle(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	if err := os.WriteFile(path, []byte("99999999\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := Acquire(path)
	if err != nil {
		t.Fatalf("a lock file left by a dead process: %v", err)
	}
	defer l.Release()
	if b, _ := os.ReadFile(path); string(b) != strconv.Itoa(os.Getpid())+"\n" {
		t.Errorf("the lock file says %q", b)
	}
}

func TestMissingFolder(t *testing.T) {
	_, err := Acquire(filepath.Join(t.TempDir(), "no", "lock"))
	var held *HeldError
	if err == nil || errors.As(err, &held) {
		t.Fatalf("got %v, want an error that is not HeldError", err)
	}
}

func TestProbeWritesNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	none, err := Probe(path)
	if err != nil {
		t.Fatalf("Probe of a missing file: %v", err)
	}
	none.Release()
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Probe made the file: %v", err)
	}
	holder, err := Acquire(path)
	if err != nil {
		t.Fatal(err)
	}
	var held *HeldError
	if _, err := Probe(path); !errors.As(err, &held) {
		t.Fatalf("Probe while held: %v, want a HeldError", err)
	}
	holder.Release()
	if err := os.WriteFile(path, []byte("12\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	probe, err := Probe(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Acquire(path); !errors.As(err, &held) {
		t.Errorf("Acquire while probed: %v, want a HeldError", err)
	}
	probe.Release()
	if b, _ := os.ReadFile(path); string(b) != "12\n" {
		t.Errorf("Probe changed the file to %q", b)
	}
}
