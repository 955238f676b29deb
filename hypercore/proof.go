package hypercore

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"

	"github.com/nodevms/nodevms/hypercore/bitfield"
	"github.com/nodevms/nodevms/hypercore/flat"
	"github.com/nodevms/nodevms/hypercore/merkle"
)

// Proof is what a peer needs besides a block to verify it: the tree nodes it
// lacks on the way from the block to a node it trusts or to the signed
// roots, and the signature when the proof reaches the roots. It is what the
// wire protocol's Data message carries.
type Proof struct {
	Nodes     []merkle.Node
	Signature []byte // nil unless the proof reaches the roots
}

// ProofRequest says what the requester already has.
type ProofRequest struct {
	// Digest is the requester's Digest for the block (0: it has nothing).
	Digest uint64
	// Hash asks for the block's own tree node as the first proof node.
	Hash bool
	// Remote is what this side believes the requester has; Proof updates
	// it. A replication session keeps one per peer; nil means nothing.
	Remote *bitfield.TreeIndex
}

// Digest returns, for block i, the digest to send with a request: which
// nodes of the proof this side already has, so that the responder can leave
// them out.
func (f *Feed) Digest(i uint64) uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.treeBits.Digest(2 * i)
}

// Proof returns the proof of block i for a requester described by req. It
// fails with ErrNotFound if this side does not have block i's tree node.
func (f *Feed) Proof(i uint64, req ProofRequest) (Proof, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return Proof{}, ErrClosed
	}
	var p bitfield.ProofNodes
	var ok bool
	if pub := f.publishedLocked(); (f.privateKey != nil || f.unsigned) && pub < f.length {
		// A writer's newest blocks may not be signed yet (DeferSignatures,
		// a hold): prove against the tree peers are shown, whose length
		// has a signature.
		if i >= pub {
			return Proof{}, fmt.Errorf("%w: block %d is not shown yet", ErrNotFound, i)
		}
		p, ok = f.treeBits.ProofAt(2*i, req.Digest, req.Hash, req.Remote, pub)
	} else {
		p, ok = f.treeBits.Proof(2*i, req.Digest, req.Hash, req.Remote)
	}
	if !ok {
		return Proof{}, fmt.Errorf("%w: no proof for block %d", ErrNotFound, i)
	}
	nodes, err := f.readNodes(p.Nodes)
	if err != nil {
		return Proof{}, err
	}
	out := Proof{Nodes: nodes}
	if p.VerifiedBy > 0 {
		sig, err := f.readSignature(p.VerifiedBy/2 - 1)
		if err != nil {
			return Proof{}, err
		}
		out.Signature = sig
	}
	return out, nil
}

// ProofAt returns the proof of block i against the tree of the feed's
// first length blocks, for a peer that has nothing: the siblings up to the
// root of length that covers block i, then length's other roots. It is
// what a receipt at a length other than the feed's own carries (a monitor
// makes receipts at the length it cosigned). The signature over that
// length is set if this side stores it. ErrNotFound if a node is not
// stored here, or block i is not below length and the feed's length.
func (f *Feed) ProofAt(i, length uint64) (Proof, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return Proof{}, ErrClosed
	}
	if i >= length || length > f.length {
		return Proof{}, fmt.Errorf("%w: block %d of a tree of %d blocks (the feed has %d)", ErrNotFound, i, length, f.length)
	}
	p, ok := f.treeBits.ProofAt(2*i, 0, false, nil, length)
	if !ok {
		return Proof{}, fmt.Errorf("%w: no proof for block %d at length %d", ErrNotFound, i, length)
	}
	nodes, err := f.readNodes(p.Nodes)
	if err != nil {
		return Proof{}, err
	}
	out := Proof{Nodes: nodes}
	if sig, err := f.readSignature(length - 1); err == nil {
		out.Signature = sig
	}
	return out, nil
}

// readNodes reads the tree nodes at indexes. f.mu is held.
func (f *Feed) readNodes(indexes []uint64) ([]merkle.Node, error) {
	out := make([]merkle.Node, len(indexes))
	for k, idx := range indexes {
		nd, err := f.node(idx)
		if err != nil {
			return nil, err
		}
		out[k] = nd
	}
	return out, nil
}

// SignatureAt returns the signature stored at block i: the signature over
// the tree of the first i+1 blocks. ErrNotFound if none is stored there.
func (f *Feed) SignatureAt(i uint64) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, ErrClosed
	}
	if i >= f.length {
		return nil, fmt.Errorf("%w: no signature for block %d of %d", ErrNotFound, i, f.length)
	}
	return f.readSignature(i)
}

// Put verifies block i against proof and, if it checks out, stores it with
// the proof's nodes and signature: the receiving side of replication. A
// block or proof that does not verify is rejected with an error wrapping
// ErrVerify, and nothing is stored. Put on a writable feed is refused.
//
// Precondition: data is not nil (an empty block is an empty, non-nil slice).
func (f *Feed) Put(i uint64, data []byte, proof Proof) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return ErrClosed
	}
	if f.privateKey != nil || f.unsigned {
		return errors.New("hypercore: put on the writer's own feed")
	}
	if f.readOnly {
		return ErrNotWritable
	}
	if data == nil {
		return errors.New("hypercore: put without data")
	}
	if f.failed != nil {
		return f.failed
	}
	if i >= maxBlocks {
		return fmt.Errorf("%w: block index %d out of range", ErrVerify, i)
	}

	// Walk up from the block until a node that is already trusted, noting
	// the proof's nodes on the way and the local ones it leaves out.
	remote := proof.Nodes
	var trusted *merkle.Node
	var local []merkle.Node
	next := 2 * i
	k := 0
	for {
		if f.treeBits.Get(next) {
			nd, err := f.node(next)
			if err != nil {
				return err
			}
			trusted = &nd
			break
		}
		sib := flat.Sibling(next)
		next = flat.Parent(next)
		if k < len(remote) && remote[k].Index == sib {
			k++
			continue
		}
		if !f.treeBits.Get(sib) {
			break
		}
		nd, err := f.node(sib)
		if err != nil {
			return err
		}
		local = append(local, nd)
	}
	if trusted == nil && f.treeBits.Get(next) {
		nd, err := f.node(next)
		if err != nil {
			return err
		}
		trusted = &nd
	}

	// Hash up from the block with the siblings until the trusted node.
	top := merkle.Node{Index: 2 * i, Hash: f.hasher.Leaf(data), Size: uint64(len(data))}
	var visited []merkle.Node
	if sameNode(trusted, top) {
		return f.writePut(i, data, visited, nil, 0)
	}
	for {
		sib := flat.Sibling(top.Index)
		var nd merkle.Node
		switch {
		case len(remote) > 0 && remote[0].Index == sib:
			nd, remote = remote[0], remote[1:]
			visited = append(visited, nd)
		case len(local) > 0 && local[0].Index == sib:
			nd, local = local[0], local[1:]
		default:
			// No sibling: top must be one of the roots that the signature covers.
			return f.verifyRootsAndPut(i, data, top, remote, visited, proof.Signature)
		}
		visited = append(visited, top)
		top = merkle.Node{Index: flat.Parent(top.Index), Hash: f.hasher.Parent(top, nd), Size: top.Size + nd.Size}
		if sameNode(trusted, top) {
			return f.writePut(i, data, visited, nil, 0)
		}
	}
}

func sameNode(trusted *merkle.Node, n merkle.Node) bool {
	return trusted != nil && trusted.Index == n.Index && trusted.Hash == n.Hash
}

func (f *Feed) verifyRootsAndPut(i uint64, data []byte, top merkle.Node, remote, visited []merkle.Node, sig []byte) error {
	last := top.Index
	if len(remote) > 0 {
		last = remote[len(remote)-1].Index
	}
	verifiedBy := max(flat.RightSpan(top.Index), flat.RightSpan(last)) + 2
	if verifiedBy/2 > maxBlocks {
		return fmt.Errorf("%w: block %d: proof claims a feed of %d blocks", ErrVerify, i, verifiedBy/2)
	}

	indexes := flat.FullRoots(verifiedBy)
	roots := make([]merkle.Node, len(indexes))
	var extra []merkle.Node
	for k, idx := range indexes {
		switch {
		case idx == top.Index:
			roots[k] = top
			extra = append(extra, top)
		case len(remote) > 0 && remote[0].Index == idx:
			roots[k] = remote[0]
			extra = append(extra, remote[0])
			remote = remote[1:]
		case f.treeBits.Get(idx):
			nd, err := f.node(idx)
			if err != nil {
				return err
			}
			roots[k] = nd
		default:
			return fmt.Errorf("%w: block %d: proof lacks root %d", ErrVerify, i, idx)
		}
	}
	if sig == nil {
		return fmt.Errorf("%w: block %d: proof reaches the roots but has no signature", ErrVerify, i)
	}
	th := f.hasher.Tree(roots)
	if !ed25519.Verify(f.publicKey, th[:], sig) {
		return fmt.Errorf("%w: block %d: signature does not match the roots", ErrVerify, i)
	}
	var byteLength uint64
	for _, r := range roots {
		byteLength += r.Size
	}
	if err := f.writePut(i, data, append(visited, extra...), sig, verifiedBy/2-1); err != nil {
		return err
	}
	if n := verifiedBy / 2; n > f.length {
		f.length = n
		f.byteLength = byteLength
	}
	return nil
}

// maxBlocks bounds the feed length a proof may claim: far beyond any real
// feed, and small enough that offsets computed from it cannot overflow.
const maxBlocks = 1 << 52

// writePut stores a verified block with its nodes (and signature, at sigAt)
// as the reference does: nodes, then data, then the signature; then marks
// them in the bitfield.
func (f *Feed) writePut(i uint64, data []byte, nodes []merkle.Node, sig []byte, sigAt uint64) error {
	for _, nd := range nodes {
		if err := f.writeNode(nd); err != nil {
			return f.fail(err)
		}
	}
	if len(data) > 0 {
		off, size, err := f.dataOffset(i, nodes)
		if err != nil {
			return err
		}
		if size != uint64(len(data)) {
			return fmt.Errorf("%w: block %d has %d bytes, its tree node says %d", ErrVerify, i, len(data), size)
		}
		if off > 1<<62 {
			return fmt.Errorf("%w: block %d at offset %d", ErrVerify, i, off)
		}
		if f.data == nil {
			var err error
			if f.data, err = f.openData(); err != nil {
				return f.fail(err)
			}
		}
		if _, err := f.data.WriteAt(data, int64(off)); err != nil {
			return f.fail(fmt.Errorf("write data: %w", err))
		}
	}
	if sig != nil {
		if err := f.writeSignature(sig, sigAt); err != nil {
			return f.fail(err)
		}
	}
	for _, nd := range nodes {
		f.treeBits.Set(nd.Index)
	}
	f.treeBits.Set(2 * i)
	f.bitfield.Set(i, true)
	f.syncNeeded = true
	f.notify()
	return nil
}

// Wait returns block i, waiting until it is stored here (by Put, or by an
// append on the writer) or ctx is done.
func (f *Feed) Wait(ctx context.Context, i uint64) ([]byte, error) {
	for {
		f.mu.Lock()
		if f.closed {
			f.mu.Unlock()
			return nil, ErrClosed
		}
		if f.bitfield.Get(i) {
			b, err := f.get(i)
			f.mu.Unlock()
			return b, err
		}
		ch := f.changedLocked()
		f.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-ch:
		}
	}
}

// WaitLength waits until the feed has at least n blocks (as far as this side
// knows) or ctx is done, and returns the length.
func (f *Feed) WaitLength(ctx context.Context, n uint64) (uint64, error) {
	for {
		f.mu.Lock()
		if f.closed {
			f.mu.Unlock()
			return 0, ErrClosed
		}
		if f.length >= n {
			l := f.length
			f.mu.Unlock()
			return l, nil
		}
		ch := f.changedLocked()
		f.mu.Unlock()
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-ch:
		}
	}
}
