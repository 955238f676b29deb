package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"
)

// ErrArguments: a call's arguments are not a JSON array that a script can
// be given exactly. Nothing ran: the script is not broken.
var ErrArguments = errors.New("sandbox: invalid arguments")

// CheckArguments reports whether raw is a JSON array of arguments that a
// script receives exactly as sent: valid UTF-8, nested at most MaxNesting
// deep, every number within float64's range (1e999 would arrive as
// Infinity), and no string escape that stands for half a surrogate pair
// (which decoders of the log in other languages replace). A host checks
// this before a call is queued, so that such a call costs nothing; the
// error wraps ErrArguments.
func CheckArguments(raw []byte) error {
	if !utf8.Valid(raw) {
		return fmt.Errorf("%w: not UTF-8", ErrArguments)
	}
	i := skipSpace(raw, 0)
	if i >= len(raw) || raw[i] != '[' {
		return fmt.Errorf("%w: not a JSON array", ErrArguments)
	}
	depth := 0
	for i < len(raw) {
		switch c := raw[i]; {
		case c == '[' || c == '{':
			depth++
			if depth > MaxNesting {
				return fmt.Errorf("%w: nested deeper than %d", ErrArguments, MaxNesting)
			}
			i++
		case c == ']' || c == '}':
			depth--
			i++
			if depth == 0 {
				if skipSpace(raw, i) != len(raw) {
					return fmt.Errorf("%w: text after the array", ErrArguments)
				}
				if !json.Valid(raw) { // the full syntax check, once the cheap ones pass
					return fmt.Errorf("%w: not JSON", ErrArguments)
				}
				return nil
			}
		case c == '"':
			end, err := checkString(raw, i)
			if err != nil {
				return err
			}
			i = end
		case c == '-' || c >= '0' && c <= '9':
			end := i + 1
			for end < len(raw) && isNumberByte(raw[end]) {
				end++
			}
			// (An underflow rounds to zero, as in JavaScript; an overflow
			// would be Infinity, which JSON cannot say.)
			if f, err := strconv.ParseFloat(string(raw[i:end]), 64); math.IsInf(f, 0) {
				return fmt.Errorf("%w: the number %.40s is out of range", ErrArguments, raw[i:end])
			} else if err != nil && !errors.Is(err, strconv.ErrRange) {
				return fmt.Errorf("%w: %.40s is not a number", ErrArguments, raw[i:end])
			}
			i = end
		default:
			i++
		}
	}
	return fmt.Errorf("%w: the array does not end", ErrArguments)
}

// checkString checks the string starting at raw[i] (a quote) for escapes
// of half a surrogate pair, and returns the index after it.
func checkString(raw []byte, i int) (int, error) {
	i++
	pendingHigh := false
	for i < len(raw) {
		c := raw[i]
		switch {
		case c == '"':
			if pendingHigh {
				return 0, fmt.Errorf("%w: a string has half a surrogate pair", ErrArguments)
			}
			return i + 1, nil
		case c == '\\' && i+1 < len(raw) && raw[i+1] == 'u' && i+6 <= len(raw):
			v, err := strconv.ParseUint(string(raw[i+2:i+6]), 16, 16)
			if err != nil {
				return 0, fmt.Errorf("%w: a bad \\u escape", ErrArguments)
			}
			switch {
			case v >= 0xD800 && v <= 0xDBFF:
				if pendingHigh {
					return 0, fmt.Errorf("%w: a string has half a surrogate pair", ErrArguments)
				}
				pendingHigh = true
			case v >= 0xDC00 && v <= 0xDFFF:
				if !pendingHigh {
					return 0, fmt.Errorf("%w: a string has half a surrogate pair", ErrArguments)
				}
				pendingHigh = false
			default:
				if pendingHigh {
					return 0, fmt.Errorf("%w: a string has half a surrogate pair", ErrArguments)
				}
			}
			i += 6
			continue
		case c == '\\':
			if pendingHigh {
				return 0, fmt.Errorf("%w: a string has half a surrogate pair", ErrArguments)
			}
			i += 2
			continue
		default:
			if pendingHigh {
				return 0, fmt.Errorf("%w: a string has half a surrogate pair", ErrArguments)
			}
		}
		i++
	}
	return 0, fmt.Errorf("%w: a string does not end", ErrArguments)
}

func isNumberByte(c byte) bool {
	return c >= '0' && c <= '9' || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-'
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}
