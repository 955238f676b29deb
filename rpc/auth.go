package rpc

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// ErrAuth is wrapped by every refused identity.
var ErrAuth = errors.New("rpc: authentication refused")

// CallAuth is a signed call's proof of its caller.
type CallAuth struct {
	Key       string `json:"key"`       // Ed25519 public key, hex: the caller's id
	Signature string `json:"signature"` // over SignedBytes, hex
	Seq       uint64 `json:"seq"`       // greater than the caller's previous call's
}

// SignedBytes are the canonical bytes a caller signs: a domain tag, the
// backend's call log key (so that a signature is good for one backend
// only), the method, the arguments as compact JSON, and the sequence number
// (so that a call cannot be replayed).
func SignedBytes(callLogKey []byte, method string, args json.RawMessage, seq uint64) ([]byte, error) {
	var compact bytes.Buffer
	if len(args) == 0 {
		args = json.RawMessage("[]")
	}
	if err := json.Compact(&compact, args); err != nil {
		return nil, fmt.Errorf("rpc: arguments are not JSON: %w", err)
	}
	var b bytes.Buffer
	b.WriteString("nodevms-call-v1\n")
	b.WriteString(hex.EncodeToString(callLogKey))
	b.WriteByte('\n')
	b.WriteString(method)
	b.WriteByte('\n')
	b.Write(compact.Bytes())
	b.WriteByte('\n')
	b.WriteString(strconv.FormatUint(seq, 10))
	return b.Bytes(), nil
}

// SignCall signs a call with key.
func SignCall(key ed25519.PrivateKey, callLogKey []byte, method string, args json.RawMessage, seq uint64) (*CallAuth, error) {
	msg, err := SignedBytes(callLogKey, method, args, seq)
	if err != nil {
		return nil, err
	}
	return &CallAuth{
		Key:       hex.EncodeToString(key.Public().(ed25519.PublicKey)),
		Signature: hex.EncodeToString(ed25519.Sign(key, msg)),
		Seq:       seq,
	}, nil
}

// VerifyCall checks a signed call; it returns the caller's id (the key).
func VerifyCall(a *CallAuth, callLogKey []byte, method string, args json.RawMessage) (string, error) {
	key, err := hex.DecodeString(a.Key)
	if err != nil || len(key) != ed25519.PublicKeySize {
		return "", fmt.Errorf("%w: the key is not an Ed25519 public key in hex", ErrAuth)
	}
	sig, err := hex.DecodeString(a.Signature)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return "", fmt.Errorf("%w: the signature is not an Ed25519 signature in hex", ErrAuth)
	}
	msg, err := SignedBytes(callLogKey, method, args, a.Seq)
	if err != nil {
		return "", err
	}
	if !ed25519.Verify(key, msg, sig) {
		return "", fmt.Errorf("%w: the signature does not match the call", ErrAuth)
	}
	return a.Key, nil
}

// LoadOrCreateKey reads an Ed25519 key pair kept as a 64-byte secret key
// in hex (a seed and a public key, libsodium's layout) in file, creating
// one, readable by the owner only, if there is none.
func LoadOrCreateKey(file string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(file)
	if err == nil {
		raw, err := hex.DecodeString(string(bytes.TrimSpace(b)))
		if err != nil || len(raw) != ed25519.PrivateKeySize {
			return nil, fmt.Errorf("rpc: %s does not hold a key (128 hex digits)", file)
		}
		key := ed25519.PrivateKey(raw)
		if !bytes.Equal(ed25519.NewKeyFromSeed(key.Seed()), key) {
			return nil, fmt.Errorf("rpc: %s holds a damaged key", file)
		}
		return key, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return nil, err
	}
	if err := os.WriteFile(file, []byte(hex.EncodeToString(key)+"\n"), 0o600); err != nil {
		return nil, err
	}
	return key, nil
}

// DefaultKeyFile is where a user's key lives unless --key says otherwise.
func DefaultKeyFile() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "nodevms", "key"), nil
}
