// Package checkpoint holds the heads of a call log that monitors vouch
// for: a checkpoint names a log, a length, the tree hash the log signed at
// that length (with the log's own signature), and the files archive's
// version and root after that many entries. A monitor that replayed the
// log up to there cosigns it with a key of its own.
//
// The text follows C2SP's signed notes, tlog-checkpoint and
// tlog-cosignature/v1 (calllog/CHECKPOINTS.md says where it differs and
// why): a body of lines, a blank line, then one line per signature,
//
//	nodevms/<log key, hex>
//	<length>
//	<tree hash, base64>
//	log-signature <the log's signature over the tree hash, base64>
//	files <archive version> <metadata tree hash, hex>
//
//	— <monitor name> <base64(key ID || timestamp || Ed25519 signature)>
//
// where a cosignature signs "cosignature/v1\ntime <timestamp>\n" followed
// by the body, as tlog-cosignature does. A checkpoint stands on its own:
// CheckLogSignature verifies the log's signature over its tree hash
// against the log's key, and Note.Verify counts the cosignatures of named
// monitors.
//
// ParseNote and ParseVerifier read untrusted text and never panic;
// malformed text is an error wrapping ErrMalformed.
package checkpoint
