package calllog

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// FuzzDecodeEntry: any bytes either fail to decode with ErrEntry or decode
// to an entry that encodes and decodes back to itself.
func FuzzDecodeEntry(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := DecodeEntry(b)
		if err != nil {
			if !errors.Is(err, ErrEntry) {
				t.Fatalf("error %v does not wrap ErrEntry", err)
			}
			return
		}
		enc, err := EncodeEntry(e)
		if err != nil {
			t.Fatal(err)
		}
		back, err := DecodeEntry(enc)
		if err != nil {
			t.Fatalf("re-encoded entry does not decode: %v\n%s", err, enc)
		}
		if diff := cmp.Diff(normalize(t, e), normalize(t, back)); diff != "" {
			t.Fatalf("round trip (-first +second):\n%s", diff)
		}
	})
}

// FuzzEncodeEntry: EncodeEntry writes exactly what encoding/json's Encoder
// (HTML escaping off) writes, which every log held before it was written by
// hand, for any strings (invalid UTF-8 too) and any raw JSON fields (which
// both must refuse when they are not JSON).
func FuzzEncodeEntry(f *testing.F) {
	f.Fuzz(func(t *testing.T, text, args, res []byte, n uint64) {
		s := string(text)
		e := &Entry{Type: s, Code: s, FilesArchiveURL: s, Title: s, Schema: int(int8(n)), Time: int64(n), Seed: s}
		if n&1 != 0 {
			e.Call = &CallRecord{UserID: &s, MethodName: s, Args: args}
			e.Result = &ResultRecord{Res: res, Err: &s, FilesVersion: n}
		}
		if n&2 != 0 {
			e.Oracles = []OracleValue{{Value: res}, {Error: &ScriptError{Name: s}}, {}}
			e.Error = &ScriptError{Name: s, Message: s}
		}
		if n&4 != 0 {
			e.FilesRoot = &FilesRoot{Metadata: s, Content: s, ContentLength: n}
			e.Auth = &Auth{Key: s, Signature: s, Seq: n}
		}
		if n&8 != 0 {
			e.Memory, e.Reason, e.FilesVersion = s, s, n
		}
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetEscapeHTML(false)
		werr := enc.Encode(e)
		got, gerr := EncodeEntry(e)
		if (werr != nil) != (gerr != nil) {
			t.Fatalf("encoding/json's error %v, EncodeEntry's %v", werr, gerr)
		}
		if werr == nil && !bytes.Equal(want.Bytes(), got) {
			t.Fatalf("EncodeEntry wrote\n%q\nencoding/json\n%q", got, want.Bytes())
		}
	})
}

// normalize compares entries as JSON values (raw JSON fields may differ in
// spacing).
func normalize(t *testing.T, e *Entry) any {
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	json.Unmarshal(b, &v)
	return v
}
