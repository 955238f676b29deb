package receipt_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nodevms/nodevms/hypercore"
	"github.com/nodevms/nodevms/receipt"
)

// deferredLog is a log that signs only when told (as a host signs every
// few milliseconds), holding n entries, signed if there are any.
func deferredLog(t testing.TB, n int) *hypercore.Feed {
	t.Helper()
	f := openLog(t, n, true)
	if n > 0 {
		if err := f.Sign(); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// deliver makes the part of entry i, sends it through its one byte form,
// and assembles it.
func deliver(t *testing.T, s *receipt.Sender, a *receipt.Assembler, log *hypercore.Feed, i uint64) (*receipt.Receipt, *receipt.Part) {
	t.Helper()
	e, err := log.Get(i)
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.Next(log, i, e)
	if err != nil {
		t.Fatalf("part of entry %d: %v", i, err)
	}
	wire := p.AppendJSON(nil)
	parsed, err := receipt.ParsePart(wire)
	if err != nil {
		t.Fatalf("part of entry %d: %v\n%s", i, err, wire)
	}
	if diff := cmp.Diff(p, parsed); diff != "" {
		t.Fatalf("part of entry %d changed on the wire (-sent +read):\n%s", i, diff)
	}
	r, err := a.Add(parsed)
	if err != nil {
		t.Fatalf("assembling entry %d: %v", i, err)
	}
	return r, p
}

// The receipts assembled from parts are the receipts Make builds, byte for
// byte, and they verify, while the parts leave out what was sent before:
// calls answered between two signatures, as a host answers them, and a
// connection long enough for its sender to start over.
func TestPartsAssembleWhatMakeBuilds(t *testing.T) {
	t.Parallel()
	log := deferredLog(t, 0)
	s := receipt.NewSenderBoundTo(2000)
	a := receipt.NewAssembler(log.PublicKey())
	var next uint64
	var partNodes, fullNodes, signatures, forgets int
	for round := range 2500 {
		// A group of 1 to 7 calls, then a signature; this connection's
		// calls are every other one of them (another connection has the
		// rest).
		n := uint64(1 + round%7)
		for range n {
			if _, err := log.Append(entry(int(log.Length()))); err != nil {
				t.Fatal(err)
			}
		}
		if err := log.Sign(); err != nil {
			t.Fatal(err)
		}
		for ; next < log.Length(); next += 2 {
			got, p := deliver(t, s, a, log, next)
			want, err := receipt.Make(log, next)
			if err != nil {
				t.Fatal(err)
			}
			gotJSON, _ := got.MarshalJSON()
			wantJSON, _ := want.MarshalJSON()
			if !bytes.Equal(gotJSON, wantJSON) {
				t.Fatalf("entry %d: assembled\n%s\nMake\n%s", next, gotJSON, wantJSON)
			}
			if err := got.Verify(log.PublicKey()); err != nil {
				t.Fatalf("entry %d: %v", next, err)
			}
			partNodes += len(p.Nodes)
			fullNodes += len(want.Nodes)
			if p.Signature != nil {
				signatures++
			}
			if p.Forget {
				forgets++
			}
		}
	}
	t.Logf("%d entries: %d proof nodes sent in parts, %d in whole receipts; %d signatures; %d forgets", next/2, partNodes, fullNodes, signatures, forgets)
	if partNodes*3 > fullNodes {
		t.Errorf("parts sent %d proof nodes, whole receipts %d: not a third", partNodes, fullNodes)
	}
	if signatures != 2500 {
		t.Errorf("%d signatures sent for 2,500 signed lengths", signatures)
	}
	if forgets == 0 {
		t.Error("the sender never started over: its bound went untested")
	}
}

// An assembler refuses a part that needs what it was never sent, and is
// unchanged by it: the part as sent still assembles after.
func TestAssemblerRefusesWhatItWasNotSent(t *testing.T) {
	t.Parallel()
	log := deferredLog(t, 9)
	var s receipt.Sender
	a := receipt.NewAssembler(log.PublicKey())
	deliver(t, &s, a, log, 0)
	e3, _ := log.Get(3)
	p, err := s.Next(log, 3, e3)
	if err != nil {
		t.Fatal(err)
	}
	log.Append(entry(9))
	log.Sign()
	e9, _ := log.Get(9)
	p9, err := s.Next(log, 9, e9)
	if err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name string
		edit func(p receipt.Part) receipt.Part
	}{
		{"a node dropped", func(p receipt.Part) receipt.Part { p.Nodes = p.Nodes[1:]; return p }},
		{"another length, no signature", func(p receipt.Part) receipt.Part { p.Length++; return p }},
		{"a node sent before forgotten", func(p receipt.Part) receipt.Part { p.Forget = true; return p }},
		{"index past length", func(p receipt.Part) receipt.Part { p.Index = p.Length; return p }},
	}
	for _, c := range cases {
		bad := c.edit(*p)
		if _, err := a.Add(&bad); !errors.Is(err, receipt.ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", c.name, err)
		}
	}
	// A new length's part without its signature.
	bad := *p9
	bad.Signature = nil
	if _, err := a.Add(&bad); !errors.Is(err, receipt.ErrMalformed) {
		t.Errorf("a new length without a signature: %v", err)
	}
	for _, good := range []*receipt.Part{p, p9} {
		r, err := a.Add(good)
		if err != nil {
			t.Fatalf("the part as sent, after the refused ones: %v", err)
		}
		if err := r.Verify(log.PublicKey()); err != nil {
			t.Fatal(err)
		}
	}
	// A fresh assembler, which was sent nothing, cannot use the parts
	// that lean on earlier ones.
	if _, err := receipt.NewAssembler(log.PublicKey()).Add(p); !errors.Is(err, receipt.ErrMalformed) {
		t.Errorf("a part out of its connection: %v", err)
	}
}

// ParsePart takes only the form AppendJSON writes.
func TestParsePartRefusesOtherSpellings(t *testing.T) {
	t.Parallel()
	log := deferredLog(t, 5)
	var s receipt.Sender
	e, _ := log.Get(2)
	p, err := s.Next(log, 2, e)
	if err != nil {
		t.Fatal(err)
	}
	p.Forget = true
	good := string(p.AppendJSON(nil))
	if _, err := receipt.ParsePart([]byte(good)); err != nil {
		t.Fatalf("%v\n%s", err, good)
	}
	edits := map[string]func(string) string{
		"a space":            func(s string) string { return s[:1] + " " + s[1:] },
		"upper-case hex":     func(s string) string { return replaceOnce(s, `"hash":"`, `"hash":"A`, 1) },
		"forget false":       func(s string) string { return replaceOnce(s, `"forget":true`, `"forget":false`, 0) },
		"an unknown member":  func(s string) string { return s[:len(s)-1] + `,"x":1}` },
		"a short signature":  func(s string) string { return replaceOnce(s, `"signature":"`, `"signature":"`, 2) },
		"a leading zero":     func(s string) string { return replaceOnce(s, `"index":`, `"index":0`, 0) },
		"trailing bytes":     func(s string) string { return s + " " },
		"index not below":    func(s string) string { return replaceOnce(s, `{"index":2,`, `{"index":5,`, 0) },
		"members reordered":  func(string) string { return `{"length":5,"index":2,"entry":"","nodes":[]}` },
		"signature unclosed": func(s string) string { return replaceOnce(s, `","forget"`, `,"forget"`, 0) },
	}
	for name, edit := range edits {
		bad := edit(good)
		if bad == good {
			t.Fatalf("%s: the edit changed nothing", name)
		}
		if _, err := receipt.ParsePart([]byte(bad)); !errors.Is(err, receipt.ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed\n%s", name, err, bad)
		}
	}
}

// replaceOnce replaces the first old in s with new, then drops cut bytes
// after it (to shorten a value).
func replaceOnce(s, old, new string, cut int) string {
	i := bytes.Index([]byte(s), []byte(old))
	if i < 0 {
		return s
	}
	return s[:i] + new + s[i+len(old)+cut:]
}
