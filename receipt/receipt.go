package receipt

import (
	"crypto/ed25519"
	"errors"
	"fmt"

	"github.com/nodevms/nodevms/checkpoint"
	"github.com/nodevms/nodevms/hypercore"
	"github.com/nodevms/nodevms/hypercore/flat"
	"github.com/nodevms/nodevms/hypercore/merkle"
)

// Format names the version of the receipt format this package writes and
// reads.
const Format = "nodevms-receipt-v1"

var (
	// ErrMalformed: the bytes are not a receipt of a version this package
	// reads.
	ErrMalformed = errors.New("receipt: malformed")
	// ErrOtherLog: the receipt is for another call log than the one it was
	// checked against.
	ErrOtherLog = errors.New("receipt: for another call log")
	// ErrInvalid: the proof does not lead from the entry to the signed
	// roots, or the signature does not sign them.
	ErrInvalid = errors.New("receipt: does not verify")
	// ErrNotSigned: Make was asked for an entry the log has not signed yet.
	ErrNotSigned = errors.New("receipt: entry not signed yet")
)

// Limits on what a receipt may hold, so that a hostile one costs little to
// refuse. Every length a feed can reach has at most 2 nodes per level of
// the tree on the path and among the roots.
const (
	// MaxBlocks bounds the log length a receipt may claim (as hypercore
	// bounds a proof's).
	MaxBlocks = 1 << 52
	// MaxEntry bounds an entry's bytes.
	MaxEntry = 16 << 20
	maxNodes = 2 * 64
)

// A Receipt proves that a call log, identified by its public key, holds
// Entry at Index. Length is the signed length of the log that Signature
// signs; Nodes are the proof: the siblings on the path from the entry up
// to the root of Length that covers it (lowest first), then the other
// roots of Length, left to right.
//
// Checkpoint, if set, is a checkpoint note (package checkpoint) of the
// same log at Length, with monitors' cosignatures: VerifyCosigned checks
// them. A receipt gets one from a monitor that replayed the log that far
// (its /receipt endpoint makes receipts at its checkpoint's length).
type Receipt struct {
	Log        ed25519.PublicKey
	Index      uint64
	Length     uint64
	Entry      []byte
	Nodes      []merkle.Node
	Signature  []byte
	Checkpoint []byte
}

// Make builds the receipt for block index of log, against the newest
// length the log shows peers (which is signed). It fails with ErrNotSigned
// if that length does not cover index yet: a host signs within
// milliseconds of an answer, so a caller may wait on log.Changed and try
// again. It does not verify what it builds; the log's own checks stand
// behind it.
func Make(log *hypercore.Feed, index uint64) (*Receipt, error) {
	if index >= log.Published() {
		return nil, fmt.Errorf("%w: entry %d of a log signed to length %d", ErrNotSigned, index, log.Published())
	}
	entry, err := log.Get(index)
	if err != nil {
		return nil, fmt.Errorf("receipt: entry %d: %w", index, err)
	}
	return MakeOf(log, index, entry)
}

// MakeOf is Make for a caller that has the entry's bytes already (the
// host, which has just written them): it reads only the proof.
//
// Precondition: entry is log's block at index; MakeOf does not check it,
// and a receipt made with other bytes does not verify.
func MakeOf(log *hypercore.Feed, index uint64, entry []byte) (*Receipt, error) {
	if index >= log.Published() {
		return nil, fmt.Errorf("%w: entry %d of a log signed to length %d", ErrNotSigned, index, log.Published())
	}
	proof, err := log.Proof(index, hypercore.ProofRequest{})
	if err != nil {
		return nil, fmt.Errorf("receipt: proof of entry %d: %w", index, err)
	}
	if proof.Signature == nil {
		return nil, fmt.Errorf("receipt: the proof of entry %d reaches no signature", index)
	}
	r := &Receipt{Log: log.PublicKey(), Index: index, Entry: entry, Nodes: proof.Nodes, Signature: proof.Signature}
	r.Length = provenLength(index, proof.Nodes)
	return r, nil
}

// provenLength is the length of the log whose roots the proof of block
// index reaches: the rightmost root's span, as roots finds it, from the
// nodes' indexes alone (the hashes are the log's own, unchecked here).
func provenLength(index uint64, nodes []merkle.Node) uint64 {
	top := 2 * index
	for len(nodes) > 0 && nodes[0].Index == flat.Sibling(top) {
		top, nodes = flat.Parent(top), nodes[1:]
	}
	last := top
	if len(nodes) > 0 {
		last = max(last, nodes[len(nodes)-1].Index)
	}
	return flat.RightSpan(last)/2 + 1
}

// MakeAt builds the receipt for block index of log against the tree of
// its first length blocks, whose signature log must store (a replica does
// for the lengths it was shown): a monitor makes receipts at the length it
// cosigned. Like Make, it does not verify what it builds.
func MakeAt(log *hypercore.Feed, index, length uint64) (*Receipt, error) {
	if length == 0 {
		return nil, fmt.Errorf("receipt: entry %d at length 0", index)
	}
	sig, err := log.SignatureAt(length - 1)
	if err != nil {
		return nil, fmt.Errorf("receipt: the signature of length %d: %w", length, err)
	}
	entry, err := log.Get(index)
	if err != nil {
		return nil, fmt.Errorf("receipt: entry %d: %w", index, err)
	}
	proof, err := log.ProofAt(index, length)
	if err != nil {
		return nil, fmt.Errorf("receipt: proof of entry %d at length %d: %w", index, length, err)
	}
	return &Receipt{Log: log.PublicKey(), Index: index, Length: length, Entry: entry, Nodes: proof.Nodes, Signature: sig}, nil
}

// Verify checks r against the call log's public key: the entry, hashed up
// through the proof, gives the roots of r.Length, and the signature signs
// them. It fails with ErrOtherLog if r names another log, ErrMalformed if
// r is not well formed, and ErrInvalid if it does not check.
func (r *Receipt) Verify(logKey ed25519.PublicKey) error {
	if len(logKey) != ed25519.PublicKeySize {
		return fmt.Errorf("receipt: a log key has %d bytes, not %d", ed25519.PublicKeySize, len(logKey))
	}
	if !logKey.Equal(r.Log) {
		return ErrOtherLog
	}
	if err := r.check(); err != nil {
		return err
	}
	h := merkle.NewHasher()
	roots, length, err := r.roots(h)
	if err != nil {
		return err
	}
	if length != r.Length {
		return fmt.Errorf("%w: the proof is of length %d, the receipt says %d", ErrInvalid, length, r.Length)
	}
	th := h.Tree(roots)
	if !ed25519.Verify(logKey, th[:], r.Signature) {
		return fmt.Errorf("%w: the signature does not sign the roots of length %d", ErrInvalid, r.Length)
	}
	return nil
}

// TreeHash returns the hash of the roots of r.Length that the proof gives,
// the value the log's signature signs; r must be well formed.
func (r *Receipt) TreeHash() ([merkle.HashSize]byte, error) {
	if err := r.check(); err != nil {
		return [merkle.HashSize]byte{}, err
	}
	h := merkle.NewHasher()
	roots, length, err := r.roots(h)
	if err != nil {
		return [merkle.HashSize]byte{}, err
	}
	if length != r.Length {
		return [merkle.HashSize]byte{}, fmt.Errorf("%w: the proof is of length %d, the receipt says %d", ErrInvalid, length, r.Length)
	}
	return h.Tree(roots), nil
}

// check reports whether r's fields are within the format's bounds.
func (r *Receipt) check() error {
	switch {
	case len(r.Log) != ed25519.PublicKeySize:
		return fmt.Errorf("%w: a log key of %d bytes", ErrMalformed, len(r.Log))
	case r.Length == 0 || r.Length > MaxBlocks:
		return fmt.Errorf("%w: length %d", ErrMalformed, r.Length)
	case r.Index >= r.Length:
		return fmt.Errorf("%w: index %d is not below length %d", ErrMalformed, r.Index, r.Length)
	case len(r.Entry) > MaxEntry:
		return fmt.Errorf("%w: an entry of %d bytes", ErrMalformed, len(r.Entry))
	case len(r.Nodes) > maxNodes:
		return fmt.Errorf("%w: %d proof nodes", ErrMalformed, len(r.Nodes))
	case len(r.Signature) != ed25519.SignatureSize:
		return fmt.Errorf("%w: a signature of %d bytes", ErrMalformed, len(r.Signature))
	case r.Checkpoint != nil && (len(r.Checkpoint) == 0 || len(r.Checkpoint) > checkpoint.MaxNote):
		return fmt.Errorf("%w: a checkpoint of %d bytes", ErrMalformed, len(r.Checkpoint))
	}
	return nil
}

// VerifyCosigned is Verify, then checks the receipt's checkpoint: that it
// is of this log at this length, with the tree hash the receipt's proof
// gives, and cosigned by at least need of verifiers (the monitors the
// checker trusts). It returns the names of those that cosigned; too few is
// an error wrapping checkpoint.ErrCosignatures, and no checkpoint at all
// one wrapping ErrInvalid.
func (r *Receipt) VerifyCosigned(logKey ed25519.PublicKey, verifiers []*checkpoint.Verifier, need int) ([]string, error) {
	if err := r.Verify(logKey); err != nil {
		return nil, err
	}
	if r.Checkpoint == nil {
		return nil, fmt.Errorf("%w: the receipt carries no cosigned checkpoint", ErrInvalid)
	}
	note, err := checkpoint.ParseNote(r.Checkpoint)
	if err != nil {
		return nil, fmt.Errorf("%w: its checkpoint: %w", ErrMalformed, err)
	}
	th, err := r.TreeHash()
	if err != nil {
		return nil, err
	}
	if !logKey.Equal(note.Log) || note.Length != r.Length || note.TreeHash != th {
		return nil, fmt.Errorf("%w: its checkpoint is of another log, length or tree (length %d)", ErrInvalid, note.Length)
	}
	return note.Verify(verifiers, need)
}

// roots hashes the entry up through the proof's siblings, as a hypercore
// peer does with a block it downloads from nothing, and returns the roots
// that gives, left to right, and the length they are the roots of. A node
// that is the sibling of the node reached so far is a step up; the first
// that is not starts the other roots (a root's sibling is never a root of
// the same length, so this cannot be misread).
func (r *Receipt) roots(h *merkle.Hasher) ([]merkle.Node, uint64, error) {
	if r.Index >= MaxBlocks {
		return nil, 0, fmt.Errorf("%w: index %d", ErrMalformed, r.Index)
	}
	top := merkle.Node{Index: 2 * r.Index, Hash: h.Leaf(r.Entry), Size: uint64(len(r.Entry))}
	nodes := r.Nodes
	for len(nodes) > 0 && nodes[0].Index == flat.Sibling(top.Index) {
		sib := nodes[0]
		if flat.Depth(top.Index) >= 52 {
			return nil, 0, fmt.Errorf("%w: the proof climbs past any feed", ErrInvalid)
		}
		top = merkle.Node{Index: flat.Parent(top.Index), Hash: h.Parent(top, sib), Size: top.Size + sib.Size}
		nodes = nodes[1:]
	}
	// The rest are the other roots; the rightmost of all says the length.
	last := top.Index
	if len(nodes) > 0 {
		last = max(last, nodes[len(nodes)-1].Index)
	}
	if last >= 2*MaxBlocks || flat.RightSpan(last)/2 >= MaxBlocks {
		return nil, 0, fmt.Errorf("%w: the proof claims a log longer than any", ErrInvalid)
	}
	length := flat.RightSpan(last)/2 + 1
	want := flat.FullRoots(2 * length)
	if len(want) != len(nodes)+1 {
		return nil, 0, fmt.Errorf("%w: a log of length %d has %d roots, the proof gives %d", ErrInvalid, length, len(want), len(nodes)+1)
	}
	roots := make([]merkle.Node, 0, len(want))
	for _, idx := range want {
		switch {
		case idx == top.Index:
			roots = append(roots, top)
		case len(nodes) > 0 && nodes[0].Index == idx:
			roots = append(roots, nodes[0])
			nodes = nodes[1:]
		default:
			return nil, 0, fmt.Errorf("%w: the proof lacks root %d of length %d", ErrInvalid, idx, length)
		}
	}
	if len(nodes) > 0 {
		return nil, 0, fmt.Errorf("%w: the entry's path does not end at a root of length %d", ErrInvalid, length)
	}
	return roots, length, nil
}
