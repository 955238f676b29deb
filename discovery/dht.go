package discovery

import (
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"time"
)

// DefaultBootstrap are the DHT bootstrap nodes of the Dat tools
// (dat-swarm-defaults).
var DefaultBootstrap = []string{
	"bootstrap1.datprotocol.com:6881",
	"bootstrap2.datprotocol.com:6881",
	"bootstrap3.datprotocol.com:6881",
	"bootstrap4.datprotocol.com:6881",
}

// DHTConfig configures a DHT node.
type DHTConfig struct {
	// Addr is the UDP address to listen on (default 0.0.0.0:0, any port).
	Addr string
	// Bootstrap are the nodes (host:port) a node starts from; the Dat tools'
	// are DefaultBootstrap. None makes a node that others bootstrap from.
	Bootstrap []string
	// StatePath, if set, is a file that keeps the routing table between
	// runs: read at start (its nodes are asked first), written at Close.
	StatePath string
	// Found is told the peers found for keys looked up or announced.
	Found Found
	// Local are this machine's addresses (default: its interfaces'), as
	// for MDNSConfig.
	Local []netip.Addr
	// Interval is the first wait between lookups of a key; it doubles up to
	// MaxInterval (defaults 5 s and 10 min: discovery-channel looks again
	// every 10 to 15 minutes).
	Interval, MaxInterval time.Duration
	// QueriesPerSecond bounds the queries answered for any one address
	// (default 50).
	QueriesPerSecond int
}

// DHT is a node of the BitTorrent mainline DHT (BEP 5), as bittorrent-dht
// runs one for discovery-channel: it answers ping, find_node, get_peers and
// announce_peer, and looks keys up (get_peers, walking towards the info
// hash) and announces them (announce_peer to the closest nodes, with the
// tokens they gave). A discovery key's info hash is its first 20 bytes
// (discovery-channel with hash: false).
type DHT struct {
	conn *net.UDPConn
	cfg  DHTConfig
	id   NodeID

	mu      sync.Mutex
	table   [NodeIDSize*8 + 1][]Node // by bucketIndex from id, each at most bucketSize
	peers   map[NodeID][]netip.AddrPort
	secrets [2][20]byte
	rotated time.Time
	pending map[uint16]*dhtCall
	nextTID uint16
	keys    map[NodeID]*joinedKey
	askers  map[netip.Addr]*bucket
	boot    []Node // bootstrap nodes and the saved table's (id unknown or not)
	closed  bool
	wg      sync.WaitGroup
	stop    context.CancelFunc
	ctx     context.Context
}

type dhtCall struct {
	to    netip.AddrPort
	reply chan *krpcMessage
}

// Bounds of a node's tables.
const (
	bucketSize       = 8 // BEP 5's K
	maxInfoHashes    = 1000
	maxPeersPerHash  = 100
	maxValuesAnswer  = 50
	lookupAlpha      = 4   // queries in flight in a lookup
	maxLookupQueries = 128 // queries one lookup sends at most
	queryTimeout     = 2 * time.Second
)

// ErrDHTClosed is the error of a query on a closed node.
var ErrDHTClosed = errors.New("discovery: the DHT node is closed")

// ListenDHT starts a DHT node and bootstraps it in the background.
func ListenDHT(cfg DHTConfig) (*DHT, error) {
	if cfg.Addr == "" {
		cfg.Addr = "0.0.0.0:0"
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 5 * time.Second
	}
	if cfg.MaxInterval <= 0 {
		cfg.MaxInterval = 10 * time.Minute
	}
	if cfg.QueriesPerSecond <= 0 {
		cfg.QueriesPerSecond = 50
	}
	if cfg.Local == nil {
		cfg.Local = localAddrs()
	}
	addr, err := net.ResolveUDPAddr("udp4", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("discovery: DHT address: %w", err)
	}
	conn, err := net.ListenUDP("udp4", addr)
	if err != nil {
		return nil, fmt.Errorf("discovery: DHT: %w", err)
	}
	d := &DHT{
		conn: conn, cfg: cfg,
		peers: map[NodeID][]netip.AddrPort{}, pending: map[uint16]*dhtCall{},
		keys: map[NodeID]*joinedKey{}, askers: map[netip.Addr]*bucket{}, rotated: time.Now(),
	}
	rand.Read(d.id[:])
	rand.Read(d.secrets[0][:])
	d.secrets[1] = d.secrets[0]
	d.ctx, d.stop = context.WithCancel(context.Background())
	for _, b := range cfg.Bootstrap {
		// A name that does not resolve now is skipped, not fatal: the
		// others, and the saved table, may do.
		if a, err := net.ResolveUDPAddr("udp4", b); err == nil {
			if ap, ok := netip.AddrFromSlice(a.IP.To4()); ok {
				d.boot = append(d.boot, Node{Addr: netip.AddrPortFrom(ap, uint16(a.Port))})
			}
		}
	}
	if cfg.StatePath != "" {
		if b, err := os.ReadFile(cfg.StatePath); err == nil {
			d.boot = append(d.boot, parseCompactNodes(b)...)
		}
	}
	d.wg.Add(2)
	go d.receive()
	go func() {
		defer d.wg.Done()
		d.lookup(d.ctx, d.id, 0, "find_node") // fill the table
	}()
	return d, nil
}

// Addr is the node's UDP address.
func (d *DHT) Addr() netip.AddrPort { return d.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

// ID is the node's id.
func (d *DHT) ID() NodeID { return d.id }

// Announce announces the peer at port for discoveryKey, and looks its other
// peers up, now and then ever less often, until Leave or Close.
func (d *DHT) Announce(discoveryKey []byte, port uint16) { d.join(discoveryKey, port) }

// Lookup looks the peers of discoveryKey up, now and then ever less often,
// until Leave or Close.
func (d *DHT) Lookup(discoveryKey []byte) { d.join(discoveryKey, 0) }

func (d *DHT) join(discoveryKey []byte, port uint16) {
	var ih NodeID
	copy(ih[:], discoveryKey)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return
	}
	k, ctx := rejoin(d.ctx, d.keys[ih], discoveryKey, port)
	d.keys[ih] = k
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		every(ctx, d.cfg.Interval, d.cfg.MaxInterval, func() { d.lookup(ctx, ih, k.port, "get_peers") })
	}()
}

// Leave stops announcing and looking up discoveryKey.
func (d *DHT) Leave(discoveryKey []byte) {
	var ih NodeID
	copy(ih[:], discoveryKey)
	d.mu.Lock()
	defer d.mu.Unlock()
	if k := d.keys[ih]; k != nil {
		k.cancel()
		delete(d.keys, ih)
	}
}

// Close stops the node, and writes its routing table to StatePath.
func (d *DHT) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	var nodes []Node
	for _, b := range d.table {
		nodes = append(nodes, b...)
	}
	d.mu.Unlock()
	d.stop()
	err := d.conn.Close()
	d.wg.Wait()
	if d.cfg.StatePath != "" && len(nodes) > 0 {
		err = errors.Join(err, writeAtomically(d.cfg.StatePath, compactNodes(nodes)))
	}
	return err
}

func writeAtomically(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func (d *DHT) receive() {
	defer d.wg.Done()
	buf := make([]byte, maxKRPCSize+1)
	for {
		n, from, err := d.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if d.ctx.Err() != nil {
				return
			}
			continue
		}
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		m, err := parseKRPC(buf[:n])
		if err != nil || from.Port() == 0 {
			continue
		}
		switch m.Y {
		case "q":
			d.answer(m, from)
		case "r", "e":
			d.deliver(m, from)
		}
	}
}

// deliver hands a response to the query that waits for it: the same
// transaction id, from the address queried.
func (d *DHT) deliver(m *krpcMessage, from netip.AddrPort) {
	if len(m.T) != 2 {
		return
	}
	tid := binary.BigEndian.Uint16(m.T)
	d.mu.Lock()
	c := d.pending[tid]
	if c == nil || c.to != from {
		d.mu.Unlock()
		return
	}
	delete(d.pending, tid)
	if m.Y == "r" {
		d.addNodeLocked(Node{ID: *m.ID, Addr: from})
	}
	d.mu.Unlock()
	c.reply <- m
}

// query sends a query and waits for its answer.
func (d *DHT) query(ctx context.Context, to netip.AddrPort, method string, args map[string]bvalue) (*krpcMessage, error) {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil, ErrDHTClosed
	}
	d.nextTID++
	if d.nextTID == 0 {
		d.nextTID = 1
	}
	for d.pending[d.nextTID] != nil {
		d.nextTID++
	}
	tid := d.nextTID
	c := &dhtCall{to: to, reply: make(chan *krpcMessage, 1)}
	d.pending[tid] = c
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		if d.pending[tid] == c {
			delete(d.pending, tid)
		}
		d.mu.Unlock()
	}()
	args["id"] = d.id[:]
	t := binary.BigEndian.AppendUint16(nil, tid)
	if _, err := d.conn.WriteToUDPAddrPort(krpcQuery(t, method, args), to); err != nil {
		return nil, err
	}
	timer := time.NewTimer(queryTimeout)
	defer timer.Stop()
	select {
	case m := <-c.reply:
		if m.Y == "e" {
			return nil, fmt.Errorf("discovery: %s at %s: error %d %s", method, to, m.ErrCode, m.ErrMsg)
		}
		return m, nil
	case <-timer.C:
		return nil, fmt.Errorf("discovery: %s at %s: no answer", method, to)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// lookup walks towards target, querying (method find_node or get_peers)
// the closest nodes it knows and learning closer ones from their answers,
// lookupAlpha queries in flight; values found are reported as they come.
// It ends when the bucketSize closest nodes known have all been asked.
// With a port, it then announces the peer to the closest nodes that gave a
// token.
func (d *DHT) lookup(ctx context.Context, target NodeID, port uint16, method string) {
	type candidate struct {
		node    Node
		idKnown bool // bootstrap nodes' ids are learnt from their answers
	}
	type answer struct {
		from netip.AddrPort
		m    *krpcMessage // nil: no answer
	}
	d.mu.Lock()
	var cands []candidate
	for _, n := range d.closestLocked(target, 2*bucketSize) {
		cands = append(cands, candidate{n, true})
	}
	for _, n := range d.boot {
		cands = append(cands, candidate{n, n.ID != NodeID{}})
	}
	d.mu.Unlock()
	queried := map[netip.AddrPort]bool{}
	type responder struct {
		node  Node
		token []byte
	}
	var responders []responder
	answers := make(chan answer, lookupAlpha)
	inflight, sent := 0, 0
	ask := func(n Node) {
		queried[n.Addr] = true
		inflight++
		sent++
		go func() {
			args := map[string]bvalue{}
			if method == "find_node" {
				args["target"] = target[:]
			} else {
				args["info_hash"] = target[:]
			}
			m, err := d.query(ctx, n.Addr, method, args)
			if err != nil {
				m = nil
			}
			answers <- answer{n.Addr, m}
		}()
	}
	byDistance := func(a, b candidate) int {
		switch {
		case a.idKnown != b.idKnown: // unknown ids (bootstrap nodes) first
			if !a.idKnown {
				return -1
			}
			return 1
		case closer(target, a.node.ID, b.node.ID):
			return -1
		case closer(target, b.node.ID, a.node.ID):
			return 1
		}
		return 0
	}
	for {
		// Ask the closest not yet asked, while there is room: only the
		// bucketSize closest known nodes matter.
		slices.SortStableFunc(cands, byDistance)
		known := 0
		for _, c := range cands {
			if inflight >= lookupAlpha || sent >= maxLookupQueries || ctx.Err() != nil {
				break
			}
			if c.idKnown {
				if known++; known > bucketSize {
					break
				}
			}
			if !queried[c.node.Addr] {
				ask(c.node)
			}
		}
		if inflight == 0 {
			break
		}
		a := <-answers
		inflight--

		if a.m == nil {
			cands = slices.DeleteFunc(cands, func(c candidate) bool { return c.node.Addr == a.from })
			continue
		}
		id := *a.m.ID
		for i := range cands {
			if cands[i].node.Addr == a.from {
				cands[i] = candidate{Node{ID: id, Addr: a.from}, true}
			}
		}
		if a.m.Token != nil {
			responders = append(responders, responder{Node{ID: id, Addr: a.from}, a.m.Token})
		}
		for _, nn := range a.m.Nodes {
			if nn.ID != d.id && !queried[nn.Addr] && len(cands) < 4*maxNodesTaken {
				cands = append(cands, candidate{nn, true})
			}
		}
		if method == "get_peers" {
			d.report(target, a.m.Values)
		}
	}
	if port == 0 || ctx.Err() != nil {
		return
	}
	slices.SortFunc(responders, func(a, b responder) int {
		switch {
		case closer(target, a.node.ID, b.node.ID):
			return -1
		case closer(target, b.node.ID, a.node.ID):
			return 1
		}
		return 0
	})
	var wg sync.WaitGroup
	for _, r := range responders[:min(len(responders), bucketSize)] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.query(ctx, r.node.Addr, "announce_peer", map[string]bvalue{
				"info_hash": target[:], "port": int(port), "implied_port": 0, "token": r.token,
			})
		}()
	}
	wg.Wait()
}

// report tells Found the peers a lookup found for target, but this node.
func (d *DHT) report(target NodeID, peers []netip.AddrPort) {
	if d.cfg.Found == nil {
		return
	}
	d.mu.Lock()
	k := d.keys[target]
	var key []byte
	var ports []uint16
	if k != nil {
		key = k.key
	}
	for _, k := range d.keys {
		if k.port != 0 {
			ports = append(ports, k.port)
		}
	}
	d.mu.Unlock()
	if key == nil {
		return
	}
	for _, p := range peers {
		if p.Port() == 0 || isSelf(p, d.cfg.Local, ports) {
			continue
		}
		d.cfg.Found(key, p)
	}
}

// answer answers a query, within the asker's rate.
func (d *DHT) answer(m *krpcMessage, from netip.AddrPort) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := time.Now()
	if !allow(d.askers, from.Addr(), now, d.cfg.QueriesPerSecond) {
		return
	}
	if now.Sub(d.rotated) > 5*time.Minute {
		d.secrets[1] = d.secrets[0]
		rand.Read(d.secrets[0][:])
		d.rotated = now
	}
	d.addNodeLocked(Node{ID: *m.ID, Addr: from})
	var reply []byte
	switch m.Q {
	case "ping":
		reply = krpcResponse(m.T, map[string]bvalue{"id": d.id[:]})
	case "find_node":
		if m.Target == nil {
			reply = krpcError(m.T, 203, "find_node needs a target")
			break
		}
		reply = krpcResponse(m.T, map[string]bvalue{"id": d.id[:], "nodes": compactNodes(d.closestLocked(*m.Target, bucketSize))})
	case "get_peers":
		if m.InfoHash == nil {
			reply = krpcError(m.T, 203, "get_peers needs an info_hash")
			break
		}
		r := map[string]bvalue{"id": d.id[:], "token": d.tokenLocked(from.Addr(), 0)}
		if peers := d.peers[*m.InfoHash]; len(peers) > 0 {
			var values [][]byte
			for _, p := range peers[max(0, len(peers)-maxValuesAnswer):] {
				values = append(values, appendCompactPeer(nil, p))
			}
			r["values"] = values
		} else {
			r["nodes"] = compactNodes(d.closestLocked(*m.InfoHash, bucketSize))
		}
		reply = krpcResponse(m.T, r)
	case "announce_peer":
		port := m.Port
		if m.ImpliedPort {
			port = int(from.Port())
		}
		switch {
		case m.InfoHash == nil || port == 0:
			reply = krpcError(m.T, 203, "announce_peer needs an info_hash and a port")
		case string(m.Token) != string(d.tokenLocked(from.Addr(), 0)) && string(m.Token) != string(d.tokenLocked(from.Addr(), 1)):
			reply = krpcError(m.T, 203, "bad token")
		default:
			d.storePeerLocked(*m.InfoHash, netip.AddrPortFrom(from.Addr(), uint16(port)))
			reply = krpcResponse(m.T, map[string]bvalue{"id": d.id[:]})
		}
	default:
		reply = krpcError(m.T, 204, "method unknown")
	}
	d.conn.WriteToUDPAddrPort(reply, from)
}

// tokenLocked is the token for addr under secret i: what get_peers gives
// and announce_peer must bring back (from the same address, within two
// rotations of the secret).
func (d *DHT) tokenLocked(addr netip.Addr, i int) []byte {
	h := sha1.New()
	h.Write([]byte(addr.String()))
	h.Write(d.secrets[i][:])
	return h.Sum(nil)
}

func (d *DHT) storePeerLocked(ih NodeID, p netip.AddrPort) {
	peers, known := d.peers[ih]
	if !known && len(d.peers) >= maxInfoHashes {
		return // full: a new info hash waits for the table to shrink
	}
	peers = slices.DeleteFunc(peers, func(q netip.AddrPort) bool { return q == p })
	if len(peers) >= maxPeersPerHash {
		peers = peers[1:] // the oldest goes
	}
	d.peers[ih] = append(peers, p)
}

// addNodeLocked puts a node in its bucket, if there is room (a full bucket
// keeps the nodes it has: old nodes are the ones that stay up).
func (d *DHT) addNodeLocked(n Node) {
	if n.ID == d.id || !n.Addr.Addr().Is4() || n.Addr.Port() == 0 {
		return
	}
	i := bucketIndex(d.id, n.ID)
	b := d.table[i]
	for j := range b {
		if b[j].ID == n.ID {
			b[j].Addr = n.Addr
			return
		}
	}
	if len(b) < bucketSize {
		d.table[i] = append(b, n)
	}
}

// closestLocked returns the n known nodes closest to target.
func (d *DHT) closestLocked(target NodeID, n int) []Node {
	var all []Node
	for _, b := range d.table {
		all = append(all, b...)
	}
	slices.SortFunc(all, func(a, b Node) int {
		switch {
		case closer(target, a.ID, b.ID):
			return -1
		case closer(target, b.ID, a.ID):
			return 1
		}
		return 0
	})
	return all[:min(len(all), n)]
}

// Nodes is how many nodes the routing table holds.
func (d *DHT) Nodes() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, b := range d.table {
		n += len(b)
	}
	return n
}
