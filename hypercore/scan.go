package hypercore

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/nodevms/nodevms/hypercore/merkle"
	"github.com/nodevms/nodevms/hypercore/sleep"
)

// scanChunk is how much of a file the scanners read at a time: checks of a
// long feed read it in pieces of this size, not whole.
const scanChunk = 4 << 20

// lineScanner reads a line log's data file a chunk at a time and yields
// its lines, in order.
type lineScanner struct {
	file File
	size int64  // the file's size
	buf  []byte // bytes of the file from off on
	off  int64
	pos  int // where the next line starts in buf
}

func newLineScanner(file File) (*lineScanner, error) {
	size, err := file.Size()
	if err != nil {
		return nil, err
	}
	return &lineScanner{file: file, size: size}, nil
}

// next returns the next line, with its newline, and where it starts in
// the file; ok is false at the end of the last complete line. The line is
// valid until the next call.
func (s *lineScanner) next() (line []byte, at int64, ok bool, err error) {
	for {
		if i := bytes.IndexByte(s.buf[s.pos:], '\n'); i >= 0 {
			line, at = s.buf[s.pos:s.pos+i+1], s.off+int64(s.pos)
			s.pos += i + 1
			return line, at, true, nil
		}
		end := s.off + int64(len(s.buf))
		if end >= s.size {
			return nil, 0, false, nil
		}
		// Keep the partial line, and read on after it (a line longer than
		// a chunk grows the buffer).
		rest := len(s.buf) - s.pos
		want := min(int64(max(scanChunk, 2*rest)), s.size-end+int64(rest))
		buf := s.buf[:cap(s.buf)]
		if int64(len(buf)) < want {
			buf = make([]byte, want)
		}
		buf = buf[:want]
		copy(buf, s.buf[s.pos:]) // (the last line handed out is done with)
		n, err := s.file.ReadAt(buf[rest:], end)
		if err != nil && !(errors.Is(err, io.EOF) && n > 0) {
			return nil, 0, false, err
		}
		s.buf, s.off, s.pos = buf[:rest+n], end-int64(rest), 0
	}
}

// treeScanner reads a feed's tree file forward, a chunk at a time.
type treeScanner struct {
	file  File
	n     uint64 // entries in the tree to read: indices 0 to n-1
	first uint64 // the index of buf's first entry
	buf   []byte
}

// entry returns tree entry j, which must not be below one asked for
// before. A blank entry, or one past the file's end, is not ok.
func (t *treeScanner) entry(j uint64) (hash [32]byte, size uint64, ok bool, err error) {
	if j >= t.n {
		return hash, 0, false, nil
	}
	if j < t.first || j >= t.first+uint64(len(t.buf)/sleep.TreeEntrySize) {
		count := min(uint64(scanChunk/sleep.TreeEntrySize), t.n-j)
		buf := t.buf[:cap(t.buf)]
		if uint64(len(buf)) < count*sleep.TreeEntrySize {
			buf = make([]byte, count*sleep.TreeEntrySize)
		}
		buf = buf[:count*sleep.TreeEntrySize]
		n, err := t.file.ReadAt(buf, sleep.TreeOffset(j))
		if err != nil && !errors.Is(err, io.EOF) {
			return hash, 0, false, err
		}
		t.buf, t.first = buf[:n-n%sleep.TreeEntrySize], j
	}
	k := (j - t.first) * sleep.TreeEntrySize
	if k+sleep.TreeEntrySize > uint64(len(t.buf)) {
		return hash, 0, false, nil
	}
	hash, size, ok = sleep.DecodeTreeEntry(t.buf[k : k+sleep.TreeEntrySize])
	return hash, size, ok, nil
}

// maxChunkBytes bounds the bytes of blocks Blocks reads at once.
const maxChunkBytes = scanChunk

// Blocks calls fn with blocks start to end-1, in order, as Get returns them
// (checked against their hashes), reading the tree and data files a chunk
// of blocks at a time rather than a block at a time: for a reader that
// walks a long feed, such as a replay, a block costs a small part of a Get.
// It stops at the first error, fn's included, and returns it. The block
// passed to fn is fn's to keep. The feed's lock is held only while a chunk
// is read, so appends go on meanwhile.
func (f *Feed) Blocks(start, end uint64, fn func(i uint64, block []byte) error) error {
	return f.blocks(start, end, true, fn)
}

// BlocksUnchecked is Blocks without checking the blocks against their
// hashes, as GetUnchecked is Get: for a writer reading what it has just
// checked, such as a line log after Open, which hashes every line.
func (f *Feed) BlocksUnchecked(start, end uint64, fn func(i uint64, block []byte) error) error {
	return f.blocks(start, end, false, fn)
}

func (f *Feed) blocks(start, end uint64, check bool, fn func(i uint64, block []byte) error) error {
	hs := merkle.NewHasher()
	var sc chunkScratch
	for i := start; i < end; {
		blocks, leaves, err := f.readChunk(i, end, check, &sc)
		if err != nil {
			return err
		}
		for k, b := range blocks {
			if check && leaves != nil && hs.Leaf(b) != leaves[k] {
				return fmt.Errorf("%w: block %d does not match its hash", ErrCorrupt, i+uint64(k))
			}
			if err := fn(i+uint64(k), b); err != nil {
				return err
			}
		}
		i += uint64(len(blocks))
	}
	return nil
}

// chunkScratch holds what readChunk reuses from one chunk to the next:
// everything but the blocks themselves, which are the caller's to keep.
type chunkScratch struct {
	tree   []byte
	sizes  []uint64
	leaves [][32]byte
}

// maxChunkBlocks bounds the blocks readChunk reads at once.
const maxChunkBlocks = 4096

// readChunk reads blocks from start on, up to end, and as many as fit in
// maxChunkBytes (at least one), with the hashes of their leaves to check
// them against (nil if they were checked already). The hashes are in sc,
// valid until its next use.
func (f *Feed) readChunk(start, end uint64, check bool, sc *chunkScratch) ([][]byte, [][32]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, nil, ErrClosed
	}
	end = min(end, f.length, start+maxChunkBlocks)
	n := uint64(0)
	for start+n < end && f.bitfield.Get(start+n) && f.treeBits.Get(2*(start+n)) {
		n++
	}
	staged := f.stage != nil && start+n > f.stage.length
	if n == 0 || staged || f.data == nil {
		// Missing, staged or empty: one block the plain way (which
		// reports what is wrong).
		b, err := f.read(start, check)
		if err != nil {
			return nil, nil, err
		}
		return [][]byte{b}, nil, nil
	}
	off, _, err := f.dataOffset(start, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: block %d: %v", ErrCorrupt, start, err)
	}
	tree := slices.Grow(sc.tree[:0], int((2*n-1)*sleep.TreeEntrySize))[:(2*n-1)*sleep.TreeEntrySize]
	sc.tree = tree
	if _, err := f.tree.ReadAt(tree, sleep.TreeOffset(2*start)); err != nil {
		return nil, nil, fmt.Errorf("%w: tree: %v", ErrCorrupt, err)
	}
	sizes, leaves := sc.sizes[:0], sc.leaves[:0]
	defer func() { sc.sizes, sc.leaves = sizes, leaves }()
	var total uint64
	for k := range n {
		hash, size, ok := sleep.DecodeTreeEntry(tree[2*k*sleep.TreeEntrySize:])
		if !ok {
			return nil, nil, fmt.Errorf("%w: block %d: its leaf is blank", ErrCorrupt, start+k)
		}
		if k > 0 && total+size > maxChunkBytes {
			break
		}
		if k == 0 && size > maxChunkBytes {
			b, err := f.read(start, check) // a large block: read with its size checked
			if err != nil {
				return nil, nil, err
			}
			return [][]byte{b}, nil, nil
		}
		sizes, leaves = append(sizes, size), append(leaves, hash)
		total += size
	}
	data := make([]byte, total)
	if total > 0 {
		if _, err := f.data.ReadAt(data, int64(off)); err != nil {
			// One block the plain way, which says what is wrong (or reads
			// it: a storage may not read across blocks, as a files
			// archive's folder does not across files).
			b, err := f.read(start, check)
			if err != nil {
				return nil, nil, err
			}
			return [][]byte{b}, nil, nil
		}
	}
	blocks := make([][]byte, len(sizes))
	for k, size := range sizes {
		blocks[k], data = data[:size:size], data[size:]
	}
	return blocks, leaves, nil
}
