package calllog

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// referenceEncoding is what EncodeEntry must write: encoding/json's
// Encoder with HTML escaping off, which wrote every log before.
func referenceEncoding(e *Entry) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	err := enc.Encode(e)
	return buf.Bytes(), err
}

// encodeEntryMatches fails t unless EncodeEntry(e) is the reference
// encoding, or both fail. (FuzzEncodeEntry checks the same on any bytes.)
func encodeEntryMatches(t testing.TB, e *Entry) {
	t.Helper()
	want, werr := referenceEncoding(e)
	got, gerr := EncodeEntry(e)
	if (werr != nil) != (gerr != nil) {
		t.Fatalf("encoding/json's error %v, EncodeEntry's %v", werr, gerr)
	}
	if werr != nil {
		return
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Fatalf("EncodeEntry (-encoding/json +EncodeEntry):\n%s", diff)
	}
}

func TestEncodeEntryMatchesEncodingJSON(t *testing.T) {
	str := func(s string) *string { return &s }
	for name, e := range map[string]*Entry{
		"empty": {},
		"init": {Type: TypeInit, Schema: SchemaVersion, Code: "exports.f = () => '<b>&</b>'\n", FilesArchiveURL: "dat://ab", FilesContentKey: "cd", Title: "t",
			Time: 1700000000000, Seed: "0123456789abcdef", FilesRoot: &FilesRoot{Metadata: "aa", Content: "bb", ContentLength: 7}},
		"call": {Type: TypeCall, Call: &CallRecord{UserID: str("bob"), MethodName: "increment", Args: json.RawMessage(`[]`)},
			Result: &ResultRecord{Res: json.RawMessage(`1`), FilesVersion: 3}, Time: -5, Seed: "00"},
		"anonymous, null raw fields": {Type: TypeCall, Call: &CallRecord{}, Result: &ResultRecord{}},
		"spaced raw fields": {Type: TypeCall, Call: &CallRecord{MethodName: "m", Args: json.RawMessage(" [ 1 , {\"a\" : \"x y\"} ]\n")},
			Result: &ResultRecord{Res: json.RawMessage("\t\"<&>\" ")}},
		"thrown": {Type: TypeCall, Result: &ResultRecord{Res: json.RawMessage(`null`), Err: str("TypeError")},
			Error: &ScriptError{Name: "TypeError", Message: "x is \"not\" a function\u2028"}},
		"oracles": {Type: TypeCall, Oracles: []OracleValue{{Value: json.RawMessage(`{"k": 1}`)}, {}, {Error: &ScriptError{Message: "m"}}}},
		"auth":    {Type: TypeCall, Auth: &Auth{Key: "k", Signature: "s", Seq: 1<<64 - 1}},
		"escapes": {Type: "\x00\x01\b\f\n\r\t\x1f\x7f\"\\/<>&\u2028\u2029\u2027é😀", Seed: "bad \xff\xfe utf-8 \xe2\x80 and \xed\xa0\x80 surrogate"},
		"bad raw": {Type: TypeCall, Call: &CallRecord{Args: json.RawMessage(`[1,`)}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			encodeEntryMatches(t, e)
		})
	}
}

func TestSeedString(t *testing.T) {
	for _, s := range []uint64{0, 1, 0xabcdef, 1<<64 - 1, 0x0123456789abcdef} {
		e := &Entry{Seed: FormatSeed(s)}
		if want := fmt.Sprintf("%016x", s); e.Seed != want {
			t.Errorf("FormatSeed(%#x) = %s, want %s", s, e.Seed, want)
		}
		if back, err := e.SeedValue(); err != nil || back != s {
			t.Errorf("seed of %s: %#x, %v", e.Seed, back, err)
		}
	}
}

// TestDecodeReloadAndMemory: the decoder holds init entries' memory to
// their schema and reload entries to their fields.
func TestDecodeReloadAndMemory(t *testing.T) {
	root := `"filesRoot":{"metadata":"aa","content":"bb","contentLength":0}`
	for _, c := range []struct {
		block string
		ok    bool
	}{
		{`{"type":"init","schema":1,"time":0,"seed":"0000000000000000"}`, true},
		{`{"type":"init","schema":2,"memory":"afresh","time":0,"seed":"0000000000000000"}`, true},
		{`{"type":"init","schema":2,"time":0,"seed":"0000000000000000"}`, false},
		{`{"type":"init","schema":1,"memory":"afresh","time":0,"seed":"0000000000000000"}`, false},
		{`{"type":"init","schema":2,"memory":"kept","time":0,"seed":"0000000000000000"}`, false},
		{`{"type":"init","schema":3,"memory":"afresh","time":0,"seed":"0000000000000000"}`, false},
		{`{"type":"reload","reason":"stopped call","time":5,"seed":"0000000000000001","filesVersion":3,` + root + `}`, true},
		{`{"type":"reload","time":5,"seed":"0000000000000001","filesVersion":3}`, false},
		{`{"type":"reload","time":5,"seed":"01","filesVersion":3,` + root + `}`, false},
		{`{"type":"reload","call":{"userId":null,"methodName":"f","args":[]},"result":{"res":1,"err":null,"filesVersion":3},"time":5,"seed":"0000000000000001",` + root + `}`, false},
		{`{"type":"reload","time":5,"seed":"0000000000000001","oracles":[{"value":1}],` + root + `}`, false},
	} {
		_, err := DecodeEntry([]byte(c.block))
		if (err == nil) != c.ok {
			t.Errorf("DecodeEntry(%s): %v, want ok %v", c.block, err, c.ok)
		}
		if err == nil {
			e, _ := DecodeEntry([]byte(c.block))
			encodeEntryMatches(t, e)
			if again, err := EncodeEntry(e); err != nil || !json.Valid(again) {
				t.Errorf("EncodeEntry of %s: %s, %v", c.block, again, err)
			}
		}
	}
}
