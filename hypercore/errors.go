package hypercore

import "errors"

// Sentinel errors. Errors returned by this package wrap one of these where a
// caller may want to branch on the cause; test with errors.Is.
var (
	// ErrNotFound: the block or node is not stored here (a sparse replica
	// may not have it yet).
	ErrNotFound = errors.New("hypercore: not found")
	// ErrNoFeed: no feed is stored here and creating one was not asked for.
	ErrNoFeed = errors.New("hypercore: no feed is stored here")
	// ErrKeyMismatch: the stored feed has another key than the one given,
	// or a secret key that does not belong to its public key.
	ErrKeyMismatch = errors.New("hypercore: key mismatch")
	// ErrNotWritable: the feed has no secret key, or was opened read-only.
	ErrNotWritable = errors.New("hypercore: feed is not writable")
	// ErrCorrupt: the stored files are inconsistent or malformed, as after
	// an interrupted write or an edit from outside.
	ErrCorrupt = errors.New("hypercore: corrupt storage")
	// ErrDataChanged: a writer's stored blocks are not the ones it signed:
	// its data file was changed on disk. A line log refuses to open rather
	// than redo (and sign) a tree of other blocks.
	ErrDataChanged = errors.New("hypercore: the stored data is not what was signed")
	// ErrVerify: a block, proof or signature did not verify against the
	// feed's key.
	ErrVerify = errors.New("hypercore: verification failed")
	// ErrFailed: a write to the storage failed earlier, and the feed
	// refuses further writes. Reopen it to continue from what was synced.
	ErrFailed = errors.New("hypercore: feed failed; reopen it")
	// ErrClosed: the feed was closed.
	ErrClosed = errors.New("hypercore: feed is closed")
)
