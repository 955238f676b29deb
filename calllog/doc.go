// Package calllog is the NodeVMS call log's format (SCHEMA.md): the
// entries a host appends to its log hypercore, their exact encoding, the
// canonical bytes a caller signs and the check of callers' signatures and
// sequence numbers, and the Divergence a check reports. It runs no script
// and imports no JavaScript runtime, so that a verifier of signatures or
// of a log's shape needs nothing else; replaying a log is package core's.
//
// What it promises:
//
//   - EncodeEntry writes exactly what encoding/json's Encoder writes (HTML
//     escaping off) for an Entry, which every log held before the encoder
//     was written by hand; logs of schema 1 are byte for byte what they
//     were.
//   - DecodeEntry accepts only what a host could have written: a known
//     schema, the fields each type needs, a seed of 16 hex digits; every
//     error it returns wraps ErrEntry.
//   - VerifyAuth accepts one spelling of a key (lowercase hex), so that one
//     key is one caller, and a signature covers the call log's key, the
//     method, the arguments and the sequence number.
package calllog
