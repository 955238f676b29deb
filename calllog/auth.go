package calllog

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
)

// SignedBytes are the canonical bytes a caller signs for a call: a domain
// tag, the backend's call log key (a signature is good for one backend
// only), the method, the arguments as compact JSON, and the caller's
// sequence number (a call cannot be replayed).
func SignedBytes(callLogKey []byte, method string, args json.RawMessage, seq uint64) ([]byte, error) {
	var compact bytes.Buffer
	if len(args) == 0 {
		args = json.RawMessage("[]")
	}
	if err := json.Compact(&compact, args); err != nil {
		return nil, fmt.Errorf("calllog: arguments are not JSON: %w", err)
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

// VerifyAuth checks a signature over a call; it returns the caller's id
// (the key in hex) or why the signature is not good.
func VerifyAuth(a *Auth, callLogKey []byte, method string, args json.RawMessage) (string, error) {
	key, err := hex.DecodeString(a.Key)
	if err != nil || len(key) != ed25519.PublicKeySize {
		return "", fmt.Errorf("the key is not an Ed25519 public key in hex")
	}
	if hex.EncodeToString(key) != a.Key {
		// One spelling per key: the key in hex is the caller's id, and
		// sequence numbers are kept per id.
		return "", fmt.Errorf("the key is not in lowercase hex")
	}
	sig, err := hex.DecodeString(a.Signature)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return "", fmt.Errorf("the signature is not an Ed25519 signature in hex")
	}
	msg, err := SignedBytes(callLogKey, method, args, a.Seq)
	if err != nil {
		return "", err
	}
	if !ed25519.Verify(key, msg, sig) {
		return "", fmt.Errorf("the signature does not match the call")
	}
	return a.Key, nil
}

// CheckCallers checks the callers of a log's entries: a signed call's
// signature must verify and name the logged caller, each signer's sequence
// numbers must grow, and, when signed is set (a server that takes no
// self-named users), a call that names a caller must be signed. It returns
// the first entry that fails, or nil.
func CheckCallers(entries []*Entry, callLogKey []byte, signed bool) *Divergence {
	c := NewCallers(callLogKey, signed)
	for i, e := range entries {
		if d := c.Check(uint64(i), e); d != nil {
			return d
		}
	}
	return nil
}

// Callers checks the callers of a log's entries one at a time, in log
// order, as CheckCallers does: it holds each signer's last sequence number.
type Callers struct {
	callLogKey []byte
	signed     bool
	seqs       map[string]uint64
}

// NewCallers starts a check of the callers of the log whose key is
// callLogKey (signed as for CheckCallers).
func NewCallers(callLogKey []byte, signed bool) *Callers {
	return &Callers{callLogKey: callLogKey, signed: signed, seqs: map[string]uint64{}}
}

// Check checks the caller of the entry at block, the next in log order.
func (c *Callers) Check(block uint64, e *Entry) *Divergence {
	if e.Call == nil {
		return nil
	}
	d := &Divergence{Block: block, Method: e.Call.MethodName, Field: "auth", Kind: KindTampering}
	if e.Auth == nil {
		if c.signed && e.Call.UserID != nil && block > 0 {
			d.Logged, d.Replayed = "caller "+*e.Call.UserID+" with no signature", "a signed call"
			return d
		}
		return nil
	}
	id, err := VerifyAuth(e.Auth, c.callLogKey, e.Call.MethodName, e.Call.Args)
	if err != nil {
		d.Logged, d.Replayed = "a signature by "+e.Auth.Key, err.Error()
		return d
	}
	if e.Call.UserID == nil || *e.Call.UserID != id {
		d.Logged, d.Replayed = fmt.Sprintf("caller %v", e.Call.UserID), "the signer "+id
		return d
	}
	if last, ok := c.seqs[id]; ok && e.Auth.Seq <= last {
		d.Logged, d.Replayed = fmt.Sprintf("sequence number %d", e.Auth.Seq), fmt.Sprintf("one after %d", last)
		return d
	}
	c.seqs[id] = e.Auth.Seq
	return nil
}
