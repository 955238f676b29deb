package jsonrpc

import (
	"encoding/json"
	"testing"
)

func TestParseRequest(t *testing.T) {
	for _, tt := range []struct {
		in    string
		plain bool // read without Unmarshal
	}{
		// What nodevms-client (rpc-websockets) and the Go client send.
		{`{"jsonrpc":"2.0","method":"increment","params":[],"id":1}`, true},
		{`{"jsonrpc":"2.0","method":"add","params":[1,"two",{"three":[3,{"]":"}"}]}],"id":"x\"y"}`, true},
		{`{"jsonrpc":"2.0","method":"m","params":null,"id":null,"auth":{"key":"ab","signature":"cd","seq":3}}`, true},
		{" {\n\t\"method\" : \"m\" ,\r \"id\" : -1.5e3 , \"extra\": [true, false, null] } ", true},
		{`{"jsonrpc":"2.0","method":"notify","params":[]}`, true},
		{`{}`, true},
		{`{"id":2}`, true},
		{`{"id":{}}`, true},
		{`{"params":"\\"}`, true},
		// Left to Unmarshal.
		{`{"Method":"m"}`, false},
		{`{"METHOD":"m","jsonRPC":"2.0"}`, false},
		{`{"method":"a","method":"b"}`, false},
		{`{"method":"\u0061"}`, false},
		{`{"me\u0074hod":"a"}`, false},
		{`{"method":1}`, false},
		{`{"method":null}`, false},
		{`{"jsonrpc":["2.0"]}`, false},
		{`{"auth":{"a":1},"auth":null}`, false},
		{"{\"\u212a\":1}", false},
		{`[{"method":"m"}]`, false},
		{`null`, false},
		{`"x"`, false},
		{``, false},
		{`{"method":"m"`, false},
		{`{"method":"m"} {}`, false},
		{`{"method":"m",}`, false},
		{"{\"method\":\"\xff\"}", false},
		// Invalid, in ways the direct reading must see itself.
		{`{"method":"m" "id":1}`, false},
		{`{"method" "m"}`, false},
		{`{"method"x"m"}`, false},
		{`{"id":1;"method":"m"}`, false},
		{`{"id":1 x"method":"m"}`, false},
		{`{"method":"m"}x`, false},
		{`{"a":tru}`, false},
		{`{"a":[}`, false},
		{`{"a":1]}`, false},
		{`{"id":[1,2}`, false},
		{`{"id":}`, false},
		{`{,}`, false},
		{`{"id":1,,"method":"m"}`, false},
		{"{\"a\n\":1}", false},
		{"{\"method\":\"a\tb\"}", false},
		{`{"params":"unterminated}`, false},
		{`{"params":"\"}`, false},
	} {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			if err := CheckAgainstUnmarshal([]byte(tt.in)); err != nil {
				t.Fatal(err)
			}
			if _, plain := parsePlain([]byte(tt.in)); plain != tt.plain {
				t.Errorf("read without Unmarshal: %v, want %v", plain, tt.plain)
			}
		})
	}
}

func BenchmarkParseRequest(b *testing.B) {
	data := []byte(`{"jsonrpc":"2.0","method":"increment","params":[],"id":12345}`)
	b.Run("ParseRequest", func(b *testing.B) {
		for range b.N {
			if _, err := ParseRequest(data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Unmarshal", func(b *testing.B) {
		for range b.N {
			var req Request
			if err := json.Unmarshal(data, &req); err != nil {
				b.Fatal(err)
			}
		}
	})
}
