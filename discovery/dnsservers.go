package discovery

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"
)

// DefaultDNSServers are the Dat tools' DNS discovery servers
// (dat-swarm-defaults); dns-discovery tries port 5300, then 53.
var DefaultDNSServers = []string{"discovery1.datprotocol.com", "discovery2.datprotocol.com"}

// DNSConfig configures a DNSServers client.
type DNSConfig struct {
	// Servers are host[:port] (default port 5300, as dns-discovery).
	Servers []string
	// Found is told the peers found for keys looked up or announced.
	Found Found
	// Local are this machine's addresses (default: its interfaces').
	Local []netip.Addr
	// Interval is the first wait between asking again about a key; it
	// doubles up to MaxInterval (defaults 2 s and 60 s: dns-discovery asks
	// every 60 to 70 s).
	Interval, MaxInterval time.Duration
}

// DNSServers announces and looks keys up at DNS discovery servers, as
// dns-discovery's client does for discovery-channel: it first asks a server
// for a token (a TXT query for the domain), then asks for the key's name's
// TXT record with an additional TXT record "subscribe=true", "token=...",
// and, to announce, "announce=PORT". The answer's peers= are the key's
// peers; a server also pushes new ones to its subscribers as SRV records.
type DNSServers struct {
	conn *net.UDPConn
	cfg  DNSConfig

	mu      sync.Mutex
	servers []netip.AddrPort
	tokens  map[netip.AddrPort]string
	pending map[uint16]chan Message
	keys    map[string]*joinedKey // by Name
	seen    map[string]map[netip.AddrPort]bool
	closed  bool
	ctx     context.Context
	stop    context.CancelFunc
	wg      sync.WaitGroup
}

// ListenDNS starts a DNS discovery client on a UDP socket of its own.
func ListenDNS(cfg DNSConfig) (*DNSServers, error) {
	if cfg.Interval <= 0 {
		cfg.Interval = 2 * time.Second
	}
	if cfg.MaxInterval <= 0 {
		cfg.MaxInterval = time.Minute
	}
	if cfg.Local == nil {
		cfg.Local = localAddrs()
	}
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{})
	if err != nil {
		return nil, fmt.Errorf("discovery: DNS discovery: %w", err)
	}
	d := &DNSServers{
		conn: conn, cfg: cfg, tokens: map[netip.AddrPort]string{}, pending: map[uint16]chan Message{},
		keys: map[string]*joinedKey{}, seen: map[string]map[netip.AddrPort]bool{},
	}
	d.ctx, d.stop = context.WithCancel(context.Background())
	for _, s := range cfg.Servers {
		host, port := s, "5300"
		if h, p, err := net.SplitHostPort(s); err == nil {
			host, port = h, p
		}
		// A server whose name does not resolve now is skipped, not fatal.
		if a, err := net.ResolveUDPAddr("udp4", net.JoinHostPort(host, port)); err == nil {
			if ip, ok := netip.AddrFromSlice(a.IP.To4()); ok {
				d.servers = append(d.servers, netip.AddrPortFrom(ip, uint16(a.Port)))
			}
		}
	}
	d.wg.Add(1)
	go d.receive()
	return d, nil
}

// Announce announces the peer at port for discoveryKey at every server,
// now and then ever less often, until Close.
func (d *DNSServers) Announce(discoveryKey []byte, port uint16) { d.join(discoveryKey, port) }

// Lookup asks every server for discoveryKey's peers, now and then ever
// less often, until Close.
func (d *DNSServers) Lookup(discoveryKey []byte) { d.join(discoveryKey, 0) }

func (d *DNSServers) join(discoveryKey []byte, port uint16) {
	name := Name(discoveryKey)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return
	}
	k, ctx := rejoin(d.ctx, d.keys[name], discoveryKey, port)
	d.keys[name] = k
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		every(ctx, d.cfg.Interval, d.cfg.MaxInterval, func() {
			for _, s := range d.servers {
				d.visit(ctx, s, name, k.port)
			}
		})
	}()
}

// visit asks server about name (announcing port, if not 0), with a token
// it asked for first if it has none.
func (d *DNSServers) visit(ctx context.Context, server netip.AddrPort, name string, port uint16) {
	d.mu.Lock()
	token := d.tokens[server]
	d.mu.Unlock()
	if token == "" {
		m, err := d.ask(ctx, server, Domain, nil)
		if err != nil || m.Token == "" {
			return
		}
		token = m.Token
		d.mu.Lock()
		d.tokens[server] = token
		d.mu.Unlock()
	}
	txt := []string{"subscribe=true", "token=" + token}
	if port != 0 {
		txt = append(txt, "announce="+strconv.Itoa(int(port)))
	}
	m, err := d.ask(ctx, server, name, txt)
	if err != nil {
		return
	}
	if m.Token != "" && m.Token != token {
		d.mu.Lock()
		d.tokens[server] = m.Token // the server rotated its secret
		d.mu.Unlock()
	}
	d.report(m, server.Addr())
}

// ask sends a query for name's TXT record to server and waits for the
// answer, resending as dns-socket does (after 0.5, 1, 2 s; 7.5 s in all).
func (d *DNSServers) ask(ctx context.Context, server netip.AddrPort, name string, txt []string) (Message, error) {
	var idb [2]byte
	reply := make(chan Message, 1)
	d.mu.Lock()
	var id uint16
	for id == 0 || d.pending[id] != nil {
		rand.Read(idb[:])
		id = binary.BigEndian.Uint16(idb[:])
	}
	d.pending[id] = reply
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		delete(d.pending, id)
		d.mu.Unlock()
	}()
	q, err := queryWithTXT(id, name, txt)
	if err != nil {
		return Message{}, err
	}
	for _, wait := range []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second} {
		if _, err := d.conn.WriteToUDPAddrPort(q, server); err != nil {
			return Message{}, err
		}
		select {
		case m := <-reply:
			return m, nil
		case <-ctx.Done():
			return Message{}, ctx.Err()
		case <-time.After(wait):
		}
	}
	return Message{}, fmt.Errorf("discovery: DNS discovery server %s: no answer", server)
}

func (d *DNSServers) receive() {
	defer d.wg.Done()
	buf := make([]byte, MaxMessageSize)
	for {
		n, from, err := d.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if d.ctx.Err() != nil {
				return
			}
			continue
		}
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		m, err := ParseMessage(buf[:n])
		if err != nil {
			continue
		}
		d.mu.Lock()
		isServer := false
		for _, s := range d.servers {
			isServer = isServer || s.Addr() == from.Addr()
		}
		reply := d.pending[m.ID]
		d.mu.Unlock()
		switch {
		case !isServer:
			// Only the servers asked are listened to.
		case m.Response && reply != nil:
			select {
			case reply <- m:
			default:
			}
		case !m.Response:
			// A push: a server tells its subscribers of a new peer, and
			// resends until it is answered.
			d.report(m, from.Addr())
			if r, err := emptyResponse(m.ID); err == nil {
				d.conn.WriteToUDPAddrPort(r, from)
			}
		}
	}
}

// report tells Found the peers m names for the keys this client asks
// about, but this machine.
func (d *DNSServers) report(m Message, sender netip.Addr) {
	type found struct {
		key  []byte
		peer netip.AddrPort
	}
	var news []found
	d.mu.Lock()
	var ports []uint16
	for _, k := range d.keys {
		if k.port != 0 {
			ports = append(ports, k.port)
		}
	}
	for _, f := range m.Found {
		k := d.keys[f.Name]
		if k == nil {
			continue
		}
		peer := f.Peer
		if peer.Addr().IsUnspecified() {
			peer = netip.AddrPortFrom(sender, peer.Port())
		}
		if peer.Port() == 0 || !peer.Addr().Is4() || isSelf(peer, d.cfg.Local, ports) {
			continue
		}
		seen := d.seen[f.Name]
		if seen == nil {
			seen = map[netip.AddrPort]bool{}
			d.seen[f.Name] = seen
		}
		if seen[peer] || len(seen) >= maxFoundPerKey {
			continue
		}
		seen[peer] = true
		news = append(news, found{k.key, peer})
	}
	d.mu.Unlock()
	if d.cfg.Found != nil {
		for _, n := range news {
			d.cfg.Found(n.key, n.peer)
		}
	}
}

// Close stops the client.
func (d *DNSServers) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	d.mu.Unlock()
	d.stop()
	err := d.conn.Close()
	d.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}
