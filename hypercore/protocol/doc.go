// Package protocol replicates hypercores with other Dat peers over the Dat
// 1.0 wire protocol (hypercore-protocol 6), over any connection: TCP, a
// WebSocket carrying binary frames, an in-memory pipe.
//
// A Stream is one connection. Each side opens a channel per feed with a Feed
// message named by the feed's discovery key; the first one travels in the
// clear with a nonce, and everything after it is encrypted (package wire).
// A server need not know in advance which feed a peer wants: Serve waits
// for the peer's first Feed message and answers for the feed its Lookup
// finds, and a peer asking for a feed it does not serve gets no answer on
// that channel, while the rest of the stream carries on.
//
// On each channel the two sides replicate as the reference does: a
// downloader sends Want, the other side answers with Have (the feed's
// length, then a run-length encoded bitfield), the downloader sends Request
// for blocks it lacks, and the answer is Data with the block and the proof
// nodes the requester's digest says it lacks. Every received block is
// verified (hypercore.Feed.Put) before it is stored; a peer that sends one
// that does not verify, or a malformed message, is disconnected with the
// reason logged. In live mode appends are announced as they happen.
//
// # Limits
//
// A peer's memory on this side follows what it sends, not what it claims:
// frames are read as their bytes arrive (package wire), and until the
// peer's Handshake only frames of up to 64 KiB are taken. A peer that has
// not sent its Handshake within Options.HandshakeTimeout (10 s), however
// many keep-alives it sends, is dropped, as is one silent for longer than
// Options.Timeout allows. ServeListener serves at most Options.Peers peers
// at once (DefaultMaxPeers if nil); one over the cap is closed as it
// connects, with a log line at most every ten seconds saying how many were;
// an Accept that fails for want of file descriptors is retried, not fatal.
//
// Usage, serving feeds on Dat's port and downloading one:
//
//	ln, _ := net.Listen("tcp", ":3282")
//	go protocol.ServeListener(ctx, ln, protocol.Options{Live: true}, lookup)
//
//	replica, _ := hypercore.Open(hypercore.Config{Storage: st, PublicKey: key, Create: true})
//	err := protocol.Dial(ctx, "host:3282", protocol.Options{}, replica)
//
// A Stream runs on a few goroutines: a reader (which starts decrypting right
// after the peer's first frame), a loop that owns the replication state, per
// feed a responder that answers requests and a receiver that verifies and
// stores blocks (each in order, off the loop), and a writer fed through a
// bounded queue, so that a peer that stops reading cannot stall the loop or
// fill memory.
package protocol
