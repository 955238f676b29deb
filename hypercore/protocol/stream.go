package protocol

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nodevms/nodevms/hypercore"
	"github.com/nodevms/nodevms/hypercore/wire"
)

// Options configure a stream. The zero value replicates feeds once (not
// live), downloads everything the peer has, and times out a silent peer as
// the reference does.
type Options struct {
	// Live keeps the stream open after the first full download, passing
	// new blocks both ways as they are appended.
	Live bool
	// Sparse downloads only the blocks asked for with Stream.Download,
	// instead of every block the peer has.
	Sparse bool
	// ID is this peer's 32-byte id in the handshake; random if nil.
	ID []byte
	// Extensions are the extension names this side supports.
	Extensions []string
	// Nonce is this side's 24-byte encryption nonce; random if nil. Only
	// tests that need repeatable bytes should set it.
	Nonce []byte
	// Timeout is how long a silent peer is tolerated, in quarters: the
	// reference checks every Timeout/4, pings after three quiet checks and
	// gives up after five. 5 seconds if zero.
	Timeout time.Duration
	// HandshakeTimeout is how long a peer has to send its Handshake, which
	// keep-alives do not put off. 10 seconds if zero.
	HandshakeTimeout time.Duration
	// Peers, if set, caps the peers ServeListener serves at once; those
	// over it are refused as they connect. Listeners (and package rpc's
	// replication endpoint) may share one. If nil, ServeListener makes one
	// of DefaultMaxPeers for itself.
	Peers *PeerLimit
	// MaxRequests bounds requests in flight per feed. If zero, the window
	// is sized to keep about 16 MiB of blocks in flight, between 16
	// requests (the reference's fixed number) and 256: large blocks need
	// more in flight to keep both ends busy.
	MaxRequests int
	// Stats, if set, counts the blocks and bytes moved.
	Stats *Stats
	// Logger receives the reasons a stream ends; nil discards them.
	Logger *slog.Logger
}

// Stats counts what streams moved; safe for concurrent use.
type Stats struct {
	UploadedBlocks, UploadedBytes     atomic.Uint64
	DownloadedBlocks, DownloadedBytes atomic.Uint64
}

// Lookup finds the feed a peer asks for by its discovery key; nil if this
// side does not serve it.
type Lookup func(discoveryKey [32]byte) *hypercore.Feed

// Errors that end a stream.
var (
	ErrTimeout        = errors.New("protocol: remote timed out")
	ErrUnknownFeed    = errors.New("protocol: remote asked for a feed this side does not serve")
	ErrNoNonce        = errors.New("protocol: remote did not include a nonce")
	ErrDifferentFirst = errors.New("protocol: the first feed of both sides must be the same")
	ErrTooManyFeeds   = errors.New("protocol: too many feeds on one stream")
	ErrBadMessage     = errors.New("protocol: invalid message")
	ErrNoHandshake    = errors.New("protocol: remote sent no handshake in time")
)

// maxOpeningFrame bounds the peer's frames until its Handshake: a Feed and
// a Handshake are a few hundred bytes, so that a peer must open properly
// before it may send a frame of up to 8 MiB.
const maxOpeningFrame = 64 << 10

// Stream is one replication connection: a sequence of channels, one per
// feed, over an encrypted stream of frames.
type Stream struct {
	conn   io.ReadWriteCloser
	opts   Options
	lookup Lookup
	log    *slog.Logger

	mu        sync.Mutex // guards the writing side and everything below
	writeErr  error
	xor       interface{ XORKeyStream(dst, src []byte) }
	queue     [][]byte // frames waiting for the writer goroutine, which encrypts them
	plain     int      // how many of queue's first entries go out unencrypted
	open      bool     // queue's last entry is a batch that takes more small frames
	spare     []byte   // a batch buffer the writer handed back for reuse
	queued    int
	wake      chan struct{}
	key       []byte // public key of the first feed: the encryption key
	nonce     []byte
	peerNonce []byte
	local     []*channel
	remote    [wire.MaxChannels]*channel
	byDK      map[[32]byte]*channel
	remoteID  []byte
	live      bool // both sides asked for live

	// Counters of writes and reads, for the keep-alive checks: cheaper than
	// a clock reading per message.
	sent, received atomic.Uint64

	events chan event
	done   chan struct{}
	closed atomic.Bool
}

// event is what the reader and the feeds hand to the stream's loop.
type event struct {
	frames  []message // messages that arrived together
	err     error
	changed *channel // a feed of this channel changed
	ack     chan []byte
}

// NewStream prepares a stream over conn. Feeds this side opens are added
// with AddFeed; feeds the peer asks for are found with lookup (nil: none).
func NewStream(conn io.ReadWriteCloser, opts Options, lookup Lookup) *Stream {
	if opts.Timeout == 0 {
		opts.Timeout = 5 * time.Second
	}
	if opts.HandshakeTimeout == 0 {
		opts.HandshakeTimeout = 10 * time.Second
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Stream{
		conn:   conn,
		opts:   opts,
		lookup: lookup,
		log:    log,
		byDK:   make(map[[32]byte]*channel),
		events: make(chan event, 64),
		done:   make(chan struct{}),
		wake:   make(chan struct{}, 1),
	}
}

// Replicate replicates feeds with the peer at the other end of conn until
// the work is done (or, when live, until ctx ends or the peer leaves).
func Replicate(ctx context.Context, conn io.ReadWriteCloser, opts Options, feeds ...*hypercore.Feed) error {
	s := NewStream(conn, opts, nil)
	for _, f := range feeds {
		if err := s.AddFeed(f); err != nil {
			conn.Close()
			return err
		}
	}
	return s.Run(ctx)
}

// Serve answers a peer that asks for any of the feeds lookup finds.
func Serve(ctx context.Context, conn io.ReadWriteCloser, opts Options, lookup Lookup) error {
	return NewStream(conn, opts, lookup).Run(ctx)
}

// AddFeed opens a channel for f; call it before Run.
func (s *Stream) AddFeed(f *hypercore.Feed) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, err := s.openLocked(f)
	return err
}

// Download asks, on a sparse stream, for blocks of f (which must be on this
// stream) to be fetched when the peer has them.
func (s *Stream) Download(f *hypercore.Feed, blocks ...uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ch := range s.local {
		if ch != nil && ch.feed == f {
			for _, b := range blocks {
				ch.peer.wanted[b] = true
			}
		}
	}
}

// openLocked opens a local channel for f: a Feed message (the first one in
// the clear, with the nonce, followed by the Handshake).
func (s *Stream) openLocked(f *hypercore.Feed) (*channel, error) {
	dk := f.DiscoveryKey()
	ch := s.byDK[dk]
	if ch == nil {
		ch = &channel{dk: dk, remoteID: -1}
		s.byDK[dk] = ch
	}
	if ch.feed != nil {
		return ch, nil
	}
	if len(s.local) >= wire.MaxChannels {
		return nil, ErrTooManyFeeds
	}
	ch.feed = f
	ch.localID = len(s.local)
	s.local = append(s.local, ch)
	ch.peer = newPeer(s, ch)

	first := s.key == nil
	msg := &wire.Feed{DiscoveryKey: dk[:]}
	if first {
		s.key = f.PublicKey()
		s.nonce = s.opts.Nonce
		if s.nonce == nil {
			s.nonce = make([]byte, wire.NonceSize)
			if _, err := rand.Read(s.nonce); err != nil {
				return nil, err
			}
		}
		msg.Nonce = s.nonce
	}
	s.sendLocked(ch, msg)
	if first {
		s.xor = wire.NewStream(s.key, s.nonce)
		id := s.opts.ID
		if id == nil {
			id = make([]byte, 32)
			rand.Read(id)
		}
		s.sendLocked(ch, &wire.Handshake{
			ID:         id,
			Live:       wire.Bool(s.opts.Live),
			Extensions: s.opts.Extensions,
			Ack:        wire.Bool(false),
		})
	}
	return ch, nil
}

// maxQueued bounds the bytes waiting to be written: a peer that asks for
// data but does not read it is cut off rather than allowed to fill memory.
const maxQueued = 64 << 20

// ErrPeerNotReading ends a stream whose peer stopped reading.
var ErrPeerNotReading = errors.New("protocol: peer is not reading")

// sendLocked queues one message on ch's local channel.
func (s *Stream) sendLocked(ch *channel, m wire.Message) {
	s.writeLocked(wire.EncodeFrame(uint64(ch.localID), m))
}

// smallFrame is the size under which a frame is copied into a batch with
// its neighbours rather than queued on its own: the cipher and the system
// call then work on kilobytes at a time, not on each small message.
const smallFrame = 4 << 10

// writeLocked queues frame b, which the stream now owns, for the writer
// goroutine. Frames after the first Feed message are encrypted by the
// writer, in order, so that the loop never blocks on a slow peer and
// encryption runs beside it.
func (s *Stream) writeLocked(b []byte) {
	if s.writeErr != nil {
		return
	}
	if s.queued+len(b) > maxQueued {
		s.writeErr = ErrPeerNotReading
		s.conn.Close()
		return
	}
	s.queued += len(b)
	switch {
	case s.xor == nil:
		s.queue = append(s.queue, b)
		s.plain++
		s.open = false
	case len(b) < smallFrame:
		if !s.open {
			batch := s.spare[:0]
			s.spare = nil
			s.queue = append(s.queue, batch)
			s.open = true
		}
		last := &s.queue[len(s.queue)-1]
		*last = append(*last, b...)
	default:
		s.queue = append(s.queue, b)
		s.open = false
	}
}

// wakeWriter tells the writer there is something queued. The loop calls it
// once after handling an event, so that everything one event produced goes
// out in one write.
func (s *Stream) wakeWriter() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// write drains the queue onto the connection until the stream ends.
func (s *Stream) write() {
	for {
		select {
		case <-s.wake:
		case <-s.done:
			return
		}
		s.mu.Lock()
		q, plain, xor := s.queue, s.plain, s.xor
		s.queue, s.plain, s.open = nil, 0, false
		s.mu.Unlock()
		if len(q) == 0 {
			continue
		}
		n := 0
		for i, b := range q {
			n += len(b)
			if i >= plain {
				xor.XORKeyStream(b, b)
			}
		}
		// Written below, the last buffer can be reused for the next batch
		// (WriteTo clears the slice's entries as it goes).
		reuse := q[len(q)-1]
		// One write (writev on TCP) for everything queued: a syscall per
		// frame would cost more than the frames.
		bufs := net.Buffers(q)
		s.sent.Add(1)
		if _, err := bufs.WriteTo(s.conn); err != nil {
			s.mu.Lock()
			s.writeErr = err
			s.mu.Unlock()
			s.conn.Close()
			return
		}
		s.mu.Lock()
		s.queued -= n
		if c := cap(reuse); c >= smallFrame && c <= 1<<20 {
			s.spare = reuse
		}
		s.mu.Unlock()
	}
}

// flush waits (briefly) until everything queued is written, so that a
// stream that ends on purpose does not cut off its last messages.
func (s *Stream) flush() {
	deadline := time.Now().Add(s.opts.Timeout)
	for time.Now().Before(deadline) {
		s.mu.Lock()
		empty := s.queued == 0 || s.writeErr != nil
		s.mu.Unlock()
		if empty {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// Run runs the stream until it ends: the work is done (not live), ctx ends,
// the peer leaves, or something goes wrong. It closes the connection.
func (s *Stream) Run(ctx context.Context) error {
	go s.read()
	go s.write()
	s.wakeWriter() // what AddFeed queued
	ticker := time.NewTicker(s.opts.Timeout / 4)
	defer ticker.Stop()
	handshake := time.NewTimer(s.opts.HandshakeTimeout)
	defer handshake.Stop()
	err := s.loop(ctx, ticker.C, handshake.C)
	if err == nil {
		s.flush()
	}
	s.closed.Store(true)
	close(s.done)
	s.conn.Close()
	if err != nil {
		s.log.Info("replication stream ended", "reason", err)
	}
	return err
}

func (s *Stream) loop(ctx context.Context, tick, handshake <-chan time.Time) error {
	quietTicks, silentTicks := 0, 0
	var lastReceived, lastSent uint64
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-handshake:
			// Keep-alives keep a silent peer's stream open, so a peer that
			// never finishes opening is dropped here instead.
			s.mu.Lock()
			opened := s.remoteID != nil
			s.mu.Unlock()
			if !opened {
				return ErrNoHandshake
			}
			handshake = nil
		case <-tick:
			// The reference's timing: ping after three quiet checks (its
			// keep-alive counter), time out after five silent ones.
			if r := s.received.Load(); r != lastReceived {
				lastReceived, quietTicks = r, 0
			} else if quietTicks++; quietTicks > 4 {
				return ErrTimeout
			}
			if w := s.sent.Load(); w != lastSent {
				lastSent, silentTicks = w, 0
			} else {
				silentTicks++
			}
			s.mu.Lock()
			if s.xor != nil && silentTicks >= 3 {
				s.writeLocked(append([]byte(nil), wire.KeepAlive...))
				silentTicks = 0
			}
			for _, ch := range s.local {
				if ch != nil {
					if err := ch.peer.tick(); err != nil {
						s.mu.Unlock()
						return err
					}
				}
			}
			s.mu.Unlock()
			s.wakeWriter()
		case ev := <-s.events:
			if ev.err != nil {
				if errors.Is(ev.err, io.EOF) {
					return nil
				}
				if s.closed.Load() {
					return nil
				}
				return ev.err
			}
			s.mu.Lock()
			var err error
			var done bool
			if ev.changed != nil {
				err = ev.changed.peer.onFeedChanged()
			}
			for _, f := range ev.frames {
				if err = s.onFrameLocked(f, ev.ack); err != nil {
					break
				}
			}
			if err == nil {
				done = s.doneLocked()
			}
			s.mu.Unlock()
			s.wakeWriter()
			if err != nil {
				return err
			}
			if done {
				return nil
			}
		}
	}
}

// doneLocked reports whether a stream that is not live has nothing left to
// do: every channel's downloads are complete.
func (s *Stream) doneLocked() bool {
	if s.opts.Live || s.remoteID == nil || len(s.local) == 0 {
		return false
	}
	for _, ch := range s.local {
		if ch != nil && !ch.peer.finished() {
			return false
		}
	}
	return true
}

// read reads frames and hands them to the loop. The first frame is the
// peer's Feed in the clear; from the next byte on the stream is encrypted
// with the first feed's key, which the loop hands back once it knows it.
func (s *Stream) read() {
	fr := wire.NewFrameReader(s.conn)
	fr.Fresh = true // bodies go to the loop and must outlive the next read
	fr.MaxSize = maxOpeningFrame
	first := true
	for {
		f, keepAlive, err := fr.Next()
		if err == nil {
			s.received.Add(1)
		}
		if keepAlive {
			continue
		}
		if err != nil {
			s.deliver(event{err: err})
			return
		}
		if fr.MaxSize != 0 && f.Type == wire.TypeHandshake {
			fr.MaxSize = 0 // the peer has opened: frames of any size from here on
		}
		if !first {
			// Hand over every frame already buffered in one event: one
			// wake-up of the loop for a burst of small messages.
			frames := []message{decode(f)}
			size := len(f.Body)
			for fr.Buffered() && len(frames) < 256 && size < 32<<10 {
				g, keepAlive, err := fr.Next()
				if err != nil {
					if !s.deliver(event{frames: frames}) {
						return
					}
					s.deliver(event{err: err})
					return
				}
				if !keepAlive {
					if fr.MaxSize != 0 && g.Type == wire.TypeHandshake {
						fr.MaxSize = 0
					}
					frames = append(frames, decode(g))
					size += len(g.Body)
				}
			}
			if !s.deliver(event{frames: frames}) {
				return
			}
			continue
		}
		first = false
		if f.Type != wire.TypeFeed {
			s.deliver(event{err: fmt.Errorf("%w: the first message is %v, not Feed", ErrBadMessage, f.Type)})
			return
		}
		ack := make(chan []byte, 1)
		if !s.deliver(event{frames: []message{decode(f)}, ack: ack}) {
			return
		}
		var key []byte
		select {
		case key = <-ack:
		case <-s.done:
			return
		}
		if key == nil {
			return // the loop refused the feed and is ending the stream
		}
		fr.Decrypt(wire.NewStream(key, s.remoteNonce()))
	}
}

func (s *Stream) remoteNonce() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peerNonce
}

func (s *Stream) deliver(ev event) bool {
	select {
	case s.events <- ev:
		return true
	case <-s.done:
		return false
	}
}

// message is a frame decoded by the reader, or the error decoding it gave.
type message struct {
	frame wire.Frame
	msg   wire.Message
	err   error
}

// decode decodes a frame's message on the reader's goroutine, so that the
// loop only dispatches.
func decode(f wire.Frame) message {
	m, err := wire.Decode(f.Type, f.Body)
	return message{frame: f, msg: m, err: err}
}

// onFrameLocked handles one message from the peer.
func (s *Stream) onFrameLocked(dm message, ack chan []byte) error {
	f, m := dm.frame, dm.msg
	if f.Channel >= wire.MaxChannels {
		return ErrTooManyFeeds
	}
	if dm.err != nil {
		return fmt.Errorf("%w: %v on channel %d: %w", ErrBadMessage, f.Type, f.Channel, dm.err)
	}
	if feed, ok := m.(*wire.Feed); ok {
		return s.onFeedLocked(f.Channel, feed, ack)
	}
	ch := s.remote[f.Channel]
	if ch == nil {
		return fmt.Errorf("%w: %v on channel %d, which the peer never opened", ErrBadMessage, f.Type, f.Channel)
	}
	if h, ok := m.(*wire.Handshake); ok {
		if s.remoteID == nil {
			s.remoteID = h.ID
			if s.remoteID == nil {
				s.remoteID = []byte{}
			}
			s.live = s.opts.Live && h.Live != nil && *h.Live
			for _, c := range s.local {
				if c != nil && c.remoteID >= 0 {
					c.peer.ready()
				}
			}
		}
		return nil
	}
	if ch.feed == nil {
		return nil // a feed this side does not serve: its messages are ignored
	}
	return ch.peer.onMessage(m)
}

// onFeedLocked handles a peer's Feed message: it opens (or reopens) a
// remote channel, and for the peer's first one sets up decryption.
func (s *Stream) onFeedLocked(id uint64, m *wire.Feed, ack chan []byte) error {
	if len(m.DiscoveryKey) != 32 || (m.Nonce != nil && len(m.Nonce) != wire.NonceSize) {
		return fmt.Errorf("%w: Feed with a %d-byte discovery key and a %d-byte nonce", ErrBadMessage, len(m.DiscoveryKey), len(m.Nonce))
	}
	var dk [32]byte
	copy(dk[:], m.DiscoveryKey)
	first := s.peerNonce == nil
	if first {
		if m.Nonce == nil {
			return ErrNoNonce
		}
		s.peerNonce = append([]byte(nil), m.Nonce...)
	}

	ch := s.byDK[dk]
	if ch == nil {
		ch = &channel{dk: dk, remoteID: -1, localID: -1}
		s.byDK[dk] = ch
	}
	if old := s.remote[id]; old != nil && old != ch {
		old.remoteID = -1
		if old.feed == nil {
			// Forget channels of feeds this side does not serve, so that a
			// peer reopening channel numbers cannot grow the table.
			delete(s.byDK, old.dk)
		}
	}
	ch.remoteID = int(id)
	s.remote[id] = ch
	if ch.feed == nil && s.lookup != nil {
		if f := s.lookup(dk); f != nil {
			if _, err := s.openLocked(f); err != nil {
				return err
			}
		}
	}
	if first {
		if s.key == nil {
			ack <- nil
			return fmt.Errorf("%w: %x", ErrUnknownFeed, dk)
		}
		if hypercore.DiscoveryKey(s.key) != dk {
			ack <- nil
			return ErrDifferentFirst
		}
		ack <- s.key
	}
	if ch.feed == nil {
		s.log.Debug("peer asked for a feed this side does not serve", "discovery_key", fmt.Sprintf("%x", dk))
		return nil
	}
	if s.remoteID != nil {
		ch.peer.ready()
	}
	return nil
}

// watch forwards a feed's changes to the loop until the stream ends,
// starting from c, which the caller took from the feed before it looked at
// the feed's state. Each next channel is taken before the change is
// delivered, for the same reason: a change between the loop's look at the
// feed and a later Changed would close no channel anybody waits on, and
// would not be announced until the next one.
func (s *Stream) watch(ch *channel, c <-chan struct{}) {
	for {
		select {
		case <-c:
		case <-s.done:
			return
		}
		if ch.feed.Closed() {
			return // a closed feed's channel stays closed: nothing more to watch
		}
		c = ch.feed.Changed()
		if !s.deliver(event{changed: ch}) {
			return
		}
	}
}
