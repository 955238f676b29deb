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
// # What the folder promises
//
// DatStorage never follows a symlink in the folder and never reads,
// writes, renames or removes anything outside it: it reaches the folder
// one component at a time through directory descriptors opened with
// O_NOFOLLOW (its temporary files and journal in .dat too). A symlink, or
// anything but a plain file or folder, found where the archive has one is
// a change made outside the archive, reported as above. An entry the
// folder cannot hold safely (one under .dat in any case, under the secret
// key folder when that is inside the folder, with a name longer than
// MaxNameBytes, or in a place a symlink holds) is kept in the archive but
// not written to the folder; Modified lists it, reads of it fail with
// ErrModified, and it never makes a Sync or a later Open fail.
//
// Files checks every path before anything is read or written: a path
// under .dat (compared ignoring case), with a component longer than
// MaxNameBytes, longer than MaxPathBytes, or with a NUL is an
// InvalidPathError, whatever the storage, so that a script behaves alike
// in memory and on disk. Archive stays as permissive as the reference.
//
// # Quotas
//
// Files.WithQuota returns a view whose writes are held to a Quota: a
// bound on the archive's size (the byte length of both feeds) and one on
// what the view's writes add together (the host takes a view per call).
// Each write is charged exactly what it appends: its data and its
// metadata entry, so that mkdir and unlink loops are bounded too. A write
// that would pass a limit fails before anything is written, with a
// QuotaExceededError wrapping ErrQuotaExceeded. Feeds only grow: deleting
// frees nothing, and an archive at its quota takes no more changes.
//
// Replicate and Clone copy archives over the Dat protocol (both feeds on
// one stream, metadata first), with JavaScript peers as with Go ones.
package hyperdrive
