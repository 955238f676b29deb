// Package receipt holds a caller's proof of what a NodeVMS host answered:
// the call log's entry for the call, and what hypercore needs to check it
// against the log's public key alone.
//
// A receipt is the entry's bytes, its index, the Merkle proof from the
// entry to the roots of a signed length of the log, and the log's
// signature over those roots: the same proof, hashing (BLAKE2b-256 with
// hypercore's type prefixes) and Ed25519 signature that a JavaScript
// hypercore 6 peer checks when it downloads the block from nothing. A
// receipt that verifies proves that whoever holds the log's secret key
// signed a log with this entry at this index; a host that later shows a
// log without it, or with another entry there, has signed two logs that
// cannot both be true, and the receipt is half of the evidence.
//
// What a receipt does not prove: that the entry's result is what the
// backend's code computes (an audit's replay does that), or that the log
// is the one every other caller sees (monitors that cosign checkpoints do
// that).
//
// The file format, versioned, is specified in calllog/RECEIPTS.md. Use
// Make on a log's writer (or a replica holding the block), Marshal to
// write a receipt, Parse to read one from untrusted bytes, and Verify to
// check it:
//
//	r, err := receipt.Make(log, index)
//	data, err := r.Marshal()
//	...
//	r, err = receipt.Parse(data)
//	err = r.Verify(logKey)
//
// Parse and Verify are pure and safe on any input: malformed bytes get an
// error wrapping ErrMalformed, a receipt of another log ErrOtherLog, and
// one whose proof or signature does not check ErrInvalid.
//
// Over a connection, receipts travel in parts: a Sender on the server
// leaves out of each Part the proof nodes the connection carried before,
// and an Assembler on the client, fed the parts in order (ParsePart reads
// one from untrusted bytes), returns each receipt whole, the same receipt
// Make builds:
//
//	p, err := sender.Next(log, index, entry) // server, per connection
//	wire := p.AppendJSON(nil)
//	...
//	p, err = receipt.ParsePart(wire)          // client, per connection
//	r, err := assembler.Add(p)
package receipt
