package rpc

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"

	"github.com/nodevms/nodevms/calllog"
	"github.com/nodevms/nodevms/core"
	"github.com/nodevms/nodevms/hypercore"
	"github.com/nodevms/nodevms/hypercore/protocol"
	"github.com/nodevms/nodevms/hyperdrive"
	"github.com/nodevms/nodevms/receipt"
	"github.com/nodevms/nodevms/sandbox"
)

// Options configure a Server.
type Options struct {
	// Debug lets callers name themselves, with ?user=NAME on the URL (as
	// nodevms-client does) or the user of Basic Auth. Without it, a
	// connection that names its user is refused.
	Debug bool
	// RequireSigned refuses unsigned calls. Otherwise an unsigned call is
	// anonymous (its caller id is null), as in the original NodeVMS.
	RequireSigned bool
	// MaxMessage bounds a request's size in bytes (1 MiB if zero).
	MaxMessage int64
	// MaxInFlight bounds one connection's calls waiting for answers (64 if
	// zero); more are answered at once with CodeBusy.
	MaxInFlight int
	// MaxConnections caps the JSON-RPC connections open at once (1024 if
	// zero; negative: no cap). One more is answered 503, not upgraded.
	MaxConnections int
	// Peers caps the replication peers at PATH/.dat; share it with the Dat
	// listener's protocol.Options.Peers to cap both together. If nil, the
	// server makes one of protocol.DefaultMaxPeers for itself. A peer over
	// it is answered 503, not upgraded.
	Peers *protocol.PeerLimit
	// Version is reported by the handshake.
	Version string
	// ReplicationAddr is the TCP address where the feeds also replicate,
	// reported by the handshake.
	ReplicationAddr string
	// Stats counts what replication over WebSockets moves.
	Stats *protocol.Stats
	// Logger receives why connections ended.
	Logger *slog.Logger
	// PollFor is how long a reader whose caller has been quick polls for
	// the caller's next request before it waits as usual (see poll.go); 0
	// does not poll. One reader polls at a time.
	PollFor time.Duration
}

// Backend is one served backend.
type Backend struct {
	Host    *core.Host
	Title   string
	Archive *hyperdrive.Archive
	Log     *hypercore.Feed
}

type mounted struct {
	Backend
	path string

	mu   sync.Mutex
	seqs map[string]uint64 // each signer's last sequence number
}

// Server serves backends over WebSocket JSON-RPC, each at its own path
// (ws://host:port/PATH), and their feeds over Dat replication at
// PATH/.dat (binary WebSocket frames carrying the protocol stream), for
// clients that cannot open raw TCP.
type Server struct {
	opts     Options
	upgrader websocket.Upgrader

	mu       sync.RWMutex
	backends map[string]*mounted
	conns    atomic.Int64 // JSON-RPC and replication connections
	rpcConns atomic.Int64 // JSON-RPC connections, for MaxConnections
	refusals refusals
	poller   *poller // nil: readers do not poll
}

// refusalLogEvery spaces the log lines about refused connections, so that
// a flood of them cannot fill the operator's log.
const refusalLogEvery = 10 * time.Second

// refusals counts connections refused over a cap, to log them in bulk.
type refusals struct {
	last    atomic.Int64 // when the last line was logged, in Unix nanoseconds
	pending atomic.Int64 // refusals not yet logged
}

// note counts one refusal and returns how many to log now: 0 while the
// last line is recent.
func (r *refusals) note(now time.Time) int64 {
	r.pending.Add(1)
	last := r.last.Load()
	if now.UnixNano()-last < int64(refusalLogEvery) || !r.last.CompareAndSwap(last, now.UnixNano()) {
		return 0
	}
	return r.pending.Swap(0)
}

// ReplicationSuffix is appended to a backend's path for replication.
const ReplicationSuffix = "/.dat"

// DefaultMaxConnections is the cap on JSON-RPC connections when
// Options.MaxConnections is zero. An idle connection costs a few tens of
// kilobytes (two goroutines, buffers, queues), one reading a request up to
// MaxMessage more; 1024 serves many browsers and bounds that.
const DefaultMaxConnections = 1024

// NewServer returns a server with no backends.
func NewServer(opts Options) *Server {
	if opts.MaxMessage == 0 {
		opts.MaxMessage = 1 << 20
	}
	if opts.MaxInFlight == 0 {
		opts.MaxInFlight = 64
	}
	if opts.MaxConnections == 0 {
		opts.MaxConnections = DefaultMaxConnections
	}
	if opts.Peers == nil {
		opts.Peers = protocol.NewPeerLimit(protocol.DefaultMaxPeers)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		opts:     opts,
		backends: map[string]*mounted{},
		upgrader: websocket.Upgrader{
			ReadBufferSize:  4096,
			WriteBufferSize: 4096,
			// Browsers may call from any page: a call's identity rests on
			// its signature (or on debug mode), not on cookies.
			CheckOrigin: func(*http.Request) bool { return true },
		},
	}
	if opts.PollFor > 0 {
		s.poller = &poller{window: opts.PollFor}
	}
	return s
}

// Mount serves b at path ("/" or "/name"). The signers' sequence numbers
// start from those in b's log, so that a restart does not reopen old
// signatures to replay.
func (s *Server) Mount(path string, b Backend) error {
	path = "/" + strings.Trim(path, "/")
	m := &mounted{Backend: b, path: path, seqs: b.Host.LoggedSeqs()}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.backends[path]; ok {
		return fmt.Errorf("rpc: a backend is already mounted at %s", path)
	}
	s.backends[path] = m
	return nil
}

// Connections is the number of open connections.
func (s *Server) Connections() int64 { return s.conns.Load() }

func (s *Server) backend(path string) *mounted {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.backends["/"+strings.Trim(path, "/")]
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if p, ok := strings.CutSuffix(r.URL.Path, ReplicationSuffix); ok {
		if b := s.backend(p); b != nil {
			s.serveReplication(w, r, b)
			return
		}
	}
	b := s.backend(r.URL.Path)
	if b == nil {
		http.Error(w, "no backend at "+r.URL.Path, http.StatusNotFound)
		return
	}
	user := r.URL.Query().Get("user")
	if u, _, ok := r.BasicAuth(); ok && user == "" {
		user = u
	}
	if user != "" && !s.opts.Debug {
		http.Error(w, "naming your user (?user= or Basic Auth) needs a server started with --debug; sign your calls instead", http.StatusForbidden)
		return
	}
	if limit := s.opts.MaxConnections; limit > 0 && !acquire(&s.rpcConns, int64(limit)) {
		s.refuse(w, "connection", limit)
		return
	}
	defer s.rpcConns.Add(-1)
	c := &conn{s: s, b: b, user: user, out: make(chan []byte, 256),
		answers: make(chan answer, s.opts.MaxInFlight), slots: make(chan struct{}, s.opts.MaxInFlight)}
	hj := &hijacker{ResponseWriter: w, beforeRead: c.submit, poller: s.poller}
	ws, err := s.upgrader.Upgrade(hj, r, nil)
	if err != nil {
		return // the upgrader has answered
	}
	s.conns.Add(1)
	defer s.conns.Add(-1)
	c.ws, c.raw = ws, hj.conn
	c.serve(r.Context())
}

// acquire counts one more on n, unless that would pass limit.
func acquire(n *atomic.Int64, limit int64) bool {
	for {
		v := n.Load()
		if v >= limit {
			return false
		}
		if n.CompareAndSwap(v, v+1) {
			return true
		}
	}
}

// refuse answers a connection over a cap with 503, before any upgrade, and
// logs the refusals at most once every refusalLogEvery.
func (s *Server) refuse(w http.ResponseWriter, what string, limit int) {
	if n := s.refusals.note(time.Now()); n > 0 {
		s.opts.Logger.Warn("refused connections: at the limit", "kind", what, "limit", limit, "refused", n)
	}
	w.Header().Set("Retry-After", "10")
	http.Error(w, fmt.Sprintf("the server is at its %s limit (%d); try again later", what, limit), http.StatusServiceUnavailable)
}

// conn is one RPC connection.
type conn struct {
	s       *Server
	b       *mounted
	ws      *websocket.Conn
	raw     *batchConn // under ws: what is ready to send goes in one write
	user    string
	out     chan []byte   // messages for the writer
	answers chan answer   // calls' answers for the writer: never full, one slot per call in flight
	slots   chan struct{} // calls in flight
	wg      sync.WaitGroup
	batch   core.Batch // calls read, not yet submitted: the reader's own

	// While the reader submits (and so may run its calls itself), answers
	// wait in ready for it to send, rather than wake the writer.
	readyMu    sync.Mutex
	submitting bool
	ready      []answer

	sending sync.Mutex     // held by whoever writes to ws: the writer or the reader
	broken  bool           // a write failed: nothing more is sent (under sending)
	parts   receipt.Sender // the receipts' parts this connection sent (under sending)
	encoded []byte         // the answer being sent (under sending)
}

// answer is a call's outcome on its way to the writer, which encodes it:
// the host hands it over without waiting.
type answer struct {
	req  request
	resp core.Response
	err  error
}

func (c *conn) serve(parent context.Context) {
	ctx, cancel := context.WithCancel(parent)
	writerDone := make(chan struct{})
	go c.write(writerDone)
	c.ws.SetReadLimit(c.s.opts.MaxMessage)
	var err error
	for {
		var data []byte
		if _, data, err = c.ws.ReadMessage(); err != nil {
			break
		}
		c.handleMessage(ctx, data)
	}
	// The client is gone: calls still queued are dropped (ctx), calls
	// running finish, and nothing more is written.
	cancel()
	c.submit()  // those read but not submitted are answered (aborted)
	c.wg.Wait() // every call's answer is in c.answers
	close(c.out)
	<-writerDone
	c.ws.Close()
	if !websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway, websocket.CloseNoStatusReceived) {
		c.s.opts.Logger.Debug("rpc connection ended", "reason", err)
	}
}

// write sends the reader's messages and the calls' answers until serve
// closes c.out.
func (c *conn) write(done chan<- struct{}) {
	defer close(done)
	for {
		// Wait for something to send, then send it with whatever else is
		// ready in one write: answers to calls that shared a group commit
		// arrive together. (Outside the batch, the library's own control
		// frames go out at once.)
		var first func()
		select {
		case msg, ok := <-c.out:
			if !ok {
				return // serve is done: the client is gone
			}
			first = func() { c.sendMessage(msg) }
		case a := <-c.answers:
			first = func() { c.answer(a) }
		}
		c.sending.Lock()
		c.raw.begin()
		first()
	batch:
		for n := 1; n < maxBatch; n++ {
			select {
			case msg, ok := <-c.out:
				if !ok {
					break batch
				}
				c.sendMessage(msg)
			case a := <-c.answers:
				c.answer(a)
			default:
				break batch
			}
		}
		c.endBatch()
		c.sending.Unlock()
	}
}

// sendMessage sends msg, unless the connection is broken. c.sending is
// held.
func (c *conn) sendMessage(msg []byte) {
	if c.broken {
		return // drain, so that no sender blocks
	}
	c.ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if err := c.ws.WriteMessage(websocket.TextMessage, msg); err != nil {
		c.breakOff()
	}
}

// answer frees a's slot and sends its reply, with its receipt's part if
// the call asked for one. c.sending is held: parts go out in the order
// they are made, as the client's assembler needs them.
func (c *conn) answer(a answer) {
	<-c.slots
	if a.req.ID == nil {
		return // a notification: no answer, and no part sent
	}
	if a.err != nil {
		c.sendMessage(replyMessage(a.req, nil, a.err))
		return
	}
	r := responseOf(a.req, a.resp)
	if a.resp.Entry != nil {
		part, err := c.parts.Next(c.b.Log, a.resp.Block, a.resp.Entry)
		if err != nil {
			r.ReceiptError = "no receipt: " + err.Error()
		}
		r.ReceiptPart = part
	}
	// Encoded into the connection's buffer: the WebSocket library copies
	// what it is given, so the buffer serves every answer.
	c.encoded = appendResponse(c.encoded[:0], r)
	c.sendMessage(c.encoded)
	if cap(c.encoded) > maxKeptAnswer {
		c.encoded = nil
	}
}

// maxKeptAnswer bounds the buffer a connection keeps for its answers.
const maxKeptAnswer = 64 << 10

// endBatch sends what the batch collected. c.sending is held.
func (c *conn) endBatch() {
	if err := c.raw.end(); err != nil && !c.broken {
		c.breakOff()
	}
}

// breakOff gives up on a connection that cannot be written to: closing it
// ends the reader too. c.sending is held.
func (c *conn) breakOff() {
	c.broken = true
	c.ws.Close()
}

// maxBatch bounds the messages one write carries.
const maxBatch = 64

func (c *conn) send(r response) { c.out <- encodeResponse(r) }

func encodeResponse(r response) []byte { return appendResponse(nil, r) }

// appendResponse appends r's message to dst.
func appendResponse(dst []byte, r response) []byte {
	if part := r.ReceiptPart; part != nil {
		// As for a receipt, below.
		r.ReceiptPart = nil
		b := appendResponse(dst, r)
		b = append(b[:len(b)-1], `,"receiptPart":`...)
		return append(part.AppendJSON(b), '}')
	}
	if rec := r.Receipt; rec != nil {
		// Written by the receipt itself, in its one compact form, into the
		// rest of the answer: json.Marshal would check and compact the
		// receipt's bytes again, which cost more than the call.
		r.Receipt = nil
		b := appendResponse(dst, r)
		b = append(b[:len(b)-1], `,"receipt":`...)
		return append(rec.AppendJSON(b), '}')
	}
	r.JSONRPC = "2.0"
	if r.ID == nil {
		r.ID = json.RawMessage("null")
	}
	if r.Error == nil && r.ReceiptError == "" && len(r.Result) > 0 && plainJSON(r.ID) && plainJSON(r.Result) {
		// An answer, written as json.Marshal would write it (there is
		// nothing to compact or escape) without its reflection.
		b := slices.Grow(dst, len(`{"jsonrpc":"2.0","id":,"result":}`)+len(r.ID)+len(r.Result))
		b = append(b, `{"jsonrpc":"2.0","id":`...)
		b = append(b, r.ID...)
		b = append(b, `,"result":`...)
		b = append(b, r.Result...)
		return append(b, '}')
	}
	b, err := json.Marshal(r)
	if err != nil {
		b, _ = json.Marshal(response{JSONRPC: "2.0", ID: r.ID, Error: &wireError{Code: codeInternal, Message: err.Error()}})
	}
	return append(dst, b...)
}

// plainJSON reports whether raw is valid JSON that json.Marshal copies as
// it is: ASCII, no white space to compact, no <, > or & to escape.
func plainJSON(raw []byte) bool {
	for _, c := range raw {
		if c <= ' ' || c >= utf8.RuneSelf || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return json.Valid(raw)
}

func (c *conn) fail(id json.RawMessage, code int, msg string) {
	c.send(response{ID: id, Error: &wireError{Code: code, Message: msg}})
}

func (c *conn) handleMessage(ctx context.Context, data []byte) {
	trimmed := strings.TrimSpace(string(data))
	if strings.HasPrefix(trimmed, "[") {
		var batch []json.RawMessage
		if err := json.Unmarshal(data, &batch); err != nil {
			c.fail(nil, codeParse, "invalid JSON: "+err.Error())
			return
		}
		for _, one := range batch {
			c.handleRequest(ctx, one)
		}
		return
	}
	c.handleRequest(ctx, data)
}

func (c *conn) handleRequest(ctx context.Context, data []byte) {
	req, err := parseRequest(data)
	if err != nil {
		c.fail(nil, codeParse, "invalid JSON-RPC request: "+err.Error())
		return
	}
	if req.JSONRPC != "2.0" || req.Method == "" {
		c.fail(req.ID, codeInvalidRequest, "not a JSON-RPC 2.0 request")
		return
	}
	if req.Method == "handshake" {
		c.reply(req, c.handshake(), nil)
		return
	}
	if req.Method == ReceiptMethod {
		c.receipt(ctx, req)
		return
	}
	args := req.Params
	if len(args) == 0 || string(args) == "null" {
		args = json.RawMessage("[]")
	} else if strings.TrimSpace(string(args))[0] != '[' {
		c.fail(req.ID, codeInvalidParams, "params must be the array of arguments")
		return
	}
	if err := sandbox.CheckArguments(args); err != nil {
		// Refused here, before it is queued: such a call costs nothing.
		c.fail(req.ID, codeInvalidParams, strings.TrimPrefix(err.Error(), "sandbox: "))
		return
	}
	caller, auth, err := c.identify(&req, args)
	if err != nil {
		c.fail(req.ID, CodeAuth, err.Error())
		return
	}
	select {
	case c.slots <- struct{}{}:
	default:
		c.fail(req.ID, CodeBusy, fmt.Sprintf("too many calls in flight on this connection (%d); wait for answers", cap(c.slots)))
		return
	}
	c.wg.Add(1)
	c.b.Host.Add(&c.batch, ctx, core.Request{Method: req.Method, Args: args, CallerID: caller, Auth: auth, Receipt: req.Receipt && !req.ReceiptParts, SignedEntry: req.ReceiptParts}, func(resp core.Response, err error) {
		c.readyMu.Lock()
		if c.submitting {
			c.ready = append(c.ready, answer{req, resp, err})
			c.readyMu.Unlock()
		} else {
			c.readyMu.Unlock()
			c.answers <- answer{req, resp, err} // a slot is held, so there is room
		}
		c.wg.Done()
	})
}

// receipt answers ReceiptMethod: the receipt of the log entry params[0].
// It may wait for the host to sign the entry (SignEvery), so it answers on
// a goroutine of its own, holding a slot as a call does.
func (c *conn) receipt(ctx context.Context, req request) {
	var params []uint64
	if err := json.Unmarshal(req.Params, &params); err != nil || len(params) != 1 {
		c.fail(req.ID, codeInvalidParams, "params must be [index], the log entry's index")
		return
	}
	index := params[0]
	select {
	case c.slots <- struct{}{}:
	default:
		c.fail(req.ID, CodeBusy, fmt.Sprintf("too many calls in flight on this connection (%d); wait for answers", cap(c.slots)))
		return
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		ctx, cancel := context.WithTimeout(ctx, receiptWait)
		defer cancel()
		r, err := c.b.Host.Receipt(ctx, index)
		var msg []byte
		switch {
		case errors.Is(err, core.ErrNoEntry):
			msg = encodeResponse(response{ID: req.ID, Error: &wireError{Code: codeInvalidParams, Message: strings.TrimPrefix(err.Error(), "core: ")}})
		case err != nil:
			msg = encodeResponse(response{ID: req.ID, Error: &wireError{Code: CodeUnavailable, Message: "no receipt: " + err.Error()}})
		default:
			msg = replyMessage(req, r, nil)
		}
		<-c.slots
		if msg != nil {
			c.out <- msg
		}
	}()
}

// receiptWait bounds how long ReceiptMethod waits for an entry's
// signature: a host signs within milliseconds unless its stores fail.
const receiptWait = 10 * time.Second

// submit hands the calls read so far to the host. The reader calls it
// before it waits for more input, so that calls that arrived together
// share a group. If the host is idle, they run on the reader's goroutine,
// and the reader sends their answers itself: a call then wakes no other
// goroutine, which on machines where a wake-up costs tens of microseconds
// is most of a small call's cost.
func (c *conn) submit() {
	if c.batch.Len() == 0 {
		return
	}
	c.readyMu.Lock()
	c.submitting = true
	c.readyMu.Unlock()
	c.b.Host.SubmitBatch(&c.batch)
	c.readyMu.Lock()
	c.submitting = false
	ready := c.ready
	c.ready = nil
	c.readyMu.Unlock()
	if len(ready) == 0 {
		return
	}
	c.sending.Lock()
	defer c.sending.Unlock()
	c.raw.begin()
	for _, a := range ready {
		c.answer(a)
	}
	c.endBatch()
}

// identify works out who is calling: a signed call's key, the debug-mode
// user, or nobody.
func (c *conn) identify(req *request, args json.RawMessage) (*string, *calllog.Auth, error) {
	if req.Auth != nil {
		logKey := c.b.Log.PublicKey()
		id, err := VerifyCall(req.Auth, logKey, req.Method, args)
		if err != nil {
			return nil, nil, err
		}
		c.b.mu.Lock()
		last, seen := c.b.seqs[id]
		if seen && req.Auth.Seq <= last {
			c.b.mu.Unlock()
			return nil, nil, fmt.Errorf("%w: sequence number %d is not after %d (a replayed call?)", ErrAuth, req.Auth.Seq, last)
		}
		c.b.seqs[id] = req.Auth.Seq
		c.b.mu.Unlock()
		return &id, &calllog.Auth{Key: req.Auth.Key, Signature: req.Auth.Signature, Seq: req.Auth.Seq}, nil
	}
	if c.user != "" {
		u := c.user
		return &u, nil, nil
	}
	if c.s.opts.RequireSigned {
		return nil, nil, fmt.Errorf("%w: this server takes signed calls only", ErrAuth)
	}
	return nil, nil, nil
}

func (c *conn) handshake() Handshake {
	h := Handshake{
		Methods:         c.b.Host.Methods(),
		CallLogURL:      "dat://" + hex.EncodeToString(c.b.Log.PublicKey()),
		FilesArchiveURL: "dat://" + hex.EncodeToString(c.b.Archive.Key()),
		Title:           c.b.Title,
		Version:         c.s.opts.Version,
		Auth:            "signed",
		RequireSigned:   c.s.opts.RequireSigned,
		ReplicationAddr: c.s.opts.ReplicationAddr,
		ReplicationPath: strings.TrimSuffix(c.b.path, "/") + ReplicationSuffix,
	}
	if h.Methods == nil {
		h.Methods = []string{}
	}
	if c.s.opts.Debug {
		h.Auth = "debug"
	}
	return h
}

func (c *conn) reply(req request, result any, err error) {
	if msg := replyMessage(req, result, err); msg != nil {
		c.out <- msg
	}
}

// replyMessage encodes the answer to req, or returns nil for a
// notification, which gets none.
func replyMessage(req request, result any, err error) []byte {
	if req.ID == nil {
		return nil
	}
	if err != nil {
		code, msg := codeInternal, err.Error()
		switch {
		case errors.Is(err, core.ErrBusy):
			code = CodeBusy
		case errors.Is(err, core.ErrSequence):
			code = CodeAuth
		case errors.Is(err, core.ErrInvalidArguments):
			code, msg = codeInvalidParams, strings.TrimPrefix(err.Error(), "core: ")
		case errors.Is(err, core.ErrNotCallable):
			code, msg = codeNoMethod, "RPC method not supported: "+req.Method
		case errors.Is(err, core.ErrAborted):
			code = CodeAborted
		case errors.Is(err, core.ErrClosed):
			code = CodeUnavailable
		}
		return encodeResponse(response{ID: req.ID, Error: &wireError{Code: code, Message: msg}})
	}
	if resp, ok := result.(core.Response); ok {
		return encodeResponse(responseOf(req, resp))
	}
	raw, err := json.Marshal(result)
	if err != nil {
		return encodeResponse(response{ID: req.ID, Error: &wireError{Code: codeInternal, Message: err.Error()}})
	}
	return encodeResponse(response{ID: req.ID, Result: raw})
}

// responseOf is the answer to a call the host ran.
func responseOf(req request, resp core.Response) response {
	r := response{ID: req.ID, Result: resp.Res, Receipt: resp.Receipt}
	if resp.ReceiptErr != nil {
		r.ReceiptError = resp.ReceiptErr.Error()
	}
	if resp.Err != nil {
		data, _ := json.Marshal(resp.Err)
		msg := resp.Err.Message
		if msg == "" {
			msg = resp.Err.Name
		}
		r.Result, r.Error = nil, &wireError{Code: CodeScriptError, Message: msg, Data: data}
	}
	return r
}

// serveReplication carries the Dat protocol over binary WebSocket frames.
func (s *Server) serveReplication(w http.ResponseWriter, r *http.Request, b *mounted) {
	if !s.opts.Peers.Acquire() {
		s.refuse(w, "Dat peer", s.opts.Peers.Max())
		return
	}
	defer s.opts.Peers.Release()
	ws, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	s.conns.Add(1)
	defer s.conns.Add(-1)
	lookup := b.Archive.Lookup()
	logDK := b.Log.DiscoveryKey()
	err = protocol.Serve(r.Context(), NewWebSocketStream(ws), protocol.Options{Live: true, Stats: s.opts.Stats, Logger: s.opts.Logger},
		func(dk [32]byte) *hypercore.Feed {
			if dk == logDK {
				return b.Log
			}
			return lookup(dk)
		})
	if err != nil {
		s.opts.Logger.Debug("replication over websocket ended", "reason", err)
	}
}
