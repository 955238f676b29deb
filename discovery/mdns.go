package discovery

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"syscall"
	"time"

	"golang.org/x/net/ipv4"
)

// The multicast DNS group and port (RFC 6762), which multicast-dns uses.
var (
	MDNSGroup = netip.MustParseAddrPort("224.0.0.251:5353")
)

// PacketConn is what MDNS sends and receives on: a UDP socket joined to the
// group, or, in tests, a network of their own.
type PacketConn interface {
	ReadFrom(b []byte) (n int, from netip.AddrPort, err error)
	// WriteToGroup sends b to the group, at port.
	WriteToGroup(b []byte, port uint16) error
	Close() error
}

// Found is told each peer found for a discovery key (its first NameSize
// bytes, as named). It runs on the receiving goroutine and must not block.
type Found func(discoveryKey []byte, peer netip.AddrPort)

// MDNSConfig configures an MDNS node.
type MDNSConfig struct {
	// Conn is the socket; nil listens on the group (ListenMulticast).
	Conn PacketConn
	// Found is told the peers found for keys looked up or announced.
	Found Found
	// Interval is the first wait between queries for a key; it doubles up
	// to MaxInterval (defaults: 1 s and 60 s, which is what discovery-channel
	// waits between its own).
	Interval, MaxInterval time.Duration
	// Local are this machine's addresses (default: its interfaces'): a
	// peer at one of them, at a port this node announces, is this node.
	Local []netip.Addr
	// AnswersPerSecond bounds the responses sent to any one address (a
	// query can only make this node multicast to its own LAN, but a LAN
	// peer must not make it send without end). Default 20.
	AnswersPerSecond int
}

// MDNS finds and announces Dat peers on the local network by multicast
// DNS, as dns-discovery does for discovery-channel: a lookup or an
// announcement multicasts a TXT query for the key's Name; a node that
// announces the name answers with a TXT record listing itself (address
// 0.0.0.0, "mine", and its port).
type MDNS struct {
	conn   PacketConn
	cfg    MDNSConfig
	secret [32]byte

	mu        sync.Mutex
	keys      map[string]*joinedKey // by Name
	answered  map[netip.Addr]*bucket
	found     map[string]map[netip.AddrPort]bool // by Name, bounded
	closed    bool
	receiving sync.WaitGroup
}

// bucket is a token bucket of responses to one address.
type bucket struct {
	tokens float64
	last   time.Time
}

// maxFoundPerKey bounds the peers remembered per key (to report each once);
// maxAskers bounds the addresses whose responses are counted.
const (
	maxFoundPerKey = 256
	maxAskers      = 1024
)

// ListenMDNS starts an MDNS node: on cfg.Conn, or on a UDP socket joined to
// the multicast DNS group on every multicast interface.
func ListenMDNS(cfg MDNSConfig) (*MDNS, error) {
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.MaxInterval <= 0 {
		cfg.MaxInterval = time.Minute
	}
	if cfg.AnswersPerSecond <= 0 {
		cfg.AnswersPerSecond = 20
	}
	conn := cfg.Conn
	if conn == nil {
		var err error
		if conn, err = ListenMulticast(MDNSGroup); err != nil {
			return nil, err
		}
	}
	m := &MDNS{
		conn: conn, cfg: cfg,
		keys: map[string]*joinedKey{}, answered: map[netip.Addr]*bucket{}, found: map[string]map[netip.AddrPort]bool{},
	}
	if cfg.Local == nil {
		m.cfg.Local = localAddrs()
	}
	rand.Read(m.secret[:])
	m.receiving.Add(1)
	go m.receive()
	return m, nil
}

// Announce makes this node answer for discoveryKey with port, and look up
// its other peers, until Leave or Close.
func (m *MDNS) Announce(discoveryKey []byte, port uint16) { m.join(discoveryKey, port) }

// Lookup looks up peers of discoveryKey until Leave or Close: queries are
// sent at once and then ever less often.
func (m *MDNS) Lookup(discoveryKey []byte) { m.join(discoveryKey, 0) }

func (m *MDNS) join(discoveryKey []byte, port uint16) {
	name := Name(discoveryKey)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	k, ctx := rejoin(context.Background(), m.keys[name], discoveryKey, port)
	m.keys[name] = k
	go every(ctx, m.cfg.Interval, m.cfg.MaxInterval, func() {
		if q, err := Query(name); err == nil {
			m.conn.WriteToGroup(q, MDNSGroup.Port())
		}
	})
}

// Leave stops announcing and looking up discoveryKey.
func (m *MDNS) Leave(discoveryKey []byte) {
	name := Name(discoveryKey)
	m.mu.Lock()
	defer m.mu.Unlock()
	if k := m.keys[name]; k != nil {
		k.cancel()
		delete(m.keys, name)
	}
}

// Close stops the node and closes its socket.
func (m *MDNS) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	for _, k := range m.keys {
		k.cancel()
	}
	m.mu.Unlock()
	err := m.conn.Close()
	m.receiving.Wait()
	return err
}

func (m *MDNS) receive() {
	defer m.receiving.Done()
	buf := make([]byte, MaxMessageSize)
	for {
		n, from, err := m.conn.ReadFrom(buf)
		if err != nil {
			if m.isClosed() {
				return
			}
			// A datagram too large, say: read on.
			continue
		}
		msg, err := ParseMessage(buf[:n])
		if err != nil {
			continue // not ours to mend: multicast DNS carries all sorts
		}
		m.handle(msg, from)
	}
}

func (m *MDNS) isClosed() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.closed
}

// handle answers the questions for names this node announces, and reports
// the peers the message names for names it looks up or announces.
func (m *MDNS) handle(msg Message, from netip.AddrPort) {
	var answers []Answer
	type report struct {
		key  []byte
		peer netip.AddrPort
	}
	var reports []report
	m.mu.Lock()
	if !msg.Response {
		for _, q := range msg.Questions {
			if k := m.keys[q]; k != nil && k.port != 0 {
				answers = append(answers, Answer{Name: q, Peers: []netip.AddrPort{netip.AddrPortFrom(netip.IPv4Unspecified(), k.port)}})
			}
		}
	}
	for _, f := range msg.Found {
		k := m.keys[f.Name]
		if k == nil {
			continue
		}
		peer := f.Peer
		if peer.Addr().IsUnspecified() {
			peer = netip.AddrPortFrom(from.Addr().Unmap(), peer.Port())
		}
		if peer.Port() == 0 || !peer.Addr().Is4() || m.isSelfLocked(peer) {
			continue
		}
		seen := m.found[f.Name]
		if seen == nil {
			seen = map[netip.AddrPort]bool{}
			m.found[f.Name] = seen
		}
		if seen[peer] || len(seen) >= maxFoundPerKey {
			continue
		}
		seen[peer] = true
		reports = append(reports, report{k.key, peer})
	}
	allowed := len(answers) > 0 && allow(m.answered, from.Addr(), time.Now(), m.cfg.AnswersPerSecond)
	m.mu.Unlock()
	if allowed {
		if r, err := Response(token(m.secret[:], from.Addr().Unmap()), answers...); err == nil {
			m.conn.WriteToGroup(r, from.Port())
		}
	}
	if m.cfg.Found != nil {
		for _, r := range reports {
			m.cfg.Found(r.key, r.peer)
		}
	}
}

// isSelfLocked reports whether peer is this node: one of its addresses,
// at a port it announces.
func (m *MDNS) isSelfLocked(peer netip.AddrPort) bool {
	var ports []uint16
	for _, k := range m.keys {
		if k.port != 0 {
			ports = append(ports, k.port)
		}
	}
	return isSelf(peer, m.cfg.Local, ports)
}

// isSelf reports whether peer is at one of local (or loopback) and at one
// of ports.
func isSelf(peer netip.AddrPort, local []netip.Addr, ports []uint16) bool {
	if !slices.Contains(local, peer.Addr()) && !peer.Addr().IsLoopback() {
		return false
	}
	return slices.Contains(ports, peer.Port())
}

// localAddrs are this machine's interfaces' addresses.
func localAddrs() []netip.Addr {
	var local []netip.Addr
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			local = append(local, p.Addr().Unmap())
		}
	}
	return local
}

// allow takes a token from addr's bucket in askers, which refill at rate
// a second, if it has one. The table holds at most maxAskers addresses.
func allow(askers map[netip.Addr]*bucket, addr netip.Addr, now time.Time, rate int) bool {
	r := float64(rate)
	b := askers[addr]
	if b == nil {
		if len(askers) >= maxAskers {
			// Forget the full buckets' owners: only a burst of new
			// addresses fills the table, and they start full anyway.
			for a, old := range askers {
				if now.Sub(old.last).Seconds() >= 1 {
					delete(askers, a)
				}
			}
			if len(askers) >= maxAskers {
				return false
			}
		}
		b = &bucket{tokens: r, last: now}
		askers[addr] = b
	}
	b.tokens = min(r, b.tokens+now.Sub(b.last).Seconds()*r)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// udpGroupConn is a UDP socket joined to a multicast group.
type udpGroupConn struct {
	mu     sync.Mutex // one write at a time: each picks its interface
	conn   *net.UDPConn
	pc     *ipv4.PacketConn
	group  netip.Addr
	ifaces []net.Interface
}

// ListenMulticast binds group's port on every address (shared with other
// multicast DNS responders, as multicast-dns binds it), and joins group on
// every interface that is up and can multicast. It sends to the group on
// each of them, and hears its own packets (so that two programs on one
// machine find each other).
func ListenMulticast(group netip.AddrPort) (PacketConn, error) {
	lc := net.ListenConfig{Control: func(network, address string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
		})
		return errors.Join(err, serr)
	}}
	pconn, err := lc.ListenPacket(context.Background(), "udp4", fmt.Sprintf("0.0.0.0:%d", group.Port()))
	if err != nil {
		return nil, fmt.Errorf("discovery: multicast DNS: %w", err)
	}
	conn := pconn.(*net.UDPConn)
	pc := ipv4.NewPacketConn(conn)
	all, err := net.Interfaces()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("discovery: multicast DNS: %w", err)
	}
	g := &udpGroupConn{conn: conn, pc: pc, group: group.Addr()}
	gaddr := &net.UDPAddr{IP: group.Addr().AsSlice()}
	for _, ifi := range all {
		if ifi.Flags&net.FlagUp == 0 || ifi.Flags&net.FlagMulticast == 0 {
			continue
		}
		if pc.JoinGroup(&ifi, gaddr) == nil {
			g.ifaces = append(g.ifaces, ifi)
		}
	}
	if len(g.ifaces) == 0 {
		conn.Close()
		return nil, errors.New("discovery: multicast DNS: no interface is up and can multicast")
	}
	pc.SetMulticastTTL(255)
	pc.SetMulticastLoopback(true)
	return g, nil
}

func (g *udpGroupConn) ReadFrom(b []byte) (int, netip.AddrPort, error) {
	n, from, err := g.conn.ReadFromUDPAddrPort(b)
	return n, from, err
}

func (g *udpGroupConn) WriteToGroup(b []byte, port uint16) error {
	to := &net.UDPAddr{IP: g.group.AsSlice(), Port: int(port)}
	g.mu.Lock()
	defer g.mu.Unlock()
	var errs []error
	for i := range g.ifaces {
		if err := g.pc.SetMulticastInterface(&g.ifaces[i]); err != nil {
			errs = append(errs, err)
			continue
		}
		if _, err := g.conn.WriteTo(b, to); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == len(g.ifaces) {
		return errors.Join(errs...)
	}
	return nil
}

func (g *udpGroupConn) Close() error { return g.conn.Close() }
