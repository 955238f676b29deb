package wire

import (
	"bufio"
	"crypto/cipher"
	"encoding/binary"
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
	ErrFrameTooLarge = errors.New("wire: frame too large")
	ErrBadHeader     = errors.New("wire: invalid frame header")
)

// frameChunk is the most a frame's buffer holds before the frame's bytes
// arrive. A larger frame's buffer grows, doubling, as they do, so that a
// peer that claims 8 MiB and sends little costs little. 128 KiB takes a
// 64 KiB block with its proof in one allocation, as before.
const frameChunk = 128 << 10

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

// EncodeFrame returns a new frame carrying m on channel, like AppendFrame,
// without moving the body to make room for the length: the body is written
// once, after room for the longest length a frame can have.
func EncodeFrame(channel uint64, m Message) []byte {
	const room = 4 // varint of MaxFrameSize
	header := channel<<4 | uint64(m.Type())
	b := make([]byte, room, room+binary.MaxVarintLen64+sizeHint(m))
	b = protowire.AppendVarint(b, header)
	b = m.AppendBody(b)
	n := uint64(len(b) - room)
	start := room - protowire.SizeVarint(n)
	protowire.AppendVarint(b[start:start], n)
	return b[start:]
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
	Body    []byte // the message body; valid until the next call to Next, unless Fresh
}

// FrameReader reads frames from a stream, decrypting it from the point
// Decrypt is called on.
type FrameReader struct {
	// Fresh makes every frame's body a new slice that the caller may keep,
	// instead of one reused by the next call.
	Fresh bool
	// MaxSize, if positive and below MaxFrameSize, is the largest frame
	// Next accepts: a stream takes only small frames until the peer's
	// handshake.
	MaxSize int

	r   *bufio.Reader
	buf []byte // reused when not Fresh; at most frameChunk between calls
}

// NewFrameReader returns a FrameReader reading r.
func NewFrameReader(r io.Reader) *FrameReader {
	return &FrameReader{r: bufio.NewReaderSize(r, 64<<10)}
}

// Decrypt makes every byte after the last frame returned be XORed with
// stream: the peer's keystream starts right after its first Feed frame.
// Bytes already buffered but not yet consumed are decrypted as they are
// consumed, in chunks, by reading them through the cipher.
func (fr *FrameReader) Decrypt(stream cipher.Stream) {
	fr.r = bufio.NewReaderSize(cipher.StreamReader{S: stream, R: fr.r}, 64<<10)
}

// Buffered reports whether bytes of a further frame are already buffered,
// so that Next will not wait for the connection.
func (fr *FrameReader) Buffered() bool { return fr.r.Buffered() > 0 }

func (fr *FrameReader) readByte() (byte, error) {
	b, err := fr.r.ReadByte()
	if err != nil {
		return 0, err
	}
	return b, nil
}

// Next returns the next frame. A keep-alive (length 0) is returned as a
// Frame with a nil Body and keepAlive set; frames of a single byte, which
// the reference ignores, are skipped. Errors: io.EOF at a frame boundary,
// io.ErrUnexpectedEOF inside one, ErrFrameTooLarge, ErrBadHeader.
//
// A frame's buffer grows as its bytes arrive, not to the length its
// header claims.
func (fr *FrameReader) Next() (f Frame, keepAlive bool, err error) {
	if cap(fr.buf) > frameChunk {
		// The last frame was large; its body is no longer valid, so let
		// it go rather than hold it while the peer idles.
		fr.buf = nil
	}
	limit := uint64(MaxFrameSize)
	if fr.MaxSize > 0 && fr.MaxSize < MaxFrameSize {
		limit = uint64(fr.MaxSize)
	}
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
		if length > limit {
			return Frame{}, false, fmt.Errorf("%w: %d bytes (at most %d)", ErrFrameTooLarge, length, limit)
		}
		if length == 0 {
			return Frame{}, true, nil
		}
		buf, err := fr.readBody(int(length))
		if err != nil {
			return Frame{}, false, err
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

// readBody reads a frame of n bytes into a buffer of at most frameChunk
// bytes to start with, doubling it as it fills: memory follows the bytes
// that arrive, at most twice over, not the length the peer claimed.
func (fr *FrameReader) readBody(n int) ([]byte, error) {
	size := min(n, frameChunk)
	var buf []byte
	if fr.Fresh {
		buf = make([]byte, size)
	} else {
		if cap(fr.buf) < size {
			fr.buf = make([]byte, size)
		}
		buf = fr.buf[:size]
	}
	got := 0
	for {
		m, err := io.ReadFull(fr.r, buf[got:])
		got += m
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		if got == n {
			break
		}
		grown := make([]byte, min(2*len(buf), n))
		copy(grown, buf[:got])
		buf = grown
	}
	if !fr.Fresh {
		fr.buf = buf // dropped by the next call if it grew past frameChunk
	}
	return buf, nil
}

// sizeHint is about the encoded size of m's body, so that a frame is
// allocated once.
func sizeHint(m Message) int {
	if d, ok := m.(*Data); ok {
		return 32 + len(d.Value) + 48*len(d.Nodes) + len(d.Signature)
	}
	return 64
}
