// Package wire encodes and decodes the Dat 1.0 replication protocol
// (hypercore-protocol 6) on the wire, byte for byte as the reference does:
// the ten messages and the extension message (protobuf bodies, encoded with
// protowire), the frames that carry them, the run-length encoding of Have
// bitfields, and the XSalsa20 keystream that encrypts a stream.
//
// A stream is a sequence of frames:
//
//	varint(length) || varint(channel << 4 | type) || body
//
// A frame of length 0 is a keep-alive; frames are at most 8 MiB
// (FrameReader.MaxSize may set less). Each side's first frame is a Feed
// message in the clear carrying a 24-byte nonce; everything that side sends
// afterwards is XORed with one continuous XSalsa20 keystream keyed by the
// public key of the first feed, with that nonce (NewStream). FrameReader
// reads frames and decrypts from the point it is told to. It grows a
// frame's buffer as the frame's bytes arrive, never to the length a peer
// merely claims, and does not keep a large frame's buffer once the next
// frame is asked for.
//
// The package holds no connection state: the protocol itself (channels,
// handshakes, replication) is built on it elsewhere. Every decoder here
// takes bytes from a peer and fails with an error, never a panic, and
// bounds what it allocates.
package wire
