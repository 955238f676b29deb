package receipt_test

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nodevms/nodevms/checkpoint"
	"github.com/nodevms/nodevms/receipt"
)

// cosign attaches a checkpoint of r's length, cosigned by signers.
func cosign(t testing.TB, r *receipt.Receipt, signers ...*checkpoint.Signer) {
	t.Helper()
	th, err := r.TreeHash()
	if err != nil {
		t.Fatal(err)
	}
	c := checkpoint.Checkpoint{Log: r.Log, Length: r.Length, TreeHash: th, LogSignature: r.Signature, FilesVersion: 3}
	n := &checkpoint.Note{Checkpoint: c}
	for _, s := range signers {
		n.Cosignatures = append(n.Cosignatures, s.Cosign(&c, time.Unix(1_800_000_000, 0)))
	}
	r.Checkpoint = n.Marshal()
}

func monitor(t testing.TB, name string, seed byte) (*checkpoint.Signer, *checkpoint.Verifier) {
	t.Helper()
	s, err := checkpoint.NewSigner(name, ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, 32)))
	if err != nil {
		t.Fatal(err)
	}
	v, err := checkpoint.ParseVerifier(s.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	return s, v
}

// TestCosignedReceipts: a receipt with a checkpoint cosigned by two
// monitors survives Marshal and Parse, verifies for two of three trusted
// monitors and not three, and a checkpoint of another length or log does
// not vouch for it.
func TestCosignedReceipts(t *testing.T) {
	log := newLog(t, 13)
	r, err := receipt.Make(log, 6)
	if err != nil {
		t.Fatal(err)
	}
	s1, v1 := monitor(t, "alice", 21)
	s2, v2 := monitor(t, "bob", 22)
	_, v3 := monitor(t, "carol", 23)
	trusted := []*checkpoint.Verifier{v1, v2, v3}
	if _, err := r.VerifyCosigned(log.PublicKey(), trusted, 1); !errors.Is(err, receipt.ErrInvalid) {
		t.Errorf("no checkpoint: %v, want ErrInvalid", err)
	}
	cosign(t, r, s1, s2)
	for _, marshal := range []func() ([]byte, error){r.Marshal, r.MarshalJSON} {
		data, err := marshal()
		if err != nil {
			t.Fatal(err)
		}
		back, err := receipt.Parse(data)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(r, back); diff != "" {
			t.Fatalf("parsed back (-made +parsed):\n%s", diff)
		}
		names, err := back.VerifyCosigned(log.PublicKey(), trusted, 2)
		if err != nil || !cmp.Equal(names, []string{"alice", "bob"}) {
			t.Errorf("two of three: %v, %v", names, err)
		}
		if _, err := back.VerifyCosigned(log.PublicKey(), trusted, 3); !errors.Is(err, checkpoint.ErrCosignatures) {
			t.Errorf("three of three: %v, want ErrCosignatures", err)
		}
	}
	// A checkpoint of a later length does not vouch for this proof.
	later, err := receipt.Make(log, 12)
	if err != nil {
		t.Fatal(err)
	}
	log.Append([]byte("more\n"))
	moved, _ := receipt.Make(log, 12)
	cosign(t, moved, s1, s2)
	later.Checkpoint = moved.Checkpoint
	if _, err := later.VerifyCosigned(log.PublicKey(), trusted, 1); !errors.Is(err, receipt.ErrInvalid) {
		t.Errorf("a checkpoint of another length: %v, want ErrInvalid", err)
	}
	// Nor does a receipt of another log, whatever it carries.
	other := newLogWithKey(t, seededKey(9), 13)
	o, _ := receipt.Make(other, 6)
	o.Checkpoint = r.Checkpoint
	if _, err := o.VerifyCosigned(other.PublicKey(), trusted, 1); !errors.Is(err, receipt.ErrInvalid) {
		t.Errorf("another log's receipt with this checkpoint: %v, want ErrInvalid", err)
	}
}
