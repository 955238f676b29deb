package calllog

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// SchemaVersion is the call log schema this package writes for a backend
// whose memory is kept (see SCHEMA.md); SchemaAfresh is the one for a
// backend whose memory starts afresh at reload entries, which readers of
// schema 1 do not know.
const (
	SchemaVersion = 1
	SchemaAfresh  = 2
)

// Entry types.
const (
	TypeInit   = "init"
	TypeCall   = "call"
	TypeReload = "reload"
)

// MemoryAfresh is an init entry's memory field for a backend whose memory
// starts afresh at reload entries.
const MemoryAfresh = "afresh"

// Reasons a host gives for a reload entry.
const (
	ReloadStoppedCall = "stopped call"
	// ReloadStart: the host started without replaying the log.
	ReloadStart = "start"
)

// ErrEntry is wrapped by every error about a malformed log entry.
var ErrEntry = errors.New("calllog: malformed log entry")

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
	// Memory is MemoryAfresh for a backend whose memory the host may start
	// afresh (schema 2), and empty for one whose memory is kept.
	Memory string `json:"memory,omitempty"`

	// Reason says why the host reloaded the script (reload entries).
	Reason string `json:"reason,omitempty"`

	// Call entries; an init entry has them too when the script exports
	// init, which deploy runs.
	Call   *CallRecord   `json:"call,omitempty"`
	Result *ResultRecord `json:"result,omitempty"`

	// Time is the call's clock (ms since the epoch) and Seed its random
	// seed (16 hex digits): all a call's Date and Math.random depend on.
	Time int64  `json:"time"`
	Seed string `json:"seed"`
	// Oracles are the System.oracle values, in the order asked for.
	Oracles []OracleValue `json:"oracles,omitempty"`
	// Error is the thrown error in full (result.err keeps libvms's
	// err.name || err.message).
	Error *ScriptError `json:"error,omitempty"`
	// FilesVersion is the archive's version at a reload entry, which
	// changes nothing in it (a call's is in its result).
	FilesVersion uint64 `json:"filesVersion,omitempty"`
	// FilesRoot is the files archive's tree hashes after the entry.
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
// json value encoding writes. The bytes are exactly what encoding/json's
// Encoder writes with HTML escaping off (the log's format since its first
// version); they are written by hand because reflection was a fifth of a
// small call's cost.
func EncodeEntry(e *Entry) ([]byte, error) {
	return AppendEntry(make([]byte, 0, entrySize(e)), e)
}

// AppendEntry appends EncodeEntry(e) to dst.
func AppendEntry(dst []byte, e *Entry) ([]byte, error) {
	w := entryWriter{buf: dst}
	w.entry(e)
	if w.err != nil {
		return dst, fmt.Errorf("calllog: encode entry: %w", w.err)
	}
	return append(w.buf, '\n'), nil
}

// entrySize is room enough for most entries: a call's entry with its files
// root is about 350 bytes.
func entrySize(e *Entry) int {
	size := 512 + len(e.Code)
	if e.Call != nil {
		size += len(e.Call.Args)
	}
	if e.Result != nil {
		size += len(e.Result.Res)
	}
	return size
}

// entryWriter appends an entry's JSON. Its first error (a raw field that is
// not JSON) sticks.
type entryWriter struct {
	buf []byte
	err error
	sep bool // a member was written in the current object
}

func (w *entryWriter) entry(e *Entry) {
	w.open()
	w.str("type", e.Type)
	if e.Schema != 0 {
		w.key("schema")
		w.buf = strconv.AppendInt(w.buf, int64(e.Schema), 10)
	}
	w.strOmit("code", e.Code)
	w.strOmit("filesArchiveUrl", e.FilesArchiveURL)
	w.strOmit("filesContentKey", e.FilesContentKey)
	w.strOmit("title", e.Title)
	w.strOmit("memory", e.Memory)
	w.strOmit("reason", e.Reason)
	if c := e.Call; c != nil {
		w.key("call")
		w.open()
		w.strPtr("userId", c.UserID)
		w.str("methodName", c.MethodName)
		w.raw("args", c.Args)
		w.close()
	}
	if r := e.Result; r != nil {
		w.key("result")
		w.open()
		w.raw("res", r.Res)
		w.strPtr("err", r.Err)
		w.uint("filesVersion", r.FilesVersion)
		w.close()
	}
	w.key("time")
	w.buf = strconv.AppendInt(w.buf, e.Time, 10)
	w.str("seed", e.Seed)
	if len(e.Oracles) > 0 {
		w.key("oracles")
		w.buf = append(w.buf, '[')
		for i, o := range e.Oracles {
			if i > 0 {
				w.buf = append(w.buf, ',')
			}
			w.open()
			if len(o.Value) > 0 {
				w.raw("value", o.Value)
			}
			w.scriptError("error", o.Error)
			w.close()
		}
		w.buf = append(w.buf, ']')
	}
	w.scriptError("error", e.Error)
	if e.FilesVersion != 0 {
		w.uint("filesVersion", e.FilesVersion)
	}
	if r := e.FilesRoot; r != nil {
		w.key("filesRoot")
		w.open()
		w.str("metadata", r.Metadata)
		w.str("content", r.Content)
		w.uint("contentLength", r.ContentLength)
		w.close()
	}
	if a := e.Auth; a != nil {
		w.key("auth")
		w.open()
		w.str("key", a.Key)
		w.str("signature", a.Signature)
		w.uint("seq", a.Seq)
		w.close()
	}
	w.close()
}

func (w *entryWriter) open() { w.buf, w.sep = append(w.buf, '{'), false }

// close ends an object: the value of a member of the one around it, where
// the next member needs a comma.
func (w *entryWriter) close() { w.buf, w.sep = append(w.buf, '}'), true }

func (w *entryWriter) key(k string) {
	if w.sep {
		w.buf = append(w.buf, ',')
	}
	w.buf = append(w.buf, '"')
	w.buf = append(w.buf, k...) // keys are plain ASCII
	w.buf = append(w.buf, '"', ':')
	w.sep = true
}

func (w *entryWriter) str(k, v string) {
	w.key(k)
	w.buf = appendJSONString(w.buf, v)
}

func (w *entryWriter) strOmit(k, v string) {
	if v != "" {
		w.str(k, v)
	}
}

func (w *entryWriter) strPtr(k string, v *string) {
	if v == nil {
		w.key(k)
		w.buf = append(w.buf, "null"...)
		return
	}
	w.str(k, *v)
}

func (w *entryWriter) uint(k string, v uint64) {
	w.key(k)
	w.buf = strconv.AppendUint(w.buf, v, 10)
}

// raw writes JSON held as bytes compacted, as encoding/json does; nil is
// null.
func (w *entryWriter) raw(k string, v json.RawMessage) {
	w.key(k)
	if v == nil {
		w.buf = append(w.buf, "null"...)
		return
	}
	out := bytes.NewBuffer(w.buf)
	if err := json.Compact(out, v); err != nil && w.err == nil {
		w.err = err
	}
	w.buf = out.Bytes()
}

func (w *entryWriter) scriptError(k string, e *ScriptError) {
	if e == nil {
		return
	}
	w.key(k)
	w.open()
	w.str("name", e.Name)
	w.str("message", e.Message)
	w.close()
}

// appendJSONString appends s quoted as encoding/json quotes strings with
// HTML escaping off: the two-character escapes it knows, \u00XX for other
// control characters, U+FFFD for invalid UTF-8, and U+2028 and U+2029
// escaped (JavaScript would end a line there).
func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '"', '\\':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[b>>4], hex[b&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// DecodeEntry parses and checks a log block.
func DecodeEntry(block []byte) (*Entry, error) {
	// Entries as this package writes them decode without reflection, to
	// exactly what Unmarshal gives (see decodeCanonical); the rest as
	// before.
	e, ok := decodeCanonical(block)
	if !ok {
		e = &Entry{}
		// Unmarshal refuses anything after the value but white space.
		if err := json.Unmarshal(block, e); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrEntry, err)
		}
	}
	if err := e.check(); err != nil {
		return nil, err
	}
	return e, nil
}

func (e *Entry) check() error {
	switch e.Type {
	case TypeInit:
		switch {
		case e.Schema != SchemaVersion && e.Schema != SchemaAfresh:
			return fmt.Errorf("%w: schema %d (this build reads %d and %d)", ErrEntry, e.Schema, SchemaVersion, SchemaAfresh)
		case e.Schema == SchemaVersion && e.Memory != "":
			return fmt.Errorf("%w: memory %q in a schema %d log", ErrEntry, e.Memory, SchemaVersion)
		case e.Schema == SchemaAfresh && e.Memory != MemoryAfresh:
			return fmt.Errorf("%w: memory %q in a schema %d log (%q expected)", ErrEntry, e.Memory, SchemaAfresh, MemoryAfresh)
		}
	case TypeCall:
		if e.Call == nil || e.Result == nil {
			return fmt.Errorf("%w: a call entry without call or result", ErrEntry)
		}
	case TypeReload:
		// A reload runs the script's top-level code, which gets no
		// caller, arguments or oracles, and changes no file.
		if e.Call != nil || e.Result != nil || e.Auth != nil || e.Error != nil || len(e.Oracles) > 0 {
			return fmt.Errorf("%w: a reload entry with a call's fields", ErrEntry)
		}
		if e.FilesRoot == nil {
			return fmt.Errorf("%w: a reload entry without filesRoot", ErrEntry)
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
	if _, err := e.SeedValue(); err != nil {
		return err
	}
	for _, o := range e.Oracles {
		if o.Error == nil && len(o.Value) == 0 {
			return fmt.Errorf("%w: an oracle without a value or an error", ErrEntry)
		}
	}
	return nil
}

// SeedValue is the entry's seed as a number (DecodeEntry has checked that
// it reads).
func (e *Entry) SeedValue() (uint64, error) {
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

// FormatSeed is s as 16 hex digits (big-endian, as SeedValue reads it).
func FormatSeed(s uint64) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], s)
	return hex.EncodeToString(b[:])
}

// ShortError is libvms's result.err: the error's name, or its message.
func ShortError(e *ScriptError) *string {
	if e == nil {
		return nil
	}
	s := e.Name
	if s == "" {
		s = e.Message
	}
	return &s
}
