package receipt

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"

	"github.com/nodevms/nodevms/hypercore"
	"github.com/nodevms/nodevms/hypercore/flat"
	"github.com/nodevms/nodevms/hypercore/merkle"
)

// Receipts in parts. Receipts that one connection delivers one after
// another share most of their proofs: calls answered under one signature
// share its roots and the signature itself, and neighbouring entries
// share all but the lowest nodes of their paths. A tree node's hash never
// changes once the node exists, so a node sent once serves every later
// receipt that needs it. A Sender, one per connection, therefore sends
// with each receipt only the proof nodes it has not sent before, and the
// signature only when the signed length changes; an Assembler, one per
// connection on the other side, keeps what it was sent and puts each
// receipt back together whole. The receipts it returns are the same
// receipts Make builds, byte for byte. (RECEIPTS.md, "Receipts in parts".)

// A Part is a receipt as a connection delivers it: the entry, and of the
// proof only what the connection has not carried before.
type Part struct {
	Index, Length uint64
	Entry         []byte
	// Nodes are the receipt's proof nodes not sent before on this
	// connection (since the last Forget), in the receipt's order.
	Nodes []merkle.Node
	// Signature is set when Length is not the previous part's length.
	Signature []byte
	// Forget says that the sender has forgotten what it sent before:
	// the assembler drops its nodes before it takes this part's.
	Forget bool
}

// maxSent bounds the nodes a Sender remembers; past it, it starts over
// (and says Forget). maxAssembled, the Assembler's bound, is larger, so an
// honest sender never meets it.
const (
	maxSent      = 1 << 14
	maxAssembled = 1 << 16
)

// proofIndexes appends to dst the flat-tree indexes of the proof nodes of
// block index at length, in a receipt's order: the siblings up to the root
// of length that covers the block, then length's other roots, left to
// right. Precondition: index < length <= MaxBlocks.
func proofIndexes(dst []uint64, index, length uint64) []uint64 {
	var rootsBuf [64]uint64
	roots := flat.AppendFullRoots(rootsBuf[:0], 2*length)
	x := 2 * index
	for !slices.Contains(roots, x) {
		dst = append(dst, flat.Sibling(x))
		x = flat.Parent(x)
	}
	for _, r := range roots {
		if r != x {
			dst = append(dst, r)
		}
	}
	return dst
}

// A Sender makes the parts of the receipts one connection delivers, in
// the order it delivers them. Its zero value is ready; it is not safe for
// concurrent use.
//
// It remembers, for each level of the tree, the last few nodes it sent
// there, rather than every node: a connection's entries come in order, so
// the siblings a proof needs at a level are the ones the last proofs
// needed, or new. A node it has forgotten it sends again, which costs
// bytes, never correctness; what it leaves out it has sent since the last
// Forget, and the assembler keeps all of that.
type Sender struct {
	length  uint64                     // the last part's length; 0 before the first
	started bool                       // a part was made since the last Forget (or ever)
	count   int                        // nodes sent since the last Forget
	recent  [64][recentPerLevel]uint64 // per level, nodes sent there, plus 1 (0: none)
	next    [64]uint8                  // per level, the slot of recent to fill next
	idx     []uint64                   // scratch
	bound   int                        // maxSent, unless a test sets it
}

// recentPerLevel is how many nodes a Sender remembers at each level.
const recentPerLevel = 4

// sent reports whether node i is among those remembered.
func (s *Sender) sent(i uint64) bool {
	for _, r := range &s.recent[flat.Depth(i)] {
		if r == i+1 {
			return true
		}
	}
	return false
}

// remember notes that node i was sent.
func (s *Sender) remember(i uint64) {
	d := flat.Depth(i)
	s.recent[d][s.next[d]] = i + 1
	s.next[d] = (s.next[d] + 1) % recentPerLevel
}

// Next makes the part of block index of log (whose bytes are entry),
// against the newest signed length; like MakeOf it fails with
// ErrNotSigned if that does not cover index yet. The part must then be
// delivered: the Sender counts its nodes as sent.
//
// Precondition: entry is log's block at index, as for MakeOf.
func (s *Sender) Next(log *hypercore.Feed, index uint64, entry []byte) (*Part, error) {
	length := log.Published()
	if index >= length {
		return nil, fmt.Errorf("%w: entry %d of a log signed to length %d", ErrNotSigned, index, length)
	}
	if length > MaxBlocks {
		return nil, fmt.Errorf("receipt: a log of %d blocks, more than a receipt holds", length)
	}
	p := &Part{Index: index, Length: length, Entry: entry}
	if length != s.length {
		sig, err := log.SignatureAt(length - 1)
		if err != nil {
			return nil, fmt.Errorf("receipt: the signature of length %d: %w", length, err)
		}
		p.Signature = sig
	}
	s.idx = proofIndexes(s.idx[:0], index, length)
	bound := maxSent
	if s.bound > 0 {
		bound = s.bound
	}
	forget := s.started && s.count+len(s.idx) > bound
	unsent := s.idx[:0] // in place: each index is read before it is overwritten
	for _, i := range s.idx {
		if forget || !s.sent(i) {
			unsent = append(unsent, i)
		}
	}
	if len(unsent) > 0 {
		var err error
		if p.Nodes, err = log.AppendNodes(make([]merkle.Node, 0, len(unsent)), unsent); err != nil {
			return nil, fmt.Errorf("receipt: the proof of entry %d: %w", index, err)
		}
	}
	// Only now, with the part made, is anything counted as sent.
	if forget {
		p.Forget = true
		s.recent, s.next, s.count = [64][recentPerLevel]uint64{}, [64]uint8{}, 0
	}
	for _, n := range p.Nodes {
		s.remember(n.Index)
	}
	s.count += len(p.Nodes)
	s.started = true
	s.length = length
	return p, nil
}

// An Assembler puts back together the receipts of the parts one
// connection delivers, taken in the order they were sent. Make one with
// NewAssembler; it is not safe for concurrent use.
type Assembler struct {
	log       ed25519.PublicKey
	length    uint64
	signature []byte
	nodes     map[uint64]merkle.Node
	idx       []uint64
}

// NewAssembler returns an assembler for the receipts of the call log with
// public key log.
func NewAssembler(log ed25519.PublicKey) *Assembler {
	return &Assembler{log: log, nodes: map[uint64]merkle.Node{}}
}

// Add takes the next part and returns its receipt, whole. A part that
// needs a node or a signature it was never sent fails with an error
// wrapping ErrMalformed, and changes nothing. Add does not verify the
// receipt: call Verify.
func (a *Assembler) Add(p *Part) (*Receipt, error) {
	if err := p.check(); err != nil {
		return nil, err
	}
	signature := a.signature
	if p.Signature != nil {
		signature = p.Signature
	} else if signature == nil || p.Length != a.length {
		return nil, fmt.Errorf("%w: a part of length %d without its signature", ErrMalformed, p.Length)
	}
	known := a.nodes
	if p.Forget {
		known = nil
	}
	if len(known)+len(p.Nodes) > maxAssembled {
		return nil, fmt.Errorf("%w: more than %d proof nodes without a forget", ErrMalformed, maxAssembled)
	}
	a.idx = proofIndexes(a.idx[:0], p.Index, p.Length)
	nodes := make([]merkle.Node, len(a.idx))
	for k, i := range a.idx {
		n, ok := findNode(p.Nodes, i)
		if !ok {
			if n, ok = known[i]; !ok {
				return nil, fmt.Errorf("%w: the part of entry %d needs node %d, which was never sent", ErrMalformed, p.Index, i)
			}
		}
		nodes[k] = n
	}
	if p.Forget {
		clear(a.nodes)
	}
	for _, n := range p.Nodes {
		a.nodes[n.Index] = n
	}
	a.length, a.signature = p.Length, signature
	return &Receipt{Log: a.log, Index: p.Index, Length: p.Length, Entry: p.Entry, Nodes: nodes, Signature: signature}, nil
}

// findNode looks for node i among a part's few nodes.
func findNode(nodes []merkle.Node, i uint64) (merkle.Node, bool) {
	for _, n := range nodes {
		if n.Index == i {
			return n, true
		}
	}
	return merkle.Node{}, false
}

// check reports whether p's fields are within the format's bounds.
func (p *Part) check() error {
	switch {
	case p.Length == 0 || p.Length > MaxBlocks:
		return fmt.Errorf("%w: length %d", ErrMalformed, p.Length)
	case p.Index >= p.Length:
		return fmt.Errorf("%w: index %d is not below length %d", ErrMalformed, p.Index, p.Length)
	case len(p.Entry) > MaxEntry:
		return fmt.Errorf("%w: an entry of %d bytes", ErrMalformed, len(p.Entry))
	case len(p.Nodes) > maxNodes:
		return fmt.Errorf("%w: %d proof nodes", ErrMalformed, len(p.Nodes))
	case p.Signature != nil && len(p.Signature) != ed25519.SignatureSize:
		return fmt.Errorf("%w: a signature of %d bytes", ErrMalformed, len(p.Signature))
	}
	return nil
}

// The part's one byte form, compact JSON in this order, the last two
// members only when set:
//
//	{"index":7,"length":12,"entry":"BASE64","nodes":[{"index":12,"size":231,"hash":"HEX"}],"signature":"HEX","forget":true}
const (
	partIndex     = `{"index":`
	partLength    = `,"length":`
	partEntry     = `,"entry":"`
	partNodes     = `","nodes":[`
	partSignature = `,"signature":"`
	partForget    = `,"forget":true`
)

// AppendJSON appends p's one form to dst; p must be well formed (as Next
// and ParsePart leave it).
func (p *Part) AppendJSON(dst []byte) []byte {
	l := &forms[0]
	b := slices.Grow(dst, 200+base64.StdEncoding.EncodedLen(len(p.Entry))+len(p.Nodes)*(2*merkle.HashSize+60))
	b = append(b, partIndex...)
	b = strconv.AppendUint(b, p.Index, 10)
	b = append(b, partLength...)
	b = strconv.AppendUint(b, p.Length, 10)
	b = append(b, partEntry...)
	b = base64.StdEncoding.AppendEncode(b, p.Entry)
	b = append(b, partNodes...)
	for i, n := range p.Nodes {
		if i > 0 {
			b = append(b, l.nodeSep...)
		}
		b = l.appendNode(b, n)
	}
	b = append(b, l.nodesClose...)
	if p.Signature != nil {
		b = append(b, partSignature...)
		b = hex.AppendEncode(b, p.Signature)
		b = append(b, '"')
	}
	if p.Forget {
		b = append(b, partForget...)
	}
	return append(b, '}')
}

// ParsePart reads a part in the one form AppendJSON writes, and refuses
// anything else with an error wrapping ErrMalformed, as Parse does for
// receipts. It does not check the part against earlier ones: an
// Assembler does.
func ParsePart(data []byte) (*Part, error) {
	if len(data) > MaxFile {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrMalformed, len(data), MaxFile)
	}
	l := &forms[0]
	p := parser{data: data}
	r := &Part{}
	p.expect(partIndex)
	r.Index = p.uint("index")
	p.expect(partLength)
	r.Length = p.uint("length")
	p.expect(partEntry)
	r.Entry = p.base64("entry")
	p.expect(partNodes)
	for p.err == nil && p.pos < len(p.data) && p.data[p.pos] != ']' {
		if len(r.Nodes) == maxNodes {
			p.fail("more than %d proof nodes", maxNodes)
			break
		}
		if len(r.Nodes) > 0 {
			p.expect(l.nodeSep)
		}
		r.Nodes = append(r.Nodes, p.node(l))
	}
	p.expect(l.nodesClose)
	if p.err == nil && bytes.HasPrefix(p.data[p.pos:], []byte(partSignature)) {
		p.expect(partSignature)
		r.Signature = p.hex("signature", ed25519.SignatureSize)
		p.expect(`"`)
	}
	if p.err == nil && bytes.HasPrefix(p.data[p.pos:], []byte(partForget)) {
		p.expect(partForget)
		r.Forget = true
	}
	p.expect("}")
	if p.err == nil && p.pos != len(data) {
		p.fail("data after the part")
	}
	if p.err != nil {
		return nil, p.err
	}
	if r.Entry == nil {
		r.Entry = []byte{}
	}
	if err := r.check(); err != nil {
		return nil, err
	}
	return r, nil
}
