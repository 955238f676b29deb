package rpc

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/nodevms/nodevms/calllog"
	"github.com/nodevms/nodevms/core"
	"github.com/nodevms/nodevms/receipt"
)

// TestCallsWithReceipts: over the wire, a call that asks for a receipt
// gets one that verifies against the key the handshake names, a thrown
// error's answer carries one too, and any entry's receipt can be fetched
// later by index.
func TestCallsWithReceipts(t *testing.T) {
	ts, b := serve(t, Options{})
	c := dial(t, ts.URL, ClientOptions{})
	ctx := context.Background()
	key, err := hex.DecodeString(strings.TrimPrefix(c.Handshake().CallLogURL, "dat://"))
	if err != nil {
		t.Fatal(err)
	}
	res, r, err := c.CallWithReceipt(ctx, "increment")
	if err != nil || string(res) != "1" {
		t.Fatalf("increment: %s, %v", res, err)
	}
	if err := r.Verify(key); err != nil {
		t.Fatal(err)
	}
	e, err := calllog.DecodeEntry(r.Entry)
	if err != nil || e.Call.MethodName != "increment" || string(e.Result.Res) != "1" {
		t.Errorf("the receipt's entry: %s (%v)", r.Entry, err)
	}

	_, thrown, err := c.CallWithReceipt(ctx, "fail")
	var ce *CallError
	if !errors.As(err, &ce) || ce.Code != CodeScriptError || thrown == nil {
		t.Fatalf("fail: %v, receipt %v", err, thrown)
	}
	if err := thrown.Verify(key); err != nil || thrown.Index != r.Index+1 {
		t.Errorf("the thrown call's receipt, of entry %d: %v", thrown.Index, err)
	}

	for i := range b.Log.Length() {
		got, err := c.Receipt(ctx, i)
		if err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		if err := got.Verify(key); err != nil {
			t.Errorf("entry %d: %v", i, err)
		}
	}
	if _, err := c.Receipt(ctx, b.Log.Length()+5); !errors.As(err, &ce) || ce.Code != codeInvalidParams {
		t.Errorf("a receipt past the log's end: %v", err)
	}
	// Plain calls are answered as before, with no receipt.
	if res, err := c.Call(ctx, "increment"); err != nil || string(res) != "2" {
		t.Errorf("a plain call: %s, %v", res, err)
	}
}

// TestReceiptsOfCallsInFlightTogether: a caller with a few calls in
// flight, all asking for receipts, gets them at once, not after the
// signing interval (here 30 s, which the test's 10 s do not reach): once
// the host has nothing else to run, it signs. They used to wait out the
// interval, 5 ms each, since fewer than 32 never made the host sign
// sooner.
func TestReceiptsOfCallsInFlightTogether(t *testing.T) {
	ts, _ := serveHost(t, Options{}, func(cfg *core.Config) {
		cfg.QueueSize, cfg.SignEvery = 64, 30*time.Second
	})
	c := dial(t, ts.URL, ClientOptions{})
	key, err := hex.DecodeString(strings.TrimPrefix(c.Handshake().CallLogURL, "dat://"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for round := range 3 {
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, r, err := c.CallWithReceipt(ctx, "increment")
				if err == nil {
					err = r.Verify(key)
				}
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
	}
}

// TestReceiptRequestsRefused: malformed receipt requests get clear errors
// and log nothing.
func TestReceiptRequestsRefused(t *testing.T) {
	ts, b := serve(t, Options{})
	ws, _, err := websocket.DefaultDialer.Dial(strings.Replace(ts.URL, "http", "ws", 1), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	before := b.Log.Length()
	for _, tt := range []struct {
		msg  string
		code int
	}{
		{`{"jsonrpc":"2.0","method":"increment","params":[],"id":1,"receipt":"yes"}`, codeParse},
		{`{"jsonrpc":"2.0","method":"increment","params":[],"id":1,"receiptParts":1}`, codeParse},
		{`{"jsonrpc":"2.0","method":"nodevms.receipt","params":[],"id":1}`, codeInvalidParams},
		{`{"jsonrpc":"2.0","method":"nodevms.receipt","params":[-1],"id":1}`, codeInvalidParams},
		{`{"jsonrpc":"2.0","method":"nodevms.receipt","params":[1.5],"id":1}`, codeInvalidParams},
		{`{"jsonrpc":"2.0","method":"nodevms.receipt","params":[0,1],"id":1}`, codeInvalidParams},
		{`{"jsonrpc":"2.0","method":"nodevms.receipt","params":[99],"id":1}`, codeInvalidParams},
	} {
		ws.WriteMessage(websocket.TextMessage, []byte(tt.msg))
		var r struct {
			Error   *wireError
			Receipt *receipt.Receipt
		}
		if err := ws.ReadJSON(&r); err != nil {
			t.Fatal(err)
		}
		if r.Error == nil || r.Error.Code != tt.code || r.Receipt != nil {
			t.Errorf("%s: answer %+v, want code %d", tt.msg, r.Error, tt.code)
		}
	}
	if b.Log.Length() != before {
		t.Errorf("refused requests were logged")
	}
}

// TestReceiptsInParts: calls in flight together on one connection get
// their receipts in parts, which the client assembles into the receipts
// the log makes, byte for byte; the parts carry a fraction of the nodes.
// A request for a whole receipt alone still gets one whole.
func TestReceiptsInParts(t *testing.T) {
	ts, b := serveQueue(t, Options{}, 64)
	c := dial(t, ts.URL, ClientOptions{})
	ctx := context.Background()
	const calls, inFlight = 120, 8
	var mu sync.Mutex
	var got []*receipt.Receipt
	var wg sync.WaitGroup
	for w := range inFlight {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range calls / inFlight {
				_, r, err := c.CallWithReceipt(ctx, "increment")
				if err != nil {
					t.Errorf("worker %d: %v", w, err)
					return
				}
				mu.Lock()
				got = append(got, r)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(got) != calls {
		t.Fatalf("%d receipts of %d calls", len(got), calls)
	}
	for _, r := range got {
		if err := r.Verify(b.Log.PublicKey()); err != nil {
			t.Fatalf("entry %d: %v", r.Index, err)
		}
		want, err := receipt.MakeAt(b.Log, r.Index, r.Length)
		if err != nil {
			t.Fatal(err)
		}
		g, _ := r.MarshalJSON()
		w, _ := want.MarshalJSON()
		if !bytes.Equal(g, w) {
			t.Fatalf("entry %d: assembled\n%s\nthe log's\n%s", r.Index, g, w)
		}
	}

	// A client that asks for a whole receipt (as one written before parts
	// did) gets one.
	ws, _, err := websocket.DefaultDialer.Dial(strings.Replace(ts.URL, "http", "ws", 1), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	ws.WriteMessage(websocket.TextMessage, []byte(`{"jsonrpc":"2.0","method":"increment","params":[],"id":1,"receipt":true}`))
	type answer struct {
		Result      int
		Receipt     *receipt.Receipt
		ReceiptPart json.RawMessage
	}
	var whole answer
	if err := ws.ReadJSON(&whole); err != nil {
		t.Fatal(err)
	}
	if whole.Result != calls+1 || whole.Receipt == nil || whole.ReceiptPart != nil {
		t.Fatalf("a whole receipt asked for: %+v", whole)
	}
	if err := whole.Receipt.Verify(b.Log.PublicKey()); err != nil {
		t.Fatal(err)
	}
	// Asked for both, as the Go client asks, a server sends the part.
	ws.WriteMessage(websocket.TextMessage, []byte(`{"jsonrpc":"2.0","method":"increment","params":[],"id":2,"receipt":true,"receiptParts":true}`))
	var parted answer
	if err := ws.ReadJSON(&parted); err != nil {
		t.Fatal(err)
	}
	if parted.Receipt != nil || parted.ReceiptPart == nil {
		t.Fatalf("a receipt asked for in parts: %+v", parted)
	}
	p, err := receipt.ParsePart(parted.ReceiptPart)
	if err != nil {
		t.Fatal(err)
	}
	r, err := receipt.NewAssembler(b.Log.PublicKey()).Add(p)
	if err != nil {
		t.Fatalf("the first part on a connection is whole: %v", err)
	}
	if err := r.Verify(b.Log.PublicKey()); err != nil {
		t.Fatal(err)
	}
}
