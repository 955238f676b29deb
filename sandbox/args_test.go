package sandbox

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// TestCheckArguments: arguments a script would not receive exactly as
// sent are refused before anything runs, and everything else passes.
func TestCheckArguments(t *testing.T) {
	for _, tt := range []struct {
		args string
		ok   bool
	}{
		{`[]`, true},
		{` [1, -2.5e3, "x", null, true, {"a": [1e308]}] `, true},
		{`[1e-999]`, true}, // rounds to 0, as in JavaScript
		{`["\ud83d\ude00", "\u00e9", "\\ud800"]`, true},
		{`[1e999]`, false},
		{`[-1e400]`, false},
		{`[{"a": 1E+309}]`, false},
		{`["\ud800"]`, false},
		{`["\udc00"]`, false},
		{`["\ud800x"]`, false},
		{`["\ud800\ud800"]`, false},
		{`["\ud800\n"]`, false},
		{"[\"\xff\"]", false},
		{strings.Repeat("[", MaxNesting) + strings.Repeat("]", MaxNesting), true},
		{strings.Repeat("[", MaxNesting+1) + strings.Repeat("]", MaxNesting+1), false},
		{`{}`, false},
		{`[1] 2`, false},
		{`[1,]`, false},
		{`[`, false},
		{`["a]`, false},
	} {
		err := CheckArguments([]byte(tt.args))
		if tt.ok != (err == nil) || err != nil && !errors.Is(err, ErrArguments) {
			t.Errorf("%.60q: got %v, want ok %v", tt.args, err, tt.ok)
		}
	}
}

// TestBadArgumentsBreakNothing: a call with arguments the sandbox refuses
// does not break the script (before, the host took it for a stopped call
// and rebuilt the script by replaying its whole log).
func TestBadArgumentsBreakNothing(t *testing.T) {
	s := load(t, `var n = 0; exports.f = (x) => ++n`)
	call(t, s, Call{Method: "f"})
	if _, err := s.Call(context.Background(), Call{Method: "f", Args: []byte(`[1e999]`)}); !errors.Is(err, ErrArguments) {
		t.Fatalf("got %v, want ErrArguments", err)
	}
	if got := call(t, s, Call{Method: "f"}); got != "2" {
		t.Errorf("after refused arguments: %s, want 2 (the script as it was)", got)
	}
}
