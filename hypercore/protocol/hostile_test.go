package protocol_test

import (
	"bytes"
	"context"
	"crypto/cipher"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodevms/nodevms/hypercore"
	"github.com/nodevms/nodevms/hypercore/protocol"
	"github.com/nodevms/nodevms/hypercore/wire"
)

// logBuffer collects a stream's log records.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
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
func tamperedDownload(t *testing.T, src *hypercore.Feed, tamper func(*wire.Frame)) (*hypercore.Feed, error, string) {
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
	return dst, err, logs.String()
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
			dst, err, logs := tamperedDownload(t, src, tt.tamper)
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

			deadline := time.Now().Add(10 * time.Second)
			for !strings.Contains(logs.String(), tt.want) {
				if time.Now().After(deadline) {
					t.Fatalf("no log containing %q; logs: %s", tt.want, logs.String())
				}
				time.Sleep(20 * time.Millisecond)
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
