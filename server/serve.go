package server

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/nodevms/nodevms"
	"github.com/nodevms/nodevms/hypercore"
	"github.com/nodevms/nodevms/hypercore/protocol"
	"github.com/nodevms/nodevms/rpc"
)

// ServeOptions configure Serve.
type ServeOptions struct {
	// Debug lets callers name themselves; RequireSigned refuses unsigned
	// calls (rpc.Options).
	Debug, RequireSigned bool
	// MaxConnections caps the JSON-RPC connections open at once (1024 if
	// zero; negative: no cap).
	MaxConnections int
	// MaxPeers caps the Dat peers, over the Dat listener and the WebSocket
	// at /.dat together (protocol.DefaultMaxPeers if zero; negative: no
	// cap).
	MaxPeers int
	// Logger receives why connections ended.
	Logger *slog.Logger
	// PollFor is how long a reader whose caller has been quick polls for
	// its next request before it waits as usual (rpc.Options).
	PollFor time.Duration
}

// Serving is a backend being served.
type Serving struct {
	// RPC is the JSON-RPC server (its Connections count them).
	RPC *rpc.Server
	// Stats counts what replication moves, over both paths.
	Stats *protocol.Stats

	http     *http.Server
	stopRepl context.CancelFunc
	replDone chan struct{}
}

// Serve serves the backend's methods over JSON-RPC on a WebSocket at
// rpcLn (with the feeds also replicating at /.dat there), and its call log
// and files archive over the Dat protocol at datLn, until Shutdown. It
// owns the listeners from then on.
func (b *Backend) Serve(rpcLn, datLn net.Listener, opts ServeOptions) (*Serving, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	maxPeers := opts.MaxPeers
	switch {
	case maxPeers == 0:
		maxPeers = protocol.DefaultMaxPeers
	case maxPeers < 0:
		maxPeers = 0 // protocol.PeerLimit's 0 is no cap
	}
	s := &Serving{Stats: &protocol.Stats{}, replDone: make(chan struct{})}
	// One cap for Dat peers, over TCP and over the WebSocket at /.dat:
	// they cost the same.
	peers := protocol.NewPeerLimit(maxPeers)
	s.RPC = rpc.NewServer(rpc.Options{
		Debug: opts.Debug, RequireSigned: opts.RequireSigned, Version: nodevms.Version,
		ReplicationAddr: DisplayAddr(datLn.Addr()), Stats: s.Stats, Logger: logger,
		MaxConnections: opts.MaxConnections, Peers: peers, PollFor: opts.PollFor,
	})
	if err := s.RPC.Mount("/", rpc.Backend{Host: b.Host, Title: b.title, Archive: b.Archive, Log: b.Log}); err != nil {
		return nil, err
	}
	s.http = &http.Server{Handler: s.RPC, ReadHeaderTimeout: 10 * time.Second}
	go s.http.Serve(rpcLn)
	lookup := b.Archive.Lookup()
	logDK := b.Log.DiscoveryKey()
	var replCtx context.Context
	replCtx, s.stopRepl = context.WithCancel(context.Background())
	go func() {
		defer close(s.replDone)
		protocol.ServeListener(replCtx, datLn, protocol.Options{Live: true, Stats: s.Stats, Logger: logger, Peers: peers}, func(dk [32]byte) *hypercore.Feed {
			if dk == logDK {
				return b.Log
			}
			return lookup(dk)
		})
	}()
	return s, nil
}

// Shutdown stops serving: no new connections, and the Dat peers are let
// go. Calls the host has queued are still answered (Backend.Close waits
// for them). It returns ctx's error if open connections did not end in
// time.
func (s *Serving) Shutdown(ctx context.Context) error {
	err := s.http.Shutdown(ctx)
	s.stopRepl()
	select {
	case <-s.replDone:
	case <-ctx.Done():
		err = errors.Join(err, ctx.Err())
	}
	return err
}

// DisplayAddr writes a loopback address as localhost, as users type it.
func DisplayAddr(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}
