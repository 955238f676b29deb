package wire

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// Type is a message type: the low four bits of a frame's header.
type Type uint8

// Message types of hypercore-protocol 6.
const (
	TypeFeed      Type = 0
	TypeHandshake Type = 1
	TypeInfo      Type = 2
	TypeHave      Type = 3
	TypeUnhave    Type = 4
	TypeWant      Type = 5
	TypeUnwant    Type = 6
	TypeRequest   Type = 7
	TypeCancel    Type = 8
	TypeData      Type = 9
	TypeExtension Type = 15
)

var typeNames = map[Type]string{
	TypeFeed: "Feed", TypeHandshake: "Handshake", TypeInfo: "Info", TypeHave: "Have",
	TypeUnhave: "Unhave", TypeWant: "Want", TypeUnwant: "Unwant", TypeRequest: "Request",
	TypeCancel: "Cancel", TypeData: "Data", TypeExtension: "Extension",
}

func (t Type) String() string {
	if n, ok := typeNames[t]; ok {
		return n
	}
	return fmt.Sprintf("Type(%d)", uint8(t))
}

// ErrMessage reports a message body that does not decode.
var ErrMessage = errors.New("wire: invalid message")

// A Message is one of the protocol's messages. Optional scalar fields are
// pointers and optional byte fields nil when absent, so that a message
// encodes to exactly the fields that were set, as the reference's encoder
// writes them (every set field in schema order, false and 0 included).
type Message interface {
	Type() Type
	// AppendBody appends the message's protobuf encoding.
	AppendBody(b []byte) []byte
}

// Uint64 returns a pointer to v, for optional fields.
func Uint64(v uint64) *uint64 { return &v }

// Bool returns a pointer to v, for optional fields.
func Bool(v bool) *bool { return &v }

// Feed opens a channel for the feed with the given discovery key. The first
// Feed a side sends carries the nonce of its encryption.
type Feed struct {
	DiscoveryKey []byte // required, 32 bytes
	Nonce        []byte // 24 bytes, or nil
}

// Handshake is sent once, on the first channel.
type Handshake struct {
	ID         []byte
	Live       *bool
	UserData   []byte
	Extensions []string
	Ack        *bool
}

// Info tells the peer whether this side is uploading and downloading.
type Info struct {
	Uploading   *bool
	Downloading *bool
}

// Have announces blocks this side has: Length blocks from Start, or, with
// Bitfield, the run-length encoded bits of the range.
type Have struct {
	Start    uint64
	Length   *uint64 // absent means 1
	Bitfield []byte
	Ack      *bool
}

// Unhave withdraws blocks announced by Have.
type Unhave struct {
	Start  uint64
	Length *uint64 // absent means 1
}

// Want asks the peer to announce what it has in a range.
type Want struct {
	Start  uint64
	Length *uint64 // absent means to the end
}

// Unwant withdraws a Want.
type Unwant struct {
	Start  uint64
	Length *uint64
}

// Request asks for a block (or, with Hash, its tree node only), saying in
// Nodes which proof nodes the requester has (see hypercore.Feed.Digest).
type Request struct {
	Index uint64
	Bytes *uint64
	Hash  *bool
	Nodes *uint64
}

// Cancel withdraws a Request.
type Cancel struct {
	Index uint64
	Bytes *uint64
	Hash  *bool
}

// Node is a tree node in a Data message.
type Node struct {
	Index uint64
	Hash  []byte
	Size  uint64
}

// Data carries a block with its proof.
type Data struct {
	Index     uint64
	Value     []byte
	Nodes     []Node
	Signature []byte
}

// Extension is a message of an extension both sides named in their
// handshakes: ID indexes the sender's sorted extension names.
type Extension struct {
	ID      uint64
	Payload []byte
}

func (*Feed) Type() Type      { return TypeFeed }
func (*Handshake) Type() Type { return TypeHandshake }
func (*Info) Type() Type      { return TypeInfo }
func (*Have) Type() Type      { return TypeHave }
func (*Unhave) Type() Type    { return TypeUnhave }
func (*Want) Type() Type      { return TypeWant }
func (*Unwant) Type() Type    { return TypeUnwant }
func (*Request) Type() Type   { return TypeRequest }
func (*Cancel) Type() Type    { return TypeCancel }
func (*Data) Type() Type      { return TypeData }
func (*Extension) Type() Type { return TypeExtension }

// Encoding helpers: each appends a field if it is set.

func appendVarintField(b []byte, num protowire.Number, v uint64) []byte {
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

func appendOptUint(b []byte, num protowire.Number, v *uint64) []byte {
	if v == nil {
		return b
	}
	return appendVarintField(b, num, *v)
}

func appendOptBool(b []byte, num protowire.Number, v *bool) []byte {
	if v == nil {
		return b
	}
	return appendVarintField(b, num, protowire.EncodeBool(*v))
}

func appendOptBytes(b []byte, num protowire.Number, v []byte) []byte {
	if v == nil {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

func (m *Feed) AppendBody(b []byte) []byte {
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendBytes(b, m.DiscoveryKey)
	return appendOptBytes(b, 2, m.Nonce)
}

func (m *Handshake) AppendBody(b []byte) []byte {
	b = appendOptBytes(b, 1, m.ID)
	b = appendOptBool(b, 2, m.Live)
	b = appendOptBytes(b, 3, m.UserData)
	for _, e := range m.Extensions {
		b = protowire.AppendTag(b, 4, protowire.BytesType)
		b = protowire.AppendString(b, e)
	}
	return appendOptBool(b, 5, m.Ack)
}

func (m *Info) AppendBody(b []byte) []byte {
	b = appendOptBool(b, 1, m.Uploading)
	return appendOptBool(b, 2, m.Downloading)
}

func (m *Have) AppendBody(b []byte) []byte {
	b = appendVarintField(b, 1, m.Start)
	b = appendOptUint(b, 2, m.Length)
	b = appendOptBytes(b, 3, m.Bitfield)
	return appendOptBool(b, 4, m.Ack)
}

func (m *Unhave) AppendBody(b []byte) []byte {
	b = appendVarintField(b, 1, m.Start)
	return appendOptUint(b, 2, m.Length)
}

func (m *Want) AppendBody(b []byte) []byte {
	b = appendVarintField(b, 1, m.Start)
	return appendOptUint(b, 2, m.Length)
}

func (m *Unwant) AppendBody(b []byte) []byte {
	b = appendVarintField(b, 1, m.Start)
	return appendOptUint(b, 2, m.Length)
}

func (m *Request) AppendBody(b []byte) []byte {
	b = appendVarintField(b, 1, m.Index)
	b = appendOptUint(b, 2, m.Bytes)
	b = appendOptBool(b, 3, m.Hash)
	return appendOptUint(b, 4, m.Nodes)
}

func (m *Cancel) AppendBody(b []byte) []byte {
	b = appendVarintField(b, 1, m.Index)
	b = appendOptUint(b, 2, m.Bytes)
	return appendOptBool(b, 3, m.Hash)
}

func (m *Data) AppendBody(b []byte) []byte {
	b = appendVarintField(b, 1, m.Index)
	b = appendOptBytes(b, 2, m.Value)
	for _, n := range m.Nodes {
		// The node's body is written in place, after its size: no buffer
		// per node.
		size := 1 + protowire.SizeVarint(n.Index) + 1 + protowire.SizeBytes(len(n.Hash)) + 1 + protowire.SizeVarint(n.Size)
		b = protowire.AppendTag(b, 3, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(size))
		b = appendVarintField(b, 1, n.Index)
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = protowire.AppendBytes(b, n.Hash)
		b = appendVarintField(b, 3, n.Size)
	}
	return appendOptBytes(b, 4, m.Signature)
}

func (m *Extension) AppendBody(b []byte) []byte {
	b = protowire.AppendVarint(b, m.ID)
	return append(b, m.Payload...)
}

// field is one decoded protobuf field: v holds a varint field's value, bs a
// length-delimited field's bytes.
type field struct {
	num protowire.Number
	typ protowire.Type
	v   uint64
	bs  []byte
}

// nextField decodes the first field of body and returns the rest. Fields of
// other wire types are consumed and returned with neither v nor bs, so that
// unknown fields are skipped, as the reference's decoder does.
func nextField(body []byte) (field, []byte, error) {
	num, typ, n := protowire.ConsumeTag(body)
	if n < 0 {
		return field{}, nil, fmt.Errorf("%w: %v", ErrMessage, protowire.ParseError(n))
	}
	body = body[n:]
	f := field{num: num, typ: typ}
	switch typ {
	case protowire.VarintType:
		f.v, n = protowire.ConsumeVarint(body)
	case protowire.BytesType:
		f.bs, n = protowire.ConsumeBytes(body)
	default:
		n = protowire.ConsumeFieldValue(num, typ, body)
	}
	if n < 0 {
		return field{}, nil, fmt.Errorf("%w: field %d: %v", ErrMessage, num, protowire.ParseError(n))
	}
	return f, body[n:], nil
}

// expect checks that a known field arrived with the wire type its schema
// gives it.
func (f field) expect(want protowire.Type) error {
	if f.typ != want {
		return fmt.Errorf("%w: field %d has wire type %d, want %d", ErrMessage, f.num, f.typ, want)
	}
	return nil
}

func missing(name string) error { return fmt.Errorf("%w: %s is required", ErrMessage, name) }

const (
	varint = protowire.VarintType
	bytesT = protowire.BytesType
)

// Decode decodes the body of a message of type t. Byte fields of the result
// alias body.
func Decode(t Type, body []byte) (Message, error) {
	switch t {
	case TypeFeed:
		return decodeFeed(body)
	case TypeHandshake:
		return decodeHandshake(body)
	case TypeInfo:
		return decodeInfo(body)
	case TypeHave:
		return decodeHave(body)
	case TypeUnhave, TypeWant, TypeUnwant:
		return decodeRange(t, body)
	case TypeRequest, TypeCancel:
		return decodeRequest(t, body)
	case TypeData:
		return decodeData(body)
	case TypeExtension:
		id, n := protowire.ConsumeVarint(body)
		if n < 0 {
			return nil, fmt.Errorf("%w: extension id: %v", ErrMessage, protowire.ParseError(n))
		}
		return &Extension{ID: id, Payload: body[n:]}, nil
	}
	return nil, fmt.Errorf("%w: unknown type %d", ErrMessage, t)
}

func decodeFeed(body []byte) (*Feed, error) {
	m := &Feed{}
	for len(body) > 0 {
		f, rest, err := nextField(body)
		if err != nil {
			return nil, err
		}
		body = rest
		switch f.num {
		case 1:
			m.DiscoveryKey, err = f.bs, f.expect(bytesT)
		case 2:
			m.Nonce, err = f.bs, f.expect(bytesT)
		}
		if err != nil {
			return nil, err
		}
	}
	if m.DiscoveryKey == nil {
		return nil, missing("Feed.discoveryKey")
	}
	return m, nil
}

func decodeHandshake(body []byte) (*Handshake, error) {
	m := &Handshake{}
	for len(body) > 0 {
		f, rest, err := nextField(body)
		if err != nil {
			return nil, err
		}
		body = rest
		switch f.num {
		case 1:
			m.ID, err = f.bs, f.expect(bytesT)
		case 2:
			m.Live, err = Bool(protowire.DecodeBool(f.v)), f.expect(varint)
		case 3:
			m.UserData, err = f.bs, f.expect(bytesT)
		case 4:
			m.Extensions, err = append(m.Extensions, string(f.bs)), f.expect(bytesT)
		case 5:
			m.Ack, err = Bool(protowire.DecodeBool(f.v)), f.expect(varint)
		}
		if err != nil {
			return nil, err
		}
	}
	return m, nil
}

func decodeInfo(body []byte) (*Info, error) {
	m := &Info{}
	for len(body) > 0 {
		f, rest, err := nextField(body)
		if err != nil {
			return nil, err
		}
		body = rest
		switch f.num {
		case 1:
			m.Uploading, err = Bool(protowire.DecodeBool(f.v)), f.expect(varint)
		case 2:
			m.Downloading, err = Bool(protowire.DecodeBool(f.v)), f.expect(varint)
		}
		if err != nil {
			return nil, err
		}
	}
	return m, nil
}

func decodeHave(body []byte) (*Have, error) {
	m := &Have{}
	var start bool
	for len(body) > 0 {
		f, rest, err := nextField(body)
		if err != nil {
			return nil, err
		}
		body = rest
		switch f.num {
		case 1:
			m.Start, start, err = f.v, true, f.expect(varint)
		case 2:
			m.Length, err = Uint64(f.v), f.expect(varint)
		case 3:
			m.Bitfield, err = f.bs, f.expect(bytesT)
		case 4:
			m.Ack, err = Bool(protowire.DecodeBool(f.v)), f.expect(varint)
		}
		if err != nil {
			return nil, err
		}
	}
	if !start {
		return nil, missing("Have.start")
	}
	return m, nil
}

// decodeRange decodes Unhave, Want and Unwant, which share their fields.
func decodeRange(t Type, body []byte) (Message, error) {
	var start uint64
	var length *uint64
	var found bool
	for len(body) > 0 {
		f, rest, err := nextField(body)
		if err != nil {
			return nil, err
		}
		body = rest
		switch f.num {
		case 1:
			start, found, err = f.v, true, f.expect(varint)
		case 2:
			length, err = Uint64(f.v), f.expect(varint)
		}
		if err != nil {
			return nil, err
		}
	}
	if !found {
		return nil, missing(t.String() + ".start")
	}
	switch t {
	case TypeUnhave:
		return &Unhave{Start: start, Length: length}, nil
	case TypeWant:
		return &Want{Start: start, Length: length}, nil
	}
	return &Unwant{Start: start, Length: length}, nil
}

// decodeRequest decodes Request and Cancel, which share their fields. The
// optional fields point into one allocation with the message.
func decodeRequest(t Type, body []byte) (Message, error) {
	var v struct {
		index, bytes, nodes uint64
		hash                bool
		m                   Request
	}
	var found bool
	for len(body) > 0 {
		f, rest, err := nextField(body)
		if err != nil {
			return nil, err
		}
		body = rest
		switch f.num {
		case 1:
			v.index, found, err = f.v, true, f.expect(varint)
		case 2:
			v.bytes, v.m.Bytes, err = f.v, &v.bytes, f.expect(varint)
		case 3:
			v.hash, v.m.Hash, err = protowire.DecodeBool(f.v), &v.hash, f.expect(varint)
		case 4:
			if t == TypeRequest {
				v.nodes, v.m.Nodes, err = f.v, &v.nodes, f.expect(varint)
			}
		}
		if err != nil {
			return nil, err
		}
	}
	if !found {
		return nil, missing(t.String() + ".index")
	}
	v.m.Index = v.index
	if t == TypeRequest {
		return &v.m, nil
	}
	return &Cancel{Index: v.m.Index, Bytes: v.m.Bytes, Hash: v.m.Hash}, nil
}

func decodeData(body []byte) (*Data, error) {
	m := &Data{}
	var found bool
	for len(body) > 0 {
		f, rest, err := nextField(body)
		if err != nil {
			return nil, err
		}
		body = rest
		switch f.num {
		case 1:
			m.Index, found, err = f.v, true, f.expect(varint)
		case 2:
			m.Value, err = f.bs, f.expect(bytesT)
		case 3:
			if err = f.expect(bytesT); err != nil {
				return nil, err
			}
			var n Node
			if n, err = decodeNode(f.bs); err != nil {
				return nil, err
			}
			if m.Nodes == nil {
				m.Nodes = make([]Node, 0, 16) // proofs are up to a few dozen nodes
			}
			m.Nodes = append(m.Nodes, n)
		case 4:
			m.Signature, err = f.bs, f.expect(bytesT)
		}
		if err != nil {
			return nil, err
		}
	}
	if !found {
		return nil, missing("Data.index")
	}
	return m, nil
}

func decodeNode(b []byte) (Node, error) {
	// Fast path: the canonical encoding every peer writes (index, a 32-byte
	// hash, size, in that order). Anything else takes the general path.
	if len(b) > 0 && b[0] == 0x08 {
		if idx, k := protowire.ConsumeVarint(b[1:]); k > 0 {
			rest := b[1+k:]
			if len(rest) >= 35 && rest[0] == 0x12 && rest[1] == 32 && rest[34] == 0x18 {
				if size, k := protowire.ConsumeVarint(rest[35:]); k > 0 && 35+k == len(rest) {
					return Node{Index: idx, Hash: rest[2:34:34], Size: size}, nil
				}
			}
		}
	}
	var n Node
	var index, hash, size bool
	for len(b) > 0 {
		f, rest, err := nextField(b)
		if err != nil {
			return Node{}, err
		}
		b = rest
		switch f.num {
		case 1:
			n.Index, index, err = f.v, true, f.expect(varint)
		case 2:
			n.Hash, hash, err = f.bs, true, f.expect(bytesT)
		case 3:
			n.Size, size, err = f.v, true, f.expect(varint)
		}
		if err != nil {
			return Node{}, err
		}
	}
	if !(index && hash && size) {
		return Node{}, missing("Data.Node index, hash and size")
	}
	return n, nil
}
