package sandbox_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/dop251/goja"
	"github.com/google/go-cmp/cmp"

	"github.com/nodevms/nodevms/sandbox"
)

// guardedUses calls the sandbox's guarded built-ins the way a backend
// does, with a caller's strings: replacements with $-patterns on a
// subject long enough that the guard expands them itself (see
// lib/guard.js), joins, JSON both ways.
const guardedUses = `function uses (s, r, t) {
	const big = s.length === 0 ? '' : s.repeat(Math.ceil(1100 / s.length))
	let parsed
	try { parsed = JSON.parse(t) } catch (e) { parsed = e.name }
	return [
		big.replace(/(a)(?<g>b)?/g, r),
		big.replaceAll('a', r),
		big.replace('a', r),
		big.replace(/(x)?/, r),
		[big.length, r, t, null, [s]].join(r),
		JSON.stringify({s, r, t, n: [1, {t}]}, null, 1),
		JSON.stringify({s, r, t}, ['t', 's']),
		parsed,
	]
}`

// FuzzGuardedBuiltins: the sandbox's guarded built-ins give exactly what
// goja's own give, for any strings a caller sends.
func FuzzGuardedBuiltins(f *testing.F) {
	for _, seed := range [][3]string{
		{"ab", "$&", `{"a":[1,2]}`},
		{"a", "$`", "[1"},
		{"ba", "$'$1", `"x"`},
		{"abc", "$<g>$2$$", "null"},
		{"aab", "$01$10$9", `[[[]]]`},
		{"x", "$", "{}"},
		{"é", "$<", "1e5"},
	} {
		f.Add(seed[0], seed[1], seed[2])
	}
	s, err := sandbox.Load(guardedUses+"\nexports.f = (s, r, t) => uses(s, r, t)", sandbox.Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, subject, replacement, text string) {
		if len(subject) > 64 || len(replacement) > 8 || len(text) > 256 || strings.Count(text, "[")+strings.Count(text, "{") > 100 {
			return // the limits differ past these, on purpose
		}
		args, err := json.Marshal([]string{subject, replacement, text})
		if err != nil {
			t.Fatal(err)
		}
		var decoded []string
		if err := json.Unmarshal(args, &decoded); err != nil {
			t.Fatal(err)
		}
		r, err := s.Call(context.Background(), sandbox.Call{Method: "f", Args: args})
		if err != nil {
			t.Fatalf("guarded: %v", err)
		}
		got := string(r.Value)
		if r.Error != nil {
			got = "error: " + r.Error.Error()
		}
		rt := goja.New()
		if _, err := rt.RunString(guardedUses); err != nil {
			t.Fatal(err)
		}
		rt.Set("s", decoded[0])
		rt.Set("r", decoded[1])
		rt.Set("t", decoded[2])
		v, err := rt.RunString("JSON.stringify(uses(s, r, t))")
		want := ""
		if err != nil {
			want = "error: " + err.Error()
		} else {
			want = v.String()
		}
		if r.Error != nil || err != nil {
			// Errors are compared by kind only: the messages name
			// different places.
			if (r.Error != nil) != (err != nil) {
				t.Fatalf("guarded %s, plain %s", got, want)
			}
			return
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("guarded and plain differ (-plain +guarded):\n%s", diff)
		}
	})
}

// FuzzCheckArguments: any bytes a caller sends as arguments are either
// refused with ErrArguments before anything runs, or are JSON that the
// script receives whole (its answer is the arguments, unchanged in
// meaning).
func FuzzCheckArguments(f *testing.F) {
	for _, seed := range []string{`[]`, `[1, "a", {"b": [null, true]}]`, `[1e999]`, `[1e-999]`, `["\ud800"]`, `["\ud83d\ude00"]`, `[[[[]]]]`, `[`, `{}`, "[\"\xff\"]"} {
		f.Add([]byte(seed))
	}
	s, err := sandbox.Load("exports.echo = (...a) => a", sandbox.Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, args []byte) {
		err := sandbox.CheckArguments(args)
		if err != nil {
			if !errors.Is(err, sandbox.ErrArguments) {
				t.Fatalf("error %v does not wrap ErrArguments", err)
			}
			return
		}
		if !json.Valid(args) {
			t.Fatalf("accepted %q, which is not JSON", args)
		}
		r, err := s.Call(context.Background(), sandbox.Call{Method: "echo", Args: args})
		if err != nil || r.Error != nil {
			t.Fatalf("accepted %q, which the script could not take: %v %v", args, err, r.Error)
		}
		var sent, got any
		if err := json.Unmarshal(args, &sent); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(r.Value, &got); err != nil {
			t.Fatalf("the answer %s: %v", r.Value, err)
		}
		if diff := cmp.Diff(sent, got); diff != "" {
			t.Fatalf("the script got other arguments (-sent +got):\n%s", diff)
		}
	})
}
