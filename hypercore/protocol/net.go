package protocol

import (
	"context"
	"errors"
	"net"
	"sync"

	"github.com/nodevms/nodevms/hypercore"
)

// DefaultPort is the TCP port Dat peers usually listen on.
const DefaultPort = 3282

// ServeListener accepts connections on ln and serves the feeds lookup finds
// to each, until ctx ends; then it closes ln and waits for the connections'
// streams to end. A stream's failure ends that stream only.
func ServeListener(ctx context.Context, ln net.Listener, opts Options, lookup Lookup) error {
	var wg sync.WaitGroup
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	for {
		conn, err := ln.Accept()
		if err != nil {
			wg.Wait()
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := Serve(ctx, conn, opts, lookup); err != nil && opts.Logger != nil {
				opts.Logger.Info("peer disconnected", "remote", conn.RemoteAddr().String(), "reason", err)
			}
		}()
	}
}

// Dial connects to a peer at addr (host:port over TCP) and replicates feeds
// with it, as Replicate does.
func Dial(ctx context.Context, addr string, opts Options, feeds ...*hypercore.Feed) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return Replicate(ctx, conn, opts, feeds...)
}
