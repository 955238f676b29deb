package rpc

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// decodeResponseCases are answers as a server may write them, honest or
// not, for TestDecodeResponse and FuzzDecodeResponse's corpus.
var decodeResponseCases = []struct {
	name, data string
	part       string // the raw part decodeResponse keeps; "" for none
}{
	{"plain", `{"jsonrpc":"2.0","id":1,"result":7}`, ""},
	{"with a part", `{"jsonrpc":"2.0","id":2,"result":7,"receiptPart":{"index":3,"length":4,"entry":"e30K","nodes":[]}}`,
		`{"index":3,"length":4,"entry":"e30K","nodes":[]}`},
	{"the member's text inside the result", `{"jsonrpc":"2.0","id":3,"result":{"a":1,"receiptPart":{"index":9}},"receiptPart":{"index":3,"length":4,"entry":"","nodes":[]}}`,
		`{"index":3,"length":4,"entry":"","nodes":[]}`},
	{"only inside the result", `{"jsonrpc":"2.0","id":4,"result":{"receiptPart":{"index":9}}}`, ""},
	{"with a receipt", `{"jsonrpc":"2.0","id":5,"result":1,"receipt":{"format":"nodevms-receipt/1","log":"00"}}`,
		`{"format":"nodevms-receipt/1","log":"00"}`},
	{"an error", `{"jsonrpc":"2.0","id":6,"error":{"code":-32000,"message":"no"}}`, ""},
	{"empty", ``, ""},
	{"a brace", `}`, ""},
	{"the member alone", `,"receiptPart":{"index":}`, ""},
}

// TestDecodeResponse: the part is cut off where the server put it, and the
// rest reads as encoding/json reads it.
func TestDecodeResponse(t *testing.T) {
	for _, tc := range decodeResponseCases {
		t.Run(tc.name, func(t *testing.T) {
			var got clientResponse
			err := decodeResponse([]byte(tc.data), &got)
			var whole clientResponse
			if werr := json.Unmarshal([]byte(tc.data), &whole); (err == nil) != (werr == nil) {
				t.Fatalf("decodeResponse: %v; encoding/json: %v", err, werr)
			}
			if err != nil {
				return
			}
			raw := string(got.ReceiptPart) + string(got.Receipt)
			if raw != tc.part {
				t.Errorf("the part kept: %q, want %q", raw, tc.part)
			}
			checkAgainstWhole(t, got, whole)
		})
	}
}

// checkAgainstWhole compares what decodeResponse read with what
// encoding/json reads of the whole answer.
func checkAgainstWhole(t *testing.T, got, whole clientResponse) {
	t.Helper()
	compact := func(raw json.RawMessage) string {
		var b bytes.Buffer
		if json.Compact(&b, raw) != nil {
			return string(raw)
		}
		return b.String()
	}
	type view struct{ ID, Result, Receipt, Part, ReceiptError string }
	of := func(r clientResponse) view {
		return view{compact(r.ID), compact(r.Result), compact(r.Receipt), compact(r.ReceiptPart), r.ReceiptError}
	}
	if diff := cmp.Diff(of(whole), of(got)); diff != "" {
		t.Errorf("against encoding/json (-whole +decodeResponse):\n%s", diff)
	}
	if diff := cmp.Diff(whole.Error, got.Error); diff != "" {
		t.Errorf("the error against encoding/json (-whole +decodeResponse):\n%s", diff)
	}
}

// FuzzDecodeResponse: whatever a server sends, decodeResponse does not
// panic, and where the part it cuts off is JSON, it reads what
// encoding/json reads. (A part that is not JSON is refused by the
// assembler, which parses it.)
func FuzzDecodeResponse(f *testing.F) {
	for _, tc := range decodeResponseCases {
		f.Add([]byte(tc.data))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var got clientResponse
		if err := decodeResponse(data, &got); err != nil {
			return
		}
		raw := append(got.Receipt, got.ReceiptPart...)
		if len(raw) > 0 && !json.Valid(raw) {
			return
		}
		var whole clientResponse
		if err := json.Unmarshal(data, &whole); err != nil {
			t.Fatalf("decodeResponse took %q, which encoding/json refuses: %v", data, err)
		}
		checkAgainstWhole(t, got, whole)
	})
}
