// Package bitfield holds the in-memory form of a hypercore's SLEEP bitfield
// file: which blocks a feed has, which Merkle tree nodes it has, and an index
// over the block bits that makes "find the next missing block" cheap.
//
// A bitfield is a sequence of fixed-size pages. Each page holds, in order:
// 1024 bytes of block bits (8192 blocks, most significant bit first), 2048
// bytes of tree-node bits (one per flat-tree index), and the rest (512 bytes
// for the current 3584-byte pages, 256 bytes for the 3328-byte pages written
// by hypercore 6.22 and older) for the index: a flat tree of 2-bit values,
// one per block byte (11 all set, 01 some set, 00 none set), whose parents
// summarise their children.
//
// The JavaScript reference writes whole pages, and which bytes of which page
// the index touches depends on the exact order of its updates. Bitfield
// reproduces that algorithm step for step, so that the pages it produces for
// the same appends are byte-identical to the reference's. Changed pages are
// tracked so that a caller can write out just those (see WriteDirty).
package bitfield

import (
	"errors"
	"fmt"

	"github.com/nodevms/nodevms/hypercore/flat"
)

// Page sizes found in SLEEP bitfield files.
const (
	PageSize       = 3584 // hypercore >= 6.23
	LegacyPageSize = 3328 // hypercore <= 6.22

	dataBytes = 1024 // block bits per page: 8192 blocks
	treeBytes = 2048 // tree-node bits per page: 16384 nodes

	// BlocksPerPage is the number of blocks a page's data bits cover.
	BlocksPerPage = 8 * dataBytes
)

// ErrPageSize reports a page size other than PageSize or LegacyPageSize.
var ErrPageSize = errors.New("bitfield: unsupported page size")

// Bitfield is the block, tree and index bits of one feed.
// It is not safe for concurrent use.
type Bitfield struct {
	pageSize  int
	indexSize uint64
	pages     *pager
	data      *view
	tree      *view
	index     *view
	it        flat.Iterator // reused by the index updates, as the reference does
}

// New returns an empty bitfield with pages of pageSize bytes.
func New(pageSize int) (*Bitfield, error) {
	return Load(pageSize, nil)
}

// Load returns a bitfield whose pages are the given stored pages, in order.
// Each page must be pageSize bytes long.
func Load(pageSize int, pages [][]byte) (*Bitfield, error) {
	if pageSize != PageSize && pageSize != LegacyPageSize {
		return nil, fmt.Errorf("%w: %d", ErrPageSize, pageSize)
	}
	p := newPager(pageSize, true)
	for i, pg := range pages {
		if len(pg) != pageSize {
			return nil, fmt.Errorf("bitfield: page %d has %d bytes, want %d", i, len(pg), pageSize)
		}
		p.load(uint64(i), pg)
	}
	indexSize := uint64(pageSize - dataBytes - treeBytes)
	return &Bitfield{
		pageSize:  pageSize,
		indexSize: indexSize,
		pages:     p,
		data:      newView(p, dataBytes, 0),
		tree:      newView(p, treeBytes, dataBytes),
		index:     newView(p, indexSize, dataBytes+treeBytes),
	}, nil
}

// PageSize returns the size of this bitfield's pages.
func (b *Bitfield) PageSize() int { return b.pageSize }

// Get reports whether block i is present.
func (b *Bitfield) Get(i uint64) bool { return b.data.get(i) }

// Length returns the length of the block bits in bits, as the reference
// counts it: eight times one past the highest block byte touched.
func (b *Bitfield) Length() uint64 { return b.data.length() }

// Set marks block i present (or absent) and reports whether that changed
// anything.
func (b *Bitfield) Set(i uint64, present bool) bool {
	o := i & 7
	byteIndex := i / 8
	v := b.data.getByte(byteIndex)
	if present {
		v |= 128 >> o
	} else {
		v &^= 128 >> o
	}
	if !b.data.setByte(byteIndex, v) {
		return false
	}
	b.setIndex(byteIndex, v)
	return true
}

// Tree returns the tree-node bits as a TreeIndex over this bitfield.
func (b *Bitfield) Tree() *TreeIndex { return &TreeIndex{bits: b.tree} }

// WriteDirty calls write for each page changed since the last call, with
// its number (the page lives at 32 + number*PageSize in the file) and its
// bytes, which write must not keep (as io.WriterAt must not). A page is
// forgotten once written; on write's first error WriteDirty returns it,
// and the pages not written yet stay dirty.
func (b *Bitfield) WriteDirty(write func(number uint64, page []byte) error) error {
	for i, pg := range b.pages.dirty {
		if err := write(pg.n, pg.buf); err != nil {
			b.pages.dirty = append(b.pages.dirty[:0], b.pages.dirty[i:]...)
			return err
		}
		pg.dirty = false
	}
	b.pages.dirty = b.pages.dirty[:0]
	return nil
}

// PageCount returns one past the highest page number in use.
func (b *Bitfield) PageCount() uint64 { return b.pages.length }

// Lookup tables of the reference's index maintenance.
var (
	indexUpdateMask = [4]byte{63, 207, 243, 252}
	mapParentRight  [256]byte
	mapParentLeft   [256]byte
)

func init() {
	summarise := func(nibble int) int {
		switch nibble {
		case 15:
			return 3
		case 0:
			return 0
		}
		return 1
	}
	for i := 0; i < 256; i++ {
		r := summarise(i>>4)<<2 | summarise(i&15)
		mapParentRight[i] = byte(r)
		mapParentLeft[i] = byte(r << 4)
	}
}

func indexValue(dataByte byte) byte {
	switch dataByte {
	case 255:
		return 192
	case 0:
		return 0
	}
	return 64
}

// setIndex records in the index that block byte i now holds value, then
// propagates the change to the index's parents, exactly as the reference.
func (b *Bitfield) setIndex(i uint64, value byte) {
	o := i & 3
	start := 2 * (i / 4)
	idx := b.index
	v := (idx.getByte(start) & indexUpdateMask[o]) | (indexValue(value) >> (2 * o))
	before := idx.length()
	maxLength := b.pages.length * b.indexSize

	it := &b.it
	it.Seek(start)
	for it.Index() < maxLength && idx.setByte(it.Index(), v) {
		if it.IsLeft() {
			v = mapParentLeft[v] | mapParentRight[idx.getByte(it.Sibling())]
		} else {
			v = mapParentRight[v] | mapParentLeft[idx.getByte(it.Sibling())]
		}
		it.Parent()
	}
	if before != idx.length() {
		b.expand(before)
	}
}

// expand refreshes the index parents above the full roots of 2*n, where n is
// the index's previous length in bits. The units are the reference's own
// (bits where bytes would be natural); reproducing them keeps pages
// byte-identical.
func (b *Bitfield) expand(n uint64) {
	idx := b.index
	it := &b.it
	for _, root := range flat.FullRoots(2 * n) {
		it.Seek(root)
		v := idx.getByte(it.Index())
		for {
			if it.IsLeft() {
				v = mapParentLeft[v] | mapParentRight[idx.getByte(it.Sibling())]
			} else {
				v = mapParentRight[v] | mapParentLeft[idx.getByte(it.Sibling())]
			}
			parent := it.Parent()
			if 8*parent >= idx.length() || !idx.setByte(parent, v) {
				break
			}
		}
	}
}

// DataBytes returns n bytes of the block bits starting at byte start (block
// 8*start): what a Have message's bitfield carries, before run-length
// encoding.
func (b *Bitfield) DataBytes(start, n uint64) []byte {
	out := make([]byte, n)
	for off := uint64(0); off < n; {
		i := start + off
		page, in := i/dataBytes, i%dataBytes
		chunk := min(dataBytes-in, n-off)
		if pg := b.pages.get(page, false); pg != nil {
			copy(out[off:off+chunk], pg.buf[in:in+chunk])
		}
		off += chunk
	}
	return out
}

// CheckIndex reports the first block byte whose summary in the index (the
// index's leaves) is not what the byte holds. A bitfield that only ever
// changed through Set passes; a damaged page may not. (The index's parents
// follow the reference's update order, and are not checked.)
func (b *Bitfield) CheckIndex() error {
	for i := uint64(0); i < b.data.byteLength; i++ {
		leaf := b.index.getByte(2 * (i / 4))
		got := (leaf >> (6 - 2*(i&3))) & 3
		if want := indexValue(b.data.getByte(i)) >> 6; got != want {
			return fmt.Errorf("bitfield: the index says %02b of block byte %d (blocks %d to %d), which is %08b", got, i, 8*i, 8*i+7, b.data.getByte(i))
		}
	}
	return nil
}

// LastSet returns the last block that is present, and whether there is
// one.
func (b *Bitfield) LastSet() (uint64, bool) { return b.data.lastSet() }

// FirstSetFrom returns the first block at or after i that is present, and
// whether there is one.
func (b *Bitfield) FirstSetFrom(i uint64) (uint64, bool) {
	for ; i < b.data.length(); i++ {
		if i%8 == 0 && b.data.getByte(i/8) == 0 {
			i += 7
			continue
		}
		if b.data.get(i) {
			return i, true
		}
	}
	return 0, false
}
