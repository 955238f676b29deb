package server

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/nodevms/nodevms/core"
	"github.com/nodevms/nodevms/hypercore"
	"github.com/nodevms/nodevms/hyperdrive"
	"github.com/nodevms/nodevms/internal/folderlock"
)

// claimedFolder is a backend folder this process holds the lock of.
type claimedFolder struct {
	dir      string
	deployed bool // it holds a deployed backend: open it, do not deploy
	// What undoDeploy removes: the folder itself if this process made it,
	// else what a deploy adds to it.
	madeDir bool
	lock    *folderlock.Lock
}

// claimFolder locks dir (making it if need be) for this process. A folder
// whose call log has no entry holds a deploy that did not finish (nothing
// of it was ever acknowledged or published): what it wrote is removed,
// and the folder is deployed again.
func claimFolder(dir string) (*claimedFolder, error) {
	c := &claimedFolder{dir: dir}
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		c.madeDir = true
	}
	datDir := filepath.Join(dir, hyperdrive.DatDir)
	if err := os.MkdirAll(datDir, 0o755); err != nil {
		return nil, err
	}
	lock, err := folderlock.Acquire(filepath.Join(datDir, "lock"))
	if err != nil {
		var held *folderlock.HeldError
		if errors.As(err, &held) && held.PID != 0 {
			return nil, &InUseError{Dir: dir, PID: held.PID}
		}
		if c.madeDir {
			os.RemoveAll(dir)
		}
		return nil, fmt.Errorf("locking %s: %w", dir, err)
	}
	c.lock = lock
	if _, err := os.Stat(filepath.Join(datDir, "call-log.key")); err != nil {
		return c, nil
	}
	// The call log's data file decides, read as it is: opening the log
	// would redo its tree after a crash, which is for the start to do
	// once it has decided the folder is good. A deploy wrote its init
	// entry, a line, before anything else could be acknowledged or shown.
	hasEntry, err := firstLineWritten(filepath.Join(datDir, "call-log.data"))
	if err != nil {
		c.release()
		return nil, fmt.Errorf("reading the call log in %s: %w", datDir, err)
	}
	if hasEntry {
		c.deployed = true
		return c, nil
	}
	if err := c.undoDeploy(); err != nil {
		c.release()
		return nil, fmt.Errorf("%s holds a deploy that did not finish, which could not be removed: %w", dir, err)
	}
	return claimFolder(dir)
}

// firstLineWritten reports whether the line log's data file at path holds
// a whole first line (zeros past a line log's end are preallocated, or
// were never written).
func firstLineWritten(path string) (bool, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for off := int64(0); ; {
		n, err := f.ReadAt(buf, off)
		for _, b := range buf[:n] {
			switch b {
			case '\n':
				return true, nil
			case 0:
				return false, nil
			}
		}
		if err == io.EOF {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		off += int64(n)
	}
}

// undoDeploy removes what a deploy that failed wrote, keeping what the
// folder held before. The stores must be closed.
func (c *claimedFolder) undoDeploy() error {
	c.release()
	if c.madeDir {
		return os.RemoveAll(c.dir)
	}
	for _, name := range []string{"dat.json", "backend.js"} {
		if err := os.Remove(filepath.Join(c.dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return os.RemoveAll(filepath.Join(c.dir, hyperdrive.DatDir))
}

func (c *claimedFolder) release() {
	c.lock.Release()
}

// checkArchiveFirst checks a deployed folder's files archive, opened
// read-only, before a writable open repairs what a crash left: a folder
// whose archive was changed on disk is refused before anything in it is
// written. (The call log checks its data against its signatures before it
// writes; the folder's files are checked once the archive has finished
// what a crash cut short.)
func checkArchiveFirst(dir string) error {
	datDir := filepath.Join(dir, hyperdrive.DatDir)
	archive, err := hyperdrive.Open(hyperdrive.Options{Storage: hyperdrive.DatStorage(dir, filepath.Join(datDir, "secret_keys")), ReadOnly: true})
	if err != nil {
		return damaged("the files archive", err)
	}
	defer archive.Close()
	if err := archive.CheckStored(); err != nil {
		return fmt.Errorf("%w: the files archive's %w", core.ErrDamaged, err)
	}
	return nil
}

// openStores opens (or creates) a backend folder's files archive and
// call log.
func openStores(dir string, create, noFsync bool) (*hyperdrive.Archive, *hypercore.Feed, error) {
	datDir := filepath.Join(dir, hyperdrive.DatDir)
	archive, err := hyperdrive.Open(hyperdrive.Options{
		Storage: hyperdrive.DatStorage(dir, filepath.Join(datDir, "secret_keys")),
		Create:  create,
		// Signed with the call log, every few milliseconds; flushed
		// every second (a crash is redone from the log).
		DeferSignatures: true,
		WriteBack:       true,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("opening the files archive in %s: %w", dir, err)
	}
	log, err := hypercore.Open(hypercore.Config{
		Storage:        hypercore.DirStorage{Dir: datDir, Prefix: "call-log."},
		Create:         create,
		AnnounceOnSync: true,
		LineLog:        true, // one fsync per commit: the data file is the write-ahead record
		// Signed every few milliseconds, not every group: a signature
		// costs more than most calls (core.Config.SignEvery).
		DeferSignatures: true,
		WriteBack:       true, // tree, bitfield and signatures: rebuilt from the data after a crash
		NoFsync:         noFsync,
		// An fsync that need not grow the file is about 1.6 times as
		// fast. A 1 MiB step is a few thousand calls' entries; writing it
		// costs about 1.5 ms, once per step.
		Preallocate: 1 << 20,
	})
	if err != nil {
		archive.Close()
		return nil, nil, fmt.Errorf("opening the call log in %s: %w", datDir, err)
	}
	return archive, log, nil
}

// damaged reports a store that does not open: damage if its files are
// inconsistent, else an error of the open.
func damaged(what string, err error) error {
	if errors.Is(err, hypercore.ErrCorrupt) || errors.Is(err, hypercore.ErrDataChanged) || errors.Is(err, hyperdrive.ErrCorrupt) {
		return fmt.Errorf("%w: %s: %w", core.ErrDamaged, what, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}
