package hypercore

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// EncodeJSON encodes v as a block of a feed with valueEncoding 'json', as
// the JavaScript reference writes it: JSON.stringify(v) followed by "\n".
//
// The bytes match JSON.stringify for the same value where Go and JavaScript
// agree on what the value is: struct fields and json.RawMessage keep their
// order, but Go maps are written with sorted keys, where JavaScript keeps
// insertion order, and Go writes a float64 negative zero as "-0" where
// JavaScript writes "0".
func EncodeJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // JSON.stringify leaves <, > and & alone
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("hypercore: encode json block: %w", err)
	}
	return unescapeLineSeparators(buf.Bytes()), nil
}

// DecodeJSON decodes a block written with valueEncoding 'json' into v.
// Numbers are kept as json.Number when v is an *any, so that they re-encode
// to the same text.
func DecodeJSON(block []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(block))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("hypercore: decode json block: %w", err)
	}
	if dec.More() {
		return fmt.Errorf("hypercore: decode json block: more than one value")
	}
	return nil
}

// unescapeLineSeparators turns Go's \u2028 and \u2029 escapes back into the
// raw characters, which JSON.stringify leaves unescaped. Escapes are read
// left to right so that an escaped backslash followed by "u2028" is left
// alone.
func unescapeLineSeparators(b []byte) []byte {
	if !bytes.Contains(b, []byte(`\u202`)) {
		return b
	}
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' || i+1 >= len(b) {
			out = append(out, b[i])
			continue
		}
		if b[i+1] == 'u' && i+5 < len(b) && string(b[i+2:i+5]) == "202" && (b[i+5] == '8' || b[i+5] == '9') {
			out = append(out, "\u2028"[:2]...)
			out = append(out, 0xa8+(b[i+5]-'8'))
			i += 5
			continue
		}
		out = append(out, b[i], b[i+1])
		i++
	}
	return out
}
