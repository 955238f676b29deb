package hyperdrive

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// An entry's paths field records, for each level of its name (the root, then
// each parent, then the name itself), the seqs of the entries that stood for
// each child at that level when it was written: one entry per child name,
// the newest one in that child's subtree. Lookups follow these pointers
// instead of scanning the history.
//
// Encoding (append-tree 2): a header byte whose bit 0 says that every level
// ends with the entry's own seq, which is then left out; then per level a
// varint count and the seqs as varint deltas from the previous one.
//
// The format's cost: a level lists every child of its directory, so writing
// the n-th entry of one directory stores n seqs, and a directory of n
// entries costs O(n²) bytes of metadata in total.

const pathsEndsWithSeq = 1

// deflatePaths encodes levels for the entry with the given seq.
func deflatePaths(seq uint64, levels [][]uint64) []byte {
	endsWithSeq := true
	n := 1
	for _, l := range levels {
		n += (len(l) + 1) * 2
		if len(l) == 0 || l[len(l)-1] != seq {
			endsWithSeq = false
		}
	}
	b := make([]byte, 1, n)
	if endsWithSeq {
		b[0] = pathsEndsWithSeq
	}
	for _, l := range levels {
		if endsWithSeq {
			l = l[:len(l)-1]
		}
		b = protowire.AppendVarint(b, uint64(len(l)))
		var prev uint64
		for _, s := range l {
			b = protowire.AppendVarint(b, s-prev)
			prev = s
		}
	}
	return b
}

// inflatePaths decodes the paths of the entry with the given seq. A level's
// count is checked against the bytes left, so that a hostile count cannot
// make it allocate.
func inflatePaths(seq uint64, b []byte) ([][]uint64, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: empty paths", errMessage)
	}
	header, n := protowire.ConsumeVarint(b)
	if n < 0 {
		return nil, fmt.Errorf("%w: paths header", errMessage)
	}
	b = b[n:]
	endsWithSeq := header&pathsEndsWithSeq != 0
	var levels [][]uint64
	for len(b) > 0 {
		count, n := protowire.ConsumeVarint(b)
		if n < 0 {
			return nil, fmt.Errorf("%w: paths count", errMessage)
		}
		b = b[n:]
		if count > uint64(len(b)) {
			return nil, fmt.Errorf("%w: paths count %d past the end", errMessage, count)
		}
		l := make([]uint64, 0, int(count)+1)
		var prev uint64
		for i := uint64(0); i < count; i++ {
			d, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return nil, fmt.Errorf("%w: paths seq", errMessage)
			}
			b = b[n:]
			prev += d
			l = append(l, prev)
		}
		if endsWithSeq {
			l = append(l, seq)
		}
		levels = append(levels, l)
	}
	return levels, nil
}
