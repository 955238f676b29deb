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
	"unicode/utf8"
)

// Request is a JSON-RPC request as it arrives. Params, ID and Auth are the
// raw JSON of their members (nil when absent, "null" when null).
type Request struct {
	JSONRPC string          `json:"jsonrpc"`
	Method  string          `json:"method"`
	Params  json.RawMessage `json:"params,omitempty"`
	ID      json.RawMessage `json:"id,omitempty"`
	// Auth is NodeVMS's extension: a signed call's proof of its caller.
	Auth json.RawMessage `json:"auth,omitempty"`
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

// parsePlain reads data if it is valid JSON of the usual shape; ok is
// false otherwise.
func parsePlain(data []byte) (req Request, ok bool) {
	if !json.Valid(data) {
		return Request{}, false
	}
	d := skipSpace(data)
	if len(d) == 0 || d[0] != '{' {
		return Request{}, false
	}
	fields := [...]string{"jsonrpc", "method", "params", "id", "auth"}
	var seen uint8
	d = skipSpace(d[1:])
	for len(d) > 0 && d[0] != '}' {
		key, rest, plain := plainString(d)
		if !plain {
			return Request{}, false
		}
		d = skipSpace(rest)
		d = skipSpace(d[1:]) // the colon: the JSON is valid
		value, rest := splitValue(d)
		d = skipSpace(rest)
		if len(d) > 0 && d[0] == ',' {
			d = skipSpace(d[1:])
		}
		field := -1
		for i, name := range fields {
			if string(key) == name {
				field = i
			} else if bytes.EqualFold(key, []byte(name)) {
				return Request{}, false // Unmarshal matches names case-insensitively
			}
		}
		if field < 0 {
			if !isASCII(key) {
				return Request{}, false // Unmarshal folds some other letters to ASCII ones
			}
			continue
		}
		if seen&(1<<field) != 0 {
			return Request{}, false // a repeated member: leave it to Unmarshal
		}
		seen |= 1 << field
		switch field {
		case 0, 1:
			s, rest, plain := plainString(value)
			if !plain || len(rest) != 0 {
				return Request{}, false
			}
			if field == 0 {
				req.JSONRPC = string(s)
			} else {
				req.Method = string(s)
			}
		case 2:
			req.Params = value
		case 3:
			req.ID = value
		case 4:
			req.Auth = value
		}
	}
	return req, true
}

// skipSpace drops leading JSON white space.
func skipSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t' || b[0] == '\n' || b[0] == '\r') {
		b = b[1:]
	}
	return b
}

// plainString reads the JSON string b starts with, if it has no escapes
// and is valid UTF-8 (Unmarshal replaces what is not).
func plainString(b []byte) (s, rest []byte, ok bool) {
	if len(b) == 0 || b[0] != '"' {
		return nil, nil, false
	}
	i := bytes.IndexByte(b[1:], '"')
	if i < 0 || bytes.IndexByte(b[1:1+i], '\\') >= 0 || !utf8.Valid(b[1:1+i]) {
		return nil, nil, false
	}
	return b[1 : 1+i], b[2+i:], true
}

// splitValue splits b, which starts with a valid JSON value, after it.
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
