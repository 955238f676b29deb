package hyperdrive

import "errors"

// Errors of the archive layer. Errors of the DatArchive-style API (files.go)
// are *Error values with Beaker's names.
var (
	// ErrCorrupt: the metadata feed holds an entry that cannot be decoded
	// or points where no entry can be.
	ErrCorrupt = errors.New("hyperdrive: corrupt archive")
	// ErrNotArchive: metadata block 0 is not a hyperdrive index.
	ErrNotArchive = errors.New("hyperdrive: not a hyperdrive archive")
	// ErrNotWritable: a write to an archive opened without its secret key,
	// or to a checkout.
	ErrNotWritable = errors.New("hyperdrive: archive is not writable")
	// ErrNotFound: no entry by that name (or a block not downloaded yet).
	ErrNotFound = errors.New("hyperdrive: not found")
	// ErrNotEmpty: rmdir of a directory with entries in it.
	ErrNotEmpty = errors.New("hyperdrive: directory is not empty")
	// ErrModified: content stored as an ordinary file was changed outside
	// the archive and no longer matches its hashes.
	ErrModified = errors.New("hyperdrive: file changed outside the archive")
	// ErrClosed: the archive was closed.
	ErrClosed = errors.New("hyperdrive: archive is closed")
	// ErrQuotaExceeded: a write through Files would take the archive or
	// the call past its Quota. The *Error is a QuotaExceededError.
	ErrQuotaExceeded = errors.New("hyperdrive: quota exceeded")
)
