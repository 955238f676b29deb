// Package folderlock gives one process at a time a folder: an exclusive
// advisory lock (flock) on a file in it, which holds the holder's process
// ID so that a second process can say who has it. The lock goes with the
// process: a crash releases it, and a stale file is no obstacle.
package folderlock

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// HeldError: another process holds the lock.
type HeldError struct {
	Path string
	PID  int // 0 if the file did not say
}

func (e *HeldError) Error() string {
	if e.PID == 0 {
		return fmt.Sprintf("%s is locked by another process", e.Path)
	}
	return fmt.Sprintf("%s is locked by another process (pid %d)", e.Path, e.PID)
}

// Lock is a held lock.
type Lock struct {
	f *os.File
}

// Acquire takes the lock on the file at path, creating it if need be, or
// returns a *HeldError at once if another process (or another Acquire in
// this one) holds it.
func Acquire(path string) (*Lock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("folderlock: %w", err)
	}
	if err := flock(f); err != nil {
		held := &HeldError{Path: path}
		if errors.Is(err, errHeld) {
			if b, rerr := os.ReadFile(path); rerr == nil {
				held.PID, _ = strconv.Atoi(strings.TrimSpace(string(b)))
			}
			f.Close()
			return nil, held
		}
		f.Close()
		return nil, fmt.Errorf("folderlock: %s: %w", path, err)
	}
	// Ours now: say who holds it.
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &Lock{f: f}, nil
}

// Probe takes the lock on the file at path without writing anything: for
// a reader that must not run while a holder writes, and must not change
// the folder either. A missing file is no lock at all (nothing ever held
// it), and gives a Lock whose Release does nothing. Like Acquire, it
// returns a *HeldError if another process holds the lock.
func Probe(path string) (*Lock, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return &Lock{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("folderlock: %w", err)
	}
	if err := flock(f); err != nil {
		f.Close()
		if errors.Is(err, errHeld) {
			return nil, &HeldError{Path: path}
		}
		return nil, fmt.Errorf("folderlock: %s: %w", path, err)
	}
	return &Lock{f: f}, nil
}

// Release lets the lock go. The file stays: removing it would race with a
// process that has just opened it.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}
