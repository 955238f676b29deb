// Package hypercore implements Dat 1.0 feeds ("hypercores") in pure Go,
// byte-for-byte compatible with the JavaScript hypercore 6.x/7.x that the
// Dat 1.0 stack uses.
//
// A feed is an append-only log of blocks. Its blocks are the leaves of a
// Merkle tree (package merkle, laid out with package flat), and after each
// batch of appends the writer signs the hash of the tree's roots with its
// Ed25519 key. Anyone with the public key can verify any block with a proof
// of a few tree nodes, so feeds can be copied from untrusted peers.
//
// # Storage
//
// A feed lives in six SLEEP files (package sleep): key, secret_key, tree,
// data, bitfield and signatures. A Storage opens them by name; DirStorage
// keeps them in a directory (optionally with a name prefix such as
// "call-log."), MemoryStorage in memory. Files written by this package are
// the bytes the reference writes for the same key and appends, and files the
// reference wrote open here, including hypercore 6.22's 3328-byte bitfield
// pages.
//
// # Writing
//
//	kp, _ := hypercore.GenerateKeyPair(nil)
//	feed, err := hypercore.Open(hypercore.Config{
//		Storage:   hypercore.DirStorage{Dir: "log"},
//		SecretKey: kp.SecretKey,
//		Create:    true,
//	})
//	...
//	first, err := feed.Append(block1, block2) // one batch, one signature
//	err = feed.Sync()                         // durable from here on
//	err = feed.Close()
//
// Append writes to the files; Sync makes the batch durable. Sync flushes the
// data, tree and signatures first and writes the bitfield (which is what
// says a block exists) only after them, so a crash at any moment leaves a
// feed that opens as a valid, signed prefix of what was appended. The
// bitfield's own write can be cut short by the crash (Linux ends a killed
// process's write at a 4 KiB boundary); a writer's Open then rebuilds it
// from the longest signed tree it claims, and Reclaimed says why. If a write
// to the storage fails, the feed refuses further writes with ErrFailed
// (what reached the disk is then unknown); reopening it continues from the
// last Sync.
//
// A busy writer can do less per append. DeferSignatures leaves appends
// unsigned, and unshown to peers, until Sign (or Sync, or Close) signs
// them all at once. WriteBack keeps the small writes to the tree,
// signatures and bitfield in memory until they can go out together. A line
// log (LineLog: every block one line, such as a JSON log) needs only its
// data file for durability: Sync is one fsync, and Open rebuilds the rest
// from the data after a crash, once it has checked the data against the
// last signature stored (a data file changed on disk is refused with
// ErrDataChanged, never signed again). Preallocate makes that fsync
// cheaper still, by growing the data file ahead of the log so that it
// writes data only.
//
// # Staged changes
//
// Hold opens a group of appends that may yet be taken back (a call the
// host stops). Until the outermost hold is released they are staged in
// memory: Get, Length and TreeHash see them, but no file, signature or
// peer does. Release writes them in one pass and signs once; Rollback
// forgets them at no cost in I/O. A feed's files therefore only grow,
// except by Truncate below.
//
// # Failures and damage
//
// A write that fails (a full disk) leaves the feed refusing writes
// (ErrFailed) while it goes on serving reads; Reopen reads it again from
// its files, in place, once the cause is gone, and Abandon closes it
// without writing more. CheckStored checks every file of a feed as its
// writer holds it (tree, signatures, bitfield, data) and names the file
// and the block or node that does not agree. Truncate takes back blocks
// nothing refers to, for a writer recovering from a crash.
//
// # Reading and replicating
//
// Get reads a block, Wait waits for one. A replica is opened with just the
// public key; blocks reach it with Put, each checked against a Proof from a
// peer that has it (Feed.Proof on that side, given the requester's Digest).
// A proof that does not hash to a correctly signed root is rejected with
// ErrVerify and nothing is stored.
//
// # Errors
//
// Errors wrap the sentinels in errors.go (ErrNotFound, ErrCorrupt,
// ErrVerify, ...). Open checks headers, keys, the roots' tree nodes and the
// last signature, and refuses inconsistent files with ErrCorrupt.
//
// Blocks of feeds with valueEncoding 'json' are JSON.stringify(value) + "\n";
// EncodeJSON and DecodeJSON read and write them.
package hypercore
