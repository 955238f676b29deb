package bitfield

import "github.com/nodevms/nodevms/hypercore/flat"

// TreeIndex records which Merkle tree nodes of a feed are present (verified
// and stored), one bit per flat-tree index. A feed's own TreeIndex lives in
// its bitfield pages (Bitfield.Tree); NewTreeIndex makes a free-standing one,
// as the replication protocol keeps for what a remote peer is known to have.
//
// Its methods reproduce hypercore 6's tree-index module, including its
// notion of length, because the proofs a peer sends depend on them.
type TreeIndex struct {
	bits *view
}

// NewTreeIndex returns an empty free-standing tree index.
func NewTreeIndex() *TreeIndex {
	return &TreeIndex{bits: newView(newPager(1024, false), 1024, 0)}
}

// Get reports whether node i is present.
func (t *TreeIndex) Get(i uint64) bool { return t.bits.get(i) }

// Set marks node i present, and with it every parent whose two children are
// now present. It reports whether node i was new.
func (t *TreeIndex) Set(i uint64) bool {
	if !t.bits.set(i, true) {
		return false
	}
	for t.bits.get(flat.Sibling(i)) {
		i = flat.Parent(i)
		if !t.bits.set(i, true) {
			break
		}
	}
	return true
}

// UnsetFrom clears leaf i and every set parent above it, as taking back an
// append of block i/2 requires (a parent is present only if both its
// children are, so each ancestor of a leaf that is going is going too).
func (t *TreeIndex) UnsetFrom(i uint64) {
	for t.bits.get(i) {
		t.bits.set(i, false)
		i = flat.Parent(i)
	}
}

// length is the extent of the bits in bits, as the reference counts it.
func (t *TreeIndex) length() uint64 { return t.bits.length() }

// Blocks returns the number of blocks covered by the largest verified tree:
// the feed's length as far as this index knows.
func (t *TreeIndex) Blocks() uint64 {
	var top, next uint64
	max := t.length()
	for flat.RightSpan(next) < max {
		next = flat.Parent(next)
		if t.Get(next) {
			top = next
		}
	}
	if !t.Get(top) {
		return 0
	}
	return t.VerifiedBy(top) / 2
}

// Roots returns the root nodes of a feed of Blocks() blocks.
func (t *TreeIndex) Roots() []uint64 { return flat.FullRoots(2 * t.Blocks()) }

// VerifiedBy returns the leaf index one past the end of the tree that node i
// can be verified against: for a feed of n blocks whose roots are all present
// that is 2n. It returns 0 if node i is absent.
func (t *TreeIndex) VerifiedBy(i uint64) uint64 {
	return t.verifiedBy(i, nil)
}

func (t *TreeIndex) verifiedBy(i uint64, nodes *[]uint64) uint64 {
	if !t.Get(i) {
		return 0
	}
	// Find the root of the tree i belongs to.
	depth := flat.Depth(i)
	top := i
	parent := flat.Parent(top)
	depth++
	for t.Get(parent) && t.Get(flat.Sibling(top)) {
		top = parent
		parent = flat.Parent(top)
		depth++
	}
	// Expand right, down.
	depth--
	for depth > 0 {
		top, _ = flat.LeftChild(flat.Index(depth, flat.Offset(top)+1))
		depth--
		for !t.Get(top) && depth > 0 {
			top, _ = flat.LeftChild(top)
			depth--
		}
		if nodes != nil && t.Get(top) {
			*nodes = append(*nodes, top)
		}
	}
	if t.Get(top) {
		return top + 2
	}
	return top
}

// Digest returns the compact description of which nodes above leaf index i
// this index already has, which a requester sends so that the responder can
// leave them out of the proof: 1 means "i itself, send nothing"; otherwise
// bit 0 set means a verified root above is present and bit k (k >= 1) that
// the sibling at level k-1 on the way up is present.
func (t *TreeIndex) Digest(i uint64) uint64 {
	if t.Get(i) {
		return 1
	}
	var digest uint64
	next := flat.Sibling(i)
	max := t.length()
	if next+2 > max {
		max = next + 2
	}
	bit := uint64(2)
	parent := flat.Parent(next)
	for flat.RightSpan(next) < max || flat.LeftSpan(parent) > 0 {
		if t.Get(next) {
			digest += bit
		}
		if t.Get(parent) {
			digest += 2 * bit
			if digest&1 == 0 {
				digest++
			}
			if digest+1 == 4*bit {
				return 1
			}
			return digest
		}
		next = flat.Sibling(parent)
		parent = flat.Parent(next)
		bit *= 2
	}
	return digest
}

// ProofNodes is what Proof decides to send.
type ProofNodes struct {
	// Nodes are the flat indexes of the tree nodes to send, in order.
	Nodes []uint64
	// VerifiedBy is non-zero when the proof reaches the roots: the leaf
	// index one past the end of the tree whose signature must go along.
	VerifiedBy uint64
}

// Proof decides which nodes prove leaf index i to a peer, given the digest
// the peer sent and remote, what this side believes the peer already has
// (updated as a side effect, as in the reference). With hash set the node i
// itself is included. ok is false when node i is not present here.
func (t *TreeIndex) Proof(i, digest uint64, hash bool, remote *TreeIndex) (p ProofNodes, ok bool) {
	return t.proof(i, digest, hash, remote, t.Get, t.VerifiedBy)
}

// ProofAt is Proof against the tree of the first length blocks, as if the
// nodes of later blocks were not here: for a writer whose newest blocks
// are not signed yet, whose proofs must end at a signed length. Leaf i
// must be in that tree.
func (t *TreeIndex) ProofAt(i, digest uint64, hash bool, remote *TreeIndex, length uint64) (p ProofNodes, ok bool) {
	get := func(x uint64) bool { return flat.RightSpan(x) < 2*length && t.Get(x) }
	verifiedBy := func(x uint64) uint64 {
		if !get(x) {
			return 0
		}
		return 2 * length
	}
	return t.proof(i, digest, hash, remote, get, verifiedBy)
}

func (t *TreeIndex) proof(i, digest uint64, hash bool, remote *TreeIndex, get func(uint64) bool, verifiedByOf func(uint64) uint64) (p ProofNodes, ok bool) {
	if remote == nil {
		remote = NewTreeIndex()
	}
	if !get(i) {
		return ProofNodes{}, false
	}
	p.Nodes = make([]uint64, 0, 24)
	if hash {
		p.Nodes = append(p.Nodes, i)
	}
	if digest == 1 {
		return p, true
	}

	next := i
	hasRoot := digest&1 == 1
	digest >>= 1
	for digest != 0 {
		if digest == 1 && hasRoot {
			if get(next) {
				remote.Set(next)
			}
			// Having a root implies having the roots before it as well.
			if s := flat.Sibling(next); s < next {
				next = s
			}
			for _, r := range flat.FullRoots(flat.RightSpan(next) + 2) {
				if get(r) {
					remote.Set(r)
				}
			}
			break
		}
		sibling := flat.Sibling(next)
		if digest&1 == 1 && get(sibling) {
			remote.Set(sibling)
		}
		next = flat.Parent(next)
		digest >>= 1
	}

	next = i
	for !remote.Get(next) {
		sibling := flat.Sibling(next)
		if !get(sibling) {
			// next is a local root.
			verifiedBy := verifiedByOf(next)
			for _, r := range flat.FullRoots(verifiedBy) {
				if r != next && !remote.Get(r) {
					p.Nodes = append(p.Nodes, r)
				}
			}
			p.VerifiedBy = verifiedBy
			return p, true
		}
		if !remote.Get(sibling) {
			p.Nodes = append(p.Nodes, sibling)
		}
		next = flat.Parent(next)
	}
	return p, true
}

// FirstSetFrom returns the first node at or after i that is present, and
// whether there is one.
func (t *TreeIndex) FirstSetFrom(i uint64) (uint64, bool) {
	for ; i < t.bits.length(); i++ {
		if i%8 == 0 && t.bits.getByte(i/8) == 0 {
			i += 7
			continue
		}
		if t.bits.get(i) {
			return i, true
		}
	}
	return 0, false
}

// LastSet returns the highest node that is present, and whether there is
// one.
func (t *TreeIndex) LastSet() (uint64, bool) { return t.bits.lastSet() }
