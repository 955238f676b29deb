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
