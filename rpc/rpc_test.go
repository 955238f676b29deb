package rpc

import (
	"bytes"
	"context"
	"crypto/cipher"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/nodevms/nodevms/calllog"
	"github.com/nodevms/nodevms/core"
	"github.com/nodevms/nodevms/hypercore"
	"github.com/nodevms/nodevms/hypercore/protocol"
	"github.com/nodevms/nodevms/hypercore/wire"
	"github.com/nodevms/nodevms/hyperdrive"
	"github.com/nodevms/nodevms/sandbox"
)

const testScript = `
	let n = 0
	exports.increment = () => ++n
	exports.whoami = () => System.caller.id
	exports.fail = () => { const e = new Error('nope'); e.name = 'CustomError'; throw e }
	exports.slow = () => { let x = 0; for (let i = 0; i < 5e5; i++) x += i; return x }
	exports.write = async (name, text) => System.files.writeFile('/' + name, text)
	exports.init = () => {}`

func serve(t *testing.T, opts Options) (*httptest.Server, Backend) {
	t.Helper()
	return serveQueue(t, opts, 4)
}

// serveQueue is serve with a host queue of queueSize calls.
func serveQueue(t *testing.T, opts Options, queueSize int) (*httptest.Server, Backend) {
	t.Helper()
	return serveHost(t, opts, func(cfg *core.Config) { cfg.QueueSize = queueSize })
}

// serveHost is serve with the host's configuration changed by configure.
func serveHost(t *testing.T, opts Options, configure func(*core.Config)) (*httptest.Server, Backend) {
	t.Helper()
	dir := t.TempDir()
	archive, err := hyperdrive.Open(hyperdrive.Options{Storage: hyperdrive.DatStorage(dir, filepath.Join(dir, ".keys")), Create: true})
	if err != nil {
		t.Fatal(err)
	}
	log, err := hypercore.Open(hypercore.Config{Storage: hypercore.DirStorage{Dir: filepath.Join(dir, ".dat"), Prefix: "call-log."}, Create: true, AnnounceOnSync: true, LineLog: true})
	if err != nil {
		t.Fatal(err)
	}
	cfg := core.Config{Archive: archive, Log: log, QueueSize: 4, Limits: sandbox.Limits{Time: 2 * time.Second}}
	configure(&cfg)
	h, err := core.Deploy(context.Background(), cfg, testScript, "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	b := Backend{Host: h, Title: "test", Archive: archive, Log: log}
	s := NewServer(opts)
	if err := s.Mount("/", b); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(func() { ts.Close(); h.Close(); archive.Close(); log.Close() })
	return ts, b
}

func dial(t *testing.T, url string, opts ClientOptions) *Client {
	t.Helper()
	c, err := Dial(context.Background(), url, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestCallsAndHandshake(t *testing.T) {
	ts, b := serve(t, Options{Version: "test"})
	c := dial(t, ts.URL, ClientOptions{})
	h := c.Handshake()
	if strings.Join(h.Methods, ",") != "fail,increment,slow,whoami,write" || h.Auth != "signed" || h.CallLogURL != "dat://"+hex.EncodeToString(b.Log.PublicKey()) {
		t.Errorf("handshake %+v", h)
	}
	for i := 1; i <= 3; i++ {
		if got, err := c.Call(context.Background(), "increment"); err != nil || string(got) != string(rune('0'+i)) {
			t.Fatalf("increment: %s, %v", got, err)
		}
	}
	if got, err := c.Call(context.Background(), "whoami"); err != nil || string(got) != "null" {
		t.Errorf("anonymous caller: %s, %v", got, err)
	}
	var ce *CallError
	if _, err := c.Call(context.Background(), "fail"); !errors.As(err, &ce) || ce.Code != CodeScriptError || ce.Name != "CustomError" || ce.Message != "nope" {
		t.Errorf("script error: %v", err)
	}
	if _, err := c.Call(context.Background(), "init"); !errors.As(err, &ce) || ce.Code != codeNoMethod {
		t.Errorf("init: %v", err)
	}
}

func TestDebugUsers(t *testing.T) {
	ts, _ := serve(t, Options{Debug: true})
	c := dial(t, ts.URL, ClientOptions{User: "bob"})
	if got, err := c.Call(context.Background(), "whoami"); err != nil || string(got) != `"bob"` {
		t.Errorf("debug user: %s, %v", got, err)
	}
	ts2, _ := serve(t, Options{})
	if _, err := Dial(context.Background(), ts2.URL, ClientOptions{User: "bob"}); err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("naming a user without --debug: %v", err)
	}
}

func TestSignedCalls(t *testing.T) {
	ts, b := serve(t, Options{RequireSigned: true})
	pub, key, _ := ed25519.GenerateKey(nil)
	c := dial(t, ts.URL, ClientOptions{Key: key})
	if got, err := c.Call(context.Background(), "whoami"); err != nil || string(got) != `"`+hex.EncodeToString(pub)+`"` {
		t.Fatalf("signed caller: %s, %v", got, err)
	}
	var ce *CallError
	anon := dial(t, ts.URL, ClientOptions{})
	if _, err := anon.Call(context.Background(), "whoami"); !errors.As(err, &ce) || ce.Code != CodeAuth {
		t.Errorf("unsigned call on a signed-only server: %v", err)
	}
	// A forged signature and a replayed one are refused.
	ws, _, err := websocket.DefaultDialer.Dial(strings.Replace(ts.URL, "http", "ws", 1), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	auth, _ := SignCall(key, b.Log.PublicKey(), "increment", []byte("[]"), 5)
	bad := *auth
	bad.Signature = strings.Repeat("00", 64)
	// The same key spelt in capitals would be a second identity, with
	// sequence numbers of its own: a signed call could be run twice.
	later, _ := SignCall(key, b.Log.PublicKey(), "increment", []byte("[]"), 1<<62)
	shouted := *later
	shouted.Key = strings.ToUpper(shouted.Key)
	for _, tt := range []struct {
		auth *CallAuth
		want string
	}{
		{&bad, "signature does not match"},
		{auth, "sequence number"}, // 5 is before the client's, which used the clock
		{&shouted, "lowercase"},
	} {
		ws.WriteJSON(request{JSONRPC: "2.0", Method: "increment", Params: []byte("[]"), ID: []byte("1"), Auth: tt.auth})
		var r response
		if err := ws.ReadJSON(&r); err != nil {
			t.Fatal(err)
		}
		if r.Error == nil || r.Error.Code != CodeAuth || !strings.Contains(r.Error.Message, tt.want) {
			t.Errorf("answer %+v, want an auth error about %q", r.Error, tt.want)
		}
	}
	// The log records the key and the signature, for auditors.
	blk, _ := b.Log.Get(b.Log.Length() - 1)
	e, _ := calllog.DecodeEntry(blk)
	if e.Auth == nil || e.Auth.Key != hex.EncodeToString(pub) {
		t.Errorf("logged auth %+v", e.Auth)
	}
}

// TestInvalidParams: arguments a script could not be given exactly are
// refused with -32602 before the call is queued.
func TestInvalidParams(t *testing.T) {
	ts, b := serve(t, Options{})
	ws, _, err := websocket.DefaultDialer.Dial(strings.Replace(ts.URL, "http", "ws", 1), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	before := b.Log.Length()
	for _, params := range []string{`[1e999]`, `["\ud800"]`, strings.Repeat("[", 1001) + strings.Repeat("]", 1001)} {
		ws.WriteJSON(request{JSONRPC: "2.0", Method: "increment", Params: []byte(params), ID: []byte("1")})
		var r response
		if err := ws.ReadJSON(&r); err != nil {
			t.Fatal(err)
		}
		if r.Error == nil || r.Error.Code != codeInvalidParams || !strings.Contains(r.Error.Message, "invalid arguments") {
			t.Errorf("%.20s: answer %+v, want -32602", params, r.Error)
		}
	}
	if b.Log.Length() != before {
		t.Errorf("refused calls were logged")
	}
}

// TestDroppedClientAndBusy: clients that disconnect with calls pending do
// not hurt the server, and a flood gets busy answers, not a crash. Two
// clients flood at once: a connection whose calls run at once (the host
// being idle) reads no more until they end, so it is the one that finds
// the host busy whose calls wait, and overflow its limit.
func TestDroppedClientAndBusy(t *testing.T) {
	ts, _ := serve(t, Options{MaxInFlight: 8})
	var wg sync.WaitGroup
	var mu sync.Mutex
	busy := 0
	overflowed := make(chan struct{}) // closed at the first busy answer
	var clients []*Client
	for range 2 {
		c := dial(t, ts.URL, ClientOptions{Timeout: 20 * time.Second})
		clients = append(clients, c)
		for range 40 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := c.Call(context.Background(), "slow")
				var ce *CallError
				if errors.As(err, &ce) && ce.Code == CodeBusy {
					mu.Lock()
					if busy++; busy == 1 {
						close(overflowed)
					}
					mu.Unlock()
				}
			}()
		}
	}
	// Drop the clients once the flood has overflowed a connection, with
	// calls still pending. If every call ends first, none was busy, and
	// the check below says so.
	ended := make(chan struct{})
	go func() { wg.Wait(); close(ended) }()
	select {
	case <-overflowed:
	case <-ended:
	}
	for _, c := range clients {
		c.Close() // with calls still pending
	}
	wg.Wait()
	if busy == 0 {
		t.Error("no call was answered busy")
	}
	// The dropped client's queued calls are skipped as they come up, but
	// a batch its connection had started running goes on to its end (up
	// to MaxInFlight slow calls per connection: seconds under the race
	// detector, tens of seconds on a loaded machine); until then the
	// queue may still be full, or the call waits behind that batch. The
	// deadline only bounds a hang, so it bounds each call too.
	d := dial(t, ts.URL, ClientOptions{Timeout: 2 * time.Minute})
	deadline := time.Now().Add(90 * time.Second)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	for {
		_, err := d.Call(ctx, "increment")
		var ce *CallError
		if err == nil {
			break
		}
		if !errors.As(err, &ce) || ce.Code != CodeBusy || time.Now().After(deadline) {
			t.Fatalf("the server after a dropped client: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestReplicationOverWebSocket: the archive replicates over the backend's
// WebSocket replication path.
func TestReplicationOverWebSocket(t *testing.T) {
	ts, b := serve(t, Options{})
	c := dial(t, ts.URL, ClientOptions{})
	if _, err := c.Call(context.Background(), "write", "hello.txt", "hi there"); err != nil {
		t.Fatal(err)
	}
	replica, err := hyperdrive.Open(hyperdrive.Options{Storage: hyperdrive.MemoryStorage(), Key: b.Archive.Key(), Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer replica.Close()
	url := strings.Replace(ts.URL, "http", "ws", 1) + c.Handshake().ReplicationPath
	dialWS := func(ctx context.Context) (io.ReadWriteCloser, error) {
		ws, _, err := websocket.DefaultDialer.DialContext(ctx, url, nil)
		if err != nil {
			return nil, err
		}
		return NewWebSocketStream(ws), nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Pull dials again once it knows the content feed: nothing else tells
	// a waiter that the feed is there to watch.
	dialed := make(chan struct{}, 1)
	go replica.Pull(ctx, func(ctx context.Context) (io.ReadWriteCloser, error) {
		select {
		case dialed <- struct{}{}:
		default:
		}
		return dialWS(ctx)
	}, protocol.Options{Live: true})
	for {
		// Taken before the check, so that no change in between is missed.
		metadata := replica.Metadata().Changed()
		var content <-chan struct{}
		if f := replica.Content(); f != nil {
			content = f.Changed()
		}
		if got, err := replica.ReadFile("/hello.txt"); err == nil && string(got) == "hi there" {
			break
		}
		select {
		case <-metadata:
		case <-content:
		case <-dialed:
		case <-ctx.Done():
			t.Fatal("the replica never got the file")
		}
	}
}

// TestSeveralBackends: backends mounted at their own paths answer there,
// and an unknown path is refused.
func TestSeveralBackends(t *testing.T) {
	_, one := serve(t, Options{})
	_, two := serve(t, Options{})
	s := NewServer(Options{})
	if err := s.Mount("/one", one); err != nil {
		t.Fatal(err)
	}
	if err := s.Mount("two", two); err != nil {
		t.Fatal(err)
	}
	if err := s.Mount("/one", two); err == nil {
		t.Error("mounting twice at one path was allowed")
	}
	ts := httptest.NewServer(s)
	defer ts.Close()
	for path, b := range map[string]Backend{"/one": one, "/two": two} {
		c := dial(t, ts.URL+path, ClientOptions{})
		if c.Handshake().CallLogURL != "dat://"+hex.EncodeToString(b.Log.PublicKey()) {
			t.Errorf("%s answered for another backend", path)
		}
	}
	if _, err := Dial(context.Background(), ts.URL+"/three", ClientOptions{}); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("an unknown path: %v", err)
	}
}

// TestBatchedAnswers: many calls in flight on one connection each get
// their own answer (the writer sends what is ready in one write), and a
// ping on an idle connection is answered at once, not held for a batch.
func TestBatchedAnswers(t *testing.T) {
	ts, _ := serve(t, Options{})
	ws, _, err := websocket.DefaultDialer.Dial(strings.Replace(ts.URL, "http", "ws", 1), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	const n = 200
	for i := range n {
		if err := ws.WriteJSON(request{JSONRPC: "2.0", Method: "increment", Params: []byte("[]"), ID: []byte(strconv.Itoa(i))}); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	for len(seen) < n {
		var r response
		if err := ws.ReadJSON(&r); err != nil {
			t.Fatal(err)
		}
		if r.Error != nil {
			if r.Error.Code == CodeBusy { // a queue of 4: some are refused, and say so
				seen[string(r.ID)] = true
				continue
			}
			t.Fatalf("call %s: %+v", r.ID, r.Error)
		}
		if seen[string(r.ID)] {
			t.Fatalf("two answers to call %s", r.ID)
		}
		seen[string(r.ID)] = true
	}

	pong := make(chan struct{}, 1)
	ws.SetPongHandler(func(string) error { pong <- struct{}{}; return nil })
	go ws.NextReader() // the client reads control frames while it waits for a message
	if err := ws.WriteControl(websocket.PingMessage, []byte("hi"), time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-pong:
	case <-time.After(5 * time.Second):
		t.Fatal("no pong to a ping on an idle connection")
	}
}

// TestConcurrentClientCalls: calls made at once on one client share writes;
// each still gets its own answer, and signed ones reach the server in the
// order of their sequence numbers (none is refused as a replay).
func TestConcurrentClientCalls(t *testing.T) {
	ts, _ := serve(t, Options{})
	_, key, _ := ed25519.GenerateKey(nil)
	for _, opts := range []ClientOptions{{}, {Key: key}} {
		c := dial(t, ts.URL, opts)
		const n = 100
		got := make([]string, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		var mu sync.Mutex
		answered := make(chan struct{}) // closed, and replaced, at each answer
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					// Taken before the call: if it is refused as busy,
					// the calls ahead of it are answered later, and close
					// this.
					mu.Lock()
					ahead := answered
					mu.Unlock()
					res, err := c.Call(context.Background(), "increment")
					var ce *CallError
					if errors.As(err, &ce) && ce.Code == CodeBusy {
						// The queue (of 4) or the connection is full: try
						// again once a call ahead has its answer.
						select {
						case <-ahead:
						case <-time.After(10 * time.Second):
							errs[i] = errors.New("busy, and no call ahead of it was answered")
							return
						}
						continue
					}
					mu.Lock()
					close(answered)
					answered = make(chan struct{})
					mu.Unlock()
					got[i], errs[i] = string(res), err
					return
				}
			}()
		}
		wg.Wait()
		seen := map[string]bool{}
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("signed=%v: call %d: %v", opts.Key != nil, i, errs[i])
			}
			if seen[got[i]] {
				t.Fatalf("signed=%v: two calls got %s", opts.Key != nil, got[i])
			}
			seen[got[i]] = true
		}
	}
}

// syncBuffer collects log records from the server's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestConnectionLimits: under a cap connections are served; over it the
// upgrade is answered 503 with a body naming the limit, and the refusals
// make one log line; once a connection ends another is served.
func TestConnectionLimits(t *testing.T) {
	tests := []struct {
		name     string
		opts     func() Options
		path     string
		held     int // connections to hold: the cap less what others hold
		over     int
		wantBody string
	}{
		{"rpc connections", func() Options { return Options{MaxConnections: 3} }, "/", 3, 4, "at its connection limit (3)"},
		{"replication peers", func() Options { return Options{Peers: protocol.NewPeerLimit(2)} }, "/.dat", 2, 3, "at its Dat peer limit (2)"},
		{"replication peers, a place taken by the Dat listener", func() Options {
			peers := protocol.NewPeerLimit(2)
			peers.Acquire() // as ServeListener does for a TCP peer
			return Options{Peers: peers}
		}, "/.dat", 1, 2, "at its Dat peer limit (2)"},
		{"replication peers do not count as rpc connections", func() Options { return Options{MaxConnections: 1} }, "/.dat", 3, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs syncBuffer
			opts := tt.opts()
			opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			ts, _ := serve(t, opts)
			url := strings.Replace(ts.URL, "http", "ws", 1) + tt.path
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var held []*websocket.Conn
			for i := range tt.held {
				ws, _, err := websocket.DefaultDialer.DialContext(ctx, url, nil)
				if err != nil {
					t.Fatalf("connection %d, under the cap: %v", i, err)
				}
				defer ws.Close()
				held = append(held, ws)
			}
			for i := range tt.over {
				ws, resp, err := websocket.DefaultDialer.DialContext(ctx, url, nil)
				if err == nil {
					ws.Close()
					t.Fatalf("connection %d over the cap was upgraded", i)
				}
				if resp == nil {
					t.Fatalf("connection %d over the cap: %v, no HTTP answer", i, err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), tt.wantBody) {
					t.Fatalf("connection %d over the cap: %d %q, want 503 saying %q", i, resp.StatusCode, body, tt.wantBody)
				}
			}
			if got, want := strings.Count(logs.String(), "at the limit"), min(tt.over, 1); got != want {
				t.Errorf("%d log lines about the limit for %d refusals, want %d: %s", got, tt.over, want, logs.String())
			}
			if tt.over == 0 {
				return
			}
			// One leaves: the next is served, once the server has seen it go.
			held[0].Close()
			for {
				ws, _, err := websocket.DefaultDialer.DialContext(ctx, url, nil)
				if err == nil {
					ws.Close()
					break
				}
				if ctx.Err() != nil {
					t.Fatalf("no connection served after one left: %v", err)
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}

// TestMessageLimits: a message over the read limit, JSON-RPC or
// replication, ends its connection with 1009 (message too big).
func TestMessageLimits(t *testing.T) {
	// datOpening opens a replication stream for b's call log, as a peer
	// would, and returns the keystream for what follows: keep-alives (zero
	// bytes, encrypted) are read one by one, so the stream takes them until
	// the WebSocket's limit cuts it off.
	datOpening := func(b Backend) ([]byte, cipher.Stream) {
		dk := b.Log.DiscoveryKey()
		nonce := bytes.Repeat([]byte{5}, wire.NonceSize)
		first := wire.AppendFrame(nil, 0, &wire.Feed{DiscoveryKey: dk[:], Nonce: nonce})
		hs := wire.AppendFrame(nil, 0, &wire.Handshake{ID: make([]byte, 32)})
		xor := wire.NewStream(b.Log.PublicKey(), nonce)
		xor.XORKeyStream(hs, hs)
		return append(first, hs...), xor
	}
	tests := []struct {
		name    string
		path    string
		kind    int
		size    int
		opening func(Backend) ([]byte, cipher.Stream)
	}{
		{"rpc request over MaxMessage", "/", websocket.TextMessage, 8 << 10, nil},
		{"replication message over 16 MiB", "/.dat", websocket.BinaryMessage, 16<<20 + 64<<10, datOpening},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts, b := serve(t, Options{MaxMessage: 4 << 10})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			ws, _, err := websocket.DefaultDialer.DialContext(ctx, strings.Replace(ts.URL, "http", "ws", 1)+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer ws.Close()
			// Read whatever the server says until it closes the connection.
			closed := make(chan error, 1)
			go func() {
				for {
					if _, _, err := ws.ReadMessage(); err != nil {
						closed <- err
						return
					}
				}
			}()
			ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
			piece := bytes.Repeat([]byte{' '}, 64<<10)
			var xor cipher.Stream
			if tt.opening != nil {
				var first []byte
				first, xor = tt.opening(b)
				if err := ws.WriteMessage(tt.kind, first); err != nil {
					t.Fatal(err)
				}
			}
			if w, err := ws.NextWriter(tt.kind); err == nil {
				// Written in pieces, as a client streams a large message;
				// the server may hang up before the end.
				for sent := 0; sent < tt.size; sent += len(piece) {
					p := piece[:min(len(piece), tt.size-sent)]
					if xor != nil {
						clear(p)
						xor.XORKeyStream(p, p)
					}
					if _, err := w.Write(p); err != nil {
						break
					}
				}
				w.Close()
			}
			select {
			case err = <-closed:
			case <-ctx.Done():
				t.Fatal("the server did not close the connection")
			}
			if !websocket.IsCloseError(err, websocket.CloseMessageTooBig) {
				t.Errorf("ReadMessage = %v, want close 1009 (message too big)", err)
			}
		})
	}
}
