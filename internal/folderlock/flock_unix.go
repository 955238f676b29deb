//go:build unix

package folderlock

import (
	"errors"
	"os"
	"syscall"
)

var errHeld = errors.New("held")

// flock takes an exclusive lock on f without waiting. Locks belong to the
// open file, so a second open of the same file in this process conflicts
// too.
func flock(f *os.File) error {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.EWOULDBLOCK):
			return errHeld
		}
		return err
	}
}
