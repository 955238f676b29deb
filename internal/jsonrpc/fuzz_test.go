package jsonrpc

import "testing"

// FuzzParseRequest: a JSON-RPC request from a client reads exactly as
// json.Unmarshal reads it (the same request, or the same error), whichever
// path it takes.
func FuzzParseRequest(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := CheckAgainstUnmarshal(data); err != nil {
			t.Fatal(err)
		}
	})
}
