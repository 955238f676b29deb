package protocol_test

import (
	"bytes"
	"context"
	"crypto/cipher"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nodevms/nodevms/hypercore"
	"github.com/nodevms/nodevms/hypercore/protocol"
	"github.com/nodevms/nodevms/hypercore/wire"
)

// notifier hands out a channel that the next notify closes, as
// hypercore.Feed.Changed does: take it before checking a condition, then
// wait on it.
type notifier struct {
	mu sync.Mutex
	ch chan struct{}
}

func (n *notifier) next() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch == nil {
		n.ch = make(chan struct{})
	}
	return n.ch
}

func (n *notifier) notify() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch != nil {
		close(n.ch)
		n.ch = nil
	}
}

// wait waits up to d for cond, checking it again at each notify.
func (n *notifier) wait(d time.Duration, cond func() bool) bool {
	timeout := time.After(d)
	for {
		next := n.next()
		if cond() {
			return true
		}
		select {
		case <-next:
		case <-timeout:
			return cond()
		}
	}
}

// logBuffer collects a stream's log records, and says when one comes.
type logBuffer struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	wrote notifier
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.wrote.notify()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logBuffer) logger() *slog.Logger { return slog.New(slog.NewTextHandler(l, nil)) }

// relay copies one direction of a stream, decrypting it, letting tamper
// change each frame (same length), and encrypting it again: a
// man-in-the-middle who knows the public key, which is all the stream's
// encryption hides the data from.
func relay(src io.Reader, dst io.Writer, key []byte, tamper func(*wire.Frame)) {
	fr := wire.NewFrameReader(src)
	var out cipher.Stream
	for {
		f, keepAlive, err := fr.Next()
		if err != nil {
			if c, ok := dst.(io.Closer); ok {
				c.Close()
			}
			return
		}
		var b []byte
		if keepAlive {
			b = []byte{0}
		} else {
			if out != nil {
				tamper(&f)
			}
			b = wire.AppendRawFrame(nil, f.Channel, f.Type, f.Body)
		}
		if out != nil {
			out.XORKeyStream(b, b)
		}
		if _, err := dst.Write(b); err != nil {
			return
		}
		if out == nil { // the first frame, a Feed in the clear: keys the rest
			m, err := wire.Decode(f.Type, f.Body)
			if err != nil {
				return
			}
			nonce := m.(*wire.Feed).Nonce
			fr.Decrypt(wire.NewStream(key, nonce))
			out = wire.NewStream(key, nonce)
		}
	}
}

// tamperedDownload downloads src through a relay that tampers with the
// server's frames, and returns the replica and the downloader's error.
func tamperedDownload(t *testing.T, src *hypercore.Feed, tamper func(*wire.Frame)) (*hypercore.Feed, string, error) {
	t.Helper()
	dst := replicaOf(t, src)
	serverSide, relayServer := net.Pipe()
	relayClient, clientSide := net.Pipe()
	go relay(relayServer, relayClient, src.PublicKey(), tamper)
	go relay(relayClient, relayServer, src.PublicKey(), func(*wire.Frame) {})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	go protocol.Serve(ctx, serverSide, protocol.Options{}, lookupOf(src))
	var logs logBuffer
	err := protocol.Replicate(ctx, clientSide, protocol.Options{Logger: logs.logger()}, dst)
	return dst, logs.String(), err
}

func flipInData(index uint64, change func(d *wire.Data)) func(*wire.Frame) {
	return func(f *wire.Frame) {
		if f.Type != wire.TypeData {
			return
		}
		m, err := wire.Decode(f.Type, f.Body)
		if err != nil {
			return
		}
		d := m.(*wire.Data)
		if d.Index != index {
			return
		}
		change(d)
		f.Body = d.AppendBody(nil)
	}
}

// TestTamperedDataIsRefused: a block, proof node or signature changed on
// the way ends the stream with a logged reason, and the replica stores
// nothing that does not verify.
func TestTamperedDataIsRefused(t *testing.T) {
	t.Parallel()
	src := writer(t, 9, blocksOf("t", 40))
	tests := []struct {
		name   string
		tamper func(*wire.Frame)
		index  uint64
	}{
		{"block value", flipInData(0, func(d *wire.Data) { d.Value[0] ^= 1 }), 0},
		{"proof node", flipInData(0, func(d *wire.Data) { d.Nodes[0].Hash[5] ^= 1 }), 0},
		// The first block to arrive is the one whose proof reaches the
		// signed roots (the last block, announced first); later proofs stop
		// at nodes the replica already trusts.
		{"signature", flipInData(39, func(d *wire.Data) { d.Signature[9] ^= 1 }), 39},
		{"later block", flipInData(17, func(d *wire.Data) { d.Value[1] ^= 1 }), 17},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dst, logs, err := tamperedDownload(t, src, tt.tamper)
			if !errors.Is(err, hypercore.ErrVerify) {
				t.Fatalf("Replicate = %v, want ErrVerify", err)
			}
			if !strings.Contains(logs, "reason=") {
				t.Errorf("no reason logged: %q", logs)
			}
			if dst.Has(tt.index) {
				t.Errorf("the tampered block %d was stored", tt.index)
			}
			for i := range dst.Length() {
				if !dst.Has(i) {
					continue
				}
				if _, err := dst.Get(i); err != nil {
					t.Errorf("stored block %d does not read back: %v", i, err)
				}
			}
		})
	}
}

// rawClient opens a stream to a server by hand, as a hostile peer would:
// its Feed for key, the handshake, and then whatever the test writes.
func rawClient(t *testing.T, conn net.Conn, key []byte) cipher.Stream {
	t.Helper()
	dk := hypercore.DiscoveryKey(key)
	nonce := bytes.Repeat([]byte{1}, wire.NonceSize)
	if _, err := conn.Write(wire.AppendFrame(nil, 0, &wire.Feed{DiscoveryKey: dk[:], Nonce: nonce})); err != nil {
		t.Fatal(err)
	}
	xor := wire.NewStream(key, nonce)
	hs := wire.AppendFrame(nil, 0, &wire.Handshake{ID: make([]byte, 32), Live: wire.Bool(true)})
	xor.XORKeyStream(hs, hs)
	if _, err := conn.Write(hs); err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, conn) // read whatever the server says
	return xor
}

// TestHostileClients: a server facing a peer that sends garbage, an
// oversized frame, or nothing at all drops that peer with a logged reason
// and keeps serving others.
func TestHostileClients(t *testing.T) {
	t.Parallel()
	src := writer(t, 10, blocksOf("h", 30))
	tests := []struct {
		name  string
		write func(t *testing.T, conn net.Conn, xor cipher.Stream)
		want  string
	}{
		{"garbage after the handshake", func(t *testing.T, conn net.Conn, xor cipher.Stream) {
			junk := bytes.Repeat([]byte{0x35, 0xff, 0x13, 0x99}, 50)
			xor.XORKeyStream(junk, junk)
			conn.Write(junk)
		}, "reason="},
		{"frame over 8 MiB", func(t *testing.T, conn net.Conn, xor cipher.Stream) {
			b := []byte{0x80, 0x80, 0x80, 0x05} // 9.5 MiB
			xor.XORKeyStream(b, b)
			conn.Write(b)
		}, "frame too large"},
		{"a request for a block it cannot have", func(t *testing.T, conn net.Conn, xor cipher.Stream) {
			b := wire.AppendFrame(nil, 0, &wire.Request{Index: 1 << 40})
			xor.XORKeyStream(b, b)
			conn.Write(b)
		}, "reason="},
		{"silence", func(t *testing.T, conn net.Conn, xor cipher.Stream) {}, "timed out"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			var logs logBuffer
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			opts := protocol.Options{Logger: logs.logger(), Timeout: 400 * time.Millisecond}
			go protocol.ServeListener(ctx, ln, opts, lookupOf(src))

			bad, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer bad.Close()
			tt.write(t, bad, rawClient(t, bad, src.PublicKey()))

			// Meanwhile an honest peer is served in full.
			good := replicaOf(t, src)
			dctx, dcancel := context.WithTimeout(ctx, 20*time.Second)
			defer dcancel()
			if err := protocol.Dial(dctx, ln.Addr().String(), protocol.Options{}, good); err != nil {
				t.Fatalf("honest peer: %v", err)
			}
			sameBlocks(t, src, good)

			if !logs.wrote.wait(10*time.Second, func() bool { return strings.Contains(logs.String(), tt.want) }) {
				t.Fatalf("no log containing %q; logs: %s", tt.want, logs.String())
			}
		})
	}
}

// TestHostileAnnouncements: a peer that announces blocks all over a huge
// range, or opens channel after channel for feeds nobody serves, is cut off
// or ignored without this side's memory growing with it.
func TestHostileAnnouncements(t *testing.T) {
	t.Parallel()
	src := writer(t, 11, blocksOf("a", 3))
	dst := replicaOf(t, src)
	serverSide, clientSide := net.Pipe()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// The hostile side is the server here: it answers the replica's Want
	// with Haves scattered over 2^40 blocks.
	go func() {
		fr := wire.NewFrameReader(serverSide)
		f, _, err := fr.Next()
		if err != nil {
			return
		}
		m, _ := wire.Decode(f.Type, f.Body)
		fr.Decrypt(wire.NewStream(src.PublicKey(), m.(*wire.Feed).Nonce))
		xor := rawClient(t, serverSide, src.PublicKey())
		for i := uint64(0); i < 20; i++ { // 20 runs of 4096 pages each
			b := wire.AppendFrame(nil, 0, &wire.Have{Start: i << 30, Length: wire.Uint64(1 << 24)})
			xor.XORKeyStream(b, b)
			if _, err := serverSide.Write(b); err != nil {
				return
			}
		}
	}()
	err := protocol.Replicate(ctx, clientSide, protocol.Options{}, dst)
	if !errors.Is(err, protocol.ErrTooManyAnnounced) {
		t.Fatalf("Replicate = %v, want ErrTooManyAnnounced", err)
	}
}

// countingListener counts the bytes its connections' readers took and the
// connections closed, and notifies counted at each, so that a test knows
// when the server has read what its peers sent.
type countingListener struct {
	net.Listener
	read, closed atomic.Int64
	counted      notifier
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, l: l}, nil
}

type countingConn struct {
	net.Conn
	l    *countingListener
	once sync.Once
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.l.read.Add(int64(n))
	if n > 0 {
		c.l.counted.notify()
	}
	return n, err
}

func (c *countingConn) Close() error {
	c.once.Do(func() {
		c.l.closed.Add(1)
		c.l.counted.notify()
	})
	return c.Conn.Close()
}

// heapInUse is the live heap after a collection.
func heapInUse() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// waitFor polls cond every 10 ms for up to d, for a condition that
// nothing notifies: a PeerLimit's count changes after every effect a test
// can see.
func waitFor(d time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

// TestClaimedFramesCostWhatArrives: peers that each claim an 8 MiB frame
// and send 100 KiB of it, before or after their handshake, cost the server
// about what they sent, not what they claimed. (Not parallel: it measures
// the heap.)
func TestClaimedFramesCostWhatArrives(t *testing.T) {
	const (
		peers = 32
		part  = 100 << 10
		// Per peer: two 64 KiB read buffers (the second decrypts), a frame
		// buffer of at most 128 KiB, the stream's state, and room to spare.
		// Claimed, it would be 8 MiB each.
		perPeer = 1 << 20
	)
	src := writer(t, 12, blocksOf("c", 3))
	claim := append([]byte{0x80, 0x80, 0x80, 0x04}, make([]byte, part)...) // 8 MiB, padded varint
	tests := []struct {
		name   string
		opened bool // the peer sends Feed and Handshake first
	}{
		{"before the handshake", false},
		{"after the handshake", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inner, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			ln := &countingListener{Listener: inner}
			var logs logBuffer
			ctx, cancel := context.WithCancel(context.Background())
			served := make(chan error, 1)
			opts := protocol.Options{Logger: logs.logger(), Timeout: 20 * time.Second, HandshakeTimeout: 20 * time.Second, Peers: protocol.NewPeerLimit(peers)}
			start := heapInUse()
			go func() { served <- protocol.ServeListener(ctx, ln, opts, lookupOf(src)) }()
			var conns []net.Conn
			var sent int64
			for range peers {
				c, err := net.Dial("tcp", ln.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				conns = append(conns, c)
				b := bytes.Clone(claim)
				if tt.opened {
					xor := rawClient(t, c, src.PublicKey())
					xor.XORKeyStream(b, b)
				}
				c.SetWriteDeadline(time.Now().Add(10 * time.Second))
				// A refused peer's write may fail; the server read what it read.
				if _, err := c.Write(b); err == nil && tt.opened {
					sent += int64(len(b))
				}
			}
			if tt.opened {
				sent += int64(peers) * int64(len(openingOf(t, src.PublicKey())))
				if !ln.counted.wait(10*time.Second, func() bool { return ln.read.Load() >= sent }) {
					t.Errorf("the server read %d of the %d bytes sent", ln.read.Load(), sent)
				}
			} else if !ln.counted.wait(10*time.Second, func() bool { return ln.closed.Load() == peers }) {
				t.Errorf("the server closed %d of %d peers that sent a large frame before their handshake", ln.closed.Load(), peers)
			}
			grew := heapInUse() - start
			t.Logf("%d peers, each sent %d bytes of a claimed %d: heap grew %d bytes", peers, part, wire.MaxFrameSize, grew)
			if grew > peers*perPeer {
				t.Errorf("heap grew %d bytes, over %d (%d per peer); claimed frames would be %d", grew, peers*perPeer, perPeer, peers*wire.MaxFrameSize)
			}
			if tt.opened && ln.closed.Load() != 0 {
				t.Errorf("%d peers were dropped while their frames were arriving", ln.closed.Load())
			}
			if !tt.opened && !strings.Contains(logs.String(), "frame too large") {
				t.Errorf("no reason logged: %s", logs.String())
			}
			for _, c := range conns {
				c.Close()
			}
			cancel()
			select {
			case <-served:
			case <-time.After(10 * time.Second):
				t.Fatal("ServeListener did not return")
			}
		})
	}
}

// openingOf is what rawClient sends: a Feed and a Handshake.
func openingOf(t *testing.T, key []byte) []byte {
	t.Helper()
	dk := hypercore.DiscoveryKey(key)
	b := wire.AppendFrame(nil, 0, &wire.Feed{DiscoveryKey: dk[:], Nonce: bytes.Repeat([]byte{1}, wire.NonceSize)})
	return wire.AppendFrame(b, 0, &wire.Handshake{ID: make([]byte, 32), Live: wire.Bool(true)})
}

// TestPeerLimit: with the cap reached, new peers are closed at once with
// one log line for the lot; once a place is free an honest peer is served.
func TestPeerLimit(t *testing.T) {
	t.Parallel()
	src := writer(t, 13, blocksOf("p", 20))
	tests := []struct {
		name        string
		limit, over int
	}{
		{"cap of one", 1, 3},
		{"cap of four", 4, 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			var logs logBuffer
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			peers := protocol.NewPeerLimit(tt.limit)
			opts := protocol.Options{Live: true, Logger: logs.logger(), Peers: peers}
			go protocol.ServeListener(ctx, ln, opts, lookupOf(src))

			var held []net.Conn
			for range tt.limit {
				c, err := net.Dial("tcp", ln.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				rawClient(t, c, src.PublicKey())
				held = append(held, c)
			}
			if !waitFor(10*time.Second, func() bool { return peers.Peers() == tt.limit }) {
				t.Fatalf("%d peers served, want %d", peers.Peers(), tt.limit)
			}
			for i := range tt.over {
				c, err := net.Dial("tcp", ln.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				n, err := c.Read(make([]byte, 1))
				c.Close()
				var ne net.Error
				if n != 0 || err == nil || errors.As(err, &ne) && ne.Timeout() {
					t.Fatalf("peer %d over the cap: Read = %d, %v; want the connection closed", i, n, err)
				}
			}
			if got := strings.Count(logs.String(), "at the peer limit"); got != 1 {
				t.Errorf("%d log lines about the peer limit, want 1 for %d refusals: %s", got, tt.over, logs.String())
			}

			held[0].Close()
			if !waitFor(10*time.Second, func() bool { return peers.Peers() == tt.limit-1 }) {
				t.Fatalf("%d peers served after one left, want %d", peers.Peers(), tt.limit-1)
			}
			good := replicaOf(t, src)
			if err := protocol.Dial(ctx, ln.Addr().String(), protocol.Options{}, good); err != nil {
				t.Fatalf("honest peer under the cap: %v", err)
			}
			sameBlocks(t, src, good)
		})
	}
}

// TestOpening: a peer must open its stream (Feed, then Handshake) in time
// and with small frames; keep-alives do not put that off.
func TestOpening(t *testing.T) {
	t.Parallel()
	src := writer(t, 14, blocksOf("o", 3))
	key := src.PublicKey()
	dk := src.DiscoveryKey()
	nonce := bytes.Repeat([]byte{2}, wire.NonceSize)
	feed := wire.AppendFrame(nil, 0, &wire.Feed{DiscoveryKey: dk[:], Nonce: nonce})
	// keepAlives sends keep-alives (encrypted after the Feed) until the
	// server hangs up, for at most five seconds.
	keepAlives := func(conn net.Conn, xor cipher.Stream) {
		for range 100 {
			b := []byte{0}
			if xor != nil {
				xor.XORKeyStream(b, b)
			}
			if _, err := conn.Write(b); err != nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	tests := []struct {
		name  string
		write func(conn net.Conn)
		want  error
	}{
		{"keep-alives only", func(conn net.Conn) { keepAlives(conn, nil) }, protocol.ErrNoHandshake},
		{"a Feed, then keep-alives", func(conn net.Conn) {
			conn.Write(feed)
			keepAlives(conn, wire.NewStream(key, nonce))
		}, protocol.ErrNoHandshake},
		{"a large first frame", func(conn net.Conn) {
			conn.Write(wire.AppendRawFrame(nil, 0, wire.TypeFeed, make([]byte, 100<<10)))
		}, wire.ErrFrameTooLarge},
		{"a large frame before the Handshake", func(conn net.Conn) {
			b := wire.AppendRawFrame(nil, 0, wire.TypeExtension, make([]byte, 100<<10))
			wire.NewStream(key, nonce).XORKeyStream(b, b)
			conn.Write(append(bytes.Clone(feed), b...))
		}, wire.ErrFrameTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			client, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			server, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			go io.Copy(io.Discard, client)
			go tt.write(client)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			// The quiet-peer timeout (Timeout/4 checks, five of them) is
			// shorter than the handshake's: keep-alives must not matter.
			opts := protocol.Options{Timeout: 400 * time.Millisecond, HandshakeTimeout: time.Second}
			began := time.Now()
			err = protocol.Serve(ctx, server, opts, lookupOf(src))
			if !errors.Is(err, tt.want) {
				t.Fatalf("Serve = %v after %v, want %v", err, time.Since(began), tt.want)
			}
		})
	}
}

// flakyListener fails its first accepts as a process out of file
// descriptors does.
type flakyListener struct {
	net.Listener
	failures atomic.Int32
}

func (l *flakyListener) Accept() (net.Conn, error) {
	if l.failures.Add(-1) >= 0 {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

// TestAcceptOutOfFiles: ServeListener waits out accepts that fail for want
// of file descriptors and goes on serving.
func TestAcceptOutOfFiles(t *testing.T) {
	t.Parallel()
	src := writer(t, 15, blocksOf("f", 5))
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := &flakyListener{Listener: inner}
	ln.failures.Store(5)
	var logs logBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	served := make(chan error, 1)
	go func() {
		served <- protocol.ServeListener(ctx, ln, protocol.Options{Logger: logs.logger()}, lookupOf(src))
	}()
	good := replicaOf(t, src)
	if err := protocol.Dial(ctx, inner.Addr().String(), protocol.Options{}, good); err != nil {
		t.Fatalf("peer after failed accepts: %v", err)
	}
	sameBlocks(t, src, good)
	if got := strings.Count(logs.String(), "too many open files"); got != 1 {
		t.Errorf("%d log lines about the failed accepts, want 1: %s", got, logs.String())
	}
	cancel()
	if err := <-served; err != nil {
		t.Errorf("ServeListener = %v", err)
	}
}
