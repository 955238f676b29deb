package receipt_test

import (
	"testing"

	"github.com/nodevms/nodevms/receipt"
)

// The costs a receipt adds to a call on a log of 100,000 entries: the
// host makes one and writes it into the answer, the client parses it.

func benchLog(b *testing.B) (*receipt.Receipt, func() (*receipt.Receipt, error)) {
	log := newLog(b, 100_000)
	make1 := func() (*receipt.Receipt, error) { return receipt.Make(log, 77_777) }
	r, err := make1()
	if err != nil {
		b.Fatal(err)
	}
	return r, make1
}

func BenchmarkMake(b *testing.B) {
	_, make1 := benchLog(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := make1(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendJSON(b *testing.B) {
	r, _ := benchLog(b)
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf = r.AppendJSON(buf[:0])
	}
	b.SetBytes(int64(len(buf)))
}

func BenchmarkParse(b *testing.B) {
	r, _ := benchLog(b)
	data, _ := r.MarshalJSON()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := receipt.Parse(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	r, _ := benchLog(b)
	b.ReportAllocs()
	for b.Loop() {
		if err := r.Verify(r.Log); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSenderNext: the part of every fourth entry of a signed log,
// in order, as one of four connections sharing a host's calls gets them.
func BenchmarkSenderNext(b *testing.B) {
	log := newLog(b, 100_000)
	entries := make([][]byte, 0, 25_000)
	for i := uint64(0); i < 100_000; i += 4 {
		e, err := log.Get(i)
		if err != nil {
			b.Fatal(err)
		}
		entries = append(entries, e)
	}
	var s receipt.Sender
	var buf []byte
	k := 0
	b.ReportAllocs()
	for b.Loop() {
		if k == len(entries) {
			k, s = 0, receipt.Sender{}
		}
		p, err := s.Next(log, uint64(4*k), entries[k])
		if err != nil {
			b.Fatal(err)
		}
		buf = p.AppendJSON(buf[:0])
		k++
	}
}

// BenchmarkParsePartAndAdd: what a client spends on each answer's part
// on one of four connections sharing a host's calls: parsing it and
// putting its receipt back together.
func BenchmarkParsePartAndAdd(b *testing.B) {
	log := newLog(b, 100_000)
	var s receipt.Sender
	var parts [][]byte
	for i := uint64(0); i < 100_000; i += 4 {
		e, err := log.Get(i)
		if err != nil {
			b.Fatal(err)
		}
		p, err := s.Next(log, i, e)
		if err != nil {
			b.Fatal(err)
		}
		parts = append(parts, p.AppendJSON(nil))
	}
	a := receipt.NewAssembler(log.PublicKey())
	k := 0
	b.ReportAllocs()
	for b.Loop() {
		if k == len(parts) {
			k, a = 0, receipt.NewAssembler(log.PublicKey())
		}
		p, err := receipt.ParsePart(parts[k])
		if err != nil {
			b.Fatal(err)
		}
		if _, err := a.Add(p); err != nil {
			b.Fatal(err)
		}
		k++
	}
}
