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

	"github.com/nodevms/nodevms/calllog"
)

// ErrAuth is wrapped by every refused identity.
var ErrAuth = errors.New("rpc: authentication refused")

// CallAuth is a signed call's proof of its caller.
type CallAuth struct {
	Key       string `json:"key"`       // Ed25519 public key, hex: the caller's id
	Signature string `json:"signature"` // over SignedBytes, hex
	Seq       uint64 `json:"seq"`       // greater than the caller's previous call's
}

// SignedBytes are the canonical bytes a caller signs (calllog.SignedBytes).
func SignedBytes(callLogKey []byte, method string, args json.RawMessage, seq uint64) ([]byte, error) {
	return calllog.SignedBytes(callLogKey, method, args, seq)
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
	id, err := calllog.VerifyAuth(&calllog.Auth{Key: a.Key, Signature: a.Signature, Seq: a.Seq}, callLogKey, method, args)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrAuth, err)
	}
	return id, nil
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
