package hyperdrive

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"math"
	"path"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/nodevms/nodevms/hypercore"
	"github.com/nodevms/nodevms/hypercore/merkle"
)

// ChunkSize is the largest content block: files are split into blocks of
// this many bytes.
const ChunkSize = 64 * 1024

// Options say which archive to open and how.
type Options struct {
	// Storage holds the archive. Required.
	Storage Storage
	// Key is the archive's (metadata feed's) public key. Without it and
	// without SecretKey, Create makes a new archive with a fresh key pair.
	Key ed25519.PublicKey
	// SecretKey makes the archive writable.
	SecretKey ed25519.PrivateKey
	// Create creates the archive if the storage holds none.
	Create bool
	// ReadOnly opens the feeds without ever writing to the storage.
	ReadOnly bool
	// Rand is the source of a generated key pair; crypto/rand if nil.
	Rand io.Reader
	// Now gives the time of writes that do not say theirs; time.Now if nil.
	Now func() time.Time
	// Unsigned opens Key's archive without its secret key for writing
	// with no signatures (hypercore.Config.UnsignedWrites): a private copy
	// that replays the writer's operations, block for block, so that its
	// tree hashes can be compared with the writer's. ContentKey, the
	// writer's content feed key, is then needed to start one.
	Unsigned   bool
	ContentKey ed25519.PublicKey
	// DeferSignatures leaves a writer's changes unsigned, and unshown to
	// peers, until Sign or Sync (hypercore.Config.DeferSignatures): for a
	// writer that commits far more often than peers need a new version.
	DeferSignatures bool
	// WriteBack batches a writer's small writes to the feeds' tree,
	// signatures and bitfield files until Sync (hypercore.Config.WriteBack).
	WriteBack bool
}

// Archive is a hyperdrive: a metadata feed (the index block, then one
// append-tree entry per change) and a content feed (the files' bytes). Its
// operations have the reference's semantics and write the reference's
// bytes. An Archive is safe for concurrent use; writes are serialised.
type Archive struct {
	mu         sync.Mutex
	metadata   *hypercore.Feed
	content    *hypercore.Feed // nil until a replica has metadata block 0
	entries    *entries
	tree       tree
	files      *realFiles // content kept as ordinary files, or nil
	storage    Storage
	now        func() time.Time
	readOnly   bool
	unsigned   bool              // see Options.Unsigned
	writeBack  bool              // see Options.WriteBack
	contentKey ed25519.PublicKey // Options.ContentKey

	checkoutOf *Archive        // for a checkout: the archive it views
	modified   map[string]bool // real files found changed at open, until rewritten
	closed     bool
	txn        []*txn // open transactions, outermost first
}

// Open opens or creates an archive.
func Open(opts Options) (*Archive, error) {
	if opts.Storage == nil {
		return nil, errors.New("hyperdrive: no storage")
	}
	key := opts.Key
	secret := opts.SecretKey
	if key == nil && secret == nil && opts.Create {
		kp, err := hypercore.GenerateKeyPair(opts.Rand)
		if err != nil {
			return nil, err
		}
		key, secret = kp.PublicKey, kp.SecretKey
	}
	meta, err := hypercore.Open(hypercore.Config{
		Storage:         opts.Storage.metadata(),
		PublicKey:       key,
		SecretKey:       secret,
		Create:          opts.Create,
		ReadOnly:        opts.ReadOnly,
		UnsignedWrites:  opts.Unsigned,
		DeferSignatures: opts.DeferSignatures,
		WriteBack:       opts.WriteBack,
	})
	if err != nil {
		return nil, fmt.Errorf("hyperdrive: metadata: %w", err)
	}
	a := &Archive{
		metadata:   meta,
		entries:    newEntries(meta),
		storage:    opts.Storage,
		now:        opts.Now,
		readOnly:   opts.ReadOnly,
		unsigned:   opts.Unsigned,
		writeBack:  opts.WriteBack,
		contentKey: opts.ContentKey,
	}
	a.tree = tree{entries: a.entries, version: -1}
	if err := meta.Reclaimed(); err != nil && meta.Writable() {
		// A crash tore the bitfield, and the tear may have taken the
		// claims of blocks the feed holds. A writer's metadata holds
		// every block: claim them again, each checked against the tree.
		if err := meta.Unclear(0, meta.Length()); err != nil {
			meta.Close()
			return nil, fmt.Errorf("hyperdrive: metadata: claiming blocks back after a torn bitfield: %w", err)
		}
	}
	if _, files := opts.Storage.content(); files != nil && !meta.Writable() && !opts.ReadOnly {
		// The folder shows the current files, so its content can only be
		// written in order, by the archive's writer.
		meta.Close()
		return nil, errors.New("hyperdrive: a replica cannot be kept in DatStorage; use FlatStorage, or open it read-only")
	}
	if a.now == nil {
		a.now = time.Now
	}
	if err := a.openContent(); err != nil {
		meta.Close()
		return nil, err
	}
	return a, nil
}

// openContent opens the content feed once its key is known: from metadata
// block 0, or, for a new writable archive, derived from the secret key
// (and then block 0 is written).
func (a *Archive) openContent() error {
	if a.content != nil {
		return nil
	}
	cfg := hypercore.Config{DiscardSecretKey: true, ReadOnly: a.readOnly, Create: !a.readOnly, UnsignedWrites: a.unsigned,
		DeferSignatures: a.metadata.DefersSignatures(), WriteBack: a.writeBack}
	var contentKP *hypercore.KeyPair
	switch {
	case a.metadata.SecretKey() != nil:
		kp := ContentKeyPair(a.metadata.SecretKey())
		contentKP = &kp
		cfg.SecretKey = kp.SecretKey
	case a.unsigned && a.contentKey != nil:
		contentKP = &hypercore.KeyPair{PublicKey: a.contentKey}
	}
	writeIndex := false
	if a.metadata.Has(0) {
		b, err := a.metadata.Get(0)
		if err != nil {
			return fmt.Errorf("hyperdrive: index: %w", err)
		}
		idx, err := decodeIndex(b)
		if err != nil || idx.Type != "hyperdrive" || len(idx.Content) != hypercore.PublicKeySize {
			return fmt.Errorf("%w: metadata block 0 is %q", ErrNotArchive, idx.Type)
		}
		if contentKP != nil && !contentKP.PublicKey.Equal(ed25519.PublicKey(idx.Content)) {
			return fmt.Errorf("%w: the content key is not the one the secret key derives", ErrCorrupt)
		}
		cfg.PublicKey = idx.Content
	} else if contentKP != nil && a.metadata.Length() == 0 {
		cfg.PublicKey = contentKP.PublicKey
		writeIndex = true
	} else {
		return nil // a replica without block 0 yet
	}
	st, files := a.storage.content()
	cfg.Storage = st
	cfg.CheckAllReads = files != nil
	content, err := hypercore.Open(cfg)
	if err != nil {
		return fmt.Errorf("hyperdrive: content: %w", err)
	}
	a.content, a.files = content, files
	if writeIndex {
		idx := Index{Type: "hyperdrive", Content: content.PublicKey()}
		if _, err := a.metadata.Append(idx.encode()); err != nil {
			return err
		}
		if err := a.metadata.Sync(); err != nil {
			return err
		}
	}
	return a.afterContentOpen()
}

// afterContentOpen brings a writer's content and folder up to its
// metadata, which is the commit point of a Sync, and loads the extents.
func (a *Archive) afterContentOpen() error {
	if a.content.Writable() && !a.readOnly {
		if err := a.cutUnreferencedContent(); err != nil {
			return err
		}
	}
	if a.files != nil {
		if !a.readOnly {
			if err := a.files.recover(a.metadata.Length()); err != nil {
				return err
			}
		}
		if err := a.loadExtents(); err != nil {
			return err
		}
	}
	return nil
}

// cutUnreferencedContent takes back content blocks that no metadata entry
// points at: a writer's crash between syncing the content feed and syncing
// the metadata that points at it leaves them (Sync's order). They hold
// files that were never written as far as the archive goes (in DatStorage
// their bytes never reached the folder), and a writer that kept them would
// put the next files' bytes at other offsets than a writer that never
// crashed. The writer writes the same files again if it redoes the writes,
// as a NodeVMS host does from its call log, so the blocks it takes back are
// the blocks it will append.
func (a *Archive) cutUnreferencedContent() error {
	end, err := a.referencedContent()
	if err != nil {
		return err
	}
	if n := a.content.Length(); n > end {
		if err := a.content.Truncate(end); err != nil {
			return fmt.Errorf("hyperdrive: taking back %d content blocks no entry points at: %w", n-end, err)
		}
	}
	return nil
}

// ReferencedContent returns the content feed's length that the metadata
// points at: the end of the last file or folder written. A writer's
// content past it is what a crash between the two syncs of a flush left,
// which a writable Open takes back.
func (a *Archive) ReferencedContent() (uint64, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.referencedContent()
}

func (a *Archive) referencedContent() (uint64, error) {
	for seq := a.metadata.Length(); seq > 1; seq-- {
		e, err := a.entries.get(seq - 1)
		if err != nil {
			return 0, fmt.Errorf("hyperdrive: finding the content in use: %w", err)
		}
		if !e.node.HasValue {
			continue // a deletion
		}
		st, err := decodeStat(e.node.Value)
		if err != nil {
			return 0, fmt.Errorf("%w: entry %d: %v", ErrCorrupt, seq-1, err)
		}
		return st.Offset + st.Blocks, nil
	}
	return 0, nil
}

// loadExtents tells the real-file storage where each current file's bytes
// are, from the tree (not the history), and notes files changed on disk.
// A writer's current file whose blocks are cleared, but whose bytes the
// folder holds, is claimed again: a crash can make the Clear of a rewrite
// durable before the metadata that would have finished it (Sync's order),
// or tear the bitfield page that claimed it.
func (a *Archive) loadExtents() error {
	var list, cleared []extent
	var clearedStats []Stat
	sizes := map[string]uint64{}
	writer := a.content.Writable() && !a.readOnly
	// After a torn bitfield (see hypercore's Reclaimed), a file's first
	// block claimed says nothing of the others.
	reclaimed := writer && a.content.Reclaimed() != nil
	err := a.walk("/", func(name string, st Stat) {
		if !st.IsFile() || st.Size == 0 {
			return
		}
		e := extent{start: st.ByteOffset, end: st.ByteOffset + st.Size, name: name}
		switch {
		case a.content.Has(st.Offset) && (!reclaimed || a.content.HasAll(st.Offset, st.Offset+st.Blocks)):
			list = append(list, e)
			sizes[name] = st.Size
		case writer && st.Offset+st.Blocks <= a.content.Length():
			cleared = append(cleared, e)
			clearedStats = append(clearedStats, st)
		}
	})
	if err != nil {
		return err
	}
	if len(cleared) > 0 {
		// Unclear reads the blocks back through the extents, and checks
		// them against the tree; a file the folder does not hold (or holds
		// other bytes of) stays cleared.
		a.files.setExtents(slices.Concat(list, cleared), a.content.ByteLength())
		for i, st := range clearedStats {
			if a.content.Unclear(st.Offset, st.Offset+st.Blocks) == nil {
				list = append(list, cleared[i])
				sizes[cleared[i].name] = st.Size
			} else {
				a.content.Clear(st.Offset, st.Offset+st.Blocks)
			}
		}
	}
	a.files.setExtents(list, a.content.ByteLength())
	a.modified = map[string]bool{}
	for _, name := range a.files.checkSizes(sizes) {
		a.modified[name] = true
	}
	return nil
}

// walk calls fn for every entry under dir, depth first.
func (a *Archive) walk(dir string, fn func(name string, st Stat)) error {
	children, _, err := a.tree.list(split(dir))
	if err != nil {
		return err
	}
	for _, c := range children {
		if c == "" || c == "." || c == ".." {
			continue // only a hostile feed has these; they lead nowhere new
		}
		name := path.Join(dir, c)
		st, err := a.stat(name)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		fn(name, st)
		if st.IsDir() {
			if err := a.walk(name, fn); err != nil {
				return err
			}
		}
	}
	return nil
}

// Failed returns the failed write that makes one of the archive's feeds
// refuse writes until Reopen, or nil.
func (a *Archive) Failed() error {
	if err := a.metadata.Failed(); err != nil {
		return fmt.Errorf("hyperdrive: metadata: %w", err)
	}
	if c := a.Content(); c != nil {
		if err := c.Failed(); err != nil {
			return fmt.Errorf("hyperdrive: content: %w", err)
		}
	}
	return nil
}

// CheckFolderFile checks the folder's copy of the current file name
// against the content tree, block by block, whether or not the content
// feed claims the file's blocks: a crash can make the Clear of a rewrite
// durable before the metadata that would have finished it, and a writable
// open then claims the blocks again (see loadExtents). For an offline
// check of a folder-backed archive; ErrModified if the bytes differ.
func (a *Archive) CheckFolderFile(name string) error {
	if a.files == nil {
		return errors.New("hyperdrive: the archive is not kept in a folder")
	}
	st, err := a.Stat(name)
	if err != nil {
		return err
	}
	parts, err := a.files.parts(Normalize(name))
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrModified, name, err)
	}
	data, err := a.files.folder.readFile(parts)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrModified, name, err)
	}
	if uint64(len(data)) != st.Size {
		return fmt.Errorf("%w: %s has %d bytes, the archive %d", ErrModified, name, len(data), st.Size)
	}
	content := a.Content()
	var off uint64
	for b := st.Offset; b < st.Offset+st.Blocks; b++ {
		leaf, err := content.Node(2 * b)
		if err != nil {
			return fmt.Errorf("hyperdrive: %s: content block %d: %w", name, b, err)
		}
		if off+leaf.Size > uint64(len(data)) || merkle.LeafHash(data[off:off+leaf.Size]) != leaf.Hash {
			return fmt.Errorf("%w: %s: content block %d does not match its hash", ErrModified, name, b)
		}
		off += leaf.Size
	}
	return nil
}

// Reopen reads the archive again from its files, in place, as Open would
// (hypercore.Feed.Reopen): for a writer whose write failed, once the
// cause is gone, such as a full disk with space again. What the last Sync
// made durable is there; what came after is gone, as after a crash. No
// transaction may be open.
func (a *Archive) Reopen() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case a.closed:
		return ErrClosed
	case a.checkoutOf != nil:
		return errors.New("hyperdrive: a checkout cannot be reopened")
	case len(a.txn) > 0:
		return ErrInTransaction
	}
	if a.files != nil {
		a.files.reset()
	}
	if err := a.metadata.Reopen(); err != nil {
		return fmt.Errorf("hyperdrive: metadata: %w", err)
	}
	a.entries = newEntries(a.metadata)
	a.tree = tree{entries: a.entries, version: -1}
	if a.content == nil {
		return nil
	}
	if err := a.content.Reopen(); err != nil {
		return fmt.Errorf("hyperdrive: content: %w", err)
	}
	return a.afterContentOpen()
}

// CheckStored checks the archive's feeds as its writer holds them
// (hypercore.Feed.CheckStored): the metadata's every block and the content's
// tree, signatures and bitfield. The content's bytes are checked as they
// are read (in DatStorage they are the folder's files, which Modified
// already compared by size). Errors name the feed.
func (a *Archive) CheckStored() error {
	if err := a.metadata.CheckStored(hypercore.CheckOptions{Data: true, AllBlocks: true}); err != nil {
		return fmt.Errorf("metadata: %w", err)
	}
	if c := a.Content(); c != nil {
		if err := c.CheckStored(hypercore.CheckOptions{}); err != nil {
			return fmt.Errorf("content: %w", err)
		}
	}
	return nil
}

// Key returns the archive's public key (the metadata feed's).
func (a *Archive) Key() ed25519.PublicKey { return a.metadata.PublicKey() }

// Metadata returns the metadata feed.
func (a *Archive) Metadata() *hypercore.Feed { return a.metadata }

// Content returns the content feed; nil for a replica that has not yet
// received metadata block 0.
func (a *Archive) Content() *hypercore.Feed {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.content
}

// Writable reports whether the archive can be written.
func (a *Archive) Writable() bool {
	return a.checkoutOf == nil && a.metadata.Writable()
}

// Version is the archive's version: the metadata feed's length minus one,
// or a checkout's version.
func (a *Archive) Version() uint64 {
	if a.tree.version >= 0 {
		return uint64(a.tree.version)
	}
	if n := a.metadata.Length(); n > 0 {
		return n - 1
	}
	return 0
}

// Modified lists the files that were found changed on disk when the
// archive opened, or that the folder could not hold (a symlink in their
// place, a reserved or too long name: see DatStorage); real-file storage
// only. Reads of them fail with ErrModified.
func (a *Archive) Modified() []string {
	base := a
	if a.checkoutOf != nil {
		base = a.checkoutOf
	}
	base.mu.Lock()
	defer base.mu.Unlock()
	set := map[string]bool{}
	for name := range base.modified {
		set[name] = true
	}
	if base.files != nil {
		for _, name := range base.files.lostNames() {
			set[name] = true
		}
	}
	out := []string{}
	for name := range set {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// Checkout returns a read-only view of the archive as it was at version.
func (a *Archive) Checkout(version uint64) (*Archive, error) {
	base := a
	if a.checkoutOf != nil {
		base = a.checkoutOf
	}
	if version > base.Version() {
		return nil, fmt.Errorf("%w: version %d (the archive is at %d)", ErrNotFound, version, base.Version())
	}
	base.mu.Lock()
	content := base.content
	base.mu.Unlock()
	return &Archive{
		metadata:   base.metadata,
		content:    content,
		entries:    base.entries,
		tree:       tree{entries: base.entries, version: int64(version)},
		files:      base.files,
		storage:    base.storage,
		now:        base.now,
		readOnly:   true,
		checkoutOf: base,
	}, nil
}

// Normalize returns the archive path of p: path.resolve('/', p).
func Normalize(p string) string {
	if len(p) > 0 && p[0] == '/' {
		// The same as below, without the concatenation: Clean returns a
		// path that is clean already as it is, and most are.
		return path.Clean(p)
	}
	return path.Clean("/" + p)
}

// WriteOptions are the optional fields of a write.
type WriteOptions struct {
	Mode         uint32    // permission bits; 0644 for files, 0755 for directories
	Mtime, Ctime time.Time // the Options.Now time if zero
}

func (a *Archive) times(o WriteOptions) (mtime, ctime int64) {
	now := a.now()
	if o.Mtime.IsZero() {
		o.Mtime = now
	}
	if o.Ctime.IsZero() {
		o.Ctime = now
	}
	return o.Mtime.UnixMilli(), o.Ctime.UnixMilli()
}

func (a *Archive) writableLocked() error {
	switch {
	case a.closed:
		return ErrClosed
	case !a.Writable():
		return ErrNotWritable
	case a.content == nil:
		return fmt.Errorf("%w: no content feed", ErrNotWritable)
	}
	return nil
}

// WriteFile writes data as the file name: its bytes go to the content feed
// in blocks of at most ChunkSize (the first block, then the rest in one
// batch, as the reference's write stream does), then an entry with its
// Stat to the metadata feed. Parents need not exist.
func (a *Archive) WriteFile(name string, data []byte, o WriteOptions) error {
	return a.writeFile(name, data, o, nil)
}

// grower is called, when not nil, with the bytes a change is about to add
// to the feeds (content and metadata), before anything is written: an
// error from it stops the change. Files' quota is one.
type grower func(n uint64) error

// growLocked asks grow whether the entry n, to be appended at seq, and
// content more bytes of content may be written. The tree caches what it
// computed for an entry at seq, so that is forgotten when the answer is no.
func (a *Archive) growLocked(grow grower, seq uint64, n treeNode, content uint64) error {
	if grow == nil {
		return nil
	}
	if err := grow(content + uint64(len(n.encode()))); err != nil {
		a.entries.truncate(seq)
		return err
	}
	return nil
}

func (a *Archive) writeFile(name string, data []byte, o WriteOptions, grow grower) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.writableLocked(); err != nil {
		return err
	}
	name = Normalize(name)
	names := split(name)
	chunks := chunksOf(data)
	mode := o.Mode
	if mode == 0 {
		mode = defaultFileMode
	}
	mtime, ctime := a.times(o)
	st := Stat{
		Mode: mode | ModeFile, Size: uint64(len(data)), Blocks: uint64(len(chunks)),
		Offset: a.content.Length(), ByteOffset: a.content.ByteLength(), Mtime: mtime, Ctime: ctime,
	}
	// The entry does not depend on the content before it, so with a grow
	// check it is made first, and sized, before anything is written.
	seq := a.metadata.Length()
	var sized *treeNode
	if grow != nil {
		n, err := a.tree.put(seq, names, st.encode())
		if err != nil {
			return err
		}
		if err := a.growLocked(grow, seq, n, uint64(len(data))); err != nil {
			return err
		}
		sized = &n
	}
	err := a.writeContentLocked(name, names, chunks)
	if err != nil {
		if sized != nil {
			a.entries.truncate(seq)
		}
		return err
	}
	delete(a.modified, name)
	if sized != nil {
		return a.appendEntry(seq, *sized)
	}
	return a.putLocked(names, st.encode())
}

// writeContentLocked appends a file's chunks to the content feed (and to
// its real file), after clearing its old bytes, which it replaces on disk.
func (a *Archive) writeContentLocked(name string, names []string, chunks [][]byte) error {
	if a.files != nil {
		// Refused before anything changes: content the folder cannot
		// hold would be acknowledged and then lost.
		if err := a.files.holdable(name); err != nil {
			return err
		}
		if old, ok, err := a.tree.get(names); err != nil {
			return err
		} else if ok && old.Size > 0 {
			if err := a.content.Clear(old.Offset, old.Offset+old.Blocks); err != nil {
				return err
			}
		}
		if err := a.files.begin(name, a.content.ByteLength()); err != nil {
			return err
		}
	}
	err := a.appendContent(chunks)
	if a.files != nil {
		if ferr := a.files.finish(err == nil, a.content.ByteLength()); err == nil {
			err = ferr
		}
	}
	return err
}

func chunksOf(data []byte) [][]byte {
	var chunks [][]byte
	for i := 0; i < len(data); i += ChunkSize {
		chunks = append(chunks, data[i:min(i+ChunkSize, len(data))])
	}
	return chunks
}

func (a *Archive) appendContent(chunks [][]byte) error {
	if len(chunks) == 0 {
		return nil
	}
	if _, err := a.content.Append(chunks[0]); err != nil {
		return err
	}
	if len(chunks) > 1 {
		if _, err := a.content.Append(chunks[1:]...); err != nil {
			return err
		}
	}
	return nil
}

func (a *Archive) putLocked(names []string, value []byte) error {
	seq := a.metadata.Length()
	n, err := a.tree.put(seq, names, value)
	if err != nil {
		return err
	}
	return a.appendEntry(seq, n)
}

func (a *Archive) appendEntry(seq uint64, n treeNode) error {
	if _, err := a.metadata.Append(n.encode()); err != nil {
		return err
	}
	a.entries.add(seq, n)
	return nil
}

// Mkdir writes a directory entry. Like the reference, it does not check
// what is there already.
func (a *Archive) Mkdir(name string, o WriteOptions) error {
	return a.mkdir(name, o, nil)
}

func (a *Archive) mkdir(name string, o WriteOptions, grow grower) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.writableLocked(); err != nil {
		return err
	}
	mode := o.Mode
	if mode == 0 {
		mode = defaultDirMode
	}
	mtime, ctime := a.times(o)
	st := Stat{
		Mode: mode | ModeDir, Offset: a.content.Length(), ByteOffset: a.content.ByteLength(),
		Mtime: mtime, Ctime: ctime,
	}
	seq := a.metadata.Length()
	n, err := a.tree.put(seq, split(Normalize(name)), st.encode())
	if err != nil {
		return err
	}
	if err := a.growLocked(grow, seq, n, 0); err != nil {
		return err
	}
	return a.appendEntry(seq, n)
}

// Unlink writes a deletion of name. Like the reference, it writes one even
// when there is no such entry (unless the archive is empty).
func (a *Archive) Unlink(name string) error {
	return a.unlink(name, nil)
}

func (a *Archive) unlink(name string, grow grower) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.delLocked(Normalize(name), grow)
}

func (a *Archive) delLocked(name string, grow grower) error {
	if err := a.writableLocked(); err != nil {
		return err
	}
	names := split(name)
	var old Stat
	var had bool
	if a.files != nil {
		var err error
		if old, had, err = a.tree.get(names); err != nil {
			return err
		}
	}
	seq := a.metadata.Length()
	n, ok, err := a.tree.del(seq, names)
	if err != nil || !ok {
		return err
	}
	if err := a.growLocked(grow, seq, n, 0); err != nil {
		return err
	}
	if err := a.appendEntry(seq, n); err != nil {
		return err
	}
	if a.files != nil && had {
		if old.IsFile() {
			delete(a.modified, name)
			if err := a.files.remove(name); err != nil {
				return err
			}
			if old.Size > 0 {
				return a.content.Clear(old.Offset, old.Offset+old.Blocks)
			}
		} else if err := a.files.removeDir(name); err != nil {
			return err
		}
	}
	return nil
}

// Rmdir deletes the directory name, which must be empty.
func (a *Archive) Rmdir(name string) error {
	return a.rmdir(name, nil)
}

func (a *Archive) rmdir(name string, grow grower) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	name = Normalize(name)
	list, err := a.readdir(name)
	if err != nil {
		return err
	}
	if len(list) > 0 {
		return fmt.Errorf("%w: %s", ErrNotEmpty, name)
	}
	if err := a.delLocked(name, grow); err != nil {
		return err
	}
	if a.files != nil {
		return a.files.removeDir(name)
	}
	return nil
}

// Stat returns what name is. A directory that exists only because entries
// are under it has a Stat with just its mode, as in the reference.
func (a *Archive) Stat(name string) (Stat, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return Stat{}, ErrClosed
	}
	return a.stat(Normalize(name))
}

func (a *Archive) stat(name string) (Stat, error) {
	names := split(name)
	st, ok, err := a.tree.get(names)
	if err != nil || ok {
		return st, err
	}
	_, ok, err = a.tree.list(names)
	if err != nil {
		return Stat{}, err
	}
	if !ok && name != "/" {
		return Stat{}, notFound(name)
	}
	return Stat{Mode: ModeDir | defaultDirMode}, nil
}

func notFound(name string) error {
	return fmt.Errorf("%w: %s could not be found", ErrNotFound, name)
}

// Readdir lists the names in the directory name, in the order they were
// last changed (the reference's order). Listing "/" of an empty archive
// gives an empty list; listing a file gives an empty list.
func (a *Archive) Readdir(name string) ([]string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil, ErrClosed
	}
	return a.readdir(Normalize(name))
}

func (a *Archive) readdir(name string) ([]string, error) {
	list, ok, err := a.tree.list(split(name))
	if err != nil {
		return nil, err
	}
	if !ok {
		if name == "/" {
			return []string{}, nil
		}
		return nil, notFound(name)
	}
	out := list[:0:0]
	for _, n := range list {
		if n != "." && n != ".." {
			out = append(out, n)
		}
	}
	return out, nil
}

// ReadFile returns the bytes of the file name.
func (a *Archive) ReadFile(name string) ([]byte, error) {
	return a.ReadRange(name, 0, math.MaxUint64)
}

// ReadRange returns up to n bytes of the file name from byte off.
func (a *Archive) ReadRange(name string, off, n uint64) ([]byte, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil, ErrClosed
	}
	name = Normalize(name)
	st, ok, err := a.tree.get(split(name))
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, notFound(name)
	}
	if a.isModified(name) {
		return nil, fmt.Errorf("%w: %s", ErrModified, name)
	}
	if off >= st.Size || n == 0 {
		return []byte{}, nil
	}
	n = min(n, st.Size-off)
	if a.content == nil {
		return nil, fmt.Errorf("%w: content feed not yet known", ErrNotFound)
	}
	// The Stat's size comes from the metadata, which a peer wrote: grow
	// with the blocks actually read rather than trust it up front.
	out := make([]byte, 0, min(n, 1<<20))
	pos := uint64(0) // file offset of the current block
	for b := st.Offset; b < st.Offset+st.Blocks && uint64(len(out)) < n; b++ {
		blk, err := a.content.Get(b)
		if err != nil {
			return nil, a.contentError(name, err)
		}
		bstart, bend := pos, pos+uint64(len(blk))
		pos = bend
		if bend <= off {
			continue
		}
		lo := uint64(0)
		if off > bstart {
			lo = off - bstart
		}
		hi := min(uint64(len(blk)), lo+n-uint64(len(out)))
		out = append(out, blk[lo:hi]...)
	}
	if uint64(len(out)) != n {
		return nil, fmt.Errorf("%w: %s: its blocks hold %d bytes, not %d", ErrCorrupt, name, pos, st.Size)
	}
	return out, nil
}

// isModified reports whether the real file name was found changed at open
// (and not rewritten since); a checkout asks its archive.
func (a *Archive) isModified(name string) bool {
	if a.files != nil && a.files.isLost(name) {
		return true
	}
	if a.checkoutOf != nil {
		a.checkoutOf.mu.Lock()
		defer a.checkoutOf.mu.Unlock()
		return a.checkoutOf.modified[name]
	}
	return a.modified[name]
}

func (a *Archive) contentError(name string, err error) error {
	switch {
	case a.files != nil && (errors.Is(err, hypercore.ErrCorrupt) || errors.Is(err, ErrModified)):
		return fmt.Errorf("%w: %s: %v", ErrModified, name, err)
	case errors.Is(err, hypercore.ErrNotFound):
		return fmt.Errorf("%w: %s: content not downloaded: %v", ErrNotFound, name, err)
	}
	return fmt.Errorf("hyperdrive: %s: %w", name, err)
}

// HistoryEntry is one change in the archive's history.
type HistoryEntry struct {
	Version uint64
	Type    string // "put" or "del"
	Name    string
	Stat    *Stat // nil for "del"
}

// History returns the changes from version start (1 is the first) to the
// archive's (or checkout's) version.
func (a *Archive) History(start uint64) ([]HistoryEntry, error) { return a.HistoryRange(start, 0) }

// HistoryRange is History of the versions from start up to, not including,
// end (to the last if end is 0): it reads only those entries.
func (a *Archive) HistoryRange(start, end uint64) ([]HistoryEntry, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	start = max(start, 1)
	last := a.Version()
	if end != 0 && end-1 < last {
		last = end - 1
	}
	var out []HistoryEntry
	for seq := start; seq <= last; seq++ {
		e, err := a.entries.get(seq)
		if err != nil {
			return nil, err
		}
		h := HistoryEntry{Version: seq, Type: "del", Name: e.name}
		if e.node.HasValue {
			st, err := decodeStat(e.node.Value)
			if err != nil {
				return nil, fmt.Errorf("%w: entry %d: %v", ErrCorrupt, seq, err)
			}
			h.Type, h.Stat = "put", &st
		}
		out = append(out, h)
	}
	return out, nil
}

// Sync makes everything written durable: the content first (the files'
// bytes, then the feed), then the metadata that points at it. Writes do not
// sync by themselves, so that a caller with its own write-ahead record (as
// NodeVMS's call log is) pays for one flush per group of writes.
func (a *Archive) Sync() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.txn) > 0 {
		return ErrInTransaction
	}
	return a.syncLocked()
}

// Sign signs what was committed since the last signature, content first,
// and shows it to peers; it does nothing unless the archive was opened
// with DeferSignatures. Sync signs too.
func (a *Archive) Sign() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.txn) > 0 {
		return ErrInTransaction
	}
	if a.content != nil {
		if err := a.content.Sign(); err != nil {
			return err
		}
	}
	return a.metadata.Sign()
}

func (a *Archive) syncLocked() error {
	var ops []folderOp
	if a.files != nil {
		var err error
		if ops, err = a.files.prepareSync(a.metadata.Length()); err != nil {
			return err
		}
	}
	if a.content != nil {
		if err := a.content.Sync(); err != nil {
			a.requeueFolder(ops)
			return err
		}
	}
	if err := a.metadata.Sync(); err != nil {
		a.requeueFolder(ops)
		return err
	}
	if a.files != nil {
		return a.files.finishSync(ops)
	}
	return nil
}

// requeueFolder keeps the folder changes of a Sync that failed before the
// metadata was durable for the next Sync (see realFiles.requeue).
func (a *Archive) requeueFolder(ops []folderOp) {
	if a.files != nil {
		a.files.requeue(ops)
	}
}

// Close closes the archive's feeds. Closing a checkout does nothing.
func (a *Archive) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed || a.checkoutOf != nil {
		a.closed = true
		return nil
	}
	var err error
	for len(a.txn) > 0 && err == nil {
		// Uncommitted writes do not survive a close.
		err = a.rollbackLocked()
	}
	serr := a.syncLocked()
	if err == nil && !a.readOnly {
		err = serr
	}
	a.closed = true
	closeFeed := (*hypercore.Feed).Close
	if serr != nil && !a.readOnly {
		// The folder, or the content, could not be made durable: closing
		// the feeds would sync the metadata ahead of them. Leave them as
		// a crash would; the next open recovers.
		closeFeed = (*hypercore.Feed).Abandon
	}
	if a.content != nil {
		if cerr := closeFeed(a.content); err == nil {
			err = cerr
		}
	}
	if merr := closeFeed(a.metadata); err == nil {
		err = merr
	}
	return err
}
