package hyperdrive

import (
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// folder is the folder that DatStorage shows an archive in, reached only
// through directory file descriptors, one component at a time, each opened
// with O_NOFOLLOW: a symlink (or anything but a directory) where a
// directory should be ends the walk with an error, so that whatever is put
// in the folder, nothing outside it is read, written, renamed or removed.
// (os.Root would follow a symlink that stays inside the folder; a folder of
// the archive swapped for one is a change to report, not a path to take.)
// The final component is never followed either: files are opened with
// O_NOFOLLOW, and rename, unlink and mkdir act on the name itself.
type folder struct{ dir string }

// errNotPlain: the folder has something other than a plain file or
// directory where one of the archive's should be.
var errNotPlain = errors.New("not a plain file or folder")

const dirFlags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC

// unsafe reports whether err says that the folder cannot hold a name
// there (a symlink, a file where a folder should be, a name too long...),
// as opposed to a failure of the disk.
func unsafe(err error) bool {
	for _, e := range []error{errNotPlain, unix.ELOOP, unix.ENOTDIR, unix.EISDIR, unix.EEXIST,
		unix.ENAMETOOLONG, unix.EINVAL, unix.EILSEQ, unix.EMLINK, unix.ENOTEMPTY} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func (d folder) pathErr(op string, parts []string, err error) error {
	return &os.PathError{Op: op, Path: d.path(parts...), Err: err}
}

// path is the path of parts, for messages.
func (d folder) path(parts ...string) string {
	return filepath.Join(append([]string{d.dir}, parts...)...)
}

// openDir opens the directory parts, making missing ones with mkdir. The
// folder itself is opened by its path, which is the host's.
func (d folder) openDir(parts []string, mkdir bool) (int, error) {
	fd, err := unix.Open(d.dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, d.pathErr("open", nil, err)
	}
	for i, p := range parts {
		next, err := unix.Openat(fd, p, dirFlags, 0)
		if err == unix.ENOENT && mkdir {
			if err = unix.Mkdirat(fd, p, 0o755); err == nil || err == unix.EEXIST {
				next, err = unix.Openat(fd, p, dirFlags, 0)
			}
		}
		unix.Close(fd)
		if err != nil {
			return -1, d.pathErr("open", parts[:i+1], err)
		}
		fd = next
	}
	return fd, nil
}

// inDir runs fn with the directory that holds parts (which must not be
// empty) and the last component.
func (d folder) inDir(parts []string, mkdir bool, fn func(dir int, base string) error) error {
	dir, err := d.openDir(parts[:len(parts)-1], mkdir)
	if err != nil {
		return err
	}
	defer unix.Close(dir)
	return fn(dir, parts[len(parts)-1])
}

// lstat returns what parts is, without following a symlink.
func (d folder) lstat(parts []string) (st unix.Stat_t, err error) {
	err = d.inDir(parts, false, func(dir int, base string) error {
		if err := unix.Fstatat(dir, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return d.pathErr("lstat", parts, err)
		}
		return nil
	})
	return st, err
}

func isDir(st unix.Stat_t) bool     { return st.Mode&unix.S_IFMT == unix.S_IFDIR }
func isRegular(st unix.Stat_t) bool { return st.Mode&unix.S_IFMT == unix.S_IFREG }

// open opens the plain file parts for reading. O_NONBLOCK keeps a FIFO
// put there from blocking the open; it is then refused as not plain.
func (d folder) open(parts []string) (f *os.File, err error) {
	err = d.inDir(parts, false, func(dir int, base string) error {
		fd, err := unix.Openat(dir, base, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err != nil {
			return d.pathErr("open", parts, err)
		}
		var st unix.Stat_t
		if err = unix.Fstat(fd, &st); err == nil && !isRegular(st) {
			err = errNotPlain
		}
		if err == nil {
			err = unix.SetNonblock(fd, false)
		}
		if err != nil {
			unix.Close(fd)
			return d.pathErr("open", parts, err)
		}
		f = os.NewFile(uintptr(fd), d.path(parts...))
		return nil
	})
	return f, err
}

// readFile returns the bytes of the plain file parts.
func (d folder) readFile(parts []string) ([]byte, error) {
	f, err := d.open(parts)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// createTemp creates a new file named prefix and a random suffix in the
// directory parts (made if missing); it returns the file and its name.
func (d folder) createTemp(parts []string, prefix string) (f *os.File, name string, err error) {
	dir, err := d.openDir(parts, true)
	if err != nil {
		return nil, "", err
	}
	defer unix.Close(dir)
	for {
		name = prefix + strconv.FormatUint(rand.Uint64(), 36)
		fd, err := unix.Openat(dir, name, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
		if err == unix.EEXIST {
			continue
		}
		if err != nil {
			return nil, "", &os.PathError{Op: "create", Path: d.path(append(parts[:len(parts):len(parts)], name)...), Err: err}
		}
		return os.NewFile(uintptr(fd), d.path(append(parts[:len(parts):len(parts)], name)...)), name, nil
	}
}

// writeDurably replaces the file parts with data, durably: a new file
// written and synced, renamed over it, and its directory synced.
func (d folder) writeDurably(parts []string, data []byte) error {
	return d.inDir(parts, true, func(dir int, base string) error {
		tmp := base + ".new"
		fd, err := unix.Openat(dir, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
		if err != nil {
			return d.pathErr("create", parts, err)
		}
		f := os.NewFile(uintptr(fd), tmp)
		if _, err := f.Write(data); err != nil {
			f.Close()
			return err
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		if err := unix.Renameat(dir, tmp, dir, base); err != nil {
			return d.pathErr("rename", parts, err)
		}
		return unix.Fsync(dir)
	})
}

// rename moves the file from to the name to, making to's missing parent
// directories. A symlink at to is replaced, not followed.
func (d folder) rename(from, to []string) error {
	src, err := d.openDir(from[:len(from)-1], false)
	if err != nil {
		return err
	}
	defer unix.Close(src)
	return d.inDir(to, true, func(dir int, base string) error {
		if err := unix.Renameat(src, from[len(from)-1], dir, base); err != nil {
			return d.pathErr("rename", to, err)
		}
		return nil
	})
}

// remove deletes the name parts unless it is a directory (a symlink is
// removed, not followed). It is not an error if there is nothing there.
func (d folder) remove(parts []string) error {
	err := d.inDir(parts, false, func(dir int, base string) error {
		var st unix.Stat_t
		if err := unix.Fstatat(dir, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
		if isDir(st) {
			return nil
		}
		return unix.Unlinkat(dir, base, 0)
	})
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// removeDir deletes the directory parts if it is empty.
func (d folder) removeDir(parts []string) error {
	return d.inDir(parts, false, func(dir int, base string) error {
		return unix.Unlinkat(dir, base, unix.AT_REMOVEDIR)
	})
}

// syncDir makes the entries of the directory parts durable.
func (d folder) syncDir(parts []string) error {
	fd, err := d.openDir(parts, false)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Fsync(fd)
}

// syncFile makes the plain file parts durable.
func (d folder) syncFile(parts []string) error {
	f, err := d.open(parts)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// list returns the names in the directory parts.
func (d folder) list(parts []string) ([]string, error) {
	fd, err := d.openDir(parts, false)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), d.path(parts...))
	defer f.Close()
	return f.Readdirnames(-1)
}
