package discovery

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
)

// KRPC (BEP 5): the mainline DHT's messages, bencoded dictionaries over
// UDP. A query names a method and its arguments; a response or an error
// answers it under the same transaction id.

// NodeIDSize is the size of a DHT node id and of an info hash.
const NodeIDSize = 20

// NodeID is a DHT node's id, or an info hash: points of one 160-bit space.
type NodeID [NodeIDSize]byte

// Node is a DHT node: its id and UDP address.
type Node struct {
	ID   NodeID
	Addr netip.AddrPort
}

// Limits on what is taken from one message.
const (
	maxKRPCSize   = 2048 // a DHT message is far smaller; more is not one
	maxNodesTaken = 64   // compact nodes read from one response
	maxPeersTaken = 128  // peers read from one response's values
	maxTokenSize  = 64
)

// ErrKRPC is the error of a message that is not a KRPC message.
var ErrKRPC = errors.New("discovery: bad DHT message")

// krpcMessage is a decoded KRPC message: a query (Y "q"), a response ("r")
// or an error ("e").
type krpcMessage struct {
	T []byte // transaction id
	Y string
	// Query.
	Q string
	// Query arguments and response values, as far as this node uses them.
	ID          *NodeID
	Target      *NodeID // find_node
	InfoHash    *NodeID // get_peers, announce_peer
	Port        int     // announce_peer
	ImpliedPort bool    // announce_peer
	Token       []byte  // get_peers' answer; announce_peer's argument
	Nodes       []Node  // compact IPv4 nodes
	Values      []netip.AddrPort
	// Error.
	ErrCode int64
	ErrMsg  string
}

// parseKRPC decodes a KRPC message. Fields of a type other than expected are
// refused; fields this node does not use are ignored.
func parseKRPC(b []byte) (*krpcMessage, error) {
	if len(b) > maxKRPCSize {
		return nil, fmt.Errorf("%w: %d bytes", ErrKRPC, len(b))
	}
	v, err := decodeBencode(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKRPC, err)
	}
	top, ok := v.(map[string]bvalue)
	if !ok {
		return nil, fmt.Errorf("%w: not a dictionary", ErrKRPC)
	}
	m := &krpcMessage{}
	if m.T, ok = top["t"].([]byte); !ok || len(m.T) == 0 || len(m.T) > 8 {
		return nil, fmt.Errorf("%w: no transaction id", ErrKRPC)
	}
	// The decoded strings share b, which a reader reuses: what the message
	// keeps is copied.
	m.T = slices.Clone(m.T)
	y, _ := top["y"].([]byte)
	m.Y = string(y)
	var body map[string]bvalue
	switch m.Y {
	case "q":
		q, _ := top["q"].([]byte)
		m.Q = string(q)
		if body, ok = top["a"].(map[string]bvalue); !ok || m.Q == "" {
			return nil, fmt.Errorf("%w: a query without its method and arguments", ErrKRPC)
		}
	case "r":
		if body, ok = top["r"].(map[string]bvalue); !ok {
			return nil, fmt.Errorf("%w: a response without its values", ErrKRPC)
		}
	case "e":
		list, _ := top["e"].([]bvalue)
		if len(list) >= 1 {
			m.ErrCode, _ = list[0].(int64)
		}
		if len(list) >= 2 {
			msg, _ := list[1].([]byte)
			m.ErrMsg = string(msg[:min(len(msg), 200)])
		}
		return m, nil
	default:
		return nil, fmt.Errorf("%w: type %q", ErrKRPC, m.Y)
	}
	id := func(key string) (*NodeID, error) {
		raw, present := body[key]
		if !present {
			return nil, nil
		}
		b, ok := raw.([]byte)
		if !ok || len(b) != NodeIDSize {
			return nil, fmt.Errorf("%w: %s is not %d bytes", ErrKRPC, key, NodeIDSize)
		}
		n := NodeID(b)
		return &n, nil
	}
	if m.ID, err = id("id"); err != nil {
		return nil, err
	}
	if m.ID == nil {
		return nil, fmt.Errorf("%w: no node id", ErrKRPC)
	}
	if m.Target, err = id("target"); err != nil {
		return nil, err
	}
	if m.InfoHash, err = id("info_hash"); err != nil {
		return nil, err
	}
	if raw, present := body["port"]; present {
		p, ok := raw.(int64)
		if !ok || p < 0 || p > 65535 {
			return nil, fmt.Errorf("%w: port", ErrKRPC)
		}
		m.Port = int(p)
	}
	if p, ok := body["implied_port"].(int64); ok && p != 0 {
		m.ImpliedPort = true
	}
	if raw, present := body["token"]; present {
		t, ok := raw.([]byte)
		if !ok || len(t) > maxTokenSize {
			return nil, fmt.Errorf("%w: token", ErrKRPC)
		}
		m.Token = slices.Clone(t)
	}
	if raw, present := body["nodes"]; present {
		b, ok := raw.([]byte)
		if !ok {
			return nil, fmt.Errorf("%w: nodes", ErrKRPC)
		}
		m.Nodes = parseCompactNodes(b)
	}
	if raw, present := body["values"]; present {
		list, ok := raw.([]bvalue)
		if !ok {
			return nil, fmt.Errorf("%w: values", ErrKRPC)
		}
		for _, e := range list {
			if b, ok := e.([]byte); ok && len(b) == 6 && len(m.Values) < maxPeersTaken {
				m.Values = append(m.Values, compactPeer(b))
			}
		}
	}
	return m, nil
}

// parseCompactNodes reads BEP 5's compact node info: 26 bytes a node (id,
// IPv4 address, port). Nodes at port 0 and a trailing partial entry are
// skipped.
func parseCompactNodes(b []byte) []Node {
	var nodes []Node
	for i := 0; i+26 <= len(b) && len(nodes) < maxNodesTaken; i += 26 {
		p := compactPeer(b[i+20 : i+26])
		if p.Port() == 0 {
			continue
		}
		nodes = append(nodes, Node{ID: NodeID(b[i : i+20]), Addr: p})
	}
	return nodes
}

func compactPeer(b []byte) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[:4])), binary.BigEndian.Uint16(b[4:6]))
}

func appendCompactPeer(b []byte, p netip.AddrPort) []byte {
	ip := p.Addr().Unmap().As4()
	return binary.BigEndian.AppendUint16(append(b, ip[:]...), p.Port())
}

func compactNodes(nodes []Node) []byte {
	b := make([]byte, 0, 26*len(nodes))
	for _, n := range nodes {
		if !n.Addr.Addr().Unmap().Is4() {
			continue
		}
		b = appendCompactPeer(append(b, n.ID[:]...), n.Addr)
	}
	return b
}

// krpcQuery is a query's bencoding.
func krpcQuery(tid []byte, method string, args map[string]bvalue) []byte {
	return appendBencode(nil, map[string]bvalue{"t": tid, "y": "q", "q": method, "a": args})
}

// krpcResponse is a response's bencoding.
func krpcResponse(tid []byte, values map[string]bvalue) []byte {
	return appendBencode(nil, map[string]bvalue{"t": tid, "y": "r", "r": values})
}

// krpcError is an error's bencoding.
func krpcError(tid []byte, code int, msg string) []byte {
	return appendBencode(nil, map[string]bvalue{"t": tid, "y": "e", "e": []bvalue{code, msg}})
}

// distance is the XOR metric between two points.
func distance(a, b NodeID) NodeID {
	var d NodeID
	for i := range d {
		d[i] = a[i] ^ b[i]
	}
	return d
}

// closer reports whether a is closer to target than b.
func closer(target, a, b NodeID) bool {
	for i := range target {
		da, db := a[i]^target[i], b[i]^target[i]
		if da != db {
			return da < db
		}
	}
	return false
}

// bucketIndex is the number of leading bits that a and b share (160 for
// equal ids): the routing table's bucket for b, seen from a.
func bucketIndex(a, b NodeID) int {
	d := distance(a, b)
	for i, x := range d {
		if x != 0 {
			for bit := 0; bit < 8; bit++ {
				if x&(0x80>>bit) != 0 {
					return i*8 + bit
				}
			}
		}
	}
	return NodeIDSize * 8
}
