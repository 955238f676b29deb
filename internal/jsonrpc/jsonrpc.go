// Package jsonrpc reads JSON-RPC 2.0 requests as encoding/json would, only
// faster for the usual shape.
//
// ParseRequest is json.Unmarshal into a Request: the same result and the
// same errors for any input (FuzzParseRequest checks this). A small call's
// request spent most of its decoding in Unmarshal's reflection, so an
// object of plain keys, plain string values and any other members is read
// directly; everything else (escapes in keys or strings, keys that differ
// from a field's name only in case, repeated fields, values of the wrong
// type, invalid JSON) is handed to Unmarshal itself.
package jsonrpc

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"unicode/utf8"
)

// Request is a JSON-RPC request as it arrives. Params, ID, Auth, Receipt
// and ReceiptParts are the raw JSON of their members (nil when absent,
// "null" when null).
type Request struct {
	JSONRPC string          `json:"jsonrpc"`
	Method  string          `json:"method"`
	Params  json.RawMessage `json:"params,omitempty"`
	ID      json.RawMessage `json:"id,omitempty"`
	// Auth is NodeVMS's extension: a signed call's proof of its caller.
	Auth json.RawMessage `json:"auth,omitempty"`
	// Receipt is NodeVMS's extension: true asks for the call's receipt.
	Receipt json.RawMessage `json:"receipt,omitempty"`
	// ReceiptParts is NodeVMS's extension: true asks for the call's
	// receipt in parts, which the client assembles.
	ReceiptParts json.RawMessage `json:"receiptParts,omitempty"`
}

// ParseRequest decodes data as json.Unmarshal(data, &req) does. The raw
// members may share data's memory.
func ParseRequest(data []byte) (Request, error) {
	if req, ok := parsePlain(data); ok {
		return req, nil
	}
	var req Request
	err := json.Unmarshal(data, &req)
	return req, err
}

// CheckAgainstUnmarshal reports how ParseRequest and json.Unmarshal
// disagree on data (in result or error), or nil if they agree. It is for
// tests and fuzzing.
func CheckAgainstUnmarshal(data []byte) error {
	got, gerr := ParseRequest(data)
	var want Request
	werr := json.Unmarshal(data, &want)
	switch {
	case werr == nil && gerr == nil:
		if !reflect.DeepEqual(want, got) {
			return fmt.Errorf("%q: read as %+v, Unmarshal read %+v", data, got, want)
		}
	case werr == nil || gerr == nil || werr.Error() != gerr.Error():
		return fmt.Errorf("%q: error %v, Unmarshal's %v", data, gerr, werr)
	}
	return nil
}

// parsePlain reads data if it is valid JSON of the usual shape; ok is
// false otherwise. It checks the object's structure and plain strings
// itself, and leaves only the other values to json.Valid: checking the
// whole request with json.Valid cost as much as reading it.
func parsePlain(data []byte) (req Request, ok bool) {
	d := skipSpace(data)
	if len(d) == 0 || d[0] != '{' {
		return Request{}, false
	}
	fields := [...]string{"jsonrpc", "method", "params", "id", "auth", "receipt", "receiptParts"}
	var seen uint8
	d = skipSpace(d[1:])
	if len(d) > 0 && d[0] == '}' {
		return req, len(skipSpace(d[1:])) == 0
	}
	for {
		key, rest, plain := plainString(d)
		if !plain {
			return Request{}, false
		}
		d = skipSpace(rest)
		if len(d) == 0 || d[0] != ':' {
			return Request{}, false
		}
		value, rest := splitValue(skipSpace(d[1:]))
		if len(value) == 0 {
			return Request{}, false
		}
		d = skipSpace(rest)
		field := -1
		for i, name := range fields {
			if string(key) == name {
				field = i
			} else if len(key) == len(name) && bytes.EqualFold(key, []byte(name)) {
				return Request{}, false // Unmarshal matches names case-insensitively
			}
		}
		switch {
		case field < 0:
			// Unmarshal folds some other letters to ASCII ones, and
			// checks the value though it drops it.
			if !isASCII(key) || !json.Valid(value) {
				return Request{}, false
			}
		case seen&(1<<field) != 0:
			return Request{}, false // a repeated member: leave it to Unmarshal
		case field <= 1:
			s, rest, plain := plainString(value)
			if !plain || len(rest) != 0 {
				return Request{}, false
			}
			if field == 0 {
				req.JSONRPC = string(s)
			} else {
				req.Method = string(s)
			}
		default:
			if !json.Valid(value) {
				return Request{}, false
			}
			switch field {
			case 2:
				req.Params = value
			case 3:
				req.ID = value
			case 4:
				req.Auth = value
			case 5:
				req.Receipt = value
			case 6:
				req.ReceiptParts = value
			}
		}
		if field >= 0 {
			seen |= 1 << field
		}
		if len(d) == 0 {
			return Request{}, false
		}
		if d[0] == '}' {
			return req, len(skipSpace(d[1:])) == 0
		}
		if d[0] != ',' {
			return Request{}, false
		}
		d = skipSpace(d[1:])
	}
}

// skipSpace drops leading JSON white space.
func skipSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t' || b[0] == '\n' || b[0] == '\r') {
		b = b[1:]
	}
	return b
}

// plainString reads the JSON string b starts with, if it is valid and
// plain: no escapes, and valid UTF-8 (which Unmarshal would change).
func plainString(b []byte) (s, rest []byte, ok bool) {
	if len(b) == 0 || b[0] != '"' {
		return nil, nil, false
	}
	i := bytes.IndexByte(b[1:], '"')
	if i < 0 {
		return nil, nil, false
	}
	s = b[1 : 1+i]
	for _, c := range s {
		if c < ' ' || c == '\\' {
			return nil, nil, false // a control character (invalid) or an escape
		}
	}
	if !utf8.Valid(s) {
		return nil, nil, false
	}
	return s, b[2+i:], true
}

// splitValue splits b after the JSON value it starts with, if that is
// valid; json.Valid must check the value.
func splitValue(b []byte) (value, rest []byte) {
	depth, inString := 0, false
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case inString:
			if c == '\\' {
				i++
			} else if c == '"' {
				inString = false
				if depth == 0 {
					return b[:i+1], b[i+1:]
				}
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			depth++
		case c == '}' || c == ']':
			if depth == 0 {
				return b[:i], b[i:] // a number or literal that ends the object
			}
			depth--
			if depth == 0 {
				return b[:i+1], b[i+1:]
			}
		case depth == 0 && (c == ',' || c == ' ' || c == '\t' || c == '\n' || c == '\r'):
			return b[:i], b[i:]
		}
	}
	return b, nil
}

func isASCII(s []byte) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
