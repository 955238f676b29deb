package hypercore

import "golang.org/x/sys/unix"

// StartWriteback starts writing [off, off+n) out to the disk without
// waiting for it (sync_file_range with SYNC_FILE_RANGE_WRITE alone). It
// makes nothing durable by itself: the Sync that follows waits for these
// writes, then flushes the disk's cache. Started early, the disk's write
// overlaps whatever the caller does meanwhile.
func (f osFile) StartWriteback(off, n int64) error {
	return unix.SyncFileRange(int(f.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
}

// SyncData makes the file's data durable, with the metadata reading it
// back needs, such as its size, but not its times (fdatasync): on a disk
// without a journal, an fsync after a time change writes the inode too,
// one more request to the disk.
func (f osFile) SyncData() error {
	return unix.Fdatasync(int(f.Fd()))
}
