package calllog

import (
	"bytes"
	"encoding/json"
	"strconv"
)

// Decoding the entries this package writes, without reflection.
//
// encoding/json was a third of an audit's CPU time, and the decoding
// goroutine was the replay's critical path. Nearly every entry in a log is
// in the canonical form AppendEntry writes, so decodeCanonical reads that
// form directly, member by member in AppendEntry's order, and then proves
// its result: the entry must encode back to exactly the bytes it came
// from. Encoding is injective and encoding/json decodes what AppendEntry
// writes back to the same entry (FuzzDecodeEntry, FuzzEncodeEntry), so an
// entry that encodes to the block is the one json.Unmarshal would have
// produced: the two paths cannot disagree, whatever the bytes. Anything
// else (escaped or non-ASCII strings, white space, members out of order, a
// block that is not JSON) is left to json.Unmarshal, which decides as it
// always has. FuzzCanonicalMatchesUnmarshal checks this on arbitrary bytes.

// decodeCanonical decodes block if it is an entry in AppendEntry's form
// with plain strings (printable ASCII, nothing escaped), reporting whether
// it was. It does not check the entry's meaning (Entry.check).
func decodeCanonical(block []byte) (*Entry, bool) {
	// One copy holds the raw JSON members (args, res, oracle values); the
	// block is the caller's, and may be reused.
	p := canonicalParser{b: bytes.Clone(block)}
	// The entry and the records a call's entry has, in one allocation.
	all := &struct {
		Entry
		call   CallRecord
		result ResultRecord
		root   FilesRoot
	}{}
	e := &all.Entry
	if !p.entry(e, &all.call, &all.result, &all.root) {
		return nil, false
	}
	enc, err := AppendEntry(make([]byte, 0, len(block)), e)
	if err != nil || !bytes.Equal(enc, block) {
		return nil, false
	}
	return e, true
}

// canonicalParser reads b from i on. Each method reports whether what it
// read was in the canonical form; a false anywhere ends the attempt.
type canonicalParser struct {
	b []byte
	i int
}

// lit reads s.
func (p *canonicalParser) lit(s string) bool {
	if len(p.b)-p.i < len(s) || string(p.b[p.i:p.i+len(s)]) != s {
		return false
	}
	p.i += len(s)
	return true
}

// str reads a string of printable ASCII with nothing escaped.
func (p *canonicalParser) str(v *string) bool {
	if !p.lit(`"`) {
		return false
	}
	start := p.i
	for ; p.i < len(p.b); p.i++ {
		c := p.b[p.i]
		if c == '"' {
			*v = string(p.b[start:p.i])
			p.i++
			return true
		}
		if c < 0x20 || c >= 0x7f || c == '\\' {
			return false
		}
	}
	return false
}

// strPtr reads null or a string.
func (p *canonicalParser) strPtr(v **string) bool {
	if p.lit("null") {
		*v = nil
		return true
	}
	var s string
	if !p.str(&s) {
		return false
	}
	*v = &s
	return true
}

// digits returns the run of characters a number may hold.
func (p *canonicalParser) digits() []byte {
	start := p.i
	for p.i < len(p.b) && (p.b[p.i] >= '0' && p.b[p.i] <= '9' || p.b[p.i] == '-') {
		p.i++
	}
	return p.b[start:p.i]
}

func (p *canonicalParser) int64(v *int64) bool {
	n, err := strconv.ParseInt(string(p.digits()), 10, 64)
	*v = n
	return err == nil
}

func (p *canonicalParser) uint64(v *uint64) bool {
	n, err := strconv.ParseUint(string(p.digits()), 10, 64)
	*v = n
	return err == nil
}

// raw reads one JSON value, as its bytes: it finds where the value ends
// (strings and nesting followed), and leaves checking that it is JSON to
// the re-encoding, which compacts it and so refuses what is not.
func (p *canonicalParser) raw(v *json.RawMessage) bool {
	start, depth := p.i, 0
	for p.i < len(p.b) {
		switch c := p.b[p.i]; c {
		case '"':
			p.i++
			for p.i < len(p.b) && p.b[p.i] != '"' {
				if p.b[p.i] == '\\' {
					p.i++
				}
				p.i++
			}
			if p.i >= len(p.b) {
				return false
			}
		case '[', '{':
			depth++
		case ']', '}':
			if depth == 0 {
				// The end of the object or array around the value.
				*v = p.b[start:p.i:p.i]
				return p.i > start
			}
			depth--
		case ',':
			if depth == 0 {
				*v = p.b[start:p.i:p.i]
				return p.i > start
			}
		}
		p.i++
	}
	return false
}

// scriptError reads {"name":..,"message":..}.
func (p *canonicalParser) scriptError(v **ScriptError) bool {
	e := &ScriptError{}
	*v = e
	return p.lit(`{"name":`) && p.str(&e.Name) && p.lit(`,"message":`) && p.str(&e.Message) && p.lit(`}`)
}

// optStr reads ,"key":"value" if key comes next.
func (p *canonicalParser) optStr(key string, v *string) bool {
	if !p.lit(key) {
		return true
	}
	return p.str(v)
}

// entry reads an entry in AppendEntry's order, using the records given
// for the parts it has.
func (p *canonicalParser) entry(e *Entry, call *CallRecord, result *ResultRecord, root *FilesRoot) bool {
	if !p.lit(`{"type":`) || !p.str(&e.Type) {
		return false
	}
	if p.lit(`,"schema":`) {
		var n int64
		if !p.int64(&n) || int64(int(n)) != n {
			return false
		}
		e.Schema = int(n)
	}
	if !p.optStr(`,"code":`, &e.Code) ||
		!p.optStr(`,"filesArchiveUrl":`, &e.FilesArchiveURL) ||
		!p.optStr(`,"filesContentKey":`, &e.FilesContentKey) ||
		!p.optStr(`,"title":`, &e.Title) ||
		!p.optStr(`,"memory":`, &e.Memory) ||
		!p.optStr(`,"reason":`, &e.Reason) {
		return false
	}
	if p.lit(`,"call":{"userId":`) {
		e.Call = call
		if !p.strPtr(&call.UserID) || !p.lit(`,"methodName":`) || !p.str(&call.MethodName) ||
			!p.lit(`,"args":`) || !p.raw(&call.Args) || !p.lit(`}`) {
			return false
		}
	}
	if p.lit(`,"result":{"res":`) {
		e.Result = result
		if !p.raw(&result.Res) || !p.lit(`,"err":`) || !p.strPtr(&result.Err) ||
			!p.lit(`,"filesVersion":`) || !p.uint64(&result.FilesVersion) || !p.lit(`}`) {
			return false
		}
	}
	if !p.lit(`,"time":`) || !p.int64(&e.Time) || !p.lit(`,"seed":`) || !p.str(&e.Seed) {
		return false
	}
	if p.lit(`,"oracles":[`) {
		for {
			var o OracleValue
			if !p.lit(`{`) {
				return false
			}
			if p.lit(`"value":`) {
				if !p.raw(&o.Value) {
					return false
				}
				if p.lit(`,"error":`) && !p.scriptError(&o.Error) {
					return false
				}
			} else if p.lit(`"error":`) && !p.scriptError(&o.Error) {
				return false
			}
			if !p.lit(`}`) {
				return false
			}
			e.Oracles = append(e.Oracles, o)
			if p.lit(`]`) {
				break
			}
			if !p.lit(`,`) {
				return false
			}
		}
	}
	if p.lit(`,"error":`) && !p.scriptError(&e.Error) {
		return false
	}
	if p.lit(`,"filesVersion":`) && !p.uint64(&e.FilesVersion) {
		return false
	}
	if p.lit(`,"filesRoot":{"metadata":`) {
		e.FilesRoot = root
		if !p.str(&root.Metadata) || !p.lit(`,"content":`) || !p.str(&root.Content) ||
			!p.lit(`,"contentLength":`) || !p.uint64(&root.ContentLength) || !p.lit(`}`) {
			return false
		}
	}
	if p.lit(`,"auth":{"key":`) {
		a := &Auth{}
		e.Auth = a
		if !p.str(&a.Key) || !p.lit(`,"signature":`) || !p.str(&a.Signature) ||
			!p.lit(`,"seq":`) || !p.uint64(&a.Seq) || !p.lit(`}`) {
			return false
		}
	}
	return p.lit("}\n") && p.i == len(p.b)
}
