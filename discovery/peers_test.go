package discovery

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"
)

// finderLog is a Finder that records what it was asked.
type finderLog struct{ lookups, announces chan []byte }

func (f *finderLog) Lookup(dk []byte)                { f.lookups <- dk }
func (f *finderLog) Announce(dk []byte, port uint16) { f.announces <- dk }

func TestPeersDialsWhatIsFound(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// A port with nothing listening: a peer that went away.
	gone, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	goneAddr := netip.MustParseAddrPort(gone.Addr().String())
	gone.Close()

	p := NewPeers()
	f := &finderLog{lookups: make(chan []byte, 1), announces: make(chan []byte, 1)}
	p.Use(f)
	var dk [32]byte
	copy(dk[:], discoveryKey("feed"))
	dialed := make(chan error, 1)
	go func() {
		conn, err := p.Dial(context.Background(), dk)
		if err == nil {
			conn.Close()
		}
		dialed <- err
	}()
	if got := <-f.lookups; string(got) != string(dk[:]) {
		t.Errorf("looked up %x, want %x", got, dk)
	}
	p.Found(dk[:], goneAddr)
	p.Found(dk[:], netip.MustParseAddrPort(ln.Addr().String()))
	p.Found(dk[:], goneAddr) // a repeat is not counted again
	select {
	case err := <-dialed:
		if err != nil {
			t.Fatalf("Dial: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Dial did not connect to the peer found")
	}
	if p.Count() != 2 {
		t.Errorf("Count = %d, want 2", p.Count())
	}
	p.Announce(dk, 3282)
	if got := <-f.announces; string(got) != string(dk[:]) {
		t.Errorf("announced %x, want %x", got, dk)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	var other [32]byte
	if _, err := p.Dial(ctx, other); !errors.Is(err, ErrNoPeer) {
		t.Errorf("Dial of a key nobody has: %v, want ErrNoPeer", err)
	}
}
