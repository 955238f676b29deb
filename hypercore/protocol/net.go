package protocol

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nodevms/nodevms/hypercore"
)

// DefaultPort is the TCP port Dat peers usually listen on.
const DefaultPort = 3282

// DefaultMaxPeers is the cap ServeListener puts on peers served at once
// when Options.Peers is nil. Each peer may hold a frame of up to 8 MiB
// being read, so 128 bounds that memory at 1 GiB; a host rarely has more
// than a few mirrors and auditors at once.
const DefaultMaxPeers = 128

// PeerLimit caps how many peers are served at once, over every listener
// that shares it. It is safe for concurrent use.
type PeerLimit struct {
	max int64
	n   atomic.Int64
}

// NewPeerLimit returns a cap of n peers; n <= 0 is no cap.
func NewPeerLimit(n int) *PeerLimit { return &PeerLimit{max: int64(n)} }

// Acquire takes a place for one more peer, unless the cap is reached.
// Whoever gets one calls Release when the peer is gone.
func (l *PeerLimit) Acquire() bool {
	for {
		n := l.n.Load()
		if l.max > 0 && n >= l.max {
			return false
		}
		if l.n.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// Release gives back a place Acquire took.
func (l *PeerLimit) Release() { l.n.Add(-1) }

// Peers is the number of places taken.
func (l *PeerLimit) Peers() int { return int(l.n.Load()) }

// Max is the cap; 0 is none.
func (l *PeerLimit) Max() int { return int(max(l.max, 0)) }

// refusalLogEvery spaces the log lines about refused peers (and failed
// accepts), so that a flood of connections cannot fill the operator's log.
const refusalLogEvery = 10 * time.Second

// ServeListener accepts connections on ln and serves the feeds lookup finds
// to each, until ctx ends; then it closes ln and waits for the connections'
// streams to end. A stream's failure ends that stream only. A connection
// over opts.Peers is closed at once; the refusals are logged at most once
// every ten seconds, with how many there were. An Accept that fails for
// want of file descriptors (or memory) is retried after a pause.
func ServeListener(ctx context.Context, ln net.Listener, opts Options, lookup Lookup) error {
	peers := opts.Peers
	if peers == nil {
		peers = NewPeerLimit(DefaultMaxPeers)
	}
	var wg sync.WaitGroup
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var lastLog, lastAcceptLog time.Time
	refused := 0
	var backoff time.Duration
	for {
		conn, err := ln.Accept()
		if err != nil && ctx.Err() == nil && transientAccept(err) {
			// Out of file descriptors, say, in a flood of connections:
			// wait for some to close rather than stop serving for good.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			if now := time.Now(); opts.Logger != nil && now.Sub(lastAcceptLog) >= refusalLogEvery {
				opts.Logger.Warn("accepting peers", "reason", err, "retry_in", backoff)
				lastAcceptLog = now
			}
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
			}
			continue
		}
		if err != nil {
			wg.Wait()
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		backoff = 0
		if !peers.Acquire() {
			conn.Close()
			refused++
			if now := time.Now(); opts.Logger != nil && now.Sub(lastLog) >= refusalLogEvery {
				opts.Logger.Warn("refused peers: at the peer limit", "limit", peers.Max(), "refused", refused, "last", conn.RemoteAddr().String())
				lastLog, refused = now, 0
			}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer peers.Release()
			if err := Serve(ctx, conn, opts, lookup); err != nil && opts.Logger != nil {
				opts.Logger.Info("peer disconnected", "remote", conn.RemoteAddr().String(), "reason", err)
			}
		}()
	}
}

// transientAccept reports whether an Accept error passes: the listener
// is fine, the process or the peer is not.
func transientAccept(err error) bool {
	for _, e := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED, syscall.ECONNRESET} {
		if errors.Is(err, e) {
			return true
		}
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
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
