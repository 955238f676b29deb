package sandbox

import (
	"reflect"
	"testing"
	"time"

	"github.com/dop251/goja"
)

// checkJSONScalar fails if jsonScalar's value for text is not exactly
// what JSON.parse gives: the same value (SameValue: -0 is not 0) in the
// same representation.
func checkJSONScalar(t *testing.T, s *Script, text string) (fast bool) {
	t.Helper()
	got, ok := s.jsonScalar(text)
	if !ok {
		return false
	}
	want, err := s.parse(goja.Undefined(), s.rt.ToValue(text))
	if err != nil {
		t.Fatalf("jsonScalar(%q) = %v, but JSON.parse refuses it: %v", text, got, err)
	}
	if !got.SameAs(want) || reflect.TypeOf(got) != reflect.TypeOf(want) {
		t.Fatalf("jsonScalar(%q) = %v (%T), JSON.parse gives %v (%T)", text, got, got, want, want)
	}
	return true
}

func newJSONScript(t testing.TB) *Script {
	s, err := Load("module.exports = {}", Options{Limits: Limits{Time: 2 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestJSONScalarIsJSONParse: the texts parseJSON parses without JSON.parse
// give what JSON.parse gives, and the rest are left to it.
func TestJSONScalarIsJSONParse(t *testing.T) {
	s := newJSONScript(t)
	for _, tt := range []struct {
		text string
		fast bool
	}{
		{"0", true}, {"-0", true}, {"123", true}, {"-17", true},
		{"9007199254740993", true}, {"1.5", true}, {"-0.0", true},
		{"1e3", true}, {"1E+3", true}, {"2.5e-3", true}, {"1e308", true},
		{`""`, true}, {`"abc"`, true}, {`"a b~"`, true}, {`"0123456789abcdef"`, true},
		{"true", true}, {"false", true}, {"null", true},

		{"", false}, {"-", false}, {"01", false}, {"1.", false}, {".5", false},
		{"+1", false}, {"1e", false}, {"1e+", false}, {" 1", false}, {"1 ", false},
		{"1e999", false}, {"-1e999", false}, {"NaN", false}, {"Infinity", false},
		{"0x10", false}, {`"a\nb"`, false}, {`"a\"`, false}, {`"é"`, false},
		{"\"a\tb\"", false}, {`"`, false}, {`"a"b"`, false}, {"True", false},
		{`"0123456789abcdefg"`, false}, {"[1]", false}, {`{"a":1}`, false},
	} {
		if got := checkJSONScalar(t, s, tt.text); got != tt.fast {
			t.Errorf("jsonScalar(%q) taken: %v, want %v", tt.text, got, tt.fast)
		}
	}
}

// FuzzJSONScalarIsJSONParse: for any text jsonScalar takes, JSON.parse
// gives the same value.
func FuzzJSONScalarIsJSONParse(f *testing.F) {
	for _, seed := range []string{"0", "-0", "12.5e-3", `"abc"`, "true", "null", "1e999", `"a\u0041"`, "01", `"00000000000000000"`} {
		f.Add(seed)
	}
	s := newJSONScript(f)
	f.Fuzz(func(t *testing.T, text string) {
		checkJSONScalar(t, s, text)
	})
}
