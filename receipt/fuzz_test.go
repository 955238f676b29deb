package receipt_test

import (
	"bytes"
	"testing"

	"github.com/nodevms/nodevms/internal/fuzzcorpus"
	"github.com/nodevms/nodevms/receipt"
)

// TestSeedCorpus keeps testdata/fuzz/FuzzParse the receipts of a short
// log, in both written forms (go test -run TestSeedCorpus -update-corpus
// rewrites it).
func TestSeedCorpus(t *testing.T) {
	var s fuzzcorpus.Seeds
	log := newLog(t, 5)
	for _, i := range []uint64{0, 3, 4} {
		r, err := receipt.Make(log, i)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := r.Marshal()
		s.Add("FuzzParse", data)
		data, _ = r.MarshalJSON()
		s.Add("FuzzParse", data)
	}
	// With a cosigned checkpoint.
	r, err := receipt.Make(log, 2)
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := monitor(t, "alice", 21)
	cosign(t, r, signer)
	data, _ := r.Marshal()
	s.Add("FuzzParse", data)
	data, _ = r.MarshalJSON()
	s.Add("FuzzParse", data)

	// Parts of receipts, as one connection gets them: with a signature,
	// without one, and after the sender started over.
	plog := deferredLog(t, 0)
	sender := receipt.NewSenderBoundTo(8)
	for i := range 6 {
		plog.Append(entry(i))
		if i%2 == 1 {
			plog.Sign()
		}
	}
	for _, i := range []uint64{0, 1, 2, 3, 5} {
		e, _ := plog.Get(i)
		p, err := sender.Next(plog, i, e)
		if err != nil {
			t.Fatal(err)
		}
		s.Add("FuzzParsePart", p.AppendJSON(nil))
	}
	fuzzcorpus.Check(t, &s)
}

// FuzzParsePart: any bytes either are refused or parse to a part that
// writes back to the same bytes; an assembler never panics on what
// ParsePart takes, and what it assembles is well formed.
func FuzzParsePart(f *testing.F) {
	key := newLog(f, 5).PublicKey()
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := receipt.ParsePart(data)
		if err != nil {
			return
		}
		if back := p.AppendJSON(nil); !bytes.Equal(back, data) {
			t.Fatalf("parsed and written back differently:\n%s\n%s", data, back)
		}
		r, err := receipt.NewAssembler(key).Add(p)
		if err != nil {
			return
		}
		if _, err := r.MarshalJSON(); err != nil {
			t.Fatalf("an assembled receipt is not well formed: %v", err)
		}
		r.Verify(key)
	})
}

// FuzzParse: any bytes either are refused or parse to a receipt that
// writes back to the same bytes; Verify never panics on what Parse takes.
func FuzzParse(f *testing.F) {
	key := newLog(f, 5).PublicKey() // the key the seeds are of
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := receipt.Parse(data)
		if err != nil {
			return
		}
		indented, err := r.Marshal()
		if err != nil {
			t.Fatalf("a parsed receipt does not marshal: %v", err)
		}
		compact, err := r.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(indented, data) && !bytes.Equal(compact, data) {
			t.Fatalf("parsed and written back differently:\n%s\n%s", data, indented)
		}
		r.Verify(key)
		r.Verify(r.Log)
		r.TreeHash()
	})
}
