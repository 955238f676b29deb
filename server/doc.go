// Package server runs a NodeVMS backend from its folder: it deploys a
// script into a new folder, or opens a deployed one, and serves it over
// JSON-RPC on a WebSocket and over the Dat protocol. The nodevms command is
// flags and output over this package; another program embeds a host the
// same way:
//
//	b, err := server.Open(ctx, server.Options{Dir: "counter", Code: code})
//	if err != nil { ... }
//	defer b.Close()
//	s, err := b.Serve(rpcListener, datListener, server.ServeOptions{})
//	if err != nil { ... }
//	defer s.Shutdown(ctx)
//
// A folder is the backend: the files archive's current files at its top,
// the archive and the call log under .dat/. Open holds a lock on it
// (.dat/lock) until Close, so that one process serves a folder at a time.
// What Open promises:
//
//   - A deploy is atomic: one that fails (the script throws while loading,
//     its init throws, a write fails) removes what it wrote, the folder too
//     if Open made it. A folder whose call log has no entry holds a deploy
//     that did not finish (nothing of it was acknowledged or published),
//     and is deployed again.
//   - A deployed folder is checked before anything in it is written: its
//     archive read-only first, then the call log against its signatures
//     and the folder's files by size (core.Open). Damage is refused with
//     core.ErrDamaged, and the folder is left as it was; Check says what
//     is damaged, offline, changing nothing.
//   - What a crash left is repaired: the archive takes back content no
//     entry points at, and the log's calls the archive lacks are redone.
//
// The call log is opened as a line log (one fsync per group of calls; its
// tree, bitfield and signatures are rebuilt from the data after a crash),
// signed every few milliseconds rather than every group, and grown a
// mebibyte at a time. Options.NoFsync answers calls before their entries
// reach the disk, as the original NodeVMS did.
package server
