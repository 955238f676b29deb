package rpc

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/nodevms/nodevms/receipt"
)

// ErrClosed: the connection is gone.
var ErrClosed = errors.New("rpc: connection closed")

// CallError is a call the server answered with an error.
type CallError struct {
	Code    int
	Message string
	// Name is the script's error name (for CodeScriptError).
	Name string
}

func (e *CallError) Error() string {
	if e.Name != "" && e.Name != "Error" {
		return e.Name + ": " + e.Message
	}
	return e.Message
}

// StatusError is a server that answered the WebSocket upgrade with an HTTP
// status instead of switching protocols. A backend refuses that way (404
// for no backend at the path, 403, 503 at its connection limit) and says
// why in the body; any other server that speaks HTTP does it too, often
// with 200 OK, which callers should not mistake for success.
type StatusError struct {
	URL        string
	StatusCode int
	Status     string // "503 Service Unavailable"
	// Body is the first line of the answer's body, for error statuses
	// (400 and up), where a backend explains itself; it is cut short.
	Body string
}

func (e *StatusError) Error() string {
	msg := fmt.Sprintf("rpc: %s: the server answered the WebSocket upgrade with %s", e.URL, e.Status)
	if e.Body != "" {
		msg += ": " + e.Body
	}
	return msg
}

// notBackendError is a server that answered the upgrade with a status
// under 400: not a NodeVMS server at all. It unwraps to the StatusError.
type notBackendError struct {
	addr   string
	status *StatusError
}

func (e *notBackendError) Error() string {
	return fmt.Sprintf("%s is not a NodeVMS server (it answered the WebSocket upgrade with %s)", e.addr, e.status.Status)
}

func (e *notBackendError) Unwrap() error { return e.status }

func newStatusError(url string, resp *http.Response) *StatusError {
	e := &StatusError{URL: url, StatusCode: resp.StatusCode, Status: resp.Status}
	if resp.StatusCode >= 400 && resp.Body != nil {
		// The dialer keeps at most the first KiB of the body.
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		line, _, _ := strings.Cut(string(b), "\n")
		line = strings.TrimSpace(line)
		if len(line) > 200 {
			line = line[:200] + "..."
		}
		e.Body = strings.ToValidUTF8(line, "?")
	}
	return e
}

// ClientOptions configure Dial.
type ClientOptions struct {
	// User names the caller, for servers in debug mode.
	User string
	// Key signs every call: the caller's id is its public key.
	Key ed25519.PrivateKey
	// Timeout bounds each call (5 s if zero, as nodevms-client's).
	Timeout time.Duration
	// PollFor, if not zero, is how long the client's reader polls its
	// socket for an answer before it sleeps, while answers come quickly,
	// as Options.PollFor has a server's readers poll for requests: a
	// caller that waits on each answer trades some CPU for a shorter
	// round trip. At most 10 ms.
	PollFor time.Duration
}

// Client is a connection to a backend.
type Client struct {
	ws      *websocket.Conn
	opts    ClientOptions
	info    Handshake
	logKey  []byte
	writeMu sync.Mutex

	mu      sync.Mutex
	nextID  uint64
	seq     uint64 // guarded by writeMu
	pending map[uint64]chan clientResponse
	err     error
	done    chan struct{}
	parts   *receipt.Assembler // set after the handshake; used by read only
	poller  *poller            // nil: the reader does not poll (PollFor)
}

// BackendURL turns what a user types ("localhost:5555", "host:5555/name",
// "ws://...") into a WebSocket URL.
func BackendURL(addr string) string {
	switch {
	case strings.HasPrefix(addr, "ws://"), strings.HasPrefix(addr, "wss://"):
		return addr
	case strings.HasPrefix(addr, "http://"):
		return "ws://" + strings.TrimPrefix(addr, "http://")
	case strings.HasPrefix(addr, "https://"):
		return "wss://" + strings.TrimPrefix(addr, "https://")
	}
	return "ws://" + addr
}

// Dial connects to a backend and runs the handshake.
func Dial(ctx context.Context, addr string, opts ClientOptions) (*Client, error) {
	if opts.Timeout == 0 {
		opts.Timeout = 5 * time.Second
	}
	u, err := url.Parse(BackendURL(addr))
	if err != nil {
		return nil, fmt.Errorf("rpc: %w", err)
	}
	header := http.Header{}
	if opts.User != "" {
		q := u.Query()
		q.Set("user", opts.User)
		u.RawQuery = q.Encode()
		header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(opts.User+":")))
	}
	if opts.PollFor < 0 || opts.PollFor > maxPollFor {
		return nil, fmt.Errorf("rpc: a poll window of %v is outside 0 to %v", opts.PollFor, maxPollFor)
	}
	var wrap func(net.Conn) net.Conn
	var p *poller
	if opts.PollFor > 0 {
		p = &poller{window: opts.PollFor}
		wrap = func(c net.Conn) net.Conn {
			if r := newPollingReader(p, c); r != nil {
				return &batchConn{Conn: c, polling: r}
			}
			return c
		}
	}
	ws, resp, err := dialWebSocket(ctx, u.String(), header, wrap)
	if err != nil {
		if resp == nil {
			return nil, fmt.Errorf("rpc: %w", err)
		}
		se := newStatusError(u.String(), resp)
		if se.StatusCode < 400 {
			// 200 OK (or a redirect) reads like success: say plainly that
			// this is no backend.
			return nil, &notBackendError{addr: addr, status: se}
		}
		return nil, se
	}
	c := &Client{ws: ws, opts: opts, pending: map[uint64]chan clientResponse{}, done: make(chan struct{}), seq: uint64(time.Now().UnixNano()), poller: p}
	go c.read()
	hs, err := c.call(ctx, "handshake", nil, false, false)
	if err != nil {
		c.Close()
		return nil, err
	}
	if err := json.Unmarshal(hs.Result, &c.info); err != nil {
		c.Close()
		return nil, fmt.Errorf("rpc: handshake: %w", err)
	}
	c.logKey, _ = hex.DecodeString(strings.TrimPrefix(c.info.CallLogURL, "dat://"))
	c.mu.Lock()
	c.parts = receipt.NewAssembler(c.logKey)
	c.mu.Unlock()
	return c, nil
}

// DialWebSocket is websocket.DefaultDialer.DialContext, except that ctx
// also stops the opening handshake: the dialer heeds only a deadline there,
// so with ctx canceled (Ctrl+C) it would wait on a silent server for its
// HandshakeTimeout, 45 s.
func DialWebSocket(ctx context.Context, url string, header http.Header) (*websocket.Conn, *http.Response, error) {
	return dialWebSocket(ctx, url, header, nil)
}

// dialWebSocket is DialWebSocket, with the connection wrapped by wrap if
// it is not nil.
func dialWebSocket(ctx context.Context, url string, header http.Header, wrap func(net.Conn) net.Conn) (*websocket.Conn, *http.Response, error) {
	d := *websocket.DefaultDialer
	var stop func() bool
	d.NetDialContext = func(dctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(dctx, network, addr)
		if err == nil {
			// ctx, not dctx: the dialer cancels dctx once it is done.
			stop = context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
			if wrap != nil {
				c = wrap(c)
			}
		}
		return c, err
	}
	ws, resp, err := d.DialContext(ctx, url, header)
	if stop != nil && !stop() {
		// ctx ended during the handshake, and cut it short, or left a
		// past deadline on the connection.
		if ws != nil {
			ws.Close()
		}
		return nil, nil, ctx.Err()
	}
	return ws, resp, err
}

// Handshake is what the server said about the backend.
func (c *Client) Handshake() Handshake { return c.info }

// Call calls method with args (each marshalled to JSON) and returns the
// JSON result.
func (c *Client) Call(ctx context.Context, method string, args ...any) (json.RawMessage, error) {
	if args == nil {
		args = []any{}
	}
	raw, err := json.Marshal(args)
	if err != nil {
		return nil, err
	}
	return c.CallRaw(ctx, method, raw)
}

// CallRaw calls method with params, a JSON array.
func (c *Client) CallRaw(ctx context.Context, method string, params json.RawMessage) (json.RawMessage, error) {
	r, err := c.call(ctx, method, params, c.opts.Key != nil, false)
	return r.Result, err
}

// CallWithReceipt calls method as Call does and asks for the call's
// receipt, which the answer carries once the host has signed the call's
// entry (within milliseconds). A call whose script threw returns its
// *CallError and the receipt too: the error is what the log holds. The
// receipt is parsed but not verified: Verify it against the call log's
// key (Handshake().CallLogURL) before relying on it.
func (c *Client) CallWithReceipt(ctx context.Context, method string, args ...any) (json.RawMessage, *receipt.Receipt, error) {
	if args == nil {
		args = []any{}
	}
	raw, err := json.Marshal(args)
	if err != nil {
		return nil, nil, err
	}
	r, err := c.call(ctx, method, raw, c.opts.Key != nil, true)
	if ce := (*CallError)(nil); err != nil && (!errors.As(err, &ce) || ce.Code != CodeScriptError) {
		return nil, nil, err // not run, or not known to be logged: no receipt
	}
	if r.ReceiptError != "" {
		return r.Result, nil, fmt.Errorf("rpc: %s: %s", method, r.ReceiptError)
	}
	if r.partErr != nil {
		return r.Result, nil, fmt.Errorf("rpc: the server's receipt: %w", r.partErr)
	}
	if r.assembled != nil {
		return r.Result, r.assembled, err
	}
	if len(r.Receipt) == 0 {
		return r.Result, nil, errors.New("rpc: the server sent no receipt")
	}
	rec, perr := receipt.Parse(r.Receipt)
	if perr != nil {
		return r.Result, nil, fmt.Errorf("rpc: the server's receipt: %w", perr)
	}
	return r.Result, rec, err
}

// Receipt fetches the receipt of the call log's entry at index (any
// entry, not only this client's), parsed but not verified.
func (c *Client) Receipt(ctx context.Context, index uint64) (*receipt.Receipt, error) {
	r, err := c.call(ctx, ReceiptMethod, json.RawMessage(fmt.Sprintf("[%d]", index)), false, false)
	if err != nil {
		return nil, err
	}
	rec, err := receipt.Parse(r.Result)
	if err != nil {
		return nil, fmt.Errorf("rpc: the server's receipt: %w", err)
	}
	return rec, nil
}

// clientResponse is an answer as the client reads it: the receipt stays
// raw until the caller wants it, so that a malformed one does not lose
// the answer.
type clientResponse struct {
	ID           json.RawMessage `json:"id"`
	Result       json.RawMessage `json:"result"`
	Error        *wireError      `json:"error"`
	Receipt      json.RawMessage `json:"receipt"`
	ReceiptPart  json.RawMessage `json:"receiptPart"`
	ReceiptError string          `json:"receiptError"`

	// The receipt the connection's assembler made of ReceiptPart, or why
	// it could not.
	assembled *receipt.Receipt
	partErr   error
}

// The receipt members the server writes last in an answer.
const (
	receiptMember     = `,"receipt":{"format":"` + receipt.Format + `"`
	receiptPartMember = `,"receiptPart":{"index":`
)

// decodeResponse reads an answer. A receipt or a receipt's part, which the
// server writes as the answer's last member, is cut off and kept raw
// rather than scanned twice by encoding/json (it is most of the answer's
// bytes); anything else, or a cut that does not leave valid JSON, is read
// whole.
func decodeResponse(data []byte, r *clientResponse) error {
	for _, m := range []struct {
		member string
		raw    *json.RawMessage
	}{{receiptMember, &r.Receipt}, {receiptPartMember, &r.ReceiptPart}} {
		if len(data) == 0 || data[len(data)-1] != '}' {
			break
		}
		// The first place the member's text appears that leaves a valid
		// head: inside the result it would leave the result open. (Found
		// forward, since bytes.Index is several times quicker than
		// bytes.LastIndex.)
		member := []byte(m.member)
		for from := 0; ; {
			i := bytes.Index(data[from:], member)
			if i < 0 {
				break
			}
			i += from
			head := append(data[:i:i], '}')
			if json.Unmarshal(head, r) == nil && r.Receipt == nil && r.ReceiptPart == nil {
				name := m.member[:strings.IndexByte(m.member, ':')+1]
				*m.raw = data[i+len(name) : len(data)-1]
				return nil
			}
			*r = clientResponse{}
			from = i + 1
		}
	}
	return json.Unmarshal(data, r)
}

// call sends a request and waits for its answer. A signed call takes its
// sequence number as it is written, so that calls in flight at once reach
// the server in the order of their numbers. A script's error is a
// *CallError, returned with the rest of the answer.
func (c *Client) call(ctx context.Context, method string, params json.RawMessage, sign, wantReceipt bool) (clientResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return clientResponse{}, c.err
	}
	c.nextID++
	id := c.nextID
	ch := make(chan clientResponse, 1)
	c.pending[id] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
	}()
	c.writeMu.Lock()
	var auth *CallAuth
	var err error
	if sign {
		c.seq++
		if auth, err = SignCall(c.opts.Key, c.logKey, method, params, c.seq); err != nil {
			c.writeMu.Unlock()
			return clientResponse{}, err
		}
	}
	msg, err := json.Marshal(request{JSONRPC: "2.0", Method: method, Params: params, ID: json.RawMessage(fmt.Sprint(id)), Auth: auth, Receipt: wantReceipt, ReceiptParts: wantReceipt})
	if err == nil {
		err = c.ws.WriteMessage(websocket.TextMessage, msg)
	}
	c.writeMu.Unlock()
	if err != nil {
		return clientResponse{}, fmt.Errorf("rpc: %w", err)
	}
	select {
	case r := <-ch:
		if r.Error != nil {
			e := &CallError{Code: r.Error.Code, Message: r.Error.Message}
			var data struct{ Name string }
			if json.Unmarshal(r.Error.Data, &data) == nil {
				e.Name = data.Name
			}
			return r, e
		}
		return r, nil
	case <-ctx.Done():
		return clientResponse{}, fmt.Errorf("rpc: %s: %w", method, ctx.Err())
	case <-c.done:
		return clientResponse{}, c.closedErr()
	}
}

func (c *Client) closedErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *Client) read() {
	var err error
	for {
		var data []byte
		if _, data, err = c.ws.ReadMessage(); err != nil {
			break
		}
		var r clientResponse
		if decodeResponse(data, &r) != nil {
			continue
		}
		if r.ReceiptPart != nil {
			// Every part, in the order the server sent them, whether or
			// not its caller still waits: later parts lean on it.
			c.mu.Lock()
			parts := c.parts
			c.mu.Unlock()
			if parts == nil {
				r.partErr = errors.New("a receipt's part before the handshake")
			} else if p, err := receipt.ParsePart(r.ReceiptPart); err != nil {
				r.partErr = err
			} else {
				r.assembled, r.partErr = parts.Add(p)
			}
		}
		var id uint64
		if json.Unmarshal(r.ID, &id) != nil {
			continue
		}
		c.mu.Lock()
		ch := c.pending[id]
		c.mu.Unlock()
		if ch != nil {
			ch <- r
		}
	}
	c.mu.Lock()
	c.err = fmt.Errorf("%w: %v", ErrClosed, err)
	c.mu.Unlock()
	close(c.done)
}

// Close closes the connection.
func (c *Client) Close() error {
	c.writeMu.Lock()
	c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	c.writeMu.Unlock()
	return c.ws.Close()
}
