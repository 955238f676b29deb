package discovery

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strconv"
)

// Bencoding (BEP 3), as the mainline DHT's messages use it: byte strings,
// integers, lists and dictionaries with byte-string keys in sorted order.
// The decoder reads what a DHT message can hold and no more: it is bounded
// in size and nesting, and never panics.

// bvalue is a decoded bencoded value: one of []byte, int64, []bvalue or
// map[string]bvalue.
type bvalue any

// Limits of the decoder: a KRPC message fits a UDP datagram, and nests a
// dictionary in a dictionary (or a list) at most.
const (
	maxBencodeDepth = 8
	maxBencodeItems = 512 // list elements and dictionary entries, all told
)

var errBencode = errors.New("discovery: bad bencoding")

// decodeBencode decodes exactly one value filling b.
func decodeBencode(b []byte) (bvalue, error) {
	d := bdecoder{b: b}
	v, err := d.value(0)
	if err != nil {
		return nil, err
	}
	if d.i != len(b) {
		return nil, fmt.Errorf("%w: %d bytes after the value", errBencode, len(b)-d.i)
	}
	return v, nil
}

type bdecoder struct {
	b     []byte
	i     int
	items int
}

func (d *bdecoder) value(depth int) (bvalue, error) {
	if depth > maxBencodeDepth {
		return nil, fmt.Errorf("%w: nested deeper than %d", errBencode, maxBencodeDepth)
	}
	if d.i >= len(d.b) {
		return nil, fmt.Errorf("%w: ends early", errBencode)
	}
	switch c := d.b[d.i]; {
	case c == 'i':
		end := bytes.IndexByte(d.b[d.i:], 'e')
		if end < 0 {
			return nil, fmt.Errorf("%w: an integer without its end", errBencode)
		}
		text := string(d.b[d.i+1 : d.i+end])
		n, err := strconv.ParseInt(text, 10, 64)
		// Canonical only: no "-0", no leading zeros, no "+".
		if err != nil || strconv.FormatInt(n, 10) != text {
			return nil, fmt.Errorf("%w: integer %q", errBencode, text)
		}
		d.i += end + 1
		return n, nil
	case c >= '0' && c <= '9':
		return d.str()
	case c == 'l':
		d.i++
		var list []bvalue
		for {
			if d.i >= len(d.b) {
				return nil, fmt.Errorf("%w: a list without its end", errBencode)
			}
			if d.b[d.i] == 'e' {
				d.i++
				return list, nil
			}
			if d.items++; d.items > maxBencodeItems {
				return nil, fmt.Errorf("%w: more than %d items", errBencode, maxBencodeItems)
			}
			v, err := d.value(depth + 1)
			if err != nil {
				return nil, err
			}
			list = append(list, v)
		}
	case c == 'd':
		d.i++
		dict := map[string]bvalue{}
		for {
			if d.i >= len(d.b) {
				return nil, fmt.Errorf("%w: a dictionary without its end", errBencode)
			}
			if d.b[d.i] == 'e' {
				d.i++
				return dict, nil
			}
			if d.items++; d.items > maxBencodeItems {
				return nil, fmt.Errorf("%w: more than %d items", errBencode, maxBencodeItems)
			}
			k, err := d.str()
			if err != nil {
				return nil, err
			}
			// Keys in any order (some DHT nodes do not sort them), but
			// each once.
			key := string(k.([]byte))
			if _, dup := dict[key]; dup {
				return nil, fmt.Errorf("%w: dictionary key %q twice", errBencode, key)
			}
			v, err := d.value(depth + 1)
			if err != nil {
				return nil, err
			}
			dict[key] = v
		}
	}
	return nil, fmt.Errorf("%w: unexpected byte %q", errBencode, d.b[d.i])
}

func (d *bdecoder) str() (bvalue, error) {
	colon := bytes.IndexByte(d.b[d.i:], ':')
	if colon < 0 || colon > 6 {
		return nil, fmt.Errorf("%w: a string without its length", errBencode)
	}
	text := string(d.b[d.i : d.i+colon])
	n, err := strconv.Atoi(text)
	if err != nil || n < 0 || strconv.Itoa(n) != text {
		return nil, fmt.Errorf("%w: string length %q", errBencode, text)
	}
	start := d.i + colon + 1
	if n > len(d.b)-start {
		return nil, fmt.Errorf("%w: a string of %d bytes runs past the end", errBencode, n)
	}
	d.i = start + n
	return d.b[start:d.i:d.i], nil
}

// appendBencode appends v's bencoding: v is []byte, string, int, int64,
// []bvalue, [][]byte or map[string]bvalue (keys written in order).
func appendBencode(b []byte, v bvalue) []byte {
	switch v := v.(type) {
	case []byte:
		b = strconv.AppendInt(b, int64(len(v)), 10)
		return append(append(b, ':'), v...)
	case string:
		b = strconv.AppendInt(b, int64(len(v)), 10)
		return append(append(b, ':'), v...)
	case int:
		return append(strconv.AppendInt(append(b, 'i'), int64(v), 10), 'e')
	case int64:
		return append(strconv.AppendInt(append(b, 'i'), v, 10), 'e')
	case []bvalue:
		b = append(b, 'l')
		for _, e := range v {
			b = appendBencode(b, e)
		}
		return append(b, 'e')
	case [][]byte:
		b = append(b, 'l')
		for _, e := range v {
			b = appendBencode(b, e)
		}
		return append(b, 'e')
	case map[string]bvalue:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b = append(b, 'd')
		for _, k := range keys {
			b = appendBencode(appendBencode(b, k), v[k])
		}
		return append(b, 'e')
	}
	panic(fmt.Sprintf("discovery: cannot bencode %T", v))
}
