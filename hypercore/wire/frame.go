package wire

import (
	"bufio"
	"crypto/cipher"
	"errors"
	"fmt"
	"io"

	"google.golang.org/protobuf/encoding/protowire"
)

// MaxFrameSize is the largest frame the reference accepts: 8 MiB.
const MaxFrameSize = 8 << 20

// MaxChannels is the number of channels (feeds) one stream may open.
const MaxChannels = 256

// Errors of the frame layer.
var (
	ErrFrameTooLarge = errors.New("wire: frame larger than 8 MiB")
	ErrBadHeader     = errors.New("wire: invalid frame header")
)

// AppendFrame appends one frame carrying m on channel:
// varint(length) || varint(channel<<4 | type) || body.
func AppendFrame(dst []byte, channel uint64, m Message) []byte {
	header := channel<<4 | uint64(m.Type())
	// Encode the body after room for the length, then move it into place
	// once its size is known; bodies are small next to the copy they save.
	start := len(dst)
	dst = protowire.AppendVarint(dst, header)
	dst = m.AppendBody(dst)
	n := len(dst) - start
	lenSize := protowire.SizeVarint(uint64(n))
	dst = append(dst, make([]byte, lenSize)...)
	copy(dst[start+lenSize:], dst[start:start+n])
	protowire.AppendVarint(dst[start:start], uint64(n))
	return dst
}

// AppendRawFrame appends a frame of the given type with a body that is
// already encoded (or arbitrary, in tests of hostile peers).
func AppendRawFrame(dst []byte, channel uint64, t Type, body []byte) []byte {
	header := channel<<4 | uint64(t)
	dst = protowire.AppendVarint(dst, uint64(protowire.SizeVarint(header)+len(body)))
	dst = protowire.AppendVarint(dst, header)
	return append(dst, body...)
}

// KeepAlive is the frame of length 0 a side sends when it has been quiet.
var KeepAlive = []byte{0}

// Frame is one decoded frame.
type Frame struct {
	Channel uint64
	Type    Type
	Body    []byte // the message body; valid until the next call to Next
}

// FrameReader reads frames from a stream, decrypting it from the point
// Decrypt is called on. It never reads ahead of the frame it returns in a
// way that matters: bytes are decrypted only as they are consumed.
type FrameReader struct {
	r     *bufio.Reader
	xor   cipher.Stream
	buf   []byte
	bytes uint64 // bytes consumed, for counters
}

// NewFrameReader returns a FrameReader reading r.
func NewFrameReader(r io.Reader) *FrameReader {
	return &FrameReader{r: bufio.NewReaderSize(r, 64<<10)}
}

// Decrypt makes every byte after the last frame returned be XORed with
// stream: the peer's keystream starts right after its first Feed frame.
func (fr *FrameReader) Decrypt(stream cipher.Stream) { fr.xor = stream }

// BytesRead returns the number of bytes consumed so far.
func (fr *FrameReader) BytesRead() uint64 { return fr.bytes }

func (fr *FrameReader) readByte() (byte, error) {
	b, err := fr.r.ReadByte()
	if err != nil {
		return 0, err
	}
	fr.bytes++
	if fr.xor != nil {
		var one = [1]byte{b}
		fr.xor.XORKeyStream(one[:], one[:])
		b = one[0]
	}
	return b, nil
}

// Next returns the next frame. A keep-alive (length 0) is returned as a
// Frame with a nil Body and keepAlive set; frames of a single byte, which
// the reference ignores, are skipped. Errors: io.EOF at a frame boundary,
// io.ErrUnexpectedEOF inside one, ErrFrameTooLarge, ErrBadHeader.
func (fr *FrameReader) Next() (f Frame, keepAlive bool, err error) {
	for {
		var length uint64
		for shift := uint(0); ; shift += 7 {
			b, err := fr.readByte()
			if err != nil {
				if shift > 0 && errors.Is(err, io.EOF) {
					err = io.ErrUnexpectedEOF
				}
				return Frame{}, false, err
			}
			if shift >= 28 { // the length varint holds at most 4 bytes: 8 MiB fits in 24 bits
				return Frame{}, false, ErrFrameTooLarge
			}
			length |= uint64(b&0x7f) << shift
			if b&0x80 == 0 {
				break
			}
		}
		if length > MaxFrameSize {
			return Frame{}, false, fmt.Errorf("%w: %d bytes", ErrFrameTooLarge, length)
		}
		if length == 0 {
			return Frame{}, true, nil
		}
		if cap(fr.buf) < int(length) {
			fr.buf = make([]byte, length)
		}
		buf := fr.buf[:length]
		if _, err := io.ReadFull(fr.r, buf); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return Frame{}, false, err
		}
		fr.bytes += length
		if fr.xor != nil {
			fr.xor.XORKeyStream(buf, buf)
		}
		if length < 2 {
			continue
		}
		header, n := protowire.ConsumeVarint(buf)
		if n < 0 {
			return Frame{}, false, ErrBadHeader
		}
		return Frame{Channel: header >> 4, Type: Type(header & 15), Body: buf[n:]}, false, nil
	}
}
