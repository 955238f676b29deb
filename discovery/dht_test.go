package discovery

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// The DHT tests run their nodes on 127.0.0.1 only.

func loopbackDHT(t *testing.T, cfg DHTConfig) *DHT {
	t.Helper()
	cfg.Addr = "127.0.0.1:0"
	if cfg.Interval == 0 {
		cfg.Interval = 100 * time.Millisecond
	}
	if cfg.Local == nil {
		cfg.Local = []netip.Addr{}
	}
	d, err := ListenDHT(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func TestDHTFindsAnAnnouncedPeer(t *testing.T) {
	boot := loopbackDHT(t, DHTConfig{})
	bootstrap := []string{boot.Addr().String()}
	host := loopbackDHT(t, DHTConfig{Bootstrap: bootstrap})
	key := discoveryKey("feed")
	host.Announce(key, 3282)

	found := newFoundLog()
	peer := loopbackDHT(t, DHTConfig{Bootstrap: bootstrap, Found: found.found})
	peer.Lookup(key)
	found.wait(t)
	if got, want := found.list()[0], netip.MustParseAddrPort("127.0.0.1:3282"); got != want {
		t.Errorf("found %v, want %v", got, want)
	}
	// Another key finds nothing.
	other := newFoundLog()
	third := loopbackDHT(t, DHTConfig{Bootstrap: bootstrap, Found: other.found})
	third.Lookup(discoveryKey("another feed"))
	time.Sleep(300 * time.Millisecond) // nothing to wait on: the absence of a report
	if got := other.list(); len(got) != 0 {
		t.Errorf("a lookup of another key found %v", got)
	}
}

// rawKRPC sends a message to node and returns the decoded answer. The
// node's own queries (once it has met this socket, it may ask it too)
// are skipped.
func rawKRPC(t *testing.T, conn *net.UDPConn, node netip.AddrPort, msg []byte) *krpcMessage {
	t.Helper()
	if _, err := conn.WriteToUDPAddrPort(msg, node); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4096)
	for {
		n, _, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("no answer: %v", err)
		}
		m, err := parseKRPC(buf[:n])
		if err != nil {
			t.Fatalf("answer %q: %v", buf[:n], err)
		}
		if m.Y != "q" {
			return m
		}
	}
}

func TestDHTAnswersQueries(t *testing.T) {
	node := loopbackDHT(t, DHTConfig{})
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var me NodeID
	copy(me[:], "a node id of 20 byte")
	var ih NodeID
	copy(ih[:], discoveryKey("feed"))
	tid := []byte("aa")
	m := rawKRPC(t, conn, node.Addr(), krpcQuery(tid, "ping", map[string]bvalue{"id": me[:]}))
	if m.Y != "r" || !bytes.Equal(m.T, tid) || *m.ID != node.ID() {
		t.Errorf("ping: %+v", m)
	}
	m = rawKRPC(t, conn, node.Addr(), krpcQuery(tid, "announce_peer", map[string]bvalue{"id": me[:], "info_hash": ih[:], "port": 4000, "token": "forged"}))
	if m.Y != "e" || m.ErrCode != 203 {
		t.Errorf("announce_peer with a forged token: %+v, want error 203", m)
	}
	m = rawKRPC(t, conn, node.Addr(), krpcQuery(tid, "get_peers", map[string]bvalue{"id": me[:], "info_hash": ih[:]}))
	if m.Y != "r" || len(m.Token) == 0 || len(m.Values) != 0 {
		t.Fatalf("get_peers before any announcement: %+v", m)
	}
	m = rawKRPC(t, conn, node.Addr(), krpcQuery(tid, "announce_peer", map[string]bvalue{"id": me[:], "info_hash": ih[:], "port": 4000, "token": m.Token}))
	if m.Y != "r" {
		t.Errorf("announce_peer with the token: %+v", m)
	}
	m = rawKRPC(t, conn, node.Addr(), krpcQuery(tid, "get_peers", map[string]bvalue{"id": me[:], "info_hash": ih[:]}))
	if diff := cmp.Diff([]netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:4000")}, m.Values, cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
		t.Errorf("get_peers after the announcement (-want +got):\n%s", diff)
	}
	m = rawKRPC(t, conn, node.Addr(), krpcQuery(tid, "find_node", map[string]bvalue{"id": me[:], "target": ih[:]}))
	if m.Y != "r" || len(m.Nodes) != 1 || m.Nodes[0].ID != me {
		t.Errorf("find_node: %+v; want the one node it has met", m)
	}
	m = rawKRPC(t, conn, node.Addr(), krpcQuery(tid, "vote", map[string]bvalue{"id": me[:]}))
	if m.Y != "e" || m.ErrCode != 204 {
		t.Errorf("an unknown method: %+v, want error 204", m)
	}
}

func TestDHTAnswersAreRateLimited(t *testing.T) {
	node := loopbackDHT(t, DHTConfig{QueriesPerSecond: 10})
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ping := krpcQuery([]byte("aa"), "ping", map[string]bvalue{"id": make([]byte, 20)})
	for range 200 {
		conn.WriteToUDPAddrPort(ping, node.Addr())
	}
	answers := 0
	buf := make([]byte, 4096)
	for {
		conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		n, _, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			break
		}
		if m, err := parseKRPC(buf[:n]); err == nil && m.Y == "r" {
			answers++ // not the node's own queries
		}
	}
	if answers < 1 || answers > 15 {
		t.Errorf("200 pings from one address got %d answers, want 1 to 15", answers)
	}
}

func TestDHTKeepsItsTable(t *testing.T) {
	state := filepath.Join(t.TempDir(), "dht-nodes")
	boot := loopbackDHT(t, DHTConfig{})
	a := loopbackDHT(t, DHTConfig{Bootstrap: []string{boot.Addr().String()}, StatePath: state})
	deadline := time.Now().Add(10 * time.Second)
	for a.Nodes() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the node met no other in 10 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	// A node started from the saved table alone, with no bootstrap nodes,
	// meets the same node.
	b := loopbackDHT(t, DHTConfig{StatePath: state})
	deadline = time.Now().Add(10 * time.Second)
	for b.Nodes() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("a node started from the saved table met no node in 10 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// What k-rpc 4.3.1 sends for bittorrent-dht 7.10.0 (bencode 1.0.0), encoded
// with bencode's encode: a get_peers query, its response (a token, a peer,
// a node), an announce_peer query and an error.
var (
	jsGetPeers  = mustHex("64313a6164323a696432303a303132333435363738396162636465666768696a393a696e666f5f6861736832303a4142434445464748494a4b4c4d4e4f505152535465313a71393a6765745f7065657273313a74323a0007313a79313a7165")
	jsPeers     = mustHex("64313a7264323a696432303a303132333435363738396162636465666768696a353a6e6f64657332363a7a797877767574737271706f6e6d6c6b6a6968670ad500011ae1353a746f6b656e333a746f6b363a76616c7565736c363a0ad500020cd26565313a74323a0007313a79313a7265")
	jsAnnounce  = mustHex("64313a6164323a696432303a303132333435363738396162636465666768696a31323a696d706c6965645f706f7274693065393a696e666f5f6861736832303a4142434445464748494a4b4c4d4e4f5051525354343a706f7274693332383265353a746f6b656e333a746f6b65313a7131333a616e6e6f756e63655f70656572313a74323a0008313a79313a7165")
	jsKRPCError = mustHex("64313a656c693230336533373a63616e6e6f742060616e6e6f756e63655f706565726020776974682062616420746f6b656e65313a74323a0009313a79313a6565")
)

func TestJavaScriptKRPC(t *testing.T) {
	id := NodeID([]byte("0123456789abcdefghij"))
	ih := NodeID([]byte("ABCDEFGHIJKLMNOPQRST"))
	if got := krpcQuery([]byte{0, 7}, "get_peers", map[string]bvalue{"id": id[:], "info_hash": ih[:]}); !bytes.Equal(got, jsGetPeers) {
		t.Errorf("get_peers = %q\nwant        %q (k-rpc)", got, jsGetPeers)
	}
	if got := krpcQuery([]byte{0, 8}, "announce_peer", map[string]bvalue{"id": id[:], "info_hash": ih[:], "port": 3282, "implied_port": 0, "token": []byte("tok")}); !bytes.Equal(got, jsAnnounce) {
		t.Errorf("announce_peer = %q\nwant            %q (k-rpc)", got, jsAnnounce)
	}
	if got := krpcError([]byte{0, 9}, 203, "cannot `announce_peer` with bad token"); !bytes.Equal(got, jsKRPCError) {
		t.Errorf("error = %q\nwant    %q (k-rpc)", got, jsKRPCError)
	}
	m, err := parseKRPC(jsPeers)
	if err != nil {
		t.Fatal(err)
	}
	want := &krpcMessage{
		T: []byte{0, 7}, Y: "r", ID: &id, Token: []byte("tok"),
		Values: []netip.AddrPort{netip.MustParseAddrPort("10.213.0.2:3282")},
		Nodes:  []Node{{ID: NodeID([]byte("zyxwvutsrqponmlkjihg")), Addr: netip.MustParseAddrPort("10.213.0.1:6881")}},
	}
	if diff := cmp.Diff(want, m, cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
		t.Errorf("the JavaScript response (-want +got):\n%s", diff)
	}
	for name, b := range map[string][]byte{"get_peers": jsGetPeers, "announce_peer": jsAnnounce, "error": jsKRPCError} {
		if _, err := parseKRPC(b); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// FuzzParseKRPC: any datagram decodes or is refused with ErrKRPC, within
// its bounds; a bencoded value that decodes encodes to bytes that decode
// to the same value.
func FuzzParseKRPC(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseKRPC(b)
		if err != nil {
			if !errors.Is(err, ErrKRPC) {
				t.Fatalf("error %v is not ErrKRPC", err)
			}
		} else if len(m.Nodes) > maxNodesTaken || len(m.Values) > maxPeersTaken || len(m.Token) > maxTokenSize {
			t.Fatalf("past the bounds: %d nodes, %d values, a token of %d bytes", len(m.Nodes), len(m.Values), len(m.Token))
		}
		v, err := decodeBencode(b)
		if err != nil {
			return
		}
		again, err := decodeBencode(appendBencode(nil, v))
		if err != nil {
			t.Fatalf("re-encoded value does not decode: %v", err)
		}
		if diff := cmp.Diff(v, again); diff != "" {
			t.Fatalf("re-encoded value differs (-first +again):\n%s", diff)
		}
	})
}

// TestKRPCKeepsNoReferenceToItsInput: a reader reuses its buffer for the
// next datagram, so a message must not share it (a token that changed
// under a lookup was refused by the node that gave it).
func TestKRPCKeepsNoReferenceToItsInput(t *testing.T) {
	buf := slices.Clone(jsPeers)
	m, err := parseKRPC(buf)
	if err != nil {
		t.Fatal(err)
	}
	for i := range buf {
		buf[i] = 'x'
	}
	if string(m.Token) != "tok" || !bytes.Equal(m.T, []byte{0, 7}) {
		t.Errorf("after the buffer was reused: token %q, transaction %q", m.Token, m.T)
	}
}
