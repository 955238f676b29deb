package core

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nodevms/nodevms/sandbox"
)

// SchemaVersion is the call log schema this package writes (see SCHEMA.md).
const SchemaVersion = 1

// Entry types.
const (
	TypeInit = "init"
	TypeCall = "call"
)

// ErrEntry is wrapped by every error about a malformed log entry.
var ErrEntry = errors.New("core: malformed log entry")

// Entry is one block of the call log. The fields the original libvms wrote
// (type, code, filesArchiveUrl, call, result) keep their names and meaning,
// so that its readers understand our logs; the rest is what an audit needs.
type Entry struct {
	Type string `json:"type"`

	// Init entries.
	Schema          int    `json:"schema,omitempty"`
	Code            string `json:"code,omitempty"`
	FilesArchiveURL string `json:"filesArchiveUrl,omitempty"`
	// FilesContentKey is the files archive's content feed key (hex), which
	// a replay needs to rebuild the archive block for block.
	FilesContentKey string `json:"filesContentKey,omitempty"`
	Title           string `json:"title,omitempty"`

	// Call entries; an init entry has them too when the script exports
	// init, which deploy runs.
	Call   *CallRecord   `json:"call,omitempty"`
	Result *ResultRecord `json:"result,omitempty"`

	// Time is the call's clock (ms since the epoch) and Seed its random
	// seed (16 hex digits): all a call's Date and Math.random depend on.
	Time int64  `json:"time"`
	Seed string `json:"seed"`
	// Oracles are the System.oracle values, in the order asked for.
	Oracles []sandbox.OracleValue `json:"oracles,omitempty"`
	// Error is the thrown error in full (result.err keeps libvms's
	// err.name || err.message).
	Error *sandbox.ScriptError `json:"error,omitempty"`
	// FilesRoot is the files archive's tree hashes after the call.
	FilesRoot *FilesRoot `json:"filesRoot,omitempty"`
	// Auth is the caller's signature over the call, for signed calls.
	Auth *Auth `json:"auth,omitempty"`
}

// CallRecord is what was called, by whom.
type CallRecord struct {
	UserID     *string         `json:"userId"`
	MethodName string          `json:"methodName"`
	Args       json.RawMessage `json:"args"`
}

// ResultRecord is what the call gave.
type ResultRecord struct {
	Res          json.RawMessage `json:"res"`
	Err          *string         `json:"err"`
	FilesVersion uint64          `json:"filesVersion"`
}

// FilesRoot is the hex tree hashes of the archive's two feeds: what their
// writer signs. They are independent of how appends were batched.
type FilesRoot struct {
	Metadata      string `json:"metadata"`
	Content       string `json:"content"`
	ContentLength uint64 `json:"contentLength"` // the content feed's length they cover
}

// Auth is a signed call's proof of its caller (see package rpc).
type Auth struct {
	Key       string `json:"key"`       // the caller's Ed25519 public key, hex
	Signature string `json:"signature"` // over the call's canonical bytes, hex
	Seq       uint64 `json:"seq"`       // the caller's sequence number
}

// EncodeEntry returns e as a log block: JSON and a newline, as hypercore's
// json value encoding writes.
func EncodeEntry(e *Entry) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(e); err != nil {
		return nil, fmt.Errorf("core: encode entry: %w", err)
	}
	return buf.Bytes(), nil
}

// DecodeEntry parses and checks a log block.
func DecodeEntry(block []byte) (*Entry, error) {
	var e Entry
	// Unmarshal refuses anything after the value but white space.
	if err := json.Unmarshal(block, &e); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrEntry, err)
	}
	if err := e.check(); err != nil {
		return nil, err
	}
	return &e, nil
}

func (e *Entry) check() error {
	switch e.Type {
	case TypeInit:
		if e.Schema != SchemaVersion {
			return fmt.Errorf("%w: schema %d (this build reads %d)", ErrEntry, e.Schema, SchemaVersion)
		}
	case TypeCall:
		if e.Call == nil || e.Result == nil {
			return fmt.Errorf("%w: a call entry without call or result", ErrEntry)
		}
	default:
		return fmt.Errorf("%w: type %q", ErrEntry, e.Type)
	}
	if e.Call != nil {
		if e.Result == nil {
			return fmt.Errorf("%w: a call without a result", ErrEntry)
		}
		// Both are valid JSON, being parts of the entry.
		if a := bytes.TrimSpace(e.Call.Args); len(a) == 0 || a[0] != '[' {
			return fmt.Errorf("%w: args are not a JSON array", ErrEntry)
		}
		if len(e.Result.Res) == 0 {
			return fmt.Errorf("%w: a result without res", ErrEntry)
		}
	}
	if _, err := e.seed(); err != nil {
		return err
	}
	for _, o := range e.Oracles {
		if o.Error == nil && len(o.Value) == 0 {
			return fmt.Errorf("%w: an oracle without a value or an error", ErrEntry)
		}
	}
	return nil
}

func (e *Entry) seed() (uint64, error) {
	b, err := hex.DecodeString(e.Seed)
	if err != nil || len(b) != 8 {
		return 0, fmt.Errorf("%w: seed %q is not 16 hex digits", ErrEntry, e.Seed)
	}
	var s uint64
	for _, x := range b {
		s = s<<8 | uint64(x)
	}
	return s, nil
}

func seedString(s uint64) string { return fmt.Sprintf("%016x", s) }

// errString is libvms's err: the error's name, or its message.
func errString(e *sandbox.ScriptError) *string {
	if e == nil {
		return nil
	}
	s := e.Name
	if s == "" {
		s = e.Message
	}
	return &s
}
