package rpc

import (
	"context"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/nodevms/nodevms/calllog"
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
