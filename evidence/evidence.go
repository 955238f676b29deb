// Package evidence holds proof that a call log's writer signed two
// histories that cannot both be true: portable fork evidence, which
// anyone can check offline against the log's key.
//
// Evidence is two signed heads of one log, each a length, the roots of
// its Merkle tree at that length and the log's signature over them, and,
// when the lengths differ, one node of the longer history's tree at the
// position of a root of the shorter one, with the path that proves it
// into the longer history's roots. A root of a length covers blocks that
// every later length covers with the same node, so a different node
// there, under two valid signatures, is a fork; at equal lengths,
// different roots are.
//
// Parse reads untrusted bytes (strict JSON, format nodevms-fork-evidence-v1)
// and never panics; Verify checks everything and says what conflicts.
package evidence

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/nodevms/nodevms/hypercore"
	"github.com/nodevms/nodevms/hypercore/flat"
	"github.com/nodevms/nodevms/hypercore/merkle"
)

// Format names this version of the evidence format.
const Format = "nodevms-fork-evidence-v1"

var (
	// ErrMalformed: the bytes are not evidence this package reads.
	ErrMalformed = errors.New("evidence: malformed")
	// ErrInvalid: the evidence does not prove a fork.
	ErrInvalid = errors.New("evidence: does not prove a fork")
)

// Bounds on untrusted evidence.
const (
	maxBlocks = 1 << 52
	maxNodes  = 128
	// MaxFile bounds the bytes Parse reads.
	MaxFile = 256 << 10
)

// Head is a signed length of a log: its roots, and the signature over
// their tree hash.
type Head struct {
	Length    uint64
	Roots     []merkle.Node
	Signature []byte
}

// Conflict is the longer head's node at the position of one of the
// shorter head's roots, and the siblings that hash it up to a root of the
// longer head (lowest first).
type Conflict struct {
	Node merkle.Node
	Path []merkle.Node
}

// Evidence is two heads of one log that cannot both be true.
type Evidence struct {
	Log      ed25519.PublicKey
	A, B     Head
	Conflict *Conflict // when the lengths differ
}

// HeadOf reads the signed head of feed's first length blocks; feed must
// store the signature of that length.
func HeadOf(feed *hypercore.Feed, length uint64) (Head, error) {
	if length == 0 {
		return Head{}, errors.New("evidence: a head of length 0")
	}
	roots, err := feed.Roots(length)
	if err != nil {
		return Head{}, err
	}
	sig, err := feed.SignatureAt(length - 1)
	if err != nil {
		return Head{}, err
	}
	return Head{Length: length, Roots: roots, Signature: sig}, nil
}

// Find builds the evidence that heads a and b of one log conflict, taking
// the conflicting node and its path from longer, a feed that holds the
// tree of the longer head (nil if the lengths are equal). It fails if they
// do not conflict.
func Find(log ed25519.PublicKey, a, b Head, longer *hypercore.Feed) (*Evidence, error) {
	e := &Evidence{Log: log, A: a, B: b}
	if a.Length != b.Length {
		short, long := a, b
		if a.Length > b.Length {
			short, long = b, a
		}
		for _, r := range short.Roots {
			nd, err := longer.Node(r.Index)
			if err != nil {
				return nil, fmt.Errorf("evidence: the longer history's node %d: %w", r.Index, err)
			}
			if nd == r {
				continue
			}
			c := &Conflict{Node: nd}
			for x := r.Index; !slices.ContainsFunc(long.Roots, func(n merkle.Node) bool { return n.Index == x }); x = flat.Parent(x) {
				if len(c.Path) == maxNodes {
					return nil, errors.New("evidence: no root of the longer head above the node")
				}
				sib, err := longer.Node(flat.Sibling(x))
				if err != nil {
					return nil, fmt.Errorf("evidence: the longer history's node %d: %w", flat.Sibling(x), err)
				}
				c.Path = append(c.Path, sib)
			}
			e.Conflict = c
			break
		}
	}
	if _, err := e.Verify(); err != nil {
		return nil, err
	}
	return e, nil
}

// Verify checks that both heads are signed by the log's key over roots of
// their lengths, and that they conflict, and says how.
func (e *Evidence) Verify() (string, error) {
	if len(e.Log) != ed25519.PublicKeySize {
		return "", fmt.Errorf("%w: a log key of %d bytes", ErrMalformed, len(e.Log))
	}
	h := merkle.NewHasher()
	for _, head := range []*Head{&e.A, &e.B} {
		if err := checkHead(h, e.Log, head); err != nil {
			return "", err
		}
	}
	if e.A.Length == e.B.Length {
		if e.Conflict != nil {
			return "", fmt.Errorf("%w: heads of equal length need no conflicting node", ErrMalformed)
		}
		if slices.Equal(e.A.Roots, e.B.Roots) {
			return "", fmt.Errorf("%w: the two heads are the same", ErrInvalid)
		}
		return fmt.Sprintf("two different trees of length %d", e.A.Length), nil
	}
	short, long := e.A, e.B
	if short.Length > long.Length {
		short, long = long, short
	}
	c := e.Conflict
	if c == nil {
		return "", fmt.Errorf("%w: heads of different lengths need a conflicting node", ErrInvalid)
	}
	i := slices.IndexFunc(short.Roots, func(n merkle.Node) bool { return n.Index == c.Node.Index })
	if i < 0 {
		return "", fmt.Errorf("%w: node %d is not a root of length %d", ErrInvalid, c.Node.Index, short.Length)
	}
	if short.Roots[i] == c.Node {
		return "", fmt.Errorf("%w: the two histories agree at node %d", ErrInvalid, c.Node.Index)
	}
	if len(c.Path) > maxNodes {
		return "", fmt.Errorf("%w: a path of %d nodes", ErrMalformed, len(c.Path))
	}
	top := c.Node
	for _, sib := range c.Path {
		if sib.Index != flat.Sibling(top.Index) || flat.Depth(top.Index) >= 52 {
			return "", fmt.Errorf("%w: the path's node %d is not the sibling of %d", ErrInvalid, sib.Index, top.Index)
		}
		top = merkle.Node{Index: flat.Parent(top.Index), Hash: h.Parent(top, sib), Size: top.Size + sib.Size}
	}
	if !slices.Contains(long.Roots, top) {
		return "", fmt.Errorf("%w: the path does not lead to a root of length %d", ErrInvalid, long.Length)
	}
	return fmt.Sprintf("length %d has node %d with hash %x, length %d has it with hash %x",
		short.Length, c.Node.Index, short.Roots[i].Hash[:8], long.Length, c.Node.Hash[:8]), nil
}

// checkHead checks that a head's roots are those of its length and that
// the log signed them.
func checkHead(h *merkle.Hasher, log ed25519.PublicKey, head *Head) error {
	if head.Length == 0 || head.Length > maxBlocks {
		return fmt.Errorf("%w: a head of length %d", ErrMalformed, head.Length)
	}
	want := flat.FullRoots(2 * head.Length)
	if len(want) != len(head.Roots) {
		return fmt.Errorf("%w: length %d has %d roots, the head gives %d", ErrInvalid, head.Length, len(want), len(head.Roots))
	}
	for k, idx := range want {
		if head.Roots[k].Index != idx {
			return fmt.Errorf("%w: root %d of length %d is node %d, not %d", ErrInvalid, k, head.Length, idx, head.Roots[k].Index)
		}
	}
	th := h.Tree(head.Roots)
	if len(head.Signature) != ed25519.SignatureSize || !ed25519.Verify(log, th[:], head.Signature) {
		return fmt.Errorf("%w: the log's key did not sign the head of length %d", ErrInvalid, head.Length)
	}
	return nil
}

// The file: JSON, hashes and keys in lowercase hex.

type fileNode struct {
	Index uint64 `json:"index"`
	Size  uint64 `json:"size"`
	Hash  string `json:"hash"`
}

type fileHead struct {
	Length    uint64     `json:"length"`
	Roots     []fileNode `json:"roots"`
	Signature string     `json:"signature"`
}

type fileConflict struct {
	Node fileNode   `json:"node"`
	Path []fileNode `json:"path"`
}

type file struct {
	Format   string        `json:"format"`
	Log      string        `json:"log"`
	A        fileHead      `json:"a"`
	B        fileHead      `json:"b"`
	Conflict *fileConflict `json:"conflict,omitempty"`
}

func toFile(ns []merkle.Node) []fileNode {
	out := make([]fileNode, len(ns))
	for i, n := range ns {
		out[i] = fileNode{n.Index, n.Size, hex.EncodeToString(n.Hash[:])}
	}
	return out
}

// Marshal writes e as indented JSON.
func (e *Evidence) Marshal() ([]byte, error) {
	f := file{Format: Format, Log: hex.EncodeToString(e.Log),
		A: fileHead{e.A.Length, toFile(e.A.Roots), hex.EncodeToString(e.A.Signature)},
		B: fileHead{e.B.Length, toFile(e.B.Roots), hex.EncodeToString(e.B.Signature)}}
	if c := e.Conflict; c != nil {
		f.Conflict = &fileConflict{toFile([]merkle.Node{c.Node})[0], toFile(c.Path)}
	}
	b, err := json.MarshalIndent(f, "", "  ")
	return append(b, '\n'), err
}

// Parse reads evidence as Marshal writes it; unknown fields and values
// out of bounds are refused. It does not verify.
func Parse(data []byte) (*Evidence, error) {
	if len(data) > MaxFile {
		return nil, fmt.Errorf("%w: %d bytes", ErrMalformed, len(data))
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f file
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: data after the evidence", ErrMalformed)
	}
	if f.Format != Format {
		return nil, fmt.Errorf("%w: format %q, this reads %q", ErrMalformed, f.Format, Format)
	}
	e := &Evidence{}
	var err error
	if e.Log, err = decodeHex("log", f.Log, ed25519.PublicKeySize); err != nil {
		return nil, err
	}
	for _, p := range []struct {
		in  fileHead
		out *Head
	}{{f.A, &e.A}, {f.B, &e.B}} {
		p.out.Length = p.in.Length
		if p.out.Roots, err = fromFile(p.in.Roots); err != nil {
			return nil, err
		}
		if p.out.Signature, err = decodeHex("signature", p.in.Signature, ed25519.SignatureSize); err != nil {
			return nil, err
		}
	}
	if c := f.Conflict; c != nil {
		nodes, err := fromFile(append([]fileNode{c.Node}, c.Path...))
		if err != nil {
			return nil, err
		}
		e.Conflict = &Conflict{Node: nodes[0], Path: nodes[1:]}
	}
	return e, nil
}

func fromFile(ns []fileNode) ([]merkle.Node, error) {
	if len(ns) > maxNodes {
		return nil, fmt.Errorf("%w: %d nodes", ErrMalformed, len(ns))
	}
	out := make([]merkle.Node, len(ns))
	for i, n := range ns {
		h, err := decodeHex("a node's hash", n.Hash, merkle.HashSize)
		if err != nil {
			return nil, err
		}
		out[i] = merkle.Node{Index: n.Index, Size: n.Size}
		copy(out[i].Hash[:], h)
	}
	return out, nil
}

func decodeHex(what, s string, size int) ([]byte, error) {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != size {
		return nil, fmt.Errorf("%w: %s is not %d bytes of hex", ErrMalformed, what, size)
	}
	return b, nil
}
