package hypercore_test

import (
	"encoding/json"
	"testing"

	"github.com/nodevms/nodevms/hypercore"
)

func TestEncodeJSONMatchesStringify(t *testing.T) {
	t.Parallel()
	// Wanted bytes are what JSON.stringify(v) + "\n" gives in Node.js.
	tests := []struct {
		name string
		v    any
		want string
	}{
		{"object", struct {
			B int    `json:"b"`
			A string `json:"a"`
		}{1, "x"}, `{"b":1,"a":"x"}` + "\n"},
		{"html characters", "<script>&</script>", `"<script>&</script>"` + "\n"},
		{"line separators", "a\u2028b\u2029c", "\"a\u2028b\u2029c\"\n"},
		{"escaped backslash before u2028", `\u2028`, `"\\u2028"` + "\n"},
		{"control characters", "\x01\n\t", `"\u0001\n\t"` + "\n"},
		{"raw message", json.RawMessage(`{"z":1,"a":[true,null]}`), `{"z":1,"a":[true,null]}` + "\n"},
		{"large float", 1e21, "1e+21\n"},
		{"small float", 1e-7, "1e-7\n"},
		{"null", nil, "null\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := hypercore.EncodeJSON(tt.v)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("EncodeJSON = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestDecodeJSON(t *testing.T) {
	t.Parallel()
	var v any
	if err := hypercore.DecodeJSON([]byte("{\"n\":1e+21}\n"), &v); err != nil {
		t.Fatal(err)
	}
	b, err := hypercore.EncodeJSON(v)
	if err != nil || string(b) != "{\"n\":1e+21}\n" {
		t.Errorf("round trip = %q, %v", b, err)
	}
	for _, bad := range []string{"", "{", "1 2", `{"a":}`} {
		if err := hypercore.DecodeJSON([]byte(bad), &v); err == nil {
			t.Errorf("DecodeJSON(%q) succeeded", bad)
		}
	}
	if _, err := hypercore.EncodeJSON(make(chan int)); err == nil {
		t.Error("EncodeJSON(chan) succeeded")
	}
}
