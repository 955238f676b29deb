package bitfield

import "math/bits"

// pager holds fixed-size pages by page number, the way the JavaScript
// memory-pager module does: a page exists once a byte in it was set (or it
// was loaded with non-zero content), and length is one past the highest page
// number ever touched. Pages are kept in a map so that a hostile index (from
// a peer, say) costs one page, not a slice up to that index.
type pager struct {
	pageSize int
	pages    map[uint64]*page
	length   uint64 // one past the highest page number allocated or loaded

	// last is a one-entry cache: appends touch the same page over and over.
	last *page

	track bool    // remember which pages changed, for writing them out
	dirty []*page // pages changed since the last takeDirty, each once
}

type page struct {
	n     uint64 // page number
	buf   []byte
	dirty bool
}

func newPager(pageSize int, track bool) *pager {
	return &pager{pageSize: pageSize, pages: make(map[uint64]*page), track: track}
}

// get returns page n, or nil if it does not exist and alloc is false.
func (p *pager) get(n uint64, alloc bool) *page {
	if p.last != nil && p.last.n == n {
		return p.last
	}
	pg := p.pages[n]
	if pg == nil {
		if !alloc {
			return nil
		}
		pg = &page{n: n, buf: make([]byte, p.pageSize)}
		p.pages[n] = pg
		if n >= p.length {
			p.length = n + 1
		}
	}
	p.last = pg
	return pg
}

// load installs page n from stored bytes. An all-zero page is not kept (as
// memory-pager does), but still counts towards length.
func (p *pager) load(n uint64, buf []byte) {
	if n >= p.length {
		p.length = n + 1
	}
	if isZero(buf) {
		return
	}
	b := make([]byte, p.pageSize)
	copy(b, buf)
	p.pages[n] = &page{n: n, buf: b}
}

func (p *pager) markDirty(pg *page) {
	if !p.track || pg.dirty {
		return
	}
	pg.dirty = true
	p.dirty = append(p.dirty, pg)
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// view is one bit array laid over a region of every page of a pager, as the
// JavaScript sparse-bitfield module lays its pages: byte i of the view lives
// in page i/size at offset offset + i%size.
type view struct {
	pager      *pager
	size       uint64 // bytes of this view in each page; a power of two
	shift      uint   // log2(size): pages are found by shifting, not dividing
	offset     uint64 // where those bytes start in a page
	byteLength uint64 // one past the highest byte set, or the loaded extent
}

func newView(p *pager, size, offset uint64) *view {
	return &view{pager: p, size: size, shift: uint(bits.TrailingZeros64(size)), offset: offset, byteLength: p.length * size}
}

// length is the view's length in bits, as sparse-bitfield reports it.
func (v *view) length() uint64 { return 8 * v.byteLength }

func (v *view) getByte(i uint64) byte {
	pg := v.pager.get(i>>v.shift, false)
	if pg == nil {
		return 0
	}
	return pg.buf[v.offset+i&(v.size-1)]
}

// setByte sets byte i and reports whether it changed.
func (v *view) setByte(i uint64, b byte) bool {
	pg := v.pager.get(i>>v.shift, true)
	o := v.offset + i&(v.size-1)
	if pg.buf[o] == b {
		return false
	}
	pg.buf[o] = b
	if i >= v.byteLength {
		v.byteLength = i + 1
	}
	v.pager.markDirty(pg)
	return true
}

// lastSet returns the highest bit set, and whether there is one.
func (v *view) lastSet() (uint64, bool) {
	for i := v.byteLength; i > 0; i-- {
		if b := v.getByte(i - 1); b != 0 {
			return 8*(i-1) + 7 - uint64(bits.TrailingZeros8(b)), true
		}
	}
	return 0, false
}

func (v *view) get(i uint64) bool {
	return v.getByte(i/8)&(128>>(i&7)) != 0
}

// set sets or clears bit i and reports whether it changed.
func (v *view) set(i uint64, on bool) bool {
	b := v.getByte(i / 8)
	if on {
		b |= 128 >> (i & 7)
	} else {
		b &^= 128 >> (i & 7)
	}
	return v.setByte(i/8, b)
}
