package hypercore

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

// File is one random-access file of a feed.
type File interface {
	io.ReaderAt
	io.WriterAt
	// Size returns the file's length in bytes.
	Size() (int64, error)
	// Sync makes everything written so far durable.
	Sync() error
	Close() error
}

// writebackStarter is implemented by files that can start writing a range
// out to the disk without waiting (on Linux, a DirStorage file).
type writebackStarter interface {
	StartWriteback(off, n int64) error
}

// dataSyncer is implemented by files that can make their data durable
// without the metadata that reading it back does not need (on Linux, a
// DirStorage file).
type dataSyncer interface {
	SyncData() error
}

// Storage opens the files of one feed by name: "key", "secret_key", "tree",
// "data", "bitfield" and "signatures".
type Storage interface {
	// Open opens the named file. If the file does not exist and create is
	// false, the error wraps fs.ErrNotExist.
	Open(name string, create bool) (File, error)
}

// DirStorage stores a feed's files in a directory, each named Prefix + name:
// bare ("tree", "data", ...) for a single feed, or with a prefix such as
// "metadata." or "call-log." when several feeds share a directory.
type DirStorage struct {
	Dir      string
	Prefix   string
	ReadOnly bool // open files read-only; never create anything
}

// Open implements Storage.
// Path is the path of the named file, for messages.
func (s DirStorage) Path(name string) string { return filepath.Join(s.Dir, s.Prefix+name) }

func (s DirStorage) Open(name string, create bool) (File, error) {
	path := filepath.Join(s.Dir, s.Prefix+name)
	if s.ReadOnly {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		return osFile{f}, nil
	}
	flags := os.O_RDWR
	if create {
		if err := os.MkdirAll(s.Dir, 0o755); err != nil {
			return nil, err
		}
		flags |= os.O_CREATE
	}
	perm := os.FileMode(0o644)
	if name == "secret_key" {
		perm = 0o600 // key files are readable by the owner only
	}
	f, err := os.OpenFile(path, flags, perm)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

type osFile struct{ *os.File }

func (f osFile) Size() (int64, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

// MemoryStorage keeps a feed's files in memory. The zero value is not usable;
// use NewMemoryStorage. Files survive Close, so a feed can be reopened from
// the same MemoryStorage.
type MemoryStorage struct {
	mu    sync.Mutex
	files map[string]*memFile
}

// NewMemoryStorage returns an empty in-memory storage.
func NewMemoryStorage() *MemoryStorage {
	return &MemoryStorage{files: make(map[string]*memFile)}
}

// Open implements Storage.
func (s *MemoryStorage) Open(name string, create bool) (File, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.files[name]
	if !ok {
		if !create {
			return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
		}
		f = &memFile{}
		s.files[name] = f
	}
	return f, nil
}

// Bytes returns a copy of the named file's content, or nil if it does not
// exist.
func (s *MemoryStorage) Bytes(name string) []byte {
	s.mu.Lock()
	f, ok := s.files[name]
	s.mu.Unlock()
	if !ok {
		return nil
	}
	f.mu.Lock()
	size := f.size
	f.mu.Unlock()
	b := make([]byte, size)
	f.ReadAt(b, 0)
	return b
}

// memFile is a sparse in-memory file of fixed-size pages: a replica that
// holds only far-apart blocks costs only the pages it wrote.
type memFile struct {
	mu    sync.Mutex
	pages map[int64][]byte
	size  int64
}

const memPageSize = 4 << 10

// maxMemFileSize bounds a memory file, so that a bad offset fails cleanly.
const maxMemFileSize = 1 << 50

func (f *memFile) ReadAt(p []byte, off int64) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if off < 0 {
		return 0, errors.New("memory file: negative offset")
	}
	if off >= f.size {
		return 0, io.EOF
	}
	n := 0
	for n < len(p) && off < f.size {
		page, in := off/memPageSize, off%memPageSize
		want := min(int64(len(p)-n), memPageSize-in, f.size-off)
		if pg := f.pages[page]; pg != nil {
			copy(p[n:n+int(want)], pg[in:in+want])
		} else {
			clear(p[n : n+int(want)])
		}
		n += int(want)
		off += want
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (f *memFile) WriteAt(p []byte, off int64) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	end := off + int64(len(p))
	if off < 0 || end > maxMemFileSize {
		return 0, fmt.Errorf("memory file: write at %d out of range", off)
	}
	if f.pages == nil {
		f.pages = make(map[int64][]byte)
	}
	for n := 0; n < len(p); {
		page, in := off/memPageSize, off%memPageSize
		pg := f.pages[page]
		if pg == nil {
			pg = make([]byte, memPageSize)
			f.pages[page] = pg
		}
		c := copy(pg[in:], p[n:])
		n += c
		off += int64(c)
	}
	f.size = max(f.size, end)
	return len(p), nil
}

func (f *memFile) Size() (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.size, nil
}

// Truncate cuts the file to size bytes (it never grows it).
func (f *memFile) Truncate(size int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if size < 0 || size >= f.size {
		return nil
	}
	for page, pg := range f.pages {
		switch start := page * memPageSize; {
		case start >= size:
			delete(f.pages, page)
		case start+memPageSize > size:
			clear(pg[size-start:])
		}
	}
	f.size = size
	return nil
}

func (f *memFile) Sync() error  { return nil }
func (f *memFile) Close() error { return nil }
