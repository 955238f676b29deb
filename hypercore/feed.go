package hypercore

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"runtime"
	"sync"
	"time"

	"github.com/nodevms/nodevms/hypercore/bitfield"
	"github.com/nodevms/nodevms/hypercore/flat"
	"github.com/nodevms/nodevms/hypercore/merkle"
	"github.com/nodevms/nodevms/hypercore/sleep"
	"github.com/nodevms/nodevms/hypercore/wire"
)

// Config says which feed to open and how.
type Config struct {
	// Storage holds the feed's files. Required.
	Storage Storage

	// PublicKey is the feed to open. When the storage already holds a feed,
	// a different key is an error (ErrKeyMismatch). When it holds none, a
	// public key without a secret key creates a replica.
	PublicKey ed25519.PublicKey

	// SecretKey makes the feed writable. When creating a feed with neither
	// key, a key pair is generated from Rand.
	SecretKey ed25519.PrivateKey

	// Create creates the feed if the storage holds none; otherwise opening
	// an empty storage fails with ErrNoFeed.
	Create bool

	// ReadOnly never writes to the storage, not even headers, and makes the
	// feed not writable even when the secret key is at hand. Use it with a
	// read-only Storage to inspect a feed's files.
	ReadOnly bool

	// DiscardSecretKey keeps the secret key out of the storage (as
	// hyperdrive does for the content feed, whose key it derives).
	DiscardSecretKey bool

	// Rand is the source of generated keys; crypto/rand if nil.
	Rand io.Reader

	// AnnounceOnSync shows peers only what has been synced: appends are
	// announced by the Sync that makes them durable, not as they are made.
	// For a write-ahead log, so that no peer ever sees an entry a crash
	// could lose.
	AnnounceOnSync bool

	// NoFsync makes Sync write everything (the bitfield included) without
	// waiting for the disk: the operating system's buffers only, which a
	// power cut can lose. For benchmarks that compare with systems that do
	// the same.
	NoFsync bool

	// UnsignedWrites lets a feed opened without its secret key append, with
	// no signatures: a private copy that replays another writer's appends,
	// so that its tree hashes can be compared with the writer's signed
	// ones. Such a feed must never be served to peers.
	UnsignedWrites bool

	// LineLog says every block is a line (ends with its only "\n"), as
	// JSON values are: Sync then makes only the data file durable, and
	// Open redoes the rest from it after a crash (see linelog.go). Writable
	// feeds only.
	LineLog bool

	// Preallocate, for a line log that fsyncs, grows the data file ahead of
	// the appends, this many zero bytes at a time, so that the fsync after
	// an append has only data to write. An fsync that must also record a
	// larger file writes the inode too (or commits the journal): on our
	// ext4 disks that made it about 1.6 times as slow (260 against 165 us).
	// A line log's lines hold no NUL byte, so after a crash Open reads the
	// zeros as the log's end; Open and Close cut them off, so a closed
	// feed's data file is its data and nothing else, as the reference
	// writes it. If the zeros do not fit on the disk, the feed stops
	// preallocating rather than fail the append.
	Preallocate int64

	// DeferSignatures makes Append (and Release) leave the tree unsigned
	// and unshown to peers until Sign, which signs everything appended
	// since, once. For a writer that appends far more often than anyone
	// needs to see a new signed head: NodeVMS's call log and files archive,
	// changed by every group of calls and signed every few milliseconds.
	// Sync and Close sign first, so the files are signed at their end,
	// except a line log's Sync: after a crash, Open re-signs its lines from
	// the data. Writable feeds only.
	DeferSignatures bool

	// WriteBack keeps the writes to the tree, signatures and bitfield
	// files in memory and writes them out together: when Sign signs (the
	// tree and signatures), at Sync (except for a line log, whose Sync
	// makes only the data durable), at Close, and when a few megabytes
	// are pending. A writer's appends then cost one write to the data
	// file instead of three or four small ones, and so do a replica's
	// downloaded blocks. Reads see pending writes.
	WriteBack bool

	// CheckAllReads makes GetUnchecked check blocks against their hashes
	// too. Use it when the data file can change behind the feed's back (a
	// hyperdrive whose content lives in ordinary files that anyone can
	// edit), so that edited bytes are never served to peers.
	CheckAllReads bool
}

// Feed is a hypercore: an append-only log of blocks whose Merkle tree roots
// are signed by the writer. A Feed is safe for concurrent use.
type Feed struct {
	mu sync.Mutex
	feedState
	changed chan struct{} // closed and dropped whenever the feed changes; made on demand
}

// feedState is everything of a Feed that its files decide: Reopen replaces
// it whole with a fresh open's.
type feedState struct {
	storage  Storage
	readOnly bool
	closed   bool

	key, secretKey, tree, data, bits, signatures File

	publicKey    ed25519.PublicKey
	privateKey   ed25519.PrivateKey // nil unless writable
	discoveryKey [DiscoveryKeySize]byte

	checkAllReads bool
	unsigned      bool         // appends without signatures (Config.UnsignedWrites)
	reclaimed     error        // why Open rebuilt the bitfield, if it did
	wrapData      bool         // the data file goes behind a write-back buffer too
	lineLog       bool         // see Config.LineLog
	preallocate   int64        // see Config.Preallocate; 0 unless a line log that fsyncs
	dataEnd       uint64       // how far the data file may reach past byteLength (Preallocate's zeros); cutData cuts it back
	deferSign     bool         // see Config.DeferSignatures
	writeBacks    []*writeBack // the files Config.WriteBack wraps
	keysDurable   bool         // the key files have been synced

	bitfield *bitfield.Bitfield
	treeBits *bitfield.TreeIndex

	length     uint64
	byteLength uint64
	gen        *merkle.Generator // the writer's roots; nil for replicas
	hasher     *merkle.Hasher
	nodes      nodeCache
	lastRead   blockSpan // the last block dataOffset placed: reads and downloads go forward
	scratch    scratch   // buffers reused by Append
	entryBuf   [sleep.TreeEntrySize]byte
	syncNeeded bool          // files written since the last Sync
	failed     error         // set by the first failed write; see fail
	held       []*hold       // open holds, outermost first
	stage      *stage        // what appends wrote during the holds; nil without one
	spareStage *stage        // an emptied stage for the next hold (recycleStage)
	lastFlush  time.Time     // when a signature last flushed the write-backs (storeSignature)
	flushEvery time.Duration // writeBackEvery, unless a test sets it

	announceOnSync bool
	noFsync        bool
	synced         uint64 // the length at the last Sync
	signedLength   uint64 // the length whose tree is signed (DeferSignatures)
	rollbacks      uint64 // Rollbacks so far, so that Sign can tell its tree was undone

	cfg Config // what Open was given, for Reopen
}

// Open opens (or, with cfg.Create, creates) a feed. Opening checks the stored
// files for consistency: the headers, the key pair, the tree nodes of the
// roots, and the last signature over them; a feed that fails a check is not
// opened and the error wraps ErrCorrupt.
func Open(cfg Config) (*Feed, error) {
	if cfg.Storage == nil {
		return nil, errors.New("hypercore: no storage")
	}
	f := &Feed{}
	if err := f.openState(cfg); err != nil {
		return nil, err
	}
	return f, nil
}

// openState opens the feed's files into a fresh state.
func (f *Feed) openState(cfg Config) error {
	f.feedState = feedState{
		storage:  cfg.Storage,
		readOnly: cfg.ReadOnly,
		hasher:   merkle.NewHasher(),

		checkAllReads:  cfg.CheckAllReads,
		announceOnSync: cfg.AnnounceOnSync,
		noFsync:        cfg.NoFsync,
		flushEvery:     writeBackEvery,
		cfg:            cfg,
	}
	if err := f.open(cfg); err != nil {
		f.closeFiles()
		return err
	}
	f.synced = f.length
	f.cfg.Create = false
	return nil
}

func (f *Feed) openFile(name string, create bool) (File, error) {
	file, err := f.storage.Open(name, create && !f.readOnly)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("hypercore: open %s: %w", name, err)
	}
	return file, nil
}

func (f *Feed) open(cfg Config) error {
	var err error
	if f.key, err = f.openFile("key", false); err != nil {
		return err
	}
	storedKey, err := readWhole(f.key, "key", PublicKeySize)
	if err != nil {
		return err
	}
	if f.secretKey, err = f.openFile("secret_key", false); err != nil {
		return err
	}
	storedSecret, err := readWhole(f.secretKey, "secret_key", SecretKeySize)
	if err != nil {
		return err
	}

	isNew := storedKey == nil
	if isNew && !cfg.Create {
		return ErrNoFeed
	}
	switch {
	case !isNew:
		f.publicKey = storedKey
		if cfg.PublicKey != nil && !f.publicKey.Equal(cfg.PublicKey) {
			return fmt.Errorf("%w: another feed is stored here", ErrKeyMismatch)
		}
	case cfg.PublicKey != nil:
		if len(cfg.PublicKey) != PublicKeySize {
			return fmt.Errorf("hypercore: public key of %d bytes", len(cfg.PublicKey))
		}
		f.publicKey = append(ed25519.PublicKey(nil), cfg.PublicKey...)
	case cfg.SecretKey != nil:
		if len(cfg.SecretKey) != SecretKeySize {
			return fmt.Errorf("hypercore: secret key of %d bytes", len(cfg.SecretKey))
		}
		f.publicKey = append(ed25519.PublicKey(nil), cfg.SecretKey[SeedSize:]...)
	default:
		kp, err := GenerateKeyPair(cfg.Rand)
		if err != nil {
			return err
		}
		f.publicKey, cfg.SecretKey = kp.PublicKey, kp.SecretKey
	}
	f.discoveryKey = DiscoveryKey(f.publicKey)

	secret := cfg.SecretKey
	if secret == nil && storedSecret != nil {
		secret = storedSecret
	}
	if secret != nil && !secretKeyMatches(secret, f.publicKey) {
		return fmt.Errorf("%w: the secret key does not belong to the public key", ErrKeyMismatch)
	}
	if storedSecret != nil && secret != nil && !bytes.Equal(storedSecret, secret) {
		return fmt.Errorf("%w: the stored secret key differs from the one given", ErrKeyMismatch)
	}
	if !f.readOnly && secret != nil {
		f.privateKey = append(ed25519.PrivateKey(nil), secret...)
	}

	f.unsigned = cfg.UnsignedWrites && f.privateKey == nil && !f.readOnly
	if err := f.openSleepFiles(isNew, cfg.WriteBack && !f.readOnly); err != nil {
		return err
	}
	f.lineLog = cfg.LineLog && f.privateKey != nil && !f.readOnly
	if f.lineLog && !f.noFsync && cfg.Preallocate > 0 {
		f.preallocate = cfg.Preallocate
	}
	if err := f.loadState(); err != nil && !f.lineLog {
		return err
	} else if f.lineLog && f.data != nil {
		f.mu.Lock()
		err := f.recoverLines(err)
		f.mu.Unlock()
		if err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	if cfg.DeferSignatures && f.privateKey != nil && !f.readOnly {
		f.deferSign = true
		f.signedLength = f.length // Open checked, or recoverLines made, its signature
	}

	if f.readOnly {
		return nil
	}
	if isNew {
		if f.key, err = f.openFile("key", true); err != nil {
			return err
		}
		if _, err := f.key.WriteAt(f.publicKey, 0); err != nil {
			return fmt.Errorf("hypercore: write key: %w", err)
		}
	}
	if f.privateKey != nil && storedSecret == nil && !cfg.DiscardSecretKey {
		if f.secretKey, err = f.openFile("secret_key", true); err != nil {
			return err
		}
		if _, err := f.secretKey.WriteAt(f.privateKey, 0); err != nil {
			return fmt.Errorf("hypercore: write secret key: %w", err)
		}
	}
	f.syncNeeded = true
	return nil
}

// readWhole reads a key file, which must be exactly size bytes; a missing
// file gives nil.
func readWhole(file File, name string, size int) ([]byte, error) {
	if file == nil {
		return nil, nil
	}
	n, err := file.Size()
	if err != nil {
		return nil, fmt.Errorf("hypercore: %s: %w", name, err)
	}
	if n != int64(size) {
		return nil, fmt.Errorf("%w: %s file has %d bytes, want %d", ErrCorrupt, name, n, size)
	}
	buf := make([]byte, size)
	if _, err := file.ReadAt(buf, 0); err != nil {
		return nil, fmt.Errorf("hypercore: read %s: %w", name, err)
	}
	return buf, nil
}

// openSleepFiles opens tree, signatures and bitfield, checking their headers
// or writing them to new files; with writeBack it wraps them (see
// Config.WriteBack).
func (f *Feed) openSleepFiles(isNew, writeBack bool) error {
	var err error
	if f.tree, err = f.openFile("tree", true); err != nil {
		return err
	}
	if f.signatures, err = f.openFile("signatures", true); err != nil {
		return err
	}
	if f.bits, err = f.openFile("bitfield", true); err != nil {
		return err
	}
	if f.data, err = f.openFile("data", false); err != nil {
		return err
	}
	if !isNew && (f.tree == nil || f.signatures == nil || f.bits == nil) {
		return fmt.Errorf("%w: the key is stored but tree, signatures or bitfield is missing", ErrCorrupt)
	}
	if writeBack && f.tree != nil {
		for _, file := range []*File{&f.tree, &f.signatures, &f.bits} {
			if err := f.wrapWriteBack(file); err != nil {
				return err
			}
		}
		// A replica's, or an unsigned writer's, data too: its blocks
		// are small writes at the end of the file as well. (A signed
		// writer's data file is where Sync's durability starts, and may
		// be a folder of real files: it is left as it is.)
		f.wrapData = f.privateKey == nil
		if f.wrapData && f.data != nil {
			if err := f.wrapWriteBack(&f.data); err != nil {
				return err
			}
		}
	}
	if f.tree == nil { // read-only, nothing stored
		return ErrNoFeed
	}
	if err := f.checkHeader(f.tree, "tree", sleep.TreeHeader); err != nil {
		return err
	}
	if err := f.checkHeader(f.signatures, "signatures", sleep.SignaturesHeader); err != nil {
		return err
	}
	return f.checkHeader(f.bits, "bitfield", sleep.BitfieldHeader(bitfield.PageSize))
}

// wrapWriteBack puts *file behind a write-back buffer (Config.WriteBack),
// flushed before the bitfield that claims what it holds (flushWriteBacks
// goes in order: tree, signatures, bitfield, then the data if wrapped).
func (f *Feed) wrapWriteBack(file *File) error {
	w, err := newWriteBack(*file)
	if err != nil {
		return err
	}
	*file = w
	f.writeBacks = append(f.writeBacks, w)
	return nil
}

// openData opens the data file, creating it, on a feed's first block.
func (f *Feed) openData() (File, error) {
	data, err := f.openFile("data", true)
	if err != nil || !f.wrapData {
		return data, err
	}
	if err := f.wrapWriteBack(&data); err != nil {
		data.Close()
		return nil, err
	}
	return data, nil
}

// checkHeader checks the header of a SLEEP file, writing it if the file is
// empty. For the bitfield, the page size is whatever the file says.
func (f *Feed) checkHeader(file File, name string, want sleep.Header) error {
	size, err := file.Size()
	if err != nil {
		return fmt.Errorf("hypercore: %s: %w", name, err)
	}
	if size == 0 {
		if f.readOnly {
			return nil
		}
		h := want.Encode()
		if _, err := file.WriteAt(h[:], 0); err != nil {
			return fmt.Errorf("hypercore: write %s header: %w", name, err)
		}
		return nil
	}
	var buf [sleep.HeaderSize]byte
	if _, err := file.ReadAt(buf[:], 0); err != nil {
		return fmt.Errorf("%w: %s: reading header: %v", ErrCorrupt, name, err)
	}
	h, err := sleep.ParseHeader(buf[:])
	if err == nil {
		err = h.Check(want)
	}
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrCorrupt, name, err)
	}
	return nil
}

// loadState reads the bitfield, derives the feed's length from its tree bits,
// and checks the roots and their signature. A writer's bitfield that a
// crash tore is rebuilt (see reclaim).
func (f *Feed) loadState() error {
	torn, err := f.loadBitfield()
	if err != nil {
		return err
	}
	err = f.deriveState()
	if f.privateKey == nil || f.lineLog {
		// A line log redoes its state from its data (recoverLines); a
		// replica's claims are its own to keep or download again.
		return err
	}
	if torn == nil {
		torn = f.checkClaims()
	}
	if torn == nil {
		// Claims that hang together but do not check (a signature or
		// tree node changed on disk) are damage, not a torn write.
		return err
	}
	return f.reclaim(torn)
}

// loadBitfield reads the bitfield file's pages. A last page cut short (a
// crash can stop a write at any 4 KiB boundary of the file) is read as if
// the rest were zeros, and reported in torn.
func (f *Feed) loadBitfield() (torn, err error) {
	pageSize := bitfield.PageSize
	size, err := f.bits.Size()
	if err != nil {
		return nil, fmt.Errorf("hypercore: bitfield: %w", err)
	}
	var pages [][]byte
	if size > 0 {
		var hb [sleep.HeaderSize]byte
		if _, err := f.bits.ReadAt(hb[:], 0); err != nil {
			return nil, fmt.Errorf("%w: bitfield: %v", ErrCorrupt, err)
		}
		h, _ := sleep.ParseHeader(hb[:]) // checked in openSleepFiles
		pageSize = int(h.EntrySize)
		body := size - sleep.HeaderSize
		if rest := body % int64(pageSize); rest != 0 {
			torn = fmt.Errorf("%w: bitfield: %d bytes after the header is not a whole number of %d-byte pages", ErrCorrupt, body, pageSize)
			body += int64(pageSize) - rest
		}
		buf := make([]byte, body)
		if _, err := f.bits.ReadAt(buf, sleep.HeaderSize); err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: bitfield: %v", ErrCorrupt, err)
		}
		for off := 0; off < len(buf); off += pageSize {
			pages = append(pages, buf[off:off+pageSize])
		}
	}
	f.bitfield, err = bitfield.Load(pageSize, pages)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	f.treeBits = f.bitfield.Tree()
	return torn, nil
}

// deriveState sets the feed's length from the tree bits and checks what
// the bitfield claims: the roots, their signature and, if the last block is
// claimed, that the tree and data files are long enough to hold them.
func (f *Feed) deriveState() error {
	f.length = f.treeBits.Blocks()
	f.byteLength = 0
	roots, err := f.rootsOf(f.length)
	if err != nil {
		return fmt.Errorf("%w: roots of length %d: %w", ErrCorrupt, f.length, err)
	}
	for _, r := range roots {
		f.byteLength += r.Size
	}
	if f.length > 0 && !f.unsigned {
		if err := f.checkSigned(f.length, roots); err != nil {
			return err
		}
		if f.bitfield.Get(f.length - 1) {
			// The writer (or a full replica) has every block: the last leaf
			// and the data must be there too.
			if err := f.checkStored(f.length, f.byteLength); err != nil {
				return err
			}
		}
	}
	if f.privateKey != nil || f.unsigned {
		f.gen = merkle.NewGenerator(roots)
	}
	return nil
}

// checkSigned checks that the signature stored at length-1 signs roots.
func (f *Feed) checkSigned(length uint64, roots []merkle.Node) error {
	sig, err := f.readSignature(length - 1)
	if err != nil {
		return fmt.Errorf("%w: signature of length %d: %w", ErrCorrupt, length, err)
	}
	th := f.hasher.Tree(roots)
	if !ed25519.Verify(f.publicKey, th[:], sig) {
		return fmt.Errorf("%w: the signature of length %d does not match the stored tree", ErrCorrupt, length)
	}
	return nil
}

// checkStored checks that the tree and data files are long enough for
// length blocks of byteLength bytes.
func (f *Feed) checkStored(length, byteLength uint64) error {
	if n, err := f.tree.Size(); err != nil {
		return fmt.Errorf("hypercore: tree: %w", err)
	} else if n < sleep.TreeOffset(2*length-1) {
		return fmt.Errorf("%w: tree file has %d bytes, too short for %d blocks", ErrCorrupt, n, length)
	}
	n := int64(0)
	if f.data != nil {
		var err error
		if n, err = f.data.Size(); err != nil {
			return fmt.Errorf("hypercore: data: %w", err)
		}
	}
	if uint64(n) < byteLength {
		return fmt.Errorf("%w: data file has %d bytes, the tree says %d", ErrCorrupt, n, byteLength)
	}
	return nil
}

// PublicKey returns the feed's public key.
func (f *Feed) PublicKey() ed25519.PublicKey { return f.publicKey }

// DiscoveryKey returns the feed's discovery key.
func (f *Feed) DiscoveryKey() [DiscoveryKeySize]byte { return f.discoveryKey }

// TreeHash returns the hash of the tree of the first length blocks: what
// the writer signs.
func (f *Feed) TreeHash(length uint64) ([32]byte, error) {
	f.mu.Lock()
	if f.gen != nil && length == f.length {
		// A writer's own head, asked for after every call by NodeVMS: the
		// generator holds its roots.
		th := f.gen.TreeHash()
		f.mu.Unlock()
		return th, nil
	}
	f.mu.Unlock()
	roots, err := f.Roots(length)
	if err != nil {
		return [32]byte{}, err
	}
	return merkle.NewHasher().Tree(roots), nil
}

// SecretKey returns the feed's secret key, or nil if it is not writable.
func (f *Feed) SecretKey() ed25519.PrivateKey { return f.privateKey }

// Writable reports whether this side can append.
func (f *Feed) Writable() bool { return f.privateKey != nil || f.unsigned }

// Length returns the number of blocks in the feed, as far as this side has
// verified (a replica may hold only some of them).
func (f *Feed) Length() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.length
}

// ByteLength returns the number of data bytes in the feed's Length blocks.
func (f *Feed) ByteLength() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.byteLength
}

// Has reports whether block i is stored here.
func (f *Feed) Has(i uint64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.bitfield.Get(i)
}

// HasAll reports whether blocks start to end-1 are all stored here.
func (f *Feed) HasAll(start, end uint64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := start; i < end; i++ {
		if !f.bitfield.Get(i) {
			return false
		}
	}
	return true
}

// Changed returns a channel that is closed the next time the feed changes
// (an append, or a block stored by Put), or when it is closed. Get a new
// channel after each change.
func (f *Feed) Changed() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.changedLocked()
}

// changedLocked returns the change channel, making it on first use: most
// changes have nobody waiting, and then cost no allocation.
func (f *Feed) changedLocked() chan struct{} {
	if f.changed == nil {
		f.changed = make(chan struct{})
		if f.closed {
			close(f.changed)
		}
	}
	return f.changed
}

func (f *Feed) notify() {
	if f.changed != nil {
		close(f.changed)
		f.changed = nil
	}
}

// Append adds blocks to the feed as one batch, signed once over the tree
// after its last block, and returns the index of its first block. Append
// writes to the files but does not wait for them to reach the disk: call Sync
// for that. An empty batch changes nothing.
func (f *Feed) Append(blocks ...[]byte) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.writableLocked(); err != nil {
		return 0, err
	}
	start := f.length
	if len(blocks) == 0 {
		return start, nil
	}
	if f.lineLog {
		if err := checkLines(blocks); err != nil {
			return 0, err
		}
	}

	n := uint64(len(blocks))
	// Signing, writing the data and writing the tree entries are
	// independent. For a large batch they run side by side; the data goes
	// past the feed's end, where nothing claims it until the append
	// completes. For a small batch goroutines cost more than they save:
	// the data is written first, so that a line log's writeback (see
	// writeData) overlaps the hashing.
	small := n < 256
	staged := f.stage != nil // a held append is staged, not written: see Hold
	if staged {
		small = true
	}
	// During a hold nothing is shown, so only the tree the hold ends with
	// needs a signature (Release signs it): a group of calls costs one
	// signature, not one per write. An unsigned append (a replica that
	// writes, a hold) does not hash the roots either.
	signs := f.privateKey != nil && len(f.held) == 0 && !f.deferSign
	var dataErr error
	if small && !staged {
		dataErr = f.writeData(f.scratch.data(blocks))
	}
	nodeOffset := 2 * start
	treeBatch := f.scratch.tree(int((2*n - 1) * sleep.TreeEntrySize))
	var outside []merkle.Node // completed parents left of the batch
	// A few blocks (a call's entry) are hashed on this goroutine, and
	// their nodes are cached: the next receipts' proofs and the peers
	// that download the new blocks need them, and without the cache they
	// would be read back from the tree file.
	serial := n < merkle.ParallelThreshold
	// Nodes inside the batch go straight into their tree entries (visit runs
	// on several goroutines; their slots are disjoint). Parents left of the
	// batch join it to the older roots and are visited on this goroutine.
	f.gen.AppendBatch(blocks, runtime.GOMAXPROCS(0), func(nd merkle.Node) {
		if serial {
			f.nodes.put(nd)
		}
		if nd.Index >= nodeOffset {
			sleep.EncodeTreeEntry(treeBatch[(nd.Index-nodeOffset)*sleep.TreeEntrySize:], nd.Hash, nd.Size)
		} else {
			outside = append(outside, nd)
		}
	})
	byteLength := f.byteLength
	for _, b := range blocks {
		byteLength += uint64(len(b))
	}
	var sig []byte
	sign := func() {
		if signs {
			th := f.gen.TreeHash()
			sig = ed25519.Sign(f.privateKey, th[:])
		}
	}
	var dataWritten, signed chan struct{}
	if small {
		sign()
	} else {
		dataWritten, signed = make(chan struct{}), make(chan struct{})
		go func() { dataErr = f.writeData(f.scratch.data(blocks)); close(dataWritten) }()
		go func() { sign(); close(signed) }()
	}
	var err error
	if staged {
		f.stage.append(f.scratch.data(blocks), treeBatch, nodeOffset, outside)
	} else {
		err = f.writeTree(treeBatch, nodeOffset, outside)
	}
	// The bitfield is marked while the data and signature are on their
	// way: if a write fails the feed fails (see failed), so these marks are
	// never written to disk, and reads stop at f.length, which only grows
	// below.
	for i := uint64(0); i < n; i++ {
		f.bitfield.Set(start+i, true)
		f.treeBits.Set(2 * (start + i))
	}
	if !small {
		<-dataWritten
		<-signed
	}
	if err == nil {
		err = dataErr
	}
	if err == nil && sig != nil {
		err = f.writeSignature(sig, start+n-1)
	}
	if err != nil {
		return 0, f.fail(err)
	}
	for _, r := range f.gen.Roots() {
		f.nodes.put(r)
	}
	f.length += n
	f.byteLength = byteLength
	f.syncNeeded = true
	if len(f.held) == 0 && !f.announceOnSync && !f.deferSign {
		f.notify()
	}
	return start, nil
}

// writableLocked returns why the feed takes no writes now, if it does
// not: closed, not the writer's, or failed.
func (f *Feed) writableLocked() error {
	switch {
	case f.closed:
		return ErrClosed
	case f.privateKey == nil && !f.unsigned:
		return ErrNotWritable
	}
	return f.failed
}

// writeTree writes a batch's tree entries the way the reference does: the
// parents left of the batch one by one, then the entries from the batch's
// first leaf to its last (zeros where a parent is not complete yet).
func (f *Feed) writeTree(treeBatch []byte, nodeOffset uint64, outside []merkle.Node) error {
	var entry [sleep.TreeEntrySize]byte
	for _, nd := range outside {
		sleep.EncodeTreeEntry(entry[:], nd.Hash, nd.Size)
		if _, err := f.tree.WriteAt(entry[:], sleep.TreeOffset(nd.Index)); err != nil {
			return fmt.Errorf("hypercore: write tree: %w", err)
		}
	}
	if _, err := f.tree.WriteAt(treeBatch, sleep.TreeOffset(nodeOffset)); err != nil {
		return fmt.Errorf("hypercore: write tree: %w", err)
	}
	return nil
}

// writeSignature stores the signature of the tree of i+1 blocks.
func (f *Feed) writeSignature(sig []byte, i uint64) error {
	if _, err := f.signatures.WriteAt(sig, sleep.SignatureOffset(i)); err != nil {
		return fmt.Errorf("hypercore: write signature: %w", err)
	}
	return nil
}

// writeData writes an append's data at the end of the data file.
func (f *Feed) writeData(data []byte) error {
	if len(data) == 0 {
		return nil
	}
	if f.data == nil {
		var err error
		if f.data, err = f.openData(); err != nil {
			return err
		}
	}
	end := f.byteLength + uint64(len(data))
	if f.preallocate > 0 && end > f.dataEnd {
		// Zeros first: the fsync that makes this append durable then
		// records the new size once for the appends of a whole chunk.
		grown := end + uint64(f.preallocate)
		if _, err := f.data.WriteAt(make([]byte, grown-f.dataEnd), int64(f.dataEnd)); err != nil {
			// A full disk may still hold the append itself: go on
			// without preallocating. Whatever zeros were written are
			// past the log's end, and cutData cuts them off.
			f.preallocate = 0
		}
		f.dataEnd = grown
	}
	if _, err := f.data.WriteAt(data, int64(f.byteLength)); err != nil {
		return fmt.Errorf("hypercore: write data: %w", err)
	}
	if f.lineLog && !f.noFsync {
		// The fsync in Sync will wait for these bytes: start them now,
		// so that the disk writes them while the append hashes and the
		// caller finishes its work. On our virtual disks, 25 us of work
		// in between took a write and fdatasync from about 135 to 90 us.
		// Only a hint: an error here shows again at Sync, which then
		// fails.
		if w, ok := f.data.(writebackStarter); ok {
			_ = w.StartWriteback(int64(f.byteLength), int64(len(data)))
		}
	}
	return nil
}

// cutData cuts the zeros Preallocate wrote past the log's end off the data
// file.
func (f *Feed) cutData() error {
	if f.dataEnd <= f.byteLength {
		return nil
	}
	t, ok := f.data.(truncater)
	if !ok {
		return errors.New("hypercore: the storage cannot truncate files")
	}
	if err := t.Truncate(int64(f.byteLength)); err != nil {
		return fmt.Errorf("hypercore: cutting the preallocated data: %w", err)
	}
	f.dataEnd = f.byteLength
	return nil
}

// fail records a failed write. From then on the feed refuses to write:
// its in-memory state may be ahead of its files, and after a failed write
// the operating system's view of the files cannot be trusted either (a
// later fsync may succeed without the lost write). What was synced before
// is intact on disk; reopening the feed recovers it.
func (f *Feed) fail(err error) error {
	f.failed = fmt.Errorf("%w: %w", ErrFailed, err)
	return f.failed
}

// Sync makes every change so far durable. It flushes the data, tree and
// signatures files first and only then writes the bitfield pages that claim
// the new blocks, so that after a crash the bitfield never claims a block
// whose bytes did not reach the disk.
func (f *Feed) Sync() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return ErrClosed
	}
	return f.sync()
}

func (f *Feed) sync() error {
	if f.failed != nil {
		return f.failed
	}
	if len(f.held) > 0 && f.syncNeeded {
		return ErrHeld
	}
	if f.readOnly || !f.syncNeeded {
		return nil
	}
	if f.deferSign && !f.lineLog {
		// What the bitfield claims on disk must end with a signature.
		if err := f.signLocked(); err != nil {
			return err
		}
	}
	if !f.lineLog {
		// The tree and signatures reach the file before the bitfield
		// that claims them.
		if err := f.flushWriteBacks(); err != nil {
			return f.fail(fmt.Errorf("sync: %w", err))
		}
	}
	for _, file := range []File{f.data, f.tree, f.signatures, f.key, f.secretKey} {
		keyFile := file == f.key || file == f.secretKey
		if file == nil || f.noFsync || f.lineLog && file != f.data && !(keyFile && !f.keysDurable) {
			continue
		}
		if err := syncFile(file, f.lineLog && file == f.data); err != nil {
			return f.fail(fmt.Errorf("sync: %w", err))
		}
	}
	pageSize := int64(f.bitfield.PageSize())
	if err := f.bitfield.WriteDirty(func(n uint64, page []byte) error {
		_, err := f.bits.WriteAt(page, sleep.HeaderSize+int64(n)*pageSize)
		return err
	}); err != nil {
		return f.fail(fmt.Errorf("write bitfield: %w", err))
	}
	if !f.lineLog {
		if err := f.flushWriteBacks(); err != nil { // the bitfield pages
			return f.fail(fmt.Errorf("sync: %w", err))
		}
	}
	if !f.noFsync && !f.lineLog {
		if err := f.bits.Sync(); err != nil {
			return f.fail(fmt.Errorf("sync bitfield: %w", err))
		}
	}
	f.syncNeeded = false
	f.keysDurable = true
	if f.length > f.synced {
		f.synced = f.length
		if f.announceOnSync {
			f.notify()
		}
	}
	return nil
}

// syncFile makes file durable; dataOnly says its data and size are all
// that must survive (a line log's data file, which records everything
// else itself).
func syncFile(file File, dataOnly bool) error {
	if d, ok := file.(dataSyncer); ok && dataOnly {
		return d.SyncData()
	}
	return file.Sync()
}

// Close syncs the feed and closes its files.
func (f *Feed) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil
	}
	f.dropStage()   // never written, so never acknowledged: as a crash would
	err := f.sync() // first: a signature must never cover what a crash could lose
	if err == nil && f.deferSign && len(f.held) == 0 {
		err = f.signLocked()
	}
	if err == nil && f.failed == nil {
		err = f.cutData()
	}
	if f.failed != nil {
		// What a failed feed holds in memory may be ahead of its files:
		// writing it out now could make the files claim blocks that are
		// not there.
		f.discardWriteBacks()
	}
	f.closed = true
	if cerr := f.closeFiles(); err == nil {
		err = cerr
	}
	f.notify()
	return err
}

// Abandon closes the feed without writing anything more: what was not
// synced is dropped, as a crash would drop it. For a writer whose other
// files could not be made durable (a files archive whose folder failed),
// so that this feed does not get ahead of them.
func (f *Feed) Abandon() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil
	}
	f.discardWriteBacks()
	f.closed = true
	err := f.closeFiles()
	f.notify()
	return err
}

func (f *Feed) closeFiles() error {
	var first error
	for _, file := range []*File{&f.key, &f.secretKey, &f.tree, &f.data, &f.bits, &f.signatures} {
		if *file == nil {
			continue
		}
		if err := (*file).Close(); err != nil && first == nil {
			first = err
		}
		*file = nil
	}
	return first
}

// Failed returns the failed write that makes the feed refuse writes until
// Reopen (wrapping ErrFailed), or nil.
func (f *Feed) Failed() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.failed
}

func (f *Feed) discardWriteBacks() {
	for _, w := range f.writeBacks {
		w.discard()
	}
}

// Reopen reads the feed again from its files, in place, as Open would: for
// a writer whose write failed (ErrFailed), once the cause is gone, such as
// a full disk with space again. What was synced before the failure is
// there, and what was not is gone, as after a crash (a line log keeps
// every line its data file holds). Peers' sessions and waiters keep the
// same *Feed. No hold may be open. If it fails, the feed stays failed,
// and Reopen may be tried again.
func (f *Feed) Reopen() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.closed:
		return ErrClosed
	case len(f.held) > 0:
		return ErrHeld
	}
	f.discardWriteBacks()
	rollbacks := f.rollbacks
	g := &Feed{}
	if err := g.openState(f.cfg); err != nil {
		// Still failed; its files stay open, so that peers can go on
		// reading what it has.
		f.failed = fmt.Errorf("%w: reopening: %w", ErrFailed, err)
		return f.failed
	}
	f.closeFiles()
	f.feedState = g.feedState
	// A Sign that began before is not to sign this tree.
	f.rollbacks = rollbacks + 1
	f.notify()
	return nil
}

// Get returns block i, or an error wrapping ErrNotFound if it is not stored
// here. The bytes are checked against the block's hash: bytes damaged or
// edited on disk give an error wrapping ErrCorrupt, never the bytes.
func (f *Feed) Get(i uint64) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, ErrClosed
	}
	return f.get(i)
}

// GetUnchecked returns block i like Get, but without checking its bytes
// against the block's hash. It is for serving blocks to peers, who verify
// every block they receive anyway (and drop a peer that sends a bad one),
// so that each byte served is not hashed twice.
func (f *Feed) GetUnchecked(i uint64) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, ErrClosed
	}
	return f.read(i, f.checkAllReads)
}

// Clear forgets blocks start to end-1: the bitfield no longer claims them,
// so they are neither read nor offered to peers, while the tree and the
// signatures, which other blocks' proofs need, stay. It is what hyperdrive
// does when the bytes of a replaced file are gone from the disk. The data
// file is left as it is; Sync makes the change durable.
func (f *Feed) Clear(start, end uint64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return ErrClosed
	}
	if f.readOnly {
		return ErrNotWritable
	}
	end = min(end, f.length)
	changed := false
	for i := start; i < end; i++ {
		if f.bitfield.Set(i, false) {
			changed = true
			if n := len(f.held); n > 0 {
				f.held[n-1].cleared = append(f.held[n-1].cleared, [2]uint64{i, i + 1})
			}
		}
	}
	if changed {
		f.syncNeeded = true
		if len(f.held) == 0 {
			f.notify()
		}
	}
	return nil
}

// Unclear undoes Clear for blocks [start, end) whose bytes the storage
// holds again, or still: a crash can make a Clear durable before the
// change that would have replaced the bytes. The blocks are read back at
// once and checked against the tree; a block that does not check is
// cleared again, and its error returned.
func (f *Feed) Unclear(start, end uint64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.closed:
		return ErrClosed
	case f.readOnly:
		return ErrNotWritable
	case len(f.held) > 0:
		return ErrHeld
	}
	end = min(end, f.length)
	for i := start; i < end; i++ {
		if f.bitfield.Get(i) {
			continue
		}
		f.bitfield.Set(i, true)
		f.syncNeeded = true
		if _, err := f.read(i, true); err != nil {
			f.bitfield.Set(i, false)
			return fmt.Errorf("block %d: %w", i, err)
		}
	}
	return nil
}

func (f *Feed) get(i uint64) ([]byte, error) { return f.read(i, true) }

// largeBlock is the block size above which read checks the data file's size
// before allocating.
const largeBlock = 1 << 20

func (f *Feed) read(i uint64, check bool) ([]byte, error) {
	if i >= f.length || !f.bitfield.Get(i) {
		return nil, fmt.Errorf("%w: block %d", ErrNotFound, i)
	}
	off, size, err := f.dataOffset(i, nil)
	if errors.Is(err, ErrNotFound) {
		// The bitfield says the block is here, so its nodes must be too.
		return nil, fmt.Errorf("%w: block %d: %v", ErrCorrupt, i, err)
	}
	if err != nil {
		return nil, err
	}
	buf, err := f.readData(i, off, size)
	if err != nil || !check {
		return buf, err
	}
	// Check the bytes against the block's tree node, so that data damaged
	// or edited on disk is reported instead of served. Empty blocks too: a
	// damaged tree can claim size 0 for a block that had bytes. The leaf
	// must be one the tree index claims, as Node requires.
	if !f.treeBits.Get(2 * i) {
		return nil, fmt.Errorf("%w: block %d: its leaf is not in the tree index", ErrCorrupt, i)
	}
	leaf, err := f.node(2 * i)
	if err != nil {
		return nil, fmt.Errorf("%w: block %d: %v", ErrCorrupt, i, err)
	}
	if f.hasher.Leaf(buf) != leaf.Hash {
		return nil, fmt.Errorf("%w: block %d does not match its hash", ErrCorrupt, i)
	}
	return buf, nil
}

// readData reads size bytes of block i at off in the data file.
func (f *Feed) readData(i, off, size uint64) ([]byte, error) {
	if size == 0 {
		return []byte{}, nil
	}
	if st := f.stage; st != nil && off >= st.byteLength {
		at := off - st.byteLength
		if at+size > uint64(len(st.data)) {
			return nil, fmt.Errorf("%w: block %d: %d bytes at %d, past the staged bytes", ErrCorrupt, i, size, off)
		}
		return bytes.Clone(st.data[at : at+size]), nil
	}
	if f.data == nil {
		return nil, fmt.Errorf("%w: block %d: no data file", ErrCorrupt, i)
	}
	if end := off + size; end < off || end > math.MaxInt64 {
		return nil, fmt.Errorf("%w: block %d: %d bytes at %d, past any file's end", ErrCorrupt, i, size, off)
	}
	if size > largeBlock {
		// Sizes come from the tree file; a damaged one must not make us
		// allocate more than the data file could hold. Small blocks skip the
		// stat, since ReadAt reports a short file anyway.
		dataSize, err := f.data.Size()
		if err != nil {
			return nil, err
		}
		if off+size > uint64(dataSize) {
			return nil, fmt.Errorf("%w: block %d: %d bytes at %d, past the data file's end", ErrCorrupt, i, size, off)
		}
	}
	buf := make([]byte, size)
	if _, err := f.data.ReadAt(buf, int64(off)); err != nil {
		return nil, fmt.Errorf("%w: block %d: %v", ErrCorrupt, i, err)
	}
	return buf, nil
}

// dataOffset returns where block i's bytes start in the data file and how
// many there are, from the sizes of the tree nodes left of it. Nodes in
// known are used before the stored ones.
func (f *Feed) dataOffset(i uint64, known []merkle.Node) (offset, size uint64, err error) {
	if last := f.lastRead; last.valid && (i == last.index || i == last.index+1) {
		// The block after the last one placed starts where it ended: one
		// node to read, not one per root to its left (a replica or a
		// replay reads a feed forward, block after block, and a download
		// stores it so).
		if i == last.index {
			return last.offset, last.size, nil
		}
		nd, err := f.nodeOrKnown(2*i, known)
		if err != nil {
			return 0, 0, err
		}
		f.lastRead = blockSpan{index: i, offset: last.offset + last.size, size: nd.Size, valid: true}
		return last.offset + last.size, nd.Size, nil
	}
	offset, size, err = f.dataOffsetFromRoots(i, known)
	if err == nil {
		f.lastRead = blockSpan{index: i, offset: offset, size: size, valid: true}
	}
	return offset, size, err
}

// blockSpan is where a block's bytes are in the data file.
type blockSpan struct {
	index, offset, size uint64
	valid               bool
}

// dataOffsetFromRoots is dataOffset from the sizes of the roots left of
// block i.
func (f *Feed) dataOffsetFromRoots(i uint64, known []merkle.Node) (offset, size uint64, err error) {
	var rootsBuf [64]uint64
	for _, r := range flat.AppendFullRoots(rootsBuf[:0], 2*i) {
		nd, err := f.nodeOrKnown(r, known)
		if err != nil {
			return 0, 0, err
		}
		offset += nd.Size
	}
	nd, err := f.nodeOrKnown(2*i, known)
	if err != nil {
		return 0, 0, err
	}
	return offset, nd.Size, nil
}

func (f *Feed) nodeOrKnown(i uint64, known []merkle.Node) (merkle.Node, error) {
	for _, nd := range known {
		if nd.Index == i {
			return nd, nil
		}
	}
	return f.node(i)
}

// node returns tree node i from the cache or the tree file.
func (f *Feed) node(i uint64) (merkle.Node, error) {
	if nd, ok := f.nodes.get(i); ok {
		return nd, nil
	}
	if f.stage != nil {
		if nd, ok := f.stage.nodes[i]; ok {
			return nd, nil
		}
	}
	buf := f.entryBuf[:] // the Feed's own: a local array would escape through ReadAt
	n, err := f.tree.ReadAt(buf, sleep.TreeOffset(i))
	if err != nil && !(errors.Is(err, io.EOF)) {
		return merkle.Node{}, fmt.Errorf("hypercore: read tree node %d: %w", i, err)
	}
	hash, size, ok := sleep.DecodeTreeEntry(buf[:n])
	if !ok {
		return merkle.Node{}, fmt.Errorf("%w: tree node %d", ErrNotFound, i)
	}
	nd := merkle.Node{Index: i, Hash: hash, Size: size}
	f.nodes.put(nd)
	return nd, nil
}

func (f *Feed) writeNode(nd merkle.Node) error {
	var entry [sleep.TreeEntrySize]byte
	sleep.EncodeTreeEntry(entry[:], nd.Hash, nd.Size)
	if _, err := f.tree.WriteAt(entry[:], sleep.TreeOffset(nd.Index)); err != nil {
		return fmt.Errorf("hypercore: write tree: %w", err)
	}
	f.nodes.put(nd)
	return nil
}

// rootsOf returns the root nodes of a feed of length blocks.
func (f *Feed) rootsOf(length uint64) ([]merkle.Node, error) {
	idx := flat.FullRoots(2 * length)
	roots := make([]merkle.Node, len(idx))
	for k, i := range idx {
		nd, err := f.node(i)
		if err != nil {
			return nil, err
		}
		roots[k] = nd
	}
	return roots, nil
}

// Roots returns the root nodes of the first length blocks of the feed, whose
// tree hash the signature at block length-1 signs.
func (f *Feed) Roots(length uint64) ([]merkle.Node, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, ErrClosed
	}
	for _, r := range flat.FullRoots(2 * length) {
		if !f.treeBits.Get(r) {
			return nil, fmt.Errorf("%w: root %d of length %d", ErrNotFound, r, length)
		}
	}
	return f.rootsOf(length)
}

func (f *Feed) readSignature(i uint64) ([]byte, error) {
	sig := make([]byte, SignatureSize)
	n, err := f.signatures.ReadAt(sig, sleep.SignatureOffset(i))
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("hypercore: read signature %d: %w", i, err)
	}
	if n < SignatureSize || sleep.IsBlank(sig) {
		return nil, fmt.Errorf("%w: signature %d", ErrNotFound, i)
	}
	return sig, nil
}

// Signature returns the first signature stored at or after block i, and the
// index it is stored at: the signature over the tree of that index + 1
// blocks, which proves block i.
func (f *Feed) Signature(i uint64) (sig []byte, at uint64, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, 0, ErrClosed
	}
	if i >= f.length {
		return nil, 0, fmt.Errorf("%w: no signature for block %d of %d", ErrNotFound, i, f.length)
	}
	for j := i; j < f.length; j++ {
		sig, err := f.readSignature(j)
		if err == nil {
			return sig, j, nil
		}
		if !errors.Is(err, ErrNotFound) {
			return nil, 0, err
		}
	}
	return nil, 0, fmt.Errorf("%w: no signature at or after block %d", ErrNotFound, i)
}

// nodeCache is a small direct-mapped cache of tree nodes: reads of recent
// blocks and proofs touch the same few nodes over and over.
type nodeCache struct {
	entries [1 << nodeCacheBits]struct {
		node  merkle.Node
		valid bool
	}
}

// slot spreads node indices over the cache. Not i modulo its size: the
// roots of a long feed are the nodes of large spans, whose indices all end
// in the same run of one bits (2^k-1 plus multiples of 2^(k+1)), and would
// all take one slot, evicting each other at every TreeHash.
func (c *nodeCache) slot(i uint64) uint64 {
	return (i * 0x9e3779b97f4a7c15) >> (64 - nodeCacheBits)
}

// nodeCacheBits is log2 of the cache's entries.
const nodeCacheBits = 10

func (c *nodeCache) get(i uint64) (merkle.Node, bool) {
	e := &c.entries[c.slot(i)]
	if e.valid && e.node.Index == i {
		return e.node, true
	}
	return merkle.Node{}, false
}

func (c *nodeCache) put(nd merkle.Node) {
	e := &c.entries[c.slot(nd.Index)]
	e.node, e.valid = nd, true
}

// AppendNodes appends to dst the tree nodes at indexes, in order, under
// one lock: Node for each, for a caller that needs several at once (a
// receipt's part). An error wraps ErrNotFound if one is not stored here.
func (f *Feed) AppendNodes(dst []merkle.Node, indexes []uint64) ([]merkle.Node, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return dst, ErrClosed
	}
	for _, i := range indexes {
		if !f.treeBits.Get(i) {
			return dst, fmt.Errorf("%w: tree node %d", ErrNotFound, i)
		}
		nd, err := f.node(i)
		if err != nil {
			return dst, err
		}
		dst = append(dst, nd)
	}
	return dst, nil
}

// Node returns tree node i (block j is node 2j), or an error wrapping
// ErrNotFound if it is not stored here.
func (f *Feed) Node(i uint64) (merkle.Node, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return merkle.Node{}, ErrClosed
	}
	if !f.treeBits.Get(i) {
		return merkle.Node{}, fmt.Errorf("%w: tree node %d", ErrNotFound, i)
	}
	return f.node(i)
}

// scratch holds buffers that Append reuses, so that a stream of large
// batches does not churn the garbage collector.
type scratch struct {
	treeBuf, dataBuf []byte
}

// tree returns n zeroed bytes.
func (s *scratch) tree(n int) []byte {
	if cap(s.treeBuf) < n {
		s.treeBuf = make([]byte, n)
	}
	b := s.treeBuf[:n]
	clear(b)
	return b
}

// data returns the blocks laid end to end.
func (s *scratch) data(blocks [][]byte) []byte {
	total := 0
	for _, b := range blocks {
		total += len(b)
	}
	if cap(s.dataBuf) < total {
		s.dataBuf = make([]byte, 0, total)
	}
	d := s.dataBuf[:0]
	for _, b := range blocks {
		d = append(d, b...)
	}
	return d
}

// HaveBitfield returns the run-length encoded bits of the blocks stored here
// in [start, start+length), as the replication protocol's Have message
// carries them; start and length are multiples of 8192 (whole bitfield
// pages). With both 0 it covers every block.
func (f *Feed) HaveBitfield(start, length uint64) []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	// Bits past the last page are all zero, and run-length encoding drops
	// trailing zeros: stop there, so a huge range costs nothing.
	extent := f.bitfield.PageCount() * bitfield.BlocksPerPage
	if start == 0 && length == 0 {
		length = extent
	}
	if start >= extent {
		return wire.EncodeRLE(nil)
	}
	length = min(length, extent-start)
	bits := f.bitfield.DataBytes(start/8, length/8)
	if pub := f.publishedLocked(); pub < f.length && pub < start+length {
		// Blocks appended during a hold are not shown yet.
		for i := max(pub, start); i < min(f.length, start+length); i++ {
			bits[(i-start)/8] &^= 128 >> ((i - start) & 7)
		}
	}
	return wire.EncodeRLE(bits)
}

// Closed reports whether the feed was closed.
func (f *Feed) Closed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.closed
}
