package wire

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// ErrRLE reports a run-length encoded bitfield that does not decode.
var ErrRLE = errors.New("wire: invalid run-length encoded bitfield")

// EncodeRLE compresses a bitfield for a Have message the way the reference
// (bitfield-rle 2.x) does, byte for byte: trailing zero bytes are dropped;
// runs of 0x00 or 0xFF bytes become a header varint(len<<2 | bit<<1 | 1),
// where that is shorter than leaving them in a literal run, and literal runs
// are varint(len<<1) followed by the bytes.
//
// The result is never nil, so that a Have carrying it always has its
// bitfield field, as the reference's does.
func EncodeRLE(bitfield []byte) []byte {
	e := rleEncoder{input: bitfield, out: []byte{}}
	e.run()
	return e.out
}

type rleEncoder struct {
	input       []byte
	inputLength int
	inputOffset int
	out         []byte
}

func (e *rleEncoder) run() {
	e.inputLength = len(e.input)
	for e.inputLength > 0 && e.input[e.inputLength-1] == 0 {
		e.inputLength--
	}
	var length int
	var bits byte
	for i := 0; i < e.inputLength; i++ {
		if e.input[i] == bits {
			length++
			continue
		}
		if length > 0 {
			e.update(i, length, bits)
		}
		if e.input[i] == 0 || e.input[i] == 255 {
			bits = e.input[i]
			length = 1
		} else {
			length = 0
		}
	}
	if length > 0 {
		e.update(e.inputLength, length, bits)
	}
	e.final()
}

func (e *rleEncoder) head(end int) {
	e.out = protowire.AppendVarint(e.out, uint64(2*(end-e.inputOffset)))
	e.out = append(e.out, e.input[e.inputOffset:end]...)
}

func (e *rleEncoder) final() {
	if e.inputLength-e.inputOffset == 0 {
		return
	}
	e.head(e.inputLength)
	e.inputOffset = e.inputLength
}

// update considers encoding the run of length bytes of value bit that ends
// at i as a repeat, and does so if that is cheaper than a literal.
func (e *rleEncoder) update(i, length int, bit byte) {
	headLength := i - length - e.inputOffset
	headCost := 0
	if headLength > 0 {
		headCost = protowire.SizeVarint(uint64(2*headLength)) + headLength
	}
	enc := uint64(4*length + 1)
	if bit != 0 {
		enc += 2
	}
	encCost := headCost + protowire.SizeVarint(enc)
	baseCost := protowire.SizeVarint(uint64(2*(i-e.inputOffset))) + i - e.inputOffset
	if encCost >= baseCost {
		return
	}
	if headLength > 0 {
		e.head(i - length)
	}
	e.out = protowire.AppendVarint(e.out, enc)
	e.inputOffset = i
}

// DecodeRLE expands a run-length encoded bitfield. A result longer than max
// bytes is refused (ErrRLE), so that a peer cannot make us allocate without
// bound: a single header can claim billions of bytes.
func DecodeRLE(b []byte, max int) ([]byte, error) {
	// First pass: check the encoding and size the result.
	total := 0
	for off := 0; off < len(b); {
		next, n := protowire.ConsumeVarint(b[off:])
		if n < 0 {
			return nil, fmt.Errorf("%w: bad varint at %d", ErrRLE, off)
		}
		off += n
		var run uint64
		if next&1 == 1 {
			run = next >> 2
		} else {
			run = next >> 1
			if run > uint64(len(b)-off) {
				return nil, fmt.Errorf("%w: literal of %d bytes with %d left", ErrRLE, run, len(b)-off)
			}
			off += int(run)
		}
		if run > uint64(max-total) {
			return nil, fmt.Errorf("%w: longer than %d bytes", ErrRLE, max)
		}
		total += int(run)
	}
	out := make([]byte, 0, total)
	for off := 0; off < len(b); {
		next, n := protowire.ConsumeVarint(b[off:])
		off += n
		if next&1 == 1 {
			fill := byte(0)
			if next&2 != 0 {
				fill = 255
			}
			for range next >> 2 {
				out = append(out, fill)
			}
			continue
		}
		run := int(next >> 1)
		out = append(out, b[off:off+run]...)
		off += run
	}
	return out, nil
}
