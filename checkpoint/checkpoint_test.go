package checkpoint_test

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nodevms/nodevms/checkpoint"
	"github.com/nodevms/nodevms/internal/fuzzcorpus"
)

func seeded(b byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{b}, ed25519.SeedSize))
}

// signedCheckpoint is a checkpoint whose log signature verifies.
func signedCheckpoint() *checkpoint.Checkpoint {
	logKey := seeded(1)
	c := &checkpoint.Checkpoint{Log: logKey.Public().(ed25519.PublicKey), Length: 1234, FilesVersion: 77}
	c.TreeHash[0], c.FilesRoot[31] = 0xab, 0xcd
	c.LogSignature = ed25519.Sign(logKey, c.TreeHash[:])
	return c
}

func monitors(t testing.TB, n int) ([]*checkpoint.Signer, []*checkpoint.Verifier) {
	var signers []*checkpoint.Signer
	var verifiers []*checkpoint.Verifier
	for i := range n {
		s, err := checkpoint.NewSigner("monitor-"+string(rune('a'+i)), seeded(byte(10+i)))
		if err != nil {
			t.Fatal(err)
		}
		v, err := checkpoint.ParseVerifier(s.VerifierKey())
		if err != nil {
			t.Fatal(err)
		}
		signers, verifiers = append(signers, s), append(verifiers, v)
	}
	return signers, verifiers
}

var at = time.Unix(1_800_000_000, 0)

// TestCosignedNotes: a note cosigned by some monitors verifies for k of n
// up to the number that signed, parses back to itself, and a cosignature
// by an unnamed monitor or over another checkpoint does not count.
func TestCosignedNotes(t *testing.T) {
	signers, verifiers := monitors(t, 3)
	c := signedCheckpoint()
	n := &checkpoint.Note{Checkpoint: *c}
	for _, s := range signers[:2] {
		n.Cosignatures = append(n.Cosignatures, s.Cosign(c, at))
	}
	text := n.Marshal()
	back, err := checkpoint.ParseNote(text)
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	if diff := cmp.Diff(n, back); diff != "" {
		t.Errorf("parsed back (-written +parsed):\n%s", diff)
	}
	for need := 0; need <= 3; need++ {
		names, err := back.Verify(verifiers, need)
		if (err != nil) != (need > 2) || len(names) != 2 {
			t.Errorf("need %d: %v, %v", need, names, err)
		}
		if need > 2 && !errors.Is(err, checkpoint.ErrCosignatures) {
			t.Errorf("need %d: %v, want ErrCosignatures", need, err)
		}
	}
	// A cosignature over another checkpoint does not count.
	other := *c
	other.Length++
	moved := &checkpoint.Note{Checkpoint: *c, Cosignatures: []checkpoint.Cosignature{signers[2].Cosign(&other, at)}}
	if names, _ := moved.Verify(verifiers, 0); len(names) != 0 {
		t.Errorf("a cosignature of another checkpoint counted: %v", names)
	}
	// The same monitor twice counts once.
	twice := &checkpoint.Note{Checkpoint: *c, Cosignatures: []checkpoint.Cosignature{signers[0].Cosign(c, at), signers[0].Cosign(c, at.Add(time.Second))}}
	if names, _ := twice.Verify(verifiers, 0); len(names) != 1 {
		t.Errorf("one monitor twice: %v", names)
	}
	// A forged log signature fails whatever the cosignatures.
	forged := *back
	forged.LogSignature = bytes.Clone(forged.LogSignature)
	forged.LogSignature[0] ^= 1
	if _, err := forged.Verify(verifiers, 0); !errors.Is(err, checkpoint.ErrLogSignature) {
		t.Errorf("a forged log signature: %v", err)
	}
}

// TestEveryByteEdited: no edit of one byte of a note leaves a note that
// verifies with the same monitors.
func TestEveryByteEdited(t *testing.T) {
	signers, verifiers := monitors(t, 2)
	c := signedCheckpoint()
	n := &checkpoint.Note{Checkpoint: *c, Cosignatures: []checkpoint.Cosignature{signers[0].Cosign(c, at), signers[1].Cosign(c, at)}}
	text := n.Marshal()
	for i := range text {
		for _, b := range []byte{text[i] ^ 1, ' ', '\n', 'A'} {
			if b == text[i] {
				continue
			}
			edited := bytes.Clone(text)
			edited[i] = b
			got, err := checkpoint.ParseNote(edited)
			if err != nil {
				continue
			}
			if _, err := got.Verify(verifiers, 2); err == nil {
				t.Fatalf("byte %d set to %q: still verifies:\n%s", i, b, edited)
			}
		}
	}
}

func TestParseVerifierRefuses(t *testing.T) {
	s, _ := checkpoint.NewSigner("m", seeded(3))
	good := s.VerifierKey()
	for _, bad := range []string{"", "m", "m+00000000", good + "+x", "n" + good[1:], good[:len(good)-4] + "AAA=", "m+zz" + good[4:]} {
		if _, err := checkpoint.ParseVerifier(bad); !errors.Is(err, checkpoint.ErrMalformed) {
			t.Errorf("%q: %v, want ErrMalformed", bad, err)
		}
	}
	for _, name := range []string{"", "a b", "a+b", "é"} {
		if _, err := checkpoint.NewSigner(name, seeded(3)); err == nil {
			t.Errorf("NewSigner(%q) took the name", name)
		}
	}
}

func TestSeedCorpus(t *testing.T) {
	var s fuzzcorpus.Seeds
	signers, _ := monitors(t, 2)
	c := signedCheckpoint()
	n := &checkpoint.Note{Checkpoint: *c}
	s.Add("FuzzParseNote", n.Marshal())
	n.Cosignatures = []checkpoint.Cosignature{signers[0].Cosign(c, at), signers[1].Cosign(c, at)}
	s.Add("FuzzParseNote", n.Marshal())
	s.Add("FuzzParseVerifier", []byte(signers[0].VerifierKey()))
	fuzzcorpus.Check(t, &s)
}

// FuzzParseNote: a note parses only in its written form, and verifying it
// never panics.
func FuzzParseNote(f *testing.F) {
	_, verifiers := monitors(f, 2)
	f.Fuzz(func(t *testing.T, text []byte) {
		n, err := checkpoint.ParseNote(text)
		if err != nil {
			return
		}
		if !bytes.Equal(n.Marshal(), text) {
			t.Fatalf("parsed and written back differently:\n%q\n%q", text, n.Marshal())
		}
		n.Verify(verifiers, 1)
	})
}

func FuzzParseVerifier(f *testing.F) {
	f.Fuzz(func(t *testing.T, vkey []byte) {
		checkpoint.ParseVerifier(string(vkey))
	})
}
