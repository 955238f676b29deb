package discovery

import (
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// fakeDNSServer answers as a DNS discovery server on 127.0.0.1: a token for
// a probe, and for a key's name the peers it was given; it records the
// additional TXT records it was sent.
func fakeDNSServer(t *testing.T, peers []netip.AddrPort) (addr netip.AddrPort, sent chan []string) {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	sent = make(chan []string, 16)
	go func() {
		buf := make([]byte, MaxMessageSize)
		for {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			var p dnsmessage.Parser
			h, err := p.Start(buf[:n])
			if err != nil {
				continue
			}
			q, err := p.Question()
			if err != nil {
				continue
			}
			p.SkipAllQuestions()
			p.SkipAllAnswers()
			p.SkipAllAuthorities()
			if _, err := p.AdditionalHeader(); err == nil {
				if r, err := p.TXTResource(); err == nil {
					sent <- r.TXT
				}
			}
			name := q.Name.String()
			var reply []byte
			if name == Domain+"." {
				reply, _ = Response("server-token", Answer{Name: Domain})
			} else {
				reply, _ = Response("server-token", Answer{Name: name[:len(name)-1], Peers: peers})
			}
			// Response writes id 0: the client matches answers by id.
			reply[0], reply[1] = byte(h.ID>>8), byte(h.ID)
			conn.WriteToUDPAddrPort(reply, from)
		}
	}()
	return netip.MustParseAddrPort(conn.LocalAddr().String()), sent
}

func TestDNSServersAnnounceAndFind(t *testing.T) {
	peer := netip.MustParseAddrPort("10.1.2.3:3282")
	server, sent := fakeDNSServer(t, []netip.AddrPort{peer})
	found := newFoundLog()
	d, err := ListenDNS(DNSConfig{Servers: []string{server.String()}, Found: found.found, Local: []netip.Addr{}})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	d.Announce(discoveryKey("feed"), 4000)
	found.wait(t)
	if got := found.list(); !slices.Equal(got, []netip.AddrPort{peer}) {
		t.Errorf("found %v, want %v", got, peer)
	}
	select {
	case txt := <-sent:
		want := []string{"subscribe=true", "token=server-token", "announce=4000"}
		if !slices.Equal(txt, want) {
			t.Errorf("the announcement said %q, want %q", txt, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the server was sent no announcement")
	}
}
