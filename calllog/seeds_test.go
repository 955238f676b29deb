package calllog

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/nodevms/nodevms/internal/fuzzcorpus"
)

// TestSeedCorpus checks that testdata/fuzz holds these seeds (go test .
// -run TestSeedCorpus -update-corpus rewrites it).
func TestSeedCorpus(t *testing.T) {
	var s fuzzcorpus.Seeds
	// Call log entries of each shape.
	bob := "bob"
	for _, e := range []*Entry{
		{Type: TypeInit, Schema: SchemaVersion, Code: "exports.f = () => 1", FilesArchiveURL: "dat://" + strings.Repeat("ab", 32),
			FilesContentKey: strings.Repeat("cd", 32), Title: "t", Time: 1, Seed: "0123456789abcdef",
			FilesRoot: &FilesRoot{Metadata: strings.Repeat("0", 64), Content: strings.Repeat("1", 64), ContentLength: 2}},
		{Type: TypeCall, Call: &CallRecord{UserID: &bob, MethodName: "increment", Args: json.RawMessage(`[1,"two",{"three":[3]}]`)},
			Result: &ResultRecord{Res: json.RawMessage(`{"n":1}`), FilesVersion: 3}, Time: 1700000000000, Seed: "ffffffffffffffff",
			Oracles: []OracleValue{{Value: json.RawMessage(`0.5`)}, {Error: &ScriptError{Name: "Error", Message: "x"}}}},
		{Type: TypeCall, Call: &CallRecord{MethodName: "fail", Args: json.RawMessage(`[]`)},
			Result: &ResultRecord{Res: json.RawMessage(`null`), Err: &bob}, Error: &ScriptError{Name: "Error", Message: "no"}, Seed: "0000000000000000",
			Auth: &Auth{Key: strings.Repeat("a", 64), Signature: strings.Repeat("b", 128), Seq: 9}},
	} {
		b, err := EncodeEntry(e)
		if err != nil {
			t.Fatal(err)
		}
		s.Add("FuzzDecodeEntry", b)
	}
	s.Add("FuzzDecodeEntry", []byte(`{"type":"call"}`))
	s.Add("FuzzDecodeEntry", []byte("{}\n{}"))
	// Schema 2: an init entry whose memory starts afresh, and a reload.
	for _, e := range []*Entry{
		{Type: TypeInit, Schema: SchemaAfresh, Memory: MemoryAfresh, Code: "exports.f = () => 1", FilesArchiveURL: "dat://" + strings.Repeat("ab", 32),
			FilesContentKey: strings.Repeat("cd", 32), Time: 1, Seed: "0123456789abcdef",
			FilesRoot: &FilesRoot{Metadata: strings.Repeat("0", 64), Content: strings.Repeat("1", 64), ContentLength: 2}},
		{Type: TypeReload, Reason: ReloadStoppedCall, Time: 2, Seed: "fedcba9876543210", FilesVersion: 3,
			FilesRoot: &FilesRoot{Metadata: strings.Repeat("2", 64), Content: strings.Repeat("3", 64), ContentLength: 2}},
	} {
		b, err := EncodeEntry(e)
		if err != nil {
			t.Fatal(err)
		}
		s.Add("FuzzDecodeEntry", b)
	}
	// The canonical decoder: entries as written, and written otherwise.
	for _, e := range canonicalEntries() {
		b, err := EncodeEntry(e)
		if err != nil {
			t.Fatal(err)
		}
		s.Add("FuzzCanonicalMatchesUnmarshal", b)
		s.Add("FuzzCanonicalMatchesUnmarshal", []byte(strings.Replace(string(b), `,"seed":`, `, "seed":`, 1)))
		s.Add("FuzzCanonicalMatchesUnmarshal", []byte(strings.Replace(string(b), `"type":"`, `"type":"\u0041`, 1)))
	}
	s.Add("FuzzEncodeEntry", []byte("increment"), []byte(`[]`), []byte(`1`), uint64(1))
	s.Add("FuzzEncodeEntry", []byte("\x00\b\f\n\r\t\x1f\"\\<&>\x7f \u2028\u2029 \xff\xe2\x80 \xed\xa0\x80 é😀"),
		[]byte(" [ 1 , {\"a\" : \"x\"} ]\n"), []byte(`"<&>"`), uint64(7))
	s.Add("FuzzEncodeEntry", []byte(""), []byte(`[1,`), []byte(``), uint64(3))
	s.Add("FuzzEncodeEntry", []byte("afresh"), []byte(`[]`), []byte(`1`), uint64(12))
	fuzzcorpus.Check(t, &s)
}
