// Package hyperdrive implements Dat 1.0 files archives (hyperdrive 9) in
// pure Go, byte-for-byte compatible with the JavaScript hyperdrive 9.14 on
// hypercore 6: a NodeVMS backend's state lives in one, and anyone can clone
// it with Dat and read it.
//
// # Format
//
// An archive is two feeds (package hypercore). The metadata feed starts with
// an Index block naming the content feed; every later block is an
// append-tree entry: a path, a Stat (absent for a deletion) and pointers to
// the entries that were current for each level of the path (paths.go). The
// content feed holds the files' bytes in blocks of at most 64 KiB; a Stat
// says where a file's blocks start. The archive's version is the metadata
// feed's length minus one, and Checkout views any older version.
//
// The content key pair is derived from the metadata secret key
// (ContentKeyPair) and never stored.
//
// Lookups and listings follow the append-tree pointers from the newest
// entry, never scanning the history; decoded entries are cached. The
// format has a cost of its own: an entry lists every child of each
// directory on its path, so n entries in one directory take O(n²) bytes of
// metadata, and writing or looking up one entry there costs O(n).
//
// # Two APIs
//
// Archive has the reference's semantics, which the conformance tests hold
// it to: WriteFile, Mkdir, Unlink, Rmdir, Stat, Readdir, ReadFile,
// ReadRange, History, Checkout. Like the reference, it checks little
// (writing a file needs no parent folder). Files, from Archive.Files, is the
// DatArchive API that Beaker offered and that backend scripts see: it adds
// Beaker's checks and reports failures as *Error with Beaker's names
// (NotFoundError, ParentFolderDoesntExistError, ...), and DecodeContent and
// EncodeContent do its encodings.
//
// # Storage
//
//	a, err := hyperdrive.Open(hyperdrive.Options{
//		Storage: hyperdrive.DatStorage("site", secretDir),
//		Create:  true,
//	})
//	err = a.Files().WriteFile("/index.html", page, hyperdrive.WriteOptions{})
//
// MemoryStorage keeps an archive in memory. DatStorage is the dat command's
// layout, NodeVMS's default: the folder shows the current files as ordinary
// files, the feeds are in its .dat folder, and the secret key is kept
// outside the folder, readable by its owner only. A file edited outside the
// archive no longer matches its hashes; it is listed by Modified when found
// at open, reads of it fail with ErrModified, and it is never served to
// peers. FlatStorage reads and writes node-dat-archive's layout.
//
// Replicate and Clone copy archives over the Dat protocol (both feeds on
// one stream, metadata first), with JavaScript peers as with Go ones.
package hyperdrive
