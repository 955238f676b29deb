package protocol_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/nodevms/nodevms/hypercore"
	"github.com/nodevms/nodevms/hypercore/protocol"
	"github.com/nodevms/nodevms/hypercore/wire"
)

// FuzzServeStream sends a serving stream a proper opening (Feed, Handshake)
// followed by arbitrary frames from the fuzzer, encrypted as a peer would:
// the server must end the stream or keep serving, never panic, and return
// once the peer hangs up.
func FuzzServeStream(f *testing.F) {
	src, err := hypercore.Open(hypercore.Config{Storage: hypercore.NewMemoryStorage(),
		SecretKey: hypercore.KeyPairFromSeed(bytes.Repeat([]byte{5}, 32)).SecretKey, Create: true})
	if err != nil {
		f.Fatal(err)
	}
	for i := range 10 {
		if _, err := src.Append(bytes.Repeat([]byte{byte(i)}, 100*i)); err != nil {
			f.Fatal(err)
		}
	}
	key := src.PublicKey()
	dk := src.DiscoveryKey()
	f.Add(wire.AppendFrame(nil, 0, &wire.Want{Start: 0, Length: wire.Uint64(1 << 20)}))
	f.Add(append(wire.AppendFrame(nil, 0, &wire.Request{Index: 3, Nodes: wire.Uint64(0)}),
		wire.AppendFrame(nil, 0, &wire.Have{Start: 0, Bitfield: []byte{0x0f, 0x02, 0x07}})...))
	f.Add(wire.AppendFrame(nil, 1, &wire.Feed{DiscoveryKey: dk[:]}))
	// A frame that grows the reader's buffer as it arrives, and one that
	// claims 8 MiB and ends early.
	f.Add(wire.AppendRawFrame(nil, 0, wire.TypeExtension, make([]byte, 300<<10)))
	f.Add(append([]byte{0x80, 0x80, 0x80, 0x04}, make([]byte, 200<<10)...))
	f.Fuzz(func(t *testing.T, frames []byte) {
		server, client := net.Pipe()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done := make(chan error, 1)
		go func() {
			done <- protocol.Serve(ctx, server, protocol.Options{Timeout: time.Second}, func(d [32]byte) *hypercore.Feed {
				if d == dk {
					return src
				}
				return nil
			})
		}()
		go io.Copy(io.Discard, client)
		nonce := bytes.Repeat([]byte{3}, wire.NonceSize)
		client.Write(wire.AppendFrame(nil, 0, &wire.Feed{DiscoveryKey: dk[:], Nonce: nonce}))
		rest := append(wire.AppendFrame(nil, 0, &wire.Handshake{ID: make([]byte, 32)}), frames...)
		wire.NewStream(key, nonce).XORKeyStream(rest, rest)
		client.Write(rest)
		client.Close()
		select {
		case <-done:
		case <-ctx.Done():
			t.Fatal("the server did not end after the peer hung up")
		}
	})
}
