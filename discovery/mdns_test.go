package discovery

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nodevms/nodevms/internal/fuzzcorpus"
)

// lan is a multicast network in memory: what one member sends to the
// group, every member (the sender too, as with multicast loopback) reads,
// from the sender's address.
type lan struct {
	mu      sync.Mutex
	members []*lanConn
	sent    int
}

type lanConn struct {
	net    *lan
	addr   netip.AddrPort
	in     chan lanPacket
	closed chan struct{}
	once   sync.Once
}

type lanPacket struct {
	b    []byte
	from netip.AddrPort
}

func (l *lan) join(addr string) *lanConn {
	c := &lanConn{net: l, addr: netip.MustParseAddrPort(addr), in: make(chan lanPacket, 1024), closed: make(chan struct{})}
	l.mu.Lock()
	l.members = append(l.members, c)
	l.mu.Unlock()
	return c
}

func (c *lanConn) ReadFrom(b []byte) (int, netip.AddrPort, error) {
	select {
	case p := <-c.in:
		return copy(b, p.b), p.from, nil
	case <-c.closed:
		return 0, netip.AddrPort{}, net.ErrClosed
	}
}

func (c *lanConn) WriteToGroup(b []byte, port uint16) error {
	c.net.mu.Lock()
	defer c.net.mu.Unlock()
	c.net.sent++
	for _, m := range c.net.members {
		if m.addr.Port() != port {
			continue
		}
		select {
		case m.in <- lanPacket{append([]byte(nil), b...), c.addr}:
		default: // a full queue drops, as UDP does
		}
	}
	return nil
}

func (c *lanConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return nil
}

// foundLog collects what a node found.
type foundLog struct {
	mu    sync.Mutex
	peers []netip.AddrPort
	ch    chan struct{}
}

func newFoundLog() *foundLog { return &foundLog{ch: make(chan struct{}, 100)} }

func (f *foundLog) found(key []byte, peer netip.AddrPort) {
	f.mu.Lock()
	f.peers = append(f.peers, peer)
	f.mu.Unlock()
	f.ch <- struct{}{}
}

func (f *foundLog) wait(t *testing.T) {
	t.Helper()
	select {
	case <-f.ch:
	case <-time.After(10 * time.Second):
		t.Fatal("no peer found in 10 s")
	}
}

func (f *foundLog) list() []netip.AddrPort {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]netip.AddrPort(nil), f.peers...)
}

func discoveryKey(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

func TestLookupFindsAnAnnouncer(t *testing.T) {
	var l lan
	hostFound := newFoundLog()
	host, err := ListenMDNS(MDNSConfig{Conn: l.join("10.0.0.1:5353"), Found: hostFound.found, Local: []netip.Addr{netip.MustParseAddr("10.0.0.1")}})
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	key := discoveryKey("feed")
	host.Announce(key, 3282)

	seeker := newFoundLog()
	peer, err := ListenMDNS(MDNSConfig{Conn: l.join("10.0.0.2:5353"), Found: seeker.found, Local: []netip.Addr{netip.MustParseAddr("10.0.0.2")}})
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	peer.Lookup(key)
	seeker.wait(t)
	want := []netip.AddrPort{netip.MustParseAddrPort("10.0.0.1:3282")}
	if diff := cmp.Diff(want, seeker.list(), cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
		t.Errorf("found (-want +got):\n%s", diff)
	}
	// The host heard its own answer too, and did not take itself for a
	// peer.
	time.Sleep(50 * time.Millisecond) // nothing to wait on: the absence of a report
	if got := hostFound.list(); len(got) != 0 {
		t.Errorf("the host found %v: itself", got)
	}
	// Another key is not answered.
	other := newFoundLog()
	third, err := ListenMDNS(MDNSConfig{Conn: l.join("10.0.0.3:5353"), Found: other.found})
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	third.Lookup(discoveryKey("another feed"))
	time.Sleep(50 * time.Millisecond)
	if got := other.list(); len(got) != 0 {
		t.Errorf("a lookup of another key found %v", got)
	}
}

func TestAnswersAreRateLimited(t *testing.T) {
	var l lan
	host, err := ListenMDNS(MDNSConfig{Conn: l.join("10.0.0.1:5353"), AnswersPerSecond: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	key := discoveryKey("feed")
	host.Announce(key, 3282)
	time.Sleep(20 * time.Millisecond) // the host's own first query
	l.mu.Lock()
	before := l.sent
	l.mu.Unlock()
	q, err := Query(Name(key))
	if err != nil {
		t.Fatal(err)
	}
	attacker := l.join("10.0.0.66:5353")
	for range 200 {
		attacker.WriteToGroup(q, 5353)
	}
	time.Sleep(200 * time.Millisecond)
	l.mu.Lock()
	answers := l.sent - before - 200
	l.mu.Unlock()
	// A full bucket (5) and what refills in the time the flood took.
	if answers < 1 || answers > 8 {
		t.Errorf("200 queries from one address got %d answers, want 1 to 8", answers)
	}
}

func TestMessagesRoundTrip(t *testing.T) {
	name := Name(discoveryKey("feed"))
	q, err := Query(name)
	if err != nil {
		t.Fatal(err)
	}
	m, err := ParseMessage(q)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Message{Questions: []string{name}}, m); diff != "" {
		t.Errorf("query (-want +got):\n%s", diff)
	}
	peers := []netip.AddrPort{netip.MustParseAddrPort("0.0.0.0:3282"), netip.MustParseAddrPort("192.168.1.7:65535")}
	r, err := Response("tok", Answer{Name: name, Peers: peers})
	if err != nil {
		t.Fatal(err)
	}
	m, err = ParseMessage(r)
	if err != nil {
		t.Fatal(err)
	}
	want := Message{Response: true, Found: []FoundRecord{{name, peers[0]}, {name, peers[1]}}, Token: "tok"}
	if diff := cmp.Diff(want, m, cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
		t.Errorf("response (-want +got):\n%s", diff)
	}
	if len(name) != 40+1+len(Domain) {
		t.Errorf("Name is %q: want 40 hex digits and .%s", name, Domain)
	}
}

func TestParseMessageRejects(t *testing.T) {
	q, _ := Query(Name(discoveryKey("feed")))
	for name, b := range map[string][]byte{
		"empty":     nil,
		"truncated": q[:len(q)-3],
		"too large": bytes.Repeat([]byte{0}, MaxMessageSize+1),
	} {
		if _, err := ParseMessage(b); !errors.Is(err, ErrMessage) {
			t.Errorf("%s: err = %v, want ErrMessage", name, err)
		}
	}
}

func TestSeedCorpus(t *testing.T) {
	var s fuzzcorpus.Seeds
	name := Name(discoveryKey("feed"))
	q, _ := Query(name, Name(discoveryKey("another")))
	s.Add("FuzzParseMessage", q)
	r, _ := Response("tok", Answer{Name: name, Peers: []netip.AddrPort{netip.MustParseAddrPort("0.0.0.0:3282")}})
	s.Add("FuzzParseMessage", r)
	// dns-discovery's answer as multicast-dns writes it (dns-packet 4):
	// the question echoed, then the TXT record.
	s.Add("FuzzParseMessage", jsResponse)
	s.Add("FuzzParseMessage", jsQuery)
	for _, b := range [][]byte{jsGetPeers, jsPeers, jsAnnounce, jsKRPCError} {
		s.Add("FuzzParseKRPC", b)
	}
	s.Add("FuzzParseKRPC", krpcResponse([]byte("xy"), map[string]bvalue{"id": make([]byte, 20), "nodes": make([]byte, 3*26), "values": [][]byte{make([]byte, 6)}}))
	fuzzcorpus.Check(t, &s)
}

// What multicast-dns 7.2.5 (dns-packet 5.6.1) sends for dns-discovery
// 6.2.3, for the name 0123456789abcdef0123456789abcdef01234567.dat.local:
// the query of a lookup or an announcement, and the answer of a node that
// announces the name at port 3282 (the question echoed, then the TXT
// record). Generated with dns-packet's encode.
var (
	jsName     = "0123456789abcdef0123456789abcdef01234567.dat.local"
	jsQuery    = mustHex("000000000001000000000000283031323334353637383961626364656630313233343536373839616263646566303132333435363703646174056c6f63616c0000100001")
	jsResponse = mustHex("000084000001000100000000283031323334353637383961626364656630313233343536373839616263646566303132333435363703646174056c6f63616c0000100001283031323334353637383961626364656630313233343536373839616263646566303132333435363703646174056c6f63616c000010000100000000004232746f6b656e3d414141414141414141414141414141414141414141414141414141414141414141414141414141414141413d0e70656572733d4141414141417a53")
)

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

func TestJavaScriptMessages(t *testing.T) {
	q, err := Query(jsName)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(q, jsQuery) {
		t.Errorf("Query = %x\nwant    %x (multicast-dns)", q, jsQuery)
	}
	m, err := ParseMessage(jsResponse)
	if err != nil {
		t.Fatal(err)
	}
	want := Message{Response: true, Questions: []string{jsName}, Found: []FoundRecord{{jsName, netip.MustParseAddrPort("0.0.0.0:3282")}}, Token: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}
	if diff := cmp.Diff(want, m, cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
		t.Errorf("the JavaScript answer (-want +got):\n%s", diff)
	}
}

// FuzzParseMessage: any datagram decodes or is refused with ErrMessage,
// within its bounds, and a node handles whatever decodes.
func FuzzParseMessage(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseMessage(b)
		if err != nil {
			if !errors.Is(err, ErrMessage) {
				t.Fatalf("error %v is not ErrMessage", err)
			}
			return
		}
		if len(m.Questions) > maxQuestions || len(m.Found) > maxRecords*maxPeers {
			t.Fatalf("%d questions and %d peers: past the bounds", len(m.Questions), len(m.Found))
		}
	})
}

// TestLookupKeepsAnAnnouncement: looking up a key this node announces (as
// a following auditor's Peers does when the peers it found failed) does
// not stop the announcement.
func TestLookupKeepsAnAnnouncement(t *testing.T) {
	var l lan
	host, err := ListenMDNS(MDNSConfig{Conn: l.join("10.0.0.1:5353"), Local: []netip.Addr{}})
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	key := discoveryKey("feed")
	host.Announce(key, 3282)
	host.Lookup(key)
	seeker := newFoundLog()
	peer, err := ListenMDNS(MDNSConfig{Conn: l.join("10.0.0.2:5353"), Found: seeker.found, Local: []netip.Addr{}})
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	peer.Lookup(key)
	seeker.wait(t)
}
