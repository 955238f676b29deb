package calllog

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// FuzzCanonicalMatchesUnmarshal: whatever the bytes, an entry the
// canonical decoder accepts is exactly what json.Unmarshal decodes from
// them, so that DecodeEntry's two paths cannot disagree.
func FuzzCanonicalMatchesUnmarshal(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		fast, ok := decodeCanonical(b)
		if !ok {
			return
		}
		var slow Entry
		if err := json.Unmarshal(b, &slow); err != nil {
			t.Fatalf("the canonical decoder took %q, which Unmarshal refuses: %v", b, err)
		}
		if diff := cmp.Diff(&slow, fast); diff != "" {
			t.Fatalf("%q decodes differently (-Unmarshal +canonical):\n%s", b, diff)
		}
	})
}

// canonicalEntries are entries of every shape, with plain strings.
func canonicalEntries() []*Entry {
	bob, oops := "bob", "Error"
	root := &FilesRoot{Metadata: strings.Repeat("0", 64), Content: strings.Repeat("1", 64), ContentLength: 2}
	return []*Entry{
		{Type: TypeInit, Schema: SchemaVersion, Code: "exports.f = () => 1", FilesArchiveURL: "dat://" + strings.Repeat("ab", 32),
			FilesContentKey: strings.Repeat("cd", 32), Title: "t", Time: 1, Seed: "0123456789abcdef", FilesRoot: root},
		{Type: TypeInit, Schema: SchemaAfresh, Memory: MemoryAfresh, Code: "x", Time: 1, Seed: "0123456789abcdef",
			Call: &CallRecord{MethodName: "init", Args: json.RawMessage(`[]`)}, Result: &ResultRecord{Res: json.RawMessage(`null`)}, FilesRoot: root},
		{Type: TypeCall, Call: &CallRecord{UserID: &bob, MethodName: "increment", Args: json.RawMessage(`[1,"two, \"2\"",{"three":[3,{}]},[]]`)},
			Result: &ResultRecord{Res: json.RawMessage(`{"n":-1.5e3,"s":"]"}`), FilesVersion: 3}, Time: 1700000000000, Seed: "ffffffffffffffff",
			Oracles:   []OracleValue{{Value: json.RawMessage(`0.5`)}, {Error: &ScriptError{Name: "Error", Message: "x"}}, {Value: json.RawMessage(`null`), Error: &ScriptError{}}},
			FilesRoot: root},
		{Type: TypeCall, Call: &CallRecord{MethodName: "fail", Args: json.RawMessage(`[]`)},
			Result: &ResultRecord{Res: json.RawMessage(`null`), Err: &oops}, Error: &ScriptError{Name: "Error", Message: "no"}, Time: -5, Seed: "0000000000000000",
			Auth: &Auth{Key: strings.Repeat("a", 64), Signature: strings.Repeat("b", 128), Seq: 18446744073709551615}},
		{Type: TypeReload, Reason: ReloadStoppedCall, Time: 2, Seed: "fedcba9876543210", FilesVersion: 3, FilesRoot: root},
	}
}

// TestCanonicalDecodesWhatAppendEntryWrites: the entries this package
// writes take the fast path, to the entries written; the same entries
// written otherwise (still JSON that Unmarshal reads, or not) do not, and
// DecodeEntry decodes them as Unmarshal does.
func TestCanonicalDecodesWhatAppendEntryWrites(t *testing.T) {
	for i, e := range canonicalEntries() {
		b, err := EncodeEntry(e)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := decodeCanonical(b)
		if !ok {
			t.Errorf("entry %d, as written, is not canonical: %s", i, b)
			continue
		}
		if diff := cmp.Diff(e, got); diff != "" {
			t.Errorf("entry %d (-written +decoded):\n%s", i, diff)
		}
	}
	call := string(must(EncodeEntry(canonicalEntries()[2])))
	for _, c := range []struct{ name, from, to string }{
		{"white space", `,"time":`, `, "time":`},
		{"white space at the end", "}\n", "} \n"},
		{"no newline", "}\n", "}"},
		{"members out of order", `"time":1700000000000,"seed":"ffffffffffffffff"`, `"seed":"ffffffffffffffff","time":1700000000000`},
		{"an escaped string", `"methodName":"increment"`, `"methodName":"incr\u0065ment"`},
		{"a non-ASCII string", `"methodName":"increment"`, `"methodName":"incrément"`},
		{"a key in other case", `"methodName"`, `"MethodName"`},
		{"a leading zero", `"filesVersion":3`, `"filesVersion":03`},
		{"a zero that is left out", `"filesVersion":3}`, `"filesVersion":3},"filesVersion":0`},
		{"a duplicate member", `"seed":"ffffffffffffffff"`, `"seed":"0000000000000000","seed":"ffffffffffffffff"`},
		{"an unknown member", `"seed":"ffffffffffffffff"`, `"seed":"ffffffffffffffff","extra":1`},
		{"spaced raw JSON", `"args":[1,`, `"args":[ 1,`},
		{"raw JSON that is not", `"args":[1,`, `"args":[1,,`},
		{"an empty oracle list", `"oracles":[{"value":0.5},{"error":{"name":"Error","message":"x"}},{"value":null,"error":{"name":"","message":""}}]`, `"oracles":[]`},
	} {
		t.Run(c.name, func(t *testing.T) {
			if !strings.Contains(call, c.from) {
				t.Fatalf("%q is not in %s", c.from, call)
			}
			b := []byte(strings.Replace(call, c.from, c.to, 1))
			if _, ok := decodeCanonical(b); ok {
				t.Errorf("taken as canonical: %s", b)
			}
			// DecodeEntry as it was: Unmarshal, then the checks.
			want := &Entry{}
			werr := json.Unmarshal(b, want)
			if werr == nil {
				werr = want.check()
			}
			got, gerr := DecodeEntry(b)
			if (werr != nil) != (gerr != nil) {
				t.Fatalf("Unmarshal: %v; DecodeEntry: %v", werr, gerr)
			}
			if gerr == nil {
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("(-Unmarshal +DecodeEntry):\n%s", diff)
				}
			}
		})
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// BenchmarkDecodeEntry decodes a counter's call entry, by DecodeEntry and,
// beside it, by json.Unmarshal and the checks, as DecodeEntry did before
// it read the canonical form itself.
func BenchmarkDecodeEntry(b *testing.B) {
	root := &FilesRoot{Metadata: strings.Repeat("0", 64), Content: strings.Repeat("1", 64), ContentLength: 2}
	block := must(EncodeEntry(&Entry{Type: TypeCall, Call: &CallRecord{MethodName: "increment", Args: json.RawMessage(`[]`)},
		Result: &ResultRecord{Res: json.RawMessage(`41`), FilesVersion: 2}, Time: 1700000000000, Seed: "0123456789abcdef", FilesRoot: root}))
	b.Run("DecodeEntry", func(b *testing.B) {
		for b.Loop() {
			if _, err := DecodeEntry(block); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Unmarshal", func(b *testing.B) {
		for b.Loop() {
			e := &Entry{}
			if err := json.Unmarshal(block, e); err != nil {
				b.Fatal(err)
			}
			if err := e.check(); err != nil {
				b.Fatal(err)
			}
		}
	})
}
