package discovery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Finder is a way of finding peers by discovery key: an MDNS node (and
// whatever else finds peers). Its Found must go to the Peers that use it.
type Finder interface {
	Lookup(discoveryKey []byte)
	Announce(discoveryKey []byte, port uint16)
}

// Peers keeps the peers found per discovery key and dials them over TCP,
// as discovery-swarm connects to the peers that discovery-channel finds.
// Make one with NewPeers, give its Found to the finders, then Use them.
type Peers struct {
	mu      sync.Mutex
	finders []Finder
	byKey   map[string]*keyPeers // by Name
	changed chan struct{}        // closed and replaced when a peer is found
	// DialTimeout bounds one TCP dial (default 5 s).
	DialTimeout time.Duration
}

type keyPeers struct {
	peers []netip.AddrPort // in the order found; bounded by maxFoundPerKey
	next  int              // the next to dial
}

// NewPeers returns an empty Peers.
func NewPeers() *Peers {
	return &Peers{byKey: map[string]*keyPeers{}, changed: make(chan struct{}), DialTimeout: 5 * time.Second}
}

// Use adds a finder: Lookup and Announce go to it from then on.
func (p *Peers) Use(f Finder) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.finders = append(p.finders, f)
}

// Found records a peer of discoveryKey (give it to the finders).
func (p *Peers) Found(discoveryKey []byte, peer netip.AddrPort) {
	name := Name(discoveryKey)
	p.mu.Lock()
	defer p.mu.Unlock()
	k := p.byKey[name]
	if k == nil {
		k = &keyPeers{}
		p.byKey[name] = k
	}
	for _, known := range k.peers {
		if known == peer {
			return
		}
	}
	if len(k.peers) >= maxFoundPerKey {
		return
	}
	k.peers = append(k.peers, peer)
	close(p.changed)
	p.changed = make(chan struct{})
}

// Count is how many peers have been found, all keys together.
func (p *Peers) Count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, k := range p.byKey {
		n += len(k.peers)
	}
	return n
}

// Announce makes the feed of discoveryKey findable at port, on every
// finder.
func (p *Peers) Announce(discoveryKey [32]byte, port int) {
	p.mu.Lock()
	finders := p.finders
	p.mu.Unlock()
	for _, f := range finders {
		f.Announce(discoveryKey[:], uint16(port))
	}
}

// ErrNoPeer is the error of a Dial whose context ended before a peer was
// found that answered.
var ErrNoPeer = errors.New("discovery: no peer found")

// Dial looks discoveryKey up (once) and connects over TCP to a peer found
// for it: the next one in the order found, so that a caller that dials
// again after a peer failed it tries another. It waits for a peer until
// ctx ends.
func (p *Peers) Dial(ctx context.Context, discoveryKey [32]byte) (io.ReadWriteCloser, error) {
	name := Name(discoveryKey[:])
	p.mu.Lock()
	if p.byKey[name] == nil {
		p.byKey[name] = &keyPeers{}
		for _, f := range p.finders {
			f.Lookup(discoveryKey[:])
		}
	}
	p.mu.Unlock()
	var lastErr error
	tried := 0
	looked := time.Now()
	for {
		p.mu.Lock()
		k, changed := p.byKey[name], p.changed
		var peer netip.AddrPort
		ok := len(k.peers) > 0 && tried < len(k.peers)
		if ok {
			peer = k.peers[k.next%len(k.peers)]
			k.next++
		}
		p.mu.Unlock()
		if ok {
			tried++
			d := net.Dialer{Timeout: p.DialTimeout}
			conn, err := d.DialContext(ctx, "tcp", peer.String())
			if err == nil {
				return conn, nil
			}
			lastErr = err
			continue
		}
		if tried > 0 && time.Since(looked) >= 2*time.Second {
			// Every peer found so far failed (gone since it announced,
			// say): look again now rather than when the finders next would.
			p.mu.Lock()
			finders := p.finders
			p.mu.Unlock()
			for _, f := range finders {
				f.Lookup(discoveryKey[:])
			}
			looked = time.Now()
		}
		tried = 0 // wait for news, then go round again
		select {
		case <-ctx.Done():
			if lastErr != nil {
				return nil, fmt.Errorf("%w for %s: %w (last: %w)", ErrNoPeer, name, ctx.Err(), lastErr)
			}
			return nil, fmt.Errorf("%w for %s: %w", ErrNoPeer, name, ctx.Err())
		case <-changed:
		case <-time.After(time.Second):
		}
	}
}
