package hyperdrive

import (
	"errors"
	"fmt"
	"maps"
)

// ErrInTransaction: Sync while a transaction is open.
var ErrInTransaction = errors.New("hyperdrive: a transaction is open")

// txn is what Begin recorded.
type txn struct {
	metadataLength uint64
	contentLength  uint64
	contentBytes   uint64
	modified       map[string]bool
}

// Begin starts a transaction: the writes that follow are seen by this
// archive's reads at once, but staged in memory by both feeds
// (hypercore.Feed.Hold): no feed file, no file of the folder and nothing
// shown to peers changes until the outermost Commit, which writes them
// out. Rollback forgets them, leaving the archive, its files and its
// folder as they were at Begin, at no cost in I/O. Transactions nest: an
// inner one is a save point, and nothing is shown or written to the folder
// until the outermost commits. NodeVMS runs a group of calls in an outer
// transaction (shown once their log entries are durable) and each call in
// an inner one (taken back if the host aborts it).
func (a *Archive) Begin() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.writableLocked(); err != nil {
		return err
	}
	if err := a.metadata.Hold(); err != nil {
		return err
	}
	if err := a.content.Hold(); err != nil {
		a.metadata.Release()
		return err
	}
	if a.files != nil {
		a.files.hold()
	}
	a.txn = append(a.txn, &txn{
		metadataLength: a.metadata.Length(),
		contentLength:  a.content.Length(),
		contentBytes:   a.content.ByteLength(),
		modified:       maps.Clone(a.modified),
	})
	return nil
}

// StagedBytes returns the bytes of file content and metadata the open
// transactions keep in memory until the outermost ends.
func (a *Archive) StagedBytes() int {
	return a.content.StagedBytes() + a.metadata.StagedBytes()
}

// Commit ends the innermost transaction, keeping its writes; when it is
// the outermost, the folder is updated and peers are shown the new blocks.
// Sync makes them durable.
func (a *Archive) Commit() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.txn) == 0 {
		return nil
	}
	a.txn = a.txn[:len(a.txn)-1]
	var err error
	if a.files != nil {
		err = a.files.commit()
	}
	a.content.Release()
	a.metadata.Release()
	return err
}

// Rollback ends the innermost transaction, undoing its writes.
func (a *Archive) Rollback() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.rollbackLocked()
}

func (a *Archive) rollbackLocked() error {
	if len(a.txn) == 0 {
		return nil
	}
	t := a.txn[len(a.txn)-1]
	a.txn = a.txn[:len(a.txn)-1]
	err := a.content.Rollback()
	if merr := a.metadata.Rollback(); err == nil {
		err = merr
	}
	if a.files != nil {
		a.files.rollback(t.contentBytes)
	}
	a.entries.truncate(t.metadataLength)
	a.modified = t.modified
	if err != nil {
		return fmt.Errorf("hyperdrive: rollback: %w", err)
	}
	if a.metadata.Length() != t.metadataLength || a.content.Length() != t.contentLength {
		return fmt.Errorf("%w: rollback reached lengths %d/%d, not %d/%d", ErrCorrupt,
			a.metadata.Length(), a.content.Length(), t.metadataLength, t.contentLength)
	}
	return nil
}
