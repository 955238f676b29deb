package receipt

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"math"
	"slices"
	"strconv"

	"github.com/nodevms/nodevms/hypercore/merkle"
)

// The file format (calllog/RECEIPTS.md) has two byte forms: indented (the
// file) and compact (inside an RPC answer). Both are written and read here
// by hand, without reflection: a receipt rides on every answer that asks
// for one, and encoding/json's general path cost several times the call.

// MaxFile bounds the bytes Parse reads: an entry of MaxEntry bytes in
// base64, and the rest.
const MaxFile = MaxEntry/3*4 + 64<<10

// Marshal writes r in the receipt format's file form: indented JSON,
// ending in a newline.
func (r *Receipt) Marshal() ([]byte, error) {
	if err := r.check(); err != nil {
		return nil, err
	}
	return r.appendForm(nil, true), nil
}

// MarshalJSON writes r in the compact form, on one line, so that a
// receipt can be a member of another JSON value (an RPC answer).
func (r Receipt) MarshalJSON() ([]byte, error) {
	if err := r.check(); err != nil {
		return nil, err
	}
	return r.appendForm(nil, false), nil
}

// AppendJSON appends r's compact form to dst; r must be well formed (as
// Make and Parse leave it).
func (r *Receipt) AppendJSON(dst []byte) []byte { return r.appendForm(dst, false) }

// UnmarshalJSON reads a receipt as Parse does.
func (r *Receipt) UnmarshalJSON(data []byte) error {
	p, err := Parse(data)
	if err != nil {
		return err
	}
	*r = *p
	return nil
}

// layout is the text between a form's values, in order: the indented form
// and the compact one.
type layout struct {
	format, log, index, length, entry, nodes string
	nodeOpen, nodeSize, nodeHash, nodeClose  string
	nodeSep, nodesClose, signature, close    string
	checkpoint                               string
}

var forms = [2]layout{
	{ // compact
		format: `{"format":"`, log: `","log":"`, index: `","index":`,
		length: `,"length":`, entry: `,"entry":"`, nodes: `","nodes":[`,
		nodeOpen: `{"index":`, nodeSize: `,"size":`, nodeHash: `,"hash":"`, nodeClose: `"}`, nodeSep: `,`,
		nodesClose: `]`, signature: `,"signature":"`, close: `"}`, checkpoint: `","checkpoint":"`,
	},
	{ // indented
		format: "{\n  \"format\": \"", log: "\",\n  \"log\": \"", index: "\",\n  \"index\": ",
		length: ",\n  \"length\": ", entry: ",\n  \"entry\": \"", nodes: "\",\n  \"nodes\": [",
		nodeOpen: "\n    {\n      \"index\": ", nodeSize: ",\n      \"size\": ", nodeHash: ",\n      \"hash\": \"", nodeClose: "\"\n    }", nodeSep: ",",
		nodesClose: "\n  ]", signature: ",\n  \"signature\": \"", close: "\"\n}\n", checkpoint: "\",\n  \"checkpoint\": \"",
	},
}

// appendNode appends one proof node in l's form.
func (l *layout) appendNode(b []byte, n merkle.Node) []byte {
	b = append(b, l.nodeOpen...)
	b = strconv.AppendUint(b, n.Index, 10)
	b = append(b, l.nodeSize...)
	b = strconv.AppendUint(b, n.Size, 10)
	b = append(b, l.nodeHash...)
	b = hex.AppendEncode(b, n.Hash[:])
	return append(b, l.nodeClose...)
}

// node reads one proof node in l's form.
func (p *parser) node(l *layout) merkle.Node {
	var n merkle.Node
	p.expect(l.nodeOpen)
	n.Index = p.uint("a node's index")
	p.expect(l.nodeSize)
	n.Size = p.uint("a node's size")
	p.expect(l.nodeHash)
	p.hexInto("a node's hash", n.Hash[:])
	p.expect(l.nodeClose)
	return n
}

// emptyNodesClose is how an empty nodes array closes in either form.
const emptyNodesClose = "]"

func (r *Receipt) appendForm(b []byte, indented bool) []byte {
	l := &forms[0]
	if indented {
		l = &forms[1]
	}
	// Room for all of it at once: an answer's receipt is most of its bytes.
	b = slices.Grow(b, 400+base64.StdEncoding.EncodedLen(len(r.Entry))+len(r.Nodes)*(2*merkle.HashSize+100))
	b = append(b, l.format...)
	b = append(b, Format...)
	b = append(b, l.log...)
	b = hex.AppendEncode(b, r.Log)
	b = append(b, l.index...)
	b = strconv.AppendUint(b, r.Index, 10)
	b = append(b, l.length...)
	b = strconv.AppendUint(b, r.Length, 10)
	b = append(b, l.entry...)
	b = base64.StdEncoding.AppendEncode(b, r.Entry)
	b = append(b, l.nodes...)
	for i, n := range r.Nodes {
		if i > 0 {
			b = append(b, l.nodeSep...)
		}
		b = l.appendNode(b, n)
	}
	if len(r.Nodes) > 0 {
		b = append(b, l.nodesClose...)
	} else {
		b = append(b, emptyNodesClose...)
	}
	b = append(b, l.signature...)
	b = hex.AppendEncode(b, r.Signature)
	if r.Checkpoint != nil {
		b = append(b, l.checkpoint...)
		b = base64.StdEncoding.AppendEncode(b, r.Checkpoint)
	}
	return append(b, l.close...)
}

// Parse reads a receipt in the format Marshal writes. A receipt has two
// byte forms, the file form Marshal writes and the compact one MarshalJSON
// writes; Parse takes exactly those and refuses anything else with an
// error wrapping ErrMalformed (unknown or missing fields, another format
// version, hex that is not lowercase, other spacing, numbers with leading
// zeros, values out of the format's bounds), so that no edit of a
// receipt's bytes leaves it valid. Parse does not verify: call Verify.
func Parse(data []byte) (*Receipt, error) {
	if len(data) > MaxFile {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrMalformed, len(data), MaxFile)
	}
	l := &forms[0]
	if bytes.HasPrefix(data, []byte(forms[1].format)) {
		l = &forms[1]
	}
	p := parser{data: data}
	r := &Receipt{}
	p.expect(l.format)
	p.expect(Format)
	p.expect(l.log)
	r.Log = p.hex("log", ed25519.PublicKeySize)
	p.expect(l.index)
	r.Index = p.uint("index")
	p.expect(l.length)
	r.Length = p.uint("length")
	p.expect(l.entry)
	r.Entry = p.base64("entry")
	p.expect(l.nodes)
	if p.err == nil && p.pos < len(p.data) && p.data[p.pos] == ']' {
		p.expect(emptyNodesClose)
	} else {
		for p.err == nil {
			if len(r.Nodes) == maxNodes {
				p.fail("more than %d proof nodes", maxNodes)
				break
			}
			r.Nodes = append(r.Nodes, p.node(l))
			if p.err == nil && p.pos < len(p.data) && p.data[p.pos] == ',' {
				p.expect(l.nodeSep)
				continue
			}
			p.expect(l.nodesClose)
			break
		}
	}
	p.expect(l.signature)
	r.Signature = p.hex("signature", ed25519.SignatureSize)
	if p.err == nil && bytes.HasPrefix(p.data[p.pos:], []byte(l.checkpoint)) {
		p.expect(l.checkpoint)
		r.Checkpoint = p.base64("checkpoint")
		if p.err == nil && r.Checkpoint == nil {
			r.Checkpoint = []byte{}
		}
	}
	p.expect(l.close)
	if p.err == nil && p.pos != len(data) {
		p.fail("data after the receipt")
	}
	if p.err != nil {
		return nil, p.err
	}
	if r.Nodes == nil {
		r.Nodes = []merkle.Node{}
	}
	if err := r.check(); err != nil {
		return nil, err
	}
	return r, nil
}

// parser reads one form of a receipt; the first error sticks, and every
// later step is a no-op.
type parser struct {
	data []byte
	pos  int
	err  error
}

func (p *parser) fail(format string, args ...any) {
	if p.err == nil {
		p.err = fmt.Errorf("%w: at byte %d: %s", ErrMalformed, p.pos, fmt.Sprintf(format, args...))
	}
}

// expect consumes s, which must come next.
func (p *parser) expect(s string) {
	if p.err != nil {
		return
	}
	if !bytes.HasPrefix(p.data[p.pos:], []byte(s)) {
		p.fail("expected %q", s)
		return
	}
	p.pos += len(s)
}

// isBase64 reports whether c is in standard base64's alphabet, padding
// included. (The decoder itself skips line breaks, which the format does
// not allow.)
func isBase64(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '+' || c == '/' || c == '='
}

// hex reads size bytes of lowercase hex.
func (p *parser) hex(what string, size int) []byte {
	b := make([]byte, size)
	p.hexInto(what, b)
	return b
}

// hexInto reads len(dst) bytes of lowercase hex into dst.
func (p *parser) hexInto(what string, dst []byte) {
	if p.err != nil {
		return
	}
	n := 2 * len(dst)
	if len(p.data)-p.pos < n+1 || p.data[p.pos+n] != '"' {
		p.fail("%s is not %d bytes of lowercase hex", what, len(dst))
		return
	}
	s := p.data[p.pos : p.pos+n]
	// hex.Decode refuses what is not hex; of the rest, only A to F are not
	// lowercase.
	upper := false
	for _, c := range s {
		upper = upper || c-'A' < 6
	}
	if _, err := hex.Decode(dst, s); err != nil || upper {
		p.fail("%s is not %d bytes of lowercase hex", what, len(dst))
		return
	}
	p.pos += n
}

// strictBase64 is standard, padded base64 that refuses non-zero padding
// bits, so that each byte string has one form. It is never changed.
var strictBase64 = base64.StdEncoding.Strict()

// base64 reads standard, padded base64, up to the next '"'.
func (p *parser) base64(what string) []byte {
	if p.err != nil {
		return nil
	}
	start := p.pos
	for p.pos < len(p.data) && p.data[p.pos] != '"' {
		if !isBase64(p.data[p.pos]) {
			p.fail("unexpected %q", p.data[p.pos])
			return nil
		}
		p.pos++
	}
	s := p.data[start:p.pos]
	b := make([]byte, strictBase64.DecodedLen(len(s)))
	n, err := strictBase64.Decode(b, s)
	if err != nil {
		p.fail("%s: %v", what, err)
		return nil
	}
	return b[:n]
}

// uint reads a decimal number as JSON writes it: no sign, no leading
// zero, no fraction or exponent.
func (p *parser) uint(what string) uint64 {
	if p.err != nil {
		return 0
	}
	start := p.pos
	var n uint64
	overflow := false
	for ; p.pos < len(p.data) && '0' <= p.data[p.pos] && p.data[p.pos] <= '9'; p.pos++ {
		d := uint64(p.data[p.pos] - '0')
		if n > (math.MaxUint64-d)/10 {
			overflow = true
		}
		n = n*10 + d
	}
	if digits := p.pos - start; digits == 0 || overflow || digits > 1 && p.data[start] == '0' {
		p.pos = start
		p.fail("%s is not a number from 0 to 2^64-1", what)
		return 0
	}
	return n
}
