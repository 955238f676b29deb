package receipt_test

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nodevms/nodevms/hypercore"
	"github.com/nodevms/nodevms/receipt"
)

// seededKey is a fixed key pair, so that receipts in tests are the same on
// every run.
func seededKey(b byte) hypercore.KeyPair {
	return hypercore.KeyPairFromSeed(bytes.Repeat([]byte{b}, ed25519.SeedSize))
}

// newLog is a log of n entries signed at every append, as a writer without
// DeferSignatures signs.
func newLog(t testing.TB, n int) *hypercore.Feed {
	t.Helper()
	return openLog(t, n, false)
}

// openLog is a log of n entries, by a writer with or without
// DeferSignatures.
func openLog(t testing.TB, n int, deferSignatures bool) *hypercore.Feed {
	t.Helper()
	kp := seededKey(1)
	f, err := hypercore.Open(hypercore.Config{Storage: hypercore.NewMemoryStorage(), SecretKey: kp.SecretKey, Create: true, DeferSignatures: deferSignatures})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	for i := range n {
		if _, err := f.Append(entry(i)); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func entry(i int) []byte {
	return fmt.Appendf(nil, `{"type":"call","call":{"methodName":"increment","args":[]},"result":{"res":%d}}`+"\n", i)
}

// TestReceiptsOfEveryEntry: for logs of every length up to 40, a receipt of
// every entry verifies, and survives Marshal and Parse unchanged.
func TestReceiptsOfEveryEntry(t *testing.T) {
	for n := 1; n <= 40; n++ {
		log := newLog(t, n)
		for i := range uint64(n) {
			r, err := receipt.Make(log, i)
			if err != nil {
				t.Fatalf("length %d, entry %d: %v", n, i, err)
			}
			if r.Length != uint64(n) {
				t.Errorf("length %d, entry %d: the receipt says length %d", n, i, r.Length)
			}
			if err := r.Verify(log.PublicKey()); err != nil {
				t.Errorf("length %d, entry %d: %v", n, i, err)
			}
			for _, marshal := range []func() ([]byte, error){r.Marshal, r.MarshalJSON} {
				data, err := marshal()
				if err != nil {
					t.Fatal(err)
				}
				back, err := receipt.Parse(data)
				if err != nil {
					t.Fatalf("length %d, entry %d: %v\n%s", n, i, err, data)
				}
				if diff := cmp.Diff(r, back); diff != "" {
					t.Errorf("length %d, entry %d: parsed back (-made +parsed):\n%s", n, i, diff)
				}
			}
		}
	}
}

// TestDeferredSignatures: a writer that signs later gives receipts only up
// to what it signed, each against the length it signed.
func TestDeferredSignatures(t *testing.T) {
	kp := seededKey(2)
	log, err := hypercore.Open(hypercore.Config{Storage: hypercore.NewMemoryStorage(), SecretKey: kp.SecretKey, Create: true, DeferSignatures: true})
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	for i := range 5 {
		log.Append(entry(i))
	}
	if _, err := receipt.Make(log, 0); !errors.Is(err, receipt.ErrNotSigned) {
		t.Fatalf("before signing: %v, want ErrNotSigned", err)
	}
	if err := log.Sign(); err != nil {
		t.Fatal(err)
	}
	log.Append(entry(5))
	r, err := receipt.Make(log, 4)
	if err != nil {
		t.Fatal(err)
	}
	if r.Length != 5 {
		t.Errorf("against length %d, want the signed 5", r.Length)
	}
	if err := r.Verify(log.PublicKey()); err != nil {
		t.Error(err)
	}
	if _, err := receipt.Make(log, 5); !errors.Is(err, receipt.ErrNotSigned) {
		t.Errorf("an unsigned entry: %v, want ErrNotSigned", err)
	}
}

// TestTamperedReceipts: every change to what a receipt says is refused,
// with the error that says why.
func TestTamperedReceipts(t *testing.T) {
	log := newLog(t, 13)
	other := newLogWithKey(t, seededKey(3), 13)
	make1 := func(i uint64) *receipt.Receipt {
		r, err := receipt.Make(log, i)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	otherReceipt, err := receipt.Make(other, 6)
	if err != nil {
		t.Fatal(err)
	}
	key := log.PublicKey()
	tests := []struct {
		name   string
		mutate func(r *receipt.Receipt)
		want   error
	}{
		{"the entry edited", func(r *receipt.Receipt) { r.Entry[len(r.Entry)-3] ^= 1 }, receipt.ErrInvalid},
		{"the entry cut short", func(r *receipt.Receipt) { r.Entry = r.Entry[:len(r.Entry)-1] }, receipt.ErrInvalid},
		{"another entry's index", func(r *receipt.Receipt) { r.Index++ }, receipt.ErrInvalid},
		{"a longer length", func(r *receipt.Receipt) { r.Length++ }, receipt.ErrInvalid},
		{"a shorter length", func(r *receipt.Receipt) { r.Length-- }, receipt.ErrInvalid},
		{"index past the length", func(r *receipt.Receipt) { r.Index = r.Length }, receipt.ErrMalformed},
		{"a node's hash", func(r *receipt.Receipt) { r.Nodes[0].Hash[0] ^= 1 }, receipt.ErrInvalid},
		{"a root's hash", func(r *receipt.Receipt) { r.Nodes[len(r.Nodes)-1].Hash[31] ^= 1 }, receipt.ErrInvalid},
		{"a node's size", func(r *receipt.Receipt) { r.Nodes[0].Size++ }, receipt.ErrInvalid},
		{"a node's index", func(r *receipt.Receipt) { r.Nodes[0].Index += 2 }, receipt.ErrInvalid},
		{"a node dropped", func(r *receipt.Receipt) { r.Nodes = r.Nodes[1:] }, receipt.ErrInvalid},
		{"a root dropped", func(r *receipt.Receipt) { r.Nodes = r.Nodes[:len(r.Nodes)-1] }, receipt.ErrInvalid},
		{"a node twice", func(r *receipt.Receipt) { r.Nodes = append(r.Nodes, r.Nodes[len(r.Nodes)-1]) }, receipt.ErrInvalid},
		{"nodes swapped", func(r *receipt.Receipt) { r.Nodes[0], r.Nodes[1] = r.Nodes[1], r.Nodes[0] }, receipt.ErrInvalid},
		{"the signature edited", func(r *receipt.Receipt) { r.Signature[10] ^= 1 }, receipt.ErrInvalid},
		{"the signature cut", func(r *receipt.Receipt) { r.Signature = r.Signature[:63] }, receipt.ErrMalformed},
		{"another log's key", func(r *receipt.Receipt) { r.Log = other.PublicKey() }, receipt.ErrOtherLog},
		{"another log's proof and signature", func(r *receipt.Receipt) {
			r.Nodes, r.Signature = otherReceipt.Nodes, otherReceipt.Signature
		}, receipt.ErrInvalid},
		{"another length's signature", func(r *receipt.Receipt) {
			sig, _, err := log.Signature(11)
			if err != nil {
				t.Fatal(err)
			}
			r.Signature = sig
		}, receipt.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := make1(6) // 13 blocks: entry 6 has a path and other roots
			if err := r.Verify(key); err != nil {
				t.Fatalf("before the change: %v", err)
			}
			tt.mutate(r)
			if err := r.Verify(key); !errors.Is(err, tt.want) {
				t.Errorf("Verify: %v, want %v", err, tt.want)
			}
		})
	}
	if err := otherReceipt.Verify(key); !errors.Is(err, receipt.ErrOtherLog) {
		t.Errorf("another log's receipt: %v, want ErrOtherLog", err)
	}
}

func newLogWithKey(t *testing.T, kp hypercore.KeyPair, n int) *hypercore.Feed {
	t.Helper()
	f, err := hypercore.Open(hypercore.Config{Storage: hypercore.NewMemoryStorage(), SecretKey: kp.SecretKey, Create: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	for i := range n {
		f.Append(entry(i))
	}
	return f
}

// TestEveryByteEdited: no edit of one byte of a receipt file leaves a
// receipt that verifies.
func TestEveryByteEdited(t *testing.T) {
	log := newLog(t, 13)
	r, err := receipt.Make(log, 6)
	if err != nil {
		t.Fatal(err)
	}
	for _, marshal := range []func() ([]byte, error){r.Marshal, r.MarshalJSON} {
		data, err := marshal()
		if err != nil {
			t.Fatal(err)
		}
		for i := range data {
			for _, b := range []byte{data[i] ^ 1, ' ', '\t', '0', 'a', 'A', '"'} {
				if b == data[i] {
					continue
				}
				edited := bytes.Clone(data)
				edited[i] = b
				if got, err := receipt.Parse(edited); err == nil {
					if err := got.Verify(log.PublicKey()); err == nil {
						t.Fatalf("byte %d set to %q: the receipt still verifies", i, b)
					}
				}
			}
		}
	}
}

// TestParseRefuses: what Parse refuses, and why.
func TestParseRefuses(t *testing.T) {
	log := newLog(t, 3)
	r, err := receipt.Make(log, 1)
	if err != nil {
		t.Fatal(err)
	}
	good, _ := r.Marshal()
	replace := func(old, new string) []byte { return bytes.Replace(good, []byte(old), []byte(new), 1) }
	tests := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"not JSON", []byte("receipt")},
		{"another version", replace(receipt.Format, "nodevms-receipt-v2")},
		{"an unknown field", replace(`"format"`, `"extra": 1, "format"`)},
		{"no index", replace(`"index": 1,`, ``)},
		{"uppercase hex", bytes.Replace(good, []byte(`"signature": "`), []byte(`"signature": "A`), 1)},
		{"a negative index", replace(`"index": 1`, `"index": -1`)},
		{"a fractional length", replace(`"length": 3`, `"length": 3.5`)},
		{"a trailing value", append(bytes.Clone(good), "{}"...)},
		{"no newline", bytes.TrimSuffix(good, []byte("\n"))},
		{"entry not base64", replace(`"entry": "`, `"entry": "*`)},
		{"too large", bytes.Repeat([]byte(" "), receipt.MaxFile+1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := receipt.Parse(tt.data); !errors.Is(err, receipt.ErrMalformed) {
				t.Errorf("Parse: %v, want ErrMalformed", err)
			}
		})
	}
}

func TestVerifyWithABadKey(t *testing.T) {
	log := newLog(t, 2)
	r, err := receipt.Make(log, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Verify(log.PublicKey()[:31]); err == nil {
		t.Error("a 31-byte key verified")
	}
}

// TestReceiptsAtEveryLength: MakeAt gives, for every length a log signed
// and every entry below it, a receipt of that length that verifies; on a
// replica that downloaded the log too.
func TestReceiptsAtEveryLength(t *testing.T) {
	writer := newLog(t, 21)
	replica, err := hypercore.Open(hypercore.Config{Storage: hypercore.NewMemoryStorage(), PublicKey: writer.PublicKey(), Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer replica.Close()
	for i := range writer.Length() {
		// As a live replica gets them: each block with the signature of
		// the length it ends.
		blk, _ := writer.Get(i)
		proof, err := writer.ProofAt(i, i+1)
		if err != nil {
			t.Fatal(err)
		}
		if err := replica.Put(i, blk, proof); err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
	}
	for _, log := range []*hypercore.Feed{writer, replica} {
		checkEveryLength(t, log)
	}
}

func checkEveryLength(t *testing.T, log *hypercore.Feed) {
	for length := uint64(1); length <= 21; length++ {
		for i := range length {
			r, err := receipt.MakeAt(log, i, length)
			if err != nil {
				t.Fatalf("entry %d at %d: %v", i, length, err)
			}
			if err := r.Verify(log.PublicKey()); err != nil || r.Length != length {
				t.Errorf("entry %d at %d: length %d, %v", i, length, r.Length, err)
			}
		}
	}
	if _, err := receipt.MakeAt(log, 3, 3); err == nil {
		t.Error("an entry at its own index's length")
	}
	if _, err := receipt.MakeAt(log, 3, 22); err == nil {
		t.Error("a length past the log")
	}
}
