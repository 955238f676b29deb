package protocol

import (
	"errors"
	"fmt"
	"sort"

	"github.com/nodevms/nodevms/hypercore"
	"github.com/nodevms/nodevms/hypercore/bitfield"
	"github.com/nodevms/nodevms/hypercore/merkle"
	"github.com/nodevms/nodevms/hypercore/wire"
)

// wantSpan is the range one Want covers, as the reference asks: 1M blocks.
const wantSpan = 1 << 20

// maxHaveRun bounds the blocks one Have without a bitfield may announce, so
// that a peer cannot make this side loop over 2^64 bits.
const maxHaveRun = 1 << 24

// requestTicks is how many checks (Timeout/4 apart) a request may stay
// unanswered, as in the reference.
const requestTicks = 6

// ErrRequestTimeout ends a stream whose peer does not answer a request.
var ErrRequestTimeout = errors.New("protocol: request timed out")

// channel is one feed on a stream: its local and remote channel numbers
// (-1 until opened on that side) and its replication state.
type channel struct {
	dk       [32]byte
	feed     *hypercore.Feed
	localID  int
	remoteID int
	peer     *peer
}

// peer replicates one feed with the other side of a stream. Its methods run
// on the stream's loop, with the stream's lock held.
type peer struct {
	s  *Stream
	ch *channel

	readied     bool
	downloading bool // this side fetches blocks (it is not the writer)
	remoteWant  bool // the peer asked to hear what this side has
	announced   uint64
	remoteTree  *bitfield.TreeIndex // what the peer is known to have, for proofs
	remoteHas   bitset
	remoteLen   uint64 // one past the highest block the peer has announced
	heardHave   bool
	wantsSent   uint64 // Want spans sent, from 0
	inflight    []request
	requested   bitset
	cursor      uint64          // every block below it is here or requested
	wanted      map[uint64]bool // Sparse: the blocks to fetch
	scratch     struct {
		zero, digest uint64
		no           bool
	}
	requests     []wire.Request // waiting for the responder; nil until the first
	requestsWake chan struct{}
	received     []*wire.Data // waiting for the receiver; nil until the first
	receivedWake chan struct{}
	remoteDone   bool // the peer said it stopped downloading
	sentDone     bool
	finishedAll  bool
}

type request struct {
	index uint64
	ticks int
}

func newPeer(s *Stream, ch *channel) *peer {
	return &peer{
		s:            s,
		ch:           ch,
		downloading:  !ch.feed.Writable(),
		remoteTree:   bitfield.NewTreeIndex(),
		remoteHas:    bitset{},
		requested:    bitset{},
		requestsWake: make(chan struct{}, 1),
		receivedWake: make(chan struct{}, 1),
		wanted:       map[uint64]bool{},
	}
}

func (p *peer) send(m wire.Message) { p.s.sendLocked(p.ch, m) }

// ready runs once both sides have opened the channel and the handshake
// arrived: a downloader subscribes to the first span of blocks.
func (p *peer) ready() {
	if p.readied || p.ch.localID < 0 || p.ch.remoteID < 0 {
		return
	}
	p.readied = true
	go p.s.watch(p.ch, p.ch.feed.Changed())
	p.sendWants()
}

// sendWants subscribes to every span up to what the peer has announced.
func (p *peer) sendWants() {
	if !p.downloading {
		return
	}
	for p.wantsSent == 0 || p.wantsSent*wantSpan < p.remoteLen {
		p.send(&wire.Want{Start: p.wantsSent * wantSpan, Length: wire.Uint64(wantSpan)})
		p.wantsSent++
	}
}

func (p *peer) onMessage(m wire.Message) error {
	switch m := m.(type) {
	case *wire.Want:
		return p.onWant(m)
	case *wire.Have:
		return p.onHave(m)
	case *wire.Unhave:
		n := uint64(1)
		if m.Length != nil && *m.Length > 0 {
			n = min(*m.Length, maxHaveRun)
		}
		p.remoteHas.clearRange(m.Start, n)
		// Requests for blocks the peer no longer has will not be answered.
		kept := p.inflight[:0]
		for _, r := range p.inflight {
			if r.index >= m.Start && r.index-m.Start < n {
				p.requested.clearRange(r.index, 1)
				continue
			}
			kept = append(kept, r)
		}
		p.inflight = kept
		return p.update()
	case *wire.Request:
		return p.onRequest(m)
	case *wire.Data:
		return p.onData(m)
	case *wire.Info:
		p.remoteDone = m.Downloading == nil || !*m.Downloading
		return p.onInfo()
	}
	// Unwant, Cancel and extensions need no answer.
	return nil
}

func (p *peer) onWant(m *wire.Want) error {
	length := uint64(0)
	if m.Length != nil {
		length = *m.Length
	}
	if m.Start%bitfield.BlocksPerPage != 0 || length%bitfield.BlocksPerPage != 0 {
		return nil // the reference ignores unaligned wants
	}
	f := p.ch.feed
	if n := f.Published(); !p.remoteWant && n > 0 && f.Has(n-1) {
		// Tell the peer the feed's length straight away.
		p.send(&wire.Have{Start: n - 1})
	}
	p.remoteWant = true
	if f.Writable() {
		p.announced = max(p.announced, f.Published())
	} else {
		// A replica announces what it gains from here on, as far as its
		// blocks run without a gap (see onFeedChanged).
		for p.announced < f.Length() && f.Has(p.announced) {
			p.announced++
		}
	}
	p.send(&wire.Have{Start: m.Start, Length: wire.Uint64(length), Bitfield: f.HaveBitfield(m.Start, length)})
	return nil
}

func (p *peer) onHave(m *wire.Have) error {
	p.heardHave = true
	if m.Bitfield != nil {
		// A bitfield covers its Want's span; the reference decodes it padded
		// to whole 32-bit words.
		bits, err := wire.DecodeRLE(m.Bitfield, wantSpan/8)
		if err != nil {
			return fmt.Errorf("%w: Have: %w", ErrBadMessage, err)
		}
		for i, b := range bits {
			for j := 0; j < 8; j++ {
				if b&(128>>j) != 0 {
					idx := m.Start + uint64(8*i+j)
					p.remoteHas.set(idx)
					p.remoteLen = max(p.remoteLen, idx+1)
				}
			}
		}
	} else {
		n := uint64(1)
		if m.Length != nil && *m.Length > 0 {
			n = *m.Length
		}
		if n > maxHaveRun || m.Start > maxBlock {
			return fmt.Errorf("%w: Have of %d blocks from %d", ErrBadMessage, n, m.Start)
		}
		p.remoteHas.setRange(m.Start, n)
		p.remoteLen = max(p.remoteLen, m.Start+n)
	}
	if len(p.remoteHas) > maxRemotePages {
		return ErrTooManyAnnounced
	}
	p.sendWants()
	return p.update()
}

// maxBlock bounds block indexes from a peer; far beyond any real feed.
const maxBlock = 1 << 52

// maxQueuedRequests bounds the requests a peer may have waiting for
// answers; the reference sends at most 16 at a time.
const maxQueuedRequests = 4096

// ErrTooManyRequests ends a stream whose peer piles up requests.
var ErrTooManyRequests = errors.New("protocol: too many requests waiting")

// onRequest hands a request to the peer's responder goroutine, which
// builds the answers (proof, block, encoding) off the loop, in order.
func (p *peer) onRequest(m *wire.Request) error {
	if len(p.requests) >= maxQueuedRequests {
		return ErrTooManyRequests
	}
	if p.requests == nil {
		go p.respond()
	}
	p.requests = append(p.requests, *m)
	select {
	case p.requestsWake <- struct{}{}:
	default:
	}
	return nil
}

// respond answers requests in the order they came, until the stream ends.
// It runs without the stream's lock except to queue each answer; the
// remote tree it updates is its own.
func (p *peer) respond() {
	for {
		select {
		case <-p.requestsWake:
		case <-p.s.done:
			return
		}
		p.s.mu.Lock()
		batch := p.requests
		p.requests = p.requests[len(p.requests):]
		p.s.mu.Unlock()
		for i := range batch {
			frame, err := p.answer(&batch[i])
			if err != nil {
				p.s.deliver(event{err: err})
				return
			}
			if frame == nil {
				continue
			}
			p.s.mu.Lock()
			p.s.writeLocked(frame)
			p.s.mu.Unlock()
		}
		p.s.wakeWriter()
	}
}

// answer builds the Data frame that answers m.
func (p *peer) answer(m *wire.Request) ([]byte, error) {
	f := p.ch.feed
	digest := uint64(0)
	if m.Nodes != nil {
		digest = *m.Nodes
	}
	hash := m.Hash != nil && *m.Hash
	if m.Index >= f.Published() {
		// Held back (see hypercore.Feed.Hold): not ours to show yet, so
		// not answered, as a block this side does not have.
		return nil, nil
	}
	proof, err := f.Proof(m.Index, hypercore.ProofRequest{Digest: digest, Hash: hash, Remote: p.remoteTree})
	if err != nil {
		return nil, fmt.Errorf("protocol: request for block %d: %w", m.Index, err)
	}
	var value []byte
	if !hash {
		// The peer verifies the block; hashing it here too would double the
		// cost of serving.
		if value, err = f.GetUnchecked(m.Index); err != nil {
			// A block this side cannot read (its bytes are damaged, or were
			// changed behind the feed's back) is one it does not have: say
			// so, and carry on serving the rest.
			p.s.log.Warn("not serving a block", "index", m.Index, "reason", err)
			return wire.EncodeFrame(uint64(p.ch.localID), &wire.Unhave{Start: m.Index}), nil
		}
	}
	d := &wire.Data{Index: m.Index, Value: value, Signature: proof.Signature}
	d.Nodes = make([]wire.Node, len(proof.Nodes))
	for k := range proof.Nodes {
		n := &proof.Nodes[k] // the proof is ours alone: its hashes need no copy
		d.Nodes[k] = wire.Node{Index: n.Index, Hash: n.Hash[:], Size: n.Size}
	}
	if st := p.s.opts.Stats; st != nil && value != nil {
		st.UploadedBlocks.Add(1)
		st.UploadedBytes.Add(uint64(len(value)))
	}
	return wire.EncodeFrame(uint64(p.ch.localID), d), nil
}

func (p *peer) onData(m *wire.Data) error {
	if !p.requested.get(m.Index) {
		// Unrequested blocks are not taken; the reference says so with an
		// Unhave for blocks it does not have.
		if m.Value != nil && !p.ch.feed.Has(m.Index) {
			p.send(&wire.Unhave{Start: m.Index})
		}
		return nil
	}
	if m.Value == nil {
		return fmt.Errorf("%w: Data for block %d without a value", ErrBadMessage, m.Index)
	}
	for _, n := range m.Nodes {
		if len(n.Hash) != 32 {
			return fmt.Errorf("%w: proof node of block %d with a %d-byte hash", ErrBadMessage, m.Index, len(n.Hash))
		}
	}
	// Verifying and storing happen on the receiver goroutine, in order, so
	// that the loop keeps reading meanwhile.
	if p.received == nil {
		go p.receive()
	}
	p.received = append(p.received, m)
	select {
	case p.receivedWake <- struct{}{}:
	default:
	}
	return nil
}

// receive verifies and stores received blocks in the order they came, then
// asks for more, until the stream ends. A block that does not verify ends
// the stream; nothing of it is stored.
func (p *peer) receive() {
	for {
		select {
		case <-p.receivedWake:
		case <-p.s.done:
			return
		}
		p.s.mu.Lock()
		batch := p.received
		p.received = p.received[len(p.received):]
		p.s.mu.Unlock()
		for _, m := range batch {
			proof := hypercore.Proof{Signature: m.Signature, Nodes: make([]merkle.Node, len(m.Nodes))}
			for k, n := range m.Nodes {
				proof.Nodes[k] = hypercoreNode(n)
			}
			if err := p.ch.feed.Put(m.Index, m.Value, proof); err != nil {
				p.s.deliver(event{err: fmt.Errorf("protocol: block %d from the peer: %w", m.Index, err)})
				return
			}
			if st := p.s.opts.Stats; st != nil {
				st.DownloadedBlocks.Add(1)
				st.DownloadedBytes.Add(uint64(len(m.Value)))
			}
			p.s.mu.Lock()
			p.clear(m.Index)
			err := p.update()
			p.s.mu.Unlock()
			if err != nil {
				p.s.deliver(event{err: err})
				return
			}
		}
		p.s.wakeWriter()
	}
}

func (p *peer) clear(index uint64) {
	p.requested.clearRange(index, 1)
	for i, r := range p.inflight {
		if r.index == index {
			p.inflight = append(p.inflight[:i], p.inflight[i+1:]...)
			break
		}
	}
}

func (p *peer) onInfo() error {
	if !p.remoteDone || p.s.live {
		return nil
	}
	if !p.downloading {
		// The writer's side of the reference's end: it says it is neither
		// uploading nor downloading any more, and closes.
		p.send(&wire.Info{Uploading: wire.Bool(false), Downloading: wire.Bool(false)})
		p.finishedAll = true
		return nil
	}
	if p.finished() {
		p.finishedAll = true
	}
	return nil
}

// update sends requests for blocks the peer has and this side lacks, up to
// the limit in flight, lowest first.
func (p *peer) update() error {
	if !p.downloading {
		return nil
	}
	f := p.ch.feed
	if p.s.opts.Sparse {
		idx := make([]uint64, 0, len(p.wanted))
		for i := range p.wanted {
			idx = append(idx, i)
		}
		sort.Slice(idx, func(a, b int) bool { return idx[a] < idx[b] })
		for _, i := range idx {
			if len(p.inflight) >= p.window() {
				break
			}
			if f.Has(i) {
				delete(p.wanted, i)
				continue
			}
			if !p.requested.get(i) && p.remoteHas.get(i) {
				p.request(i)
			}
		}
	} else {
		window := p.window()
		for i := p.cursor; i < p.remoteLen && len(p.inflight) < window; i++ {
			if f.Has(i) || p.requested.get(i) {
				if i == p.cursor {
					p.cursor++
				}
				continue
			}
			if p.remoteHas.get(i) {
				p.request(i)
				if i == p.cursor {
					p.cursor++
				}
			}
		}
	}
	p.maybeDone()
	return nil
}

// Request window bounds, for Options.MaxRequests zero.
const (
	minWindow   = 16
	maxWindow   = 256
	windowBytes = 16 << 20
)

// window is how many requests may be in flight.
func (p *peer) window() int {
	if p.s.opts.MaxRequests > 0 {
		return p.s.opts.MaxRequests
	}
	n, size := p.ch.feed.Length(), p.ch.feed.ByteLength()
	if n == 0 || size == 0 {
		return minWindow
	}
	return int(min(max(windowBytes/max(size/n, 1), minWindow), maxWindow))
}

func (p *peer) request(i uint64) {
	p.requested.set(i)
	p.inflight = append(p.inflight, request{index: i, ticks: requestTicks})
	// The message is encoded at once: it can point into the peer's own
	// scratch fields rather than allocate its optional ones.
	p.scratch.digest = p.ch.feed.Digest(i)
	p.send(&wire.Request{Index: i, Bytes: &p.scratch.zero, Hash: &p.scratch.no, Nodes: &p.scratch.digest})
}

// finished reports whether this channel has nothing left to do when the
// stream is not live.
func (p *peer) finished() bool {
	if p.finishedAll {
		return true
	}
	if !p.downloading {
		return p.remoteDone
	}
	if !p.heardHave || len(p.inflight) > 0 {
		return false
	}
	f := p.ch.feed
	if p.s.opts.Sparse {
		for i := range p.wanted {
			if !f.Has(i) {
				return false
			}
		}
		return true
	}
	for i := p.cursor; i < p.remoteLen; i++ {
		if !f.Has(i) && p.remoteHas.get(i) {
			return false
		}
	}
	return true
}

// maybeDone tells a peer that is not live that this side stopped
// downloading, as the reference does, once everything is here.
func (p *peer) maybeDone() {
	if p.s.opts.Live || p.sentDone || !p.finished() {
		return
	}
	p.sentDone = true
	p.send(&wire.Info{Uploading: wire.Bool(true), Downloading: wire.Bool(false)})
}

// tick runs every Timeout/4: the oldest request may wait requestTicks.
func (p *peer) tick() error {
	if len(p.inflight) == 0 {
		return nil
	}
	first := &p.inflight[0]
	if first.ticks--; first.ticks > 0 {
		return nil
	}
	if p.ch.feed.Has(first.index) {
		p.clear(first.index)
		return nil
	}
	return fmt.Errorf("%w: block %d", ErrRequestTimeout, first.index)
}

// onFeedChanged announces new blocks to a peer that asked: a writer's
// appends, and, for a replica that rehosts a feed, the blocks it downloaded
// (from this peer or others), as far as they run without a gap, so that
// appends travel on from replica to replica.
func (p *peer) onFeedChanged() error {
	f := p.ch.feed
	if p.remoteWant {
		start, end := p.announced, f.Published()
		if !f.Writable() {
			end = start
			for end < f.Length() && f.Has(end) {
				end++
			}
		}
		if end > start {
			have := &wire.Have{Start: start}
			if end-start > 1 {
				have.Length = wire.Uint64(end - start)
			}
			p.send(have)
			p.announced = end
		}
	}
	return p.update()
}

// maxRemotePages bounds the memory one peer's announcements may take: 65536
// pages of 4096 blocks (32 MiB, for 2^28 blocks).
const maxRemotePages = 1 << 16

// ErrTooManyAnnounced ends a stream whose peer announces blocks beyond any
// plausible feed.
var ErrTooManyAnnounced = errors.New("protocol: peer announced too many blocks")

// bitset is a sparse set of block indexes, in pages of 4096 bits.
type bitset map[uint64]*[64]uint64

func (b bitset) get(i uint64) bool {
	pg := b[i>>12]
	return pg != nil && pg[(i>>6)&63]&(1<<(i&63)) != 0
}

func (b bitset) set(i uint64) {
	pg := b[i>>12]
	if pg == nil {
		pg = new([64]uint64)
		b[i>>12] = pg
	}
	pg[(i>>6)&63] |= 1 << (i & 63)
}

func (b bitset) setRange(start, n uint64) {
	end := start + n
	for i := start; i < end; {
		if i&63 == 0 && end-i >= 64 { // a whole word at a time
			pg := b[i>>12]
			if pg == nil {
				pg = new([64]uint64)
				b[i>>12] = pg
			}
			pg[(i>>6)&63] = ^uint64(0)
			i += 64
			continue
		}
		b.set(i)
		i++
	}
}

func (b bitset) clearRange(start, n uint64) {
	for i := start; i < start+n; i++ {
		if pg := b[i>>12]; pg != nil {
			pg[(i>>6)&63] &^= 1 << (i & 63)
		}
	}
}

func hypercoreNode(n wire.Node) merkle.Node {
	nd := merkle.Node{Index: n.Index, Size: n.Size}
	copy(nd.Hash[:], n.Hash)
	return nd
}
