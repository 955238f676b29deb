package hyperdrive

// Quota bounds what writes through Files may add to an archive. A limit of
// 0 is no limit.
type Quota struct {
	// ArchiveBytes bounds the archive's size: the byte length of both
	// feeds, metadata and content, as stored and replicated (Info.Size).
	// The feeds only grow, so deleting frees nothing: an archive at its
	// quota takes no more changes, deletions included, until the quota
	// is raised.
	ArchiveBytes int64
	// CallBytes bounds what the writes through one view (WithQuota) may
	// add to the feeds, all together.
	CallBytes int64
}

// WithQuota returns a view of f whose writes (WriteFile, Mkdir, Unlink,
// Rmdir) are held to q, counted from zero: the host takes one per call. A
// write is charged exactly what it appends to the feeds: its bytes, and
// the metadata entry it writes (its path, its Stat and the append-tree's
// pointers, which grow with the size of the folders on its path), so that
// loops of mkdir or unlink are bounded too. A write that would take the
// archive or the view past a limit fails before anything is written, with a
// QuotaExceededError that wraps ErrQuotaExceeded; a recursive Rmdir that
// reaches it is taken back whole. Goroutines that use one view share its
// budget.
func (f *Files) WithQuota(q Quota) *Files {
	return &Files{a: f.a, quota: q}
}

// grower returns the check of f's quota, or nil if it has none. It runs
// under the archive's lock, which also guards f.used.
func (f *Files) grower() grower {
	if f.quota.ArchiveBytes <= 0 && f.quota.CallBytes <= 0 {
		return nil
	}
	return func(n uint64) error {
		if lim := f.quota.CallBytes; lim > 0 && f.used+n > uint64(lim) {
			return quotaError("call would exceed its write quota of %d bytes", lim)
		}
		if lim := f.quota.ArchiveBytes; lim > 0 {
			size := f.a.metadata.ByteLength() + n
			if f.a.content != nil {
				size += f.a.content.ByteLength()
			}
			if size > uint64(lim) {
				return quotaError("archive would exceed its quota of %d bytes", lim)
			}
		}
		f.used += n
		return nil
	}
}

func quotaError(format string, limit int64) *Error {
	e := newError(QuotaExceededError, format, limit)
	e.err = ErrQuotaExceeded
	return e
}
