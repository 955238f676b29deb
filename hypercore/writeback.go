package hypercore

import (
	"errors"
	"io"
	"slices"
	"sync"
)

// writeBack keeps a file's writes in memory, in pages, until flush, so that
// the small writes of many appends (a tree entry here, a bitfield page
// there) reach the file as a few large writes: see Config.WriteBack. Reads
// see the pending writes.
type writeBack struct {
	File

	mu    sync.Mutex
	dirty map[int64][]byte // page number -> the page as it is to be
	clean map[int64][]byte // pages as the last flush wrote them: see keepClean
	base  int64            // the size of the file underneath
	end   int64            // the file's size, counting pending writes
	err   error            // a failed flush: the file is broken from then on

	// Kept between flushes, so that a feed signing every few milliseconds
	// does not allocate them anew each time.
	run  []byte   // a flush's run of adjacent pages
	free [][]byte // pages a flush wrote and did not keep, for page to reuse
}

const (
	writeBackPage = 4 << 10
	// writeBackLimit bounds the pages a file keeps before it flushes on
	// its own.
	writeBackLimit = 1024
	// keepClean is how many of the pages it last wrote a flush keeps: the
	// next appends change the same tail pages, which then need not be
	// read back from the file.
	keepClean = 8
	// maxFreePages and maxKeptRun bound the memory a file keeps between
	// flushes for reuse: a few milliseconds' worth of appends.
	maxFreePages = 64
	maxKeptRun   = 1 << 20
)

func newWriteBack(f File) (*writeBack, error) {
	n, err := f.Size()
	if err != nil {
		return nil, err
	}
	return &writeBack{File: f, dirty: map[int64][]byte{}, clean: map[int64][]byte{}, base: n, end: n}, nil
}

// page returns page i for writing, read from the file the first time.
func (w *writeBack) page(i int64) ([]byte, error) {
	if pg, ok := w.dirty[i]; ok {
		return pg, nil
	}
	if pg, ok := w.clean[i]; ok {
		delete(w.clean, i)
		w.dirty[i] = pg
		return pg, nil
	}
	var pg []byte
	if n := len(w.free); n > 0 {
		pg, w.free = w.free[n-1], w.free[:n-1]
		clear(pg)
	} else {
		pg = make([]byte, writeBackPage)
	}
	if i*writeBackPage < w.base {
		if _, err := w.File.ReadAt(pg, i*writeBackPage); err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
	}
	w.dirty[i] = pg
	return pg, nil
}

func (w *writeBack) WriteAt(p []byte, off int64) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return 0, w.err
	}
	if off < 0 {
		return 0, errors.New("hypercore: write at a negative offset")
	}
	for n := 0; n < len(p); {
		pos := off + int64(n)
		pg, err := w.page(pos / writeBackPage)
		if err != nil {
			return n, err
		}
		n += copy(pg[pos%writeBackPage:], p[n:])
	}
	w.end = max(w.end, off+int64(len(p)))
	if len(w.dirty) >= writeBackLimit {
		if err := w.flushLocked(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

func (w *writeBack) ReadAt(p []byte, off int64) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	// After a failed flush the pending pages are still whole in memory,
	// and the file is as the last good flush left it (flushLocked cuts
	// back what it wrote past that): reads go on, so that a feed waiting
	// for the disk can still serve what it has.
	if off < 0 {
		return 0, errors.New("hypercore: read at a negative offset")
	}
	if off >= w.end {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), w.end-off))
	first, last := off/writeBackPage, (off+int64(n)-1)/writeBackPage
	missing := false
	for i := first; i <= last && !missing; i++ {
		missing = w.cached(i) == nil
	}
	if missing {
		// Some of it is only in the file (or a hole, which reads as zeros).
		m := 0
		if off < w.base {
			var err error
			m, err = w.File.ReadAt(p[:min(int64(n), w.base-off)], off)
			if err != nil && !errors.Is(err, io.EOF) {
				return m, err
			}
		}
		clear(p[m:n])
	}
	for i := first; i <= last; i++ {
		if pg := w.cached(i); pg != nil {
			lo, hi := max(off, i*writeBackPage), min(off+int64(n), (i+1)*writeBackPage)
			copy(p[lo-off:hi-off], pg[lo-i*writeBackPage:hi-i*writeBackPage])
		}
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// cached returns page i if it is in memory, pending or clean.
func (w *writeBack) cached(i int64) []byte {
	if pg, ok := w.dirty[i]; ok {
		return pg
	}
	return w.clean[i]
}

func (w *writeBack) Size() (int64, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.end, nil
}

// flush writes the pending pages to the file, a run of consecutive pages
// in one write.
func (w *writeBack) flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.flushLocked()
}

func (w *writeBack) flushLocked() error {
	if w.err != nil || len(w.dirty) == 0 {
		return w.err
	}
	pages := make([]int64, 0, len(w.dirty))
	for i := range w.dirty {
		pages = append(pages, i)
	}
	slices.Sort(pages)
	run := w.run[:0]
	defer func() {
		if cap(run) <= maxKeptRun {
			w.run = run[:0]
		}
	}()
	for k, i := range pages {
		run = append(run, w.dirty[i]...)
		if k+1 < len(pages) && pages[k+1] == i+1 {
			continue
		}
		start := (i+1)*writeBackPage - int64(len(run))
		run = run[:min(int64(len(run)), w.end-start)] // not past the end
		if _, err := w.File.WriteAt(run, start); err != nil {
			// A write that failed part way (a full disk) can leave an
			// entry torn across a page it could not add: cut the file back
			// to where it ended, so that what it holds was all written.
			if t, ok := w.File.(truncater); ok {
				t.Truncate(w.base)
			}
			w.err = err
			return err
		}
		run = run[:0]
	}
	for _, pg := range w.clean {
		w.recycle(pg)
	}
	clear(w.clean)
	kept := pages[max(0, len(pages)-keepClean):]
	for _, i := range kept {
		w.clean[i] = w.dirty[i]
	}
	for _, i := range pages[:len(pages)-len(kept)] {
		w.recycle(w.dirty[i])
	}
	clear(w.dirty)
	w.base = max(w.base, w.end)
	return nil
}

// recycle keeps a page no longer in use for page to reuse, up to
// maxFreePages.
func (w *writeBack) recycle(pg []byte) {
	if len(w.free) < maxFreePages {
		w.free = append(w.free, pg)
	}
}

func (w *writeBack) Sync() error {
	if err := w.flush(); err != nil {
		return err
	}
	return w.File.Sync()
}

// discard drops the pending pages, unwritten: the file is as the last
// flush left it.
func (w *writeBack) discard() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, pg := range w.dirty {
		w.recycle(pg)
	}
	clear(w.dirty)
	clear(w.clean)
	w.end = w.base
}

func (w *writeBack) Close() error {
	err := w.flush()
	if cerr := w.File.Close(); err == nil {
		err = cerr
	}
	return err
}

// Truncate cuts the file back, where the file underneath can be.
func (w *writeBack) Truncate(size int64) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.flushLocked(); err != nil {
		return err
	}
	t, ok := w.File.(truncater)
	if !ok {
		return nil
	}
	clear(w.clean) // they may hold what is cut
	if err := t.Truncate(size); err != nil {
		return err
	}
	n, err := w.File.Size()
	if err != nil {
		return err
	}
	w.base, w.end = n, n
	return nil
}
