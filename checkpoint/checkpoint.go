package checkpoint

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nodevms/nodevms/hypercore/merkle"
)

var (
	// ErrMalformed: the text is not a checkpoint, note or key.
	ErrMalformed = errors.New("checkpoint: malformed")
	// ErrLogSignature: the log's signature does not sign the tree hash.
	ErrLogSignature = errors.New("checkpoint: the log's signature does not sign the tree hash")
	// ErrCosignatures: fewer monitors than required cosigned.
	ErrCosignatures = errors.New("checkpoint: too few monitors cosigned")
)

// originPrefix starts a checkpoint's first line, the log's name.
const originPrefix = "nodevms/"

// Limits on untrusted text.
const (
	// MaxNote bounds a note's bytes.
	MaxNote = 64 << 10
	// maxSignatures bounds the signature lines a note may have.
	maxSignatures = 100
	maxNameLen    = 128
)

// Checkpoint is a call log's head.
type Checkpoint struct {
	Log          ed25519.PublicKey
	Length       uint64
	TreeHash     [merkle.HashSize]byte // of the roots of Length: what LogSignature signs
	LogSignature []byte
	FilesVersion uint64                // the archive's version after entry Length-1
	FilesRoot    [merkle.HashSize]byte // the archive's metadata tree hash then
}

// Body is the checkpoint's text: what cosignatures sign, after their
// header.
func (c *Checkpoint) Body() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s%x\n%d\n%s\nlog-signature %s\nfiles %d %x\n",
		originPrefix, []byte(c.Log), c.Length, base64.StdEncoding.EncodeToString(c.TreeHash[:]),
		base64.StdEncoding.EncodeToString(c.LogSignature), c.FilesVersion, c.FilesRoot[:])
	return b.Bytes()
}

// CheckLogSignature verifies the log's signature over the tree hash
// against the log key the checkpoint names; a caller checks that key is
// the one it trusts.
func (c *Checkpoint) CheckLogSignature() error {
	if len(c.Log) != ed25519.PublicKeySize || len(c.LogSignature) != ed25519.SignatureSize ||
		!ed25519.Verify(c.Log, c.TreeHash[:], c.LogSignature) {
		return ErrLogSignature
	}
	return nil
}

// parseBody reads a checkpoint's body: exactly the text Body writes.
func parseBody(text string) (*Checkpoint, error) {
	lines := strings.Split(text, "\n")
	if len(lines) != 6 || lines[5] != "" {
		return nil, fmt.Errorf("%w: a checkpoint has 5 lines", ErrMalformed)
	}
	c := &Checkpoint{}
	key, ok := strings.CutPrefix(lines[0], originPrefix)
	if !ok {
		return nil, fmt.Errorf("%w: the origin line is not %s<key>", ErrMalformed, originPrefix)
	}
	var err error
	if c.Log, err = hex.DecodeString(key); err != nil || len(c.Log) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: the log key is not 64 hex digits", ErrMalformed)
	}
	if c.Length, err = strconv.ParseUint(lines[1], 10, 64); err != nil || c.Length == 0 {
		return nil, fmt.Errorf("%w: the length %q", ErrMalformed, lines[1])
	}
	th, err := base64.StdEncoding.Strict().DecodeString(lines[2])
	if err != nil || len(th) != merkle.HashSize {
		return nil, fmt.Errorf("%w: the tree hash is not 32 bytes of base64", ErrMalformed)
	}
	copy(c.TreeHash[:], th)
	sig, ok := strings.CutPrefix(lines[3], "log-signature ")
	if !ok {
		return nil, fmt.Errorf("%w: no log-signature line", ErrMalformed)
	}
	if c.LogSignature, err = base64.StdEncoding.Strict().DecodeString(sig); err != nil || len(c.LogSignature) != ed25519.SignatureSize {
		return nil, fmt.Errorf("%w: the log signature is not 64 bytes of base64", ErrMalformed)
	}
	files := strings.Split(lines[4], " ")
	if len(files) != 3 || files[0] != "files" {
		return nil, fmt.Errorf("%w: no files line", ErrMalformed)
	}
	if c.FilesVersion, err = strconv.ParseUint(files[1], 10, 64); err != nil {
		return nil, fmt.Errorf("%w: the files version %q", ErrMalformed, files[1])
	}
	root, err := hex.DecodeString(files[2])
	if err != nil || len(root) != merkle.HashSize {
		return nil, fmt.Errorf("%w: the files root is not 64 hex digits", ErrMalformed)
	}
	copy(c.FilesRoot[:], root)
	// One spelling: what Body writes (no leading zeros, lowercase hex).
	if string(c.Body()) != text {
		return nil, fmt.Errorf("%w: not in the checkpoint's one written form", ErrMalformed)
	}
	return c, nil
}

// Cosignature is a monitor's signature on a checkpoint, at a time.
type Cosignature struct {
	Name      string
	KeyID     [4]byte
	Time      uint64 // seconds since the Unix epoch
	Signature [ed25519.SignatureSize]byte
}

// cosignedMessage is what a cosignature signs (tlog-cosignature/v1).
func cosignedMessage(body []byte, t uint64) []byte {
	return append(fmt.Appendf(nil, "cosignature/v1\ntime %d\n", t), body...)
}

// sigType is the signed-note signature type of a timestamped Ed25519
// cosignature.
const sigType = 0x04

func keyID(name string, pub ed25519.PublicKey) [4]byte {
	h := sha256.New()
	h.Write([]byte(name))
	h.Write([]byte{'\n', sigType})
	h.Write(pub)
	var id [4]byte
	copy(id[:], h.Sum(nil))
	return id
}

// validName is a signed-note key name: printable, no spaces or plus signs.
func validName(name string) bool {
	if name == "" || len(name) > maxNameLen {
		return false
	}
	for _, r := range name {
		if r <= ' ' || r == '+' || r == 0x7f || r > 0x7e {
			return false
		}
	}
	return true
}

// Signer cosigns checkpoints as a named monitor.
type Signer struct {
	name string
	key  ed25519.PrivateKey
	id   [4]byte
}

// NewSigner returns a signer for the monitor name (printable ASCII, no
// spaces or '+') and its key.
func NewSigner(name string, key ed25519.PrivateKey) (*Signer, error) {
	if !validName(name) {
		return nil, fmt.Errorf("checkpoint: %q is not a monitor name (printable ASCII, no spaces or '+')", name)
	}
	if len(key) != ed25519.PrivateKeySize {
		return nil, errors.New("checkpoint: not an Ed25519 private key")
	}
	return &Signer{name: name, key: key, id: keyID(name, key.Public().(ed25519.PublicKey))}, nil
}

// Name is the monitor's name.
func (s *Signer) Name() string { return s.name }

// VerifierKey is the monitor's public key as a signed-note verifier key,
// name+keyID+base64(type || key): what a checker passes to ParseVerifier.
func (s *Signer) VerifierKey() string {
	pub := s.key.Public().(ed25519.PublicKey)
	return fmt.Sprintf("%s+%x+%s", s.name, s.id, base64.StdEncoding.EncodeToString(append([]byte{sigType}, pub...)))
}

// Cosign signs c at time t.
func (s *Signer) Cosign(c *Checkpoint, t time.Time) Cosignature {
	ts := uint64(t.Unix())
	cs := Cosignature{Name: s.name, KeyID: s.id, Time: ts}
	copy(cs.Signature[:], ed25519.Sign(s.key, cosignedMessage(c.Body(), ts)))
	return cs
}

// Verifier checks one monitor's cosignatures.
type Verifier struct {
	Name string
	id   [4]byte
	pub  ed25519.PublicKey
}

// ParseVerifier reads a verifier key, as Signer.VerifierKey writes it.
func ParseVerifier(vkey string) (*Verifier, error) {
	parts := strings.SplitN(vkey, "+", 3) // the key's base64 may hold '+'
	if len(parts) != 3 || !validName(parts[0]) {
		return nil, fmt.Errorf("%w: a verifier key is name+keyid+key", ErrMalformed)
	}
	id, err := hex.DecodeString(parts[1])
	if err != nil || len(id) != 4 {
		return nil, fmt.Errorf("%w: the key ID is not 8 hex digits", ErrMalformed)
	}
	raw, err := base64.StdEncoding.Strict().DecodeString(parts[2])
	if err != nil || len(raw) != 1+ed25519.PublicKeySize || raw[0] != sigType {
		return nil, fmt.Errorf("%w: the key is not a timestamped Ed25519 key (type 0x04)", ErrMalformed)
	}
	v := &Verifier{Name: parts[0], pub: ed25519.PublicKey(raw[1:])}
	if v.id = keyID(v.Name, v.pub); !bytes.Equal(v.id[:], id) {
		return nil, fmt.Errorf("%w: the key ID does not match the name and key", ErrMalformed)
	}
	return v, nil
}

// Verify reports whether cs is this monitor's cosignature on c.
func (v *Verifier) Verify(c *Checkpoint, cs Cosignature) bool {
	return cs.Name == v.Name && cs.KeyID == v.id && ed25519.Verify(v.pub, cosignedMessage(c.Body(), cs.Time), cs.Signature[:])
}

// Note is a checkpoint with its cosignatures: what a monitor serves and a
// receipt may carry.
type Note struct {
	Checkpoint
	Cosignatures []Cosignature
}

// Marshal writes the note: the body, a blank line, a line per
// cosignature.
func (n *Note) Marshal() []byte {
	b := append(n.Body(), '\n')
	for _, cs := range n.Cosignatures {
		raw := make([]byte, 0, 4+8+ed25519.SignatureSize)
		raw = append(raw, cs.KeyID[:]...)
		raw = binary.BigEndian.AppendUint64(raw, cs.Time)
		raw = append(raw, cs.Signature[:]...)
		b = fmt.Appendf(b, "\u2014 %s %s\n", cs.Name, base64.StdEncoding.EncodeToString(raw))
	}
	return b
}

// ParseNote reads a note as Marshal writes it. Signature lines of other
// kinds than a timestamped Ed25519 cosignature are refused.
func ParseNote(text []byte) (*Note, error) {
	if len(text) > MaxNote {
		return nil, fmt.Errorf("%w: a note of %d bytes", ErrMalformed, len(text))
	}
	body, sigs, ok := strings.Cut(string(text), "\n\n")
	if !ok {
		return nil, fmt.Errorf("%w: no blank line after the checkpoint", ErrMalformed)
	}
	c, err := parseBody(body + "\n")
	if err != nil {
		return nil, err
	}
	n := &Note{Checkpoint: *c}
	if sigs == "" {
		return n, nil
	}
	if !strings.HasSuffix(sigs, "\n") {
		return nil, fmt.Errorf("%w: the last line does not end", ErrMalformed)
	}
	lines := strings.Split(strings.TrimSuffix(sigs, "\n"), "\n")
	if len(lines) > maxSignatures {
		return nil, fmt.Errorf("%w: %d signature lines", ErrMalformed, len(lines))
	}
	for _, line := range lines {
		rest, ok := strings.CutPrefix(line, "\u2014 ")
		name, sig, ok2 := strings.Cut(rest, " ")
		if !ok || !ok2 || !validName(name) {
			return nil, fmt.Errorf("%w: a signature line is \u2014 NAME SIGNATURE", ErrMalformed)
		}
		raw, err := base64.StdEncoding.Strict().DecodeString(sig)
		if err != nil || len(raw) != 4+8+ed25519.SignatureSize {
			return nil, fmt.Errorf("%w: %s's signature is not a timestamped Ed25519 cosignature", ErrMalformed, name)
		}
		cs := Cosignature{Name: name, Time: binary.BigEndian.Uint64(raw[4:12])}
		copy(cs.KeyID[:], raw[:4])
		copy(cs.Signature[:], raw[12:])
		n.Cosignatures = append(n.Cosignatures, cs)
	}
	if !bytes.Equal(n.Marshal(), text) {
		return nil, fmt.Errorf("%w: not in the note's one written form", ErrMalformed)
	}
	return n, nil
}

// Verify checks the log's signature, then which of verifiers cosigned the
// note, and returns their names; fewer than need is ErrCosignatures. Each
// verifier counts once, however many lines carry its name.
func (n *Note) Verify(verifiers []*Verifier, need int) ([]string, error) {
	if err := n.CheckLogSignature(); err != nil {
		return nil, err
	}
	var names []string
	for _, v := range verifiers {
		for _, cs := range n.Cosignatures {
			if v.Verify(&n.Checkpoint, cs) {
				names = append(names, v.Name)
				break
			}
		}
	}
	if len(names) < need {
		return names, fmt.Errorf("%w: %d of the %d needed", ErrCosignatures, len(names), need)
	}
	return names, nil
}
