package rpc

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestEncodeResponseIsMarshal: answers written without reflection are
// byte for byte what json.Marshal writes, whichever path they take.
func TestEncodeResponseIsMarshal(t *testing.T) {
	ids := []string{`1`, `-1.5e3`, `"abc"`, `null`, `"a b"`, `"<&>"`, `"é"`, "\"\u2028\"", ` 7 `}
	results := []string{`1`, `null`, `[1,"two",{"three":3}]`, `{"a":"b c"}`, `"<b>"`, `"\u00e9"`, "[1, 2]", `"é"`}
	for _, id := range ids {
		for _, res := range results {
			r := response{ID: json.RawMessage(id), Result: json.RawMessage(res)}
			want, err := json.Marshal(response{JSONRPC: "2.0", ID: r.ID, Result: r.Result})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(want), string(encodeResponse(r))); diff != "" {
				t.Errorf("id %s, result %s (-json.Marshal +encodeResponse):\n%s", id, res, diff)
			}
		}
	}
	if !plainJSON([]byte(`[1,"two",{"three":3}]`)) || plainJSON([]byte(`[1,`)) || plainJSON(nil) {
		t.Error("plainJSON: the plain answer takes the slow path, or invalid JSON the fast one")
	}
}
