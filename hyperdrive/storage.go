package hyperdrive

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/nodevms/nodevms/hypercore"
)

// Storage says where an archive's two feeds live. Use MemoryStorage,
// DatStorage (the dat command's layout, NodeVMS's default) or FlatStorage
// (node-dat-archive's layout).
type Storage interface {
	metadata() hypercore.Storage
	// content returns the content feed's storage, and the real files
	// holding its bytes when it keeps them as ordinary files.
	content() (hypercore.Storage, *realFiles)
}

type memoryStorage struct{ meta, cont *hypercore.MemoryStorage }

// MemoryStorage keeps an archive in memory.
func MemoryStorage() Storage {
	return memoryStorage{hypercore.NewMemoryStorage(), hypercore.NewMemoryStorage()}
}

func (s memoryStorage) metadata() hypercore.Storage { return s.meta }
func (s memoryStorage) content() (hypercore.Storage, *realFiles) {
	return s.cont, nil
}

type feedStorage struct{ meta, cont hypercore.Storage }

// FeedStorage keeps an archive's feeds in the given hypercore storages.
func FeedStorage(metadata, content hypercore.Storage) Storage {
	return feedStorage{metadata, content}
}

func (s feedStorage) metadata() hypercore.Storage { return s.meta }
func (s feedStorage) content() (hypercore.Storage, *realFiles) {
	return s.cont, nil
}

type flatStorage struct{ dir string }

// FlatStorage is node-dat-archive's layout: metadata.* and content.* files
// side by side in dir, the content bytes in content.data and the secret key
// in metadata.secret_key.
func FlatStorage(dir string) Storage { return flatStorage{dir} }

func (s flatStorage) metadata() hypercore.Storage {
	return hypercore.DirStorage{Dir: s.dir, Prefix: "metadata."}
}
func (s flatStorage) content() (hypercore.Storage, *realFiles) {
	return hypercore.DirStorage{Dir: s.dir, Prefix: "content."}, nil
}

// datStorage is the dat command's layout (dat-storage).
type datStorage struct {
	dir, secretDir string
	files          *realFiles
}

// DatDir is the folder, inside an archive's folder, that holds its feeds in
// the dat command's layout.
const DatDir = ".dat"

// DatStorage is the dat command's layout: the folder dir shows the
// archive's current files as ordinary files, and dir/.dat holds the feeds
// (metadata.key, metadata.tree, ..., content.tree, ...; the content bytes
// are the files themselves). The secret key is not in the folder: it is
// kept in secretDir/<discovery key, hex, first two>/<the rest>, readable by
// the owner only, with the marker file .dat/metadata.ogd, as dat-secret-
// storage does. The dat command's secretDir is ~/.dat/secret_keys.
//
// A file changed outside the archive no longer matches its hashes: reads
// of it fail with ErrModified and it is not served to peers.
//
// The folder is only ever reached without following symlinks (see
// folder.go), and an entry the folder cannot hold safely is never written
// to it: one under .dat (in any case) or under the first folder of
// secretDir when secretDir is inside dir, one whose name is too long for
// it, or one whose place holds a symlink or a file where a folder should
// be. Such an entry stays in the archive but is not materialised: Modified
// lists it and reads of it fail with ErrModified, as for a file changed
// outside the archive. Files refuses such names before anything is
// written; an archive written through Archive, or made by another Dat
// program, can have them.
func DatStorage(dir, secretDir string) Storage {
	reserved := []string{DatDir}
	if rel, err := filepath.Rel(absPath(dir), absPath(secretDir)); err == nil && rel != "." && filepath.IsLocal(rel) {
		reserved = append(reserved, strings.Split(filepath.ToSlash(rel), "/")[0])
	}
	return &datStorage{dir: dir, secretDir: secretDir, files: &realFiles{folder: folder{dir}, reserved: reserved}}
}

func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

func (s *datStorage) metadata() hypercore.Storage {
	return datMetadata{DirStorage: hypercore.DirStorage{Dir: filepath.Join(s.dir, DatDir), Prefix: "metadata."}, secretDir: s.secretDir}
}

func (s *datStorage) content() (hypercore.Storage, *realFiles) {
	return datContent{DirStorage: hypercore.DirStorage{Dir: filepath.Join(s.dir, DatDir), Prefix: "content."}, files: s.files}, s.files
}

type datMetadata struct {
	hypercore.DirStorage
	secretDir string
}

func (s datMetadata) Open(name string, create bool) (hypercore.File, error) {
	if name != "secret_key" {
		return s.DirStorage.Open(name, create)
	}
	key, err := os.ReadFile(filepath.Join(s.Dir, s.Prefix+"key"))
	if err != nil {
		return nil, err
	}
	if len(key) != hypercore.PublicKeySize {
		return nil, fmt.Errorf("%w: metadata.key of %d bytes", ErrCorrupt, len(key))
	}
	dk := hypercore.DiscoveryKey(key)
	hexDK := hex.EncodeToString(dk[:])
	path := filepath.Join(s.secretDir, hexDK[:2], hexDK[2:])
	if !create {
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			return nil, err
		}
		return osFile{f}, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(s.Dir, s.Prefix+"ogd"), []byte{0}, 0o644); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

type datContent struct {
	hypercore.DirStorage
	files *realFiles
}

func (s datContent) Open(name string, create bool) (hypercore.File, error) {
	if name == "data" {
		return s.files, nil
	}
	return s.DirStorage.Open(name, create)
}

type osFile struct{ *os.File }

func (f osFile) Size() (int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// realFiles is the content feed's data file when the content bytes are the
// archive's files: byte offset x of the content feed is byte x-start of the
// file whose extent [start, end) holds x. The extents are those of the
// current files, derived from the metadata feed when the archive opens
// (never stored), and kept up to date by the archive as it writes.
type realFiles struct {
	folder   folder
	reserved []string // first components the host keeps for itself

	mu        sync.Mutex
	extents   []extent        // sorted by start, not overlapping
	writing   *extent         // the file being appended, not yet in extents
	out       *os.File        // its temporary file
	end       uint64          // the content feed's byte length
	sized     bool            // end is known (set by setExtents)
	unflushed []string        // files moved into place and not yet flushed
	held      []*folderHold   // open holds, outermost first
	unsynced  []folderOp      // committed changes the next Sync makes
	lost      map[string]bool // files the folder could not hold (see DatStorage)
	// holds are the files holdable found the folder could hold since the
	// folder was last written: a backend that writes one file on every
	// call checks its folder once a flush, not once a call.
	holds map[string]bool
}

type extent struct {
	start, end uint64
	name       string      // archive path, "/a/b"
	tmp        string      // a file in .dat/tmp not yet moved into place: read from here
	mem        *fileBuffer // or its bytes, not yet written anywhere
}

// fileBuffer holds a small file's bytes between its write and the Sync
// that puts it in the folder: creating a temporary file per write would
// cost more than the write (and most are superseded before the Sync).
type fileBuffer struct{ b []byte }

// maxBuffered is the size above which a file being written goes to a
// temporary file at once.
const maxBuffered = 4 << 20

// parts returns the components of the archive path name in the folder, or
// why the folder cannot hold it.
func (r *realFiles) parts(name string) ([]string, error) {
	parts, err := folderParts(name, r.reserved)
	if err == nil && len(parts) == 0 {
		err = errors.New("the root is not a file")
	}
	return parts, err
}

// tmpDir is where files are written before they are moved into place.
func tmpDir() []string { return []string{DatDir, "tmp"} }

func tmpParts(name string) []string { return []string{DatDir, "tmp", name} }

// isLost reports whether the file name could not be put in the folder.
func (r *realFiles) isLost(name string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lost[name]
}

// lostNames lists the files that could not be put in the folder.
func (r *realFiles) lostNames() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for name := range r.lost {
		out = append(out, name)
	}
	return out
}

// setExtents replaces the known extents (at open).
func (r *realFiles) setExtents(list []extent, end uint64) {
	sort.Slice(list, func(i, j int) bool { return list[i].start < list[j].start })
	r.mu.Lock()
	r.extents, r.end, r.sized = list, end, true
	r.mu.Unlock()
}

// holdable returns an error wrapping ErrModified if the folder, as it
// stands, cannot hold the file name: a folder on its way is a symlink or
// not a folder, or name is something other than a file. Names the folder
// never holds (see DatStorage) are not its concern: they are left out of
// the folder by design.
func (r *realFiles) holdable(name string) error {
	r.mu.Lock()
	known := r.holds[name]
	r.mu.Unlock()
	if known {
		return nil
	}
	parts, err := r.parts(name)
	if err != nil {
		return nil
	}
	st, err := r.folder.lstat(parts)
	switch {
	case err == nil && isRegular(st) || errors.Is(err, unix.ENOENT):
		// (A missing file, or folder on its way, is made when the file is
		// moved into place.)
		r.mu.Lock()
		if r.holds == nil {
			r.holds = map[string]bool{}
		}
		r.holds[name] = true
		r.mu.Unlock()
		return nil
	case err == nil:
		return fmt.Errorf("%w: %s is not a file in the folder", ErrModified, name)
	case unsafe(err):
		return fmt.Errorf("%w: the folder cannot hold %s: %v", ErrModified, name, err)
	}
	return err
}

// begin starts the file name, whose bytes are appended from content byte
// start on. They are kept in memory (or, past maxBuffered, in a temporary
// file) until a Sync moves the file into place.
func (r *realFiles) begin(name string, start uint64) error {
	r.mu.Lock()
	r.writing = &extent{start: start, end: start, name: name, mem: &fileBuffer{}}
	r.out = nil
	r.mu.Unlock()
	return nil
}

// tempFile creates a temporary file in .dat/tmp holding b; it returns the
// file and its name there.
func (r *realFiles) tempFile(b []byte) (*os.File, string, error) {
	f, name, err := r.folder.createTemp(tmpDir(), "write-")
	if err != nil {
		return nil, "", err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		r.folder.remove(tmpParts(name))
		return nil, "", err
	}
	return f, name, nil
}

// finish ends the file being written, whose bytes end at content byte
// end: with ok, it becomes the file name (moved into place at the next
// Sync); otherwise it is thrown away. Bytes a held content feed staged
// (hypercore.Feed.Hold) have not been written yet: they arrive through
// WriteAt when the outermost transaction commits, and fill the file then.
func (r *realFiles) finish(ok bool, end uint64) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	w, f := r.writing, r.out
	r.writing, r.out = nil, nil
	if w == nil {
		return nil
	}
	if ok && end > w.end {
		w.end = end
		r.end = max(r.end, end)
	}
	if !ok {
		if f != nil {
			f.Close()
			r.folder.remove(tmpParts(w.tmp))
		}
		return nil
	}
	if f != nil {
		if err := f.Close(); err != nil {
			r.folder.remove(tmpParts(w.tmp))
			return err
		}
	}
	r.dropLocked(w.name)
	delete(r.lost, w.name) // until a Sync finds it cannot be put in place
	if w.end > w.start {
		i := sort.Search(len(r.extents), func(i int) bool { return r.extents[i].start >= w.start })
		r.extents = append(r.extents, extent{})
		copy(r.extents[i+1:], r.extents[i:])
		r.extents[i] = *w // read from w.mem or w.tmp until moved into place
	}
	return r.doLocked(folderOp{kind: opMove, name: w.name, tmp: w.tmp, mem: w.mem})
}

// folderOp is a change to the folder that shows the archive.
type folderOp struct {
	kind int
	name string
	tmp  string      // opMove: the temporary file that becomes name
	mem  *fileBuffer // or the bytes that do, until prepareSync writes them
}

const (
	opMove = iota
	opRemove
	opRemoveDir
)

// doLocked queues op: for the hold that is open, or for the next Sync.
func (r *realFiles) doLocked(op folderOp) error {
	if n := len(r.held); n > 0 {
		r.held[n-1].ops = append(r.held[n-1].ops, op)
		return nil
	}
	r.unsynced = append(r.unsynced, op)
	return nil
}

// applyLocked makes the change op to the folder. A file the folder cannot
// hold safely (see DatStorage) is left out of it and noted as lost, rather
// than failing the Sync, and with it every later open.
func (r *realFiles) applyLocked(op folderOp) error {
	parts, perr := r.parts(op.name)
	switch op.kind {
	case opMove:
		err := perr
		if err == nil {
			if st, serr := r.folder.lstat(parts); serr == nil && isDir(st) {
				// The archive allows a file where a directory was; the
				// folder cannot show both, so the directory stays and the
				// file is only in the archive (and in its temporary file).
				return nil
			}
			err = r.folder.rename(tmpParts(op.tmp), parts)
		}
		if err != nil && perr == nil && !unsafe(err) {
			return err
		}
		for i := range r.extents {
			if r.extents[i].tmp == op.tmp {
				r.extents[i].tmp = ""
			}
		}
		if err != nil {
			r.folder.remove(tmpParts(op.tmp))
			if r.lost == nil {
				r.lost = map[string]bool{}
			}
			r.lost[op.name] = true
			return nil
		}
		delete(r.lost, op.name)
		r.unflushed = append(r.unflushed, op.name)
	case opRemove:
		delete(r.lost, op.name)
		if perr == nil {
			r.folder.remove(parts)
		}
	case opRemoveDir:
		if perr == nil {
			r.folder.removeDir(parts) // fails, as it should, unless empty
		}
	}
	return nil
}

// folderHold is what a hold of the folder keeps: the extents as they were,
// and the changes to make at commit.
type folderHold struct {
	extents []extent
	ops     []folderOp
}

// hold starts queueing the folder's changes (see Archive.Begin).
func (r *realFiles) hold() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.held = append(r.held, &folderHold{extents: append([]extent(nil), r.extents...)})
}

// commit ends the innermost hold: its changes join the outer hold's, or
// are made if it was the outermost.
func (r *realFiles) commit() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := len(r.held)
	if n == 0 {
		return nil
	}
	h := r.held[n-1]
	r.held = r.held[:n-1]
	if n > 1 {
		r.held[n-2].ops = append(r.held[n-2].ops, h.ops...)
		return nil
	}
	r.unsynced = append(r.unsynced, h.ops...)
	return nil
}

// rollback forgets the queued changes and the files they would have moved.
func (r *realFiles) rollback(end uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := len(r.held)
	if n == 0 {
		return
	}
	h := r.held[n-1]
	r.held = r.held[:n-1]
	for _, op := range h.ops {
		if op.kind == opMove && op.tmp != "" {
			r.folder.remove(tmpParts(op.tmp))
		}
	}
	r.extents, r.end = h.extents, end
}

// The folder shows the archive as of its last Sync. A Sync first writes
// the folder changes it is about to make to a journal (.dat/pending.json,
// with the metadata length they go with), then flushes the feeds, then
// makes the changes and removes the journal. If a crash comes between, the
// next open finishes the changes when the metadata reached that length, or
// throws them away when it did not: the folder never shows a file the
// archive on disk does not have, nor misses one it has. Until then, the
// bytes of files not yet moved into place are read from their temporary
// files.

type journal struct {
	MetadataLength uint64   `json:"metadataLength"`
	Ops            []jsonOp `json:"ops"`
}

type jsonOp struct {
	Kind int    `json:"kind"`
	Name string `json:"name"`
	Tmp  string `json:"tmp,omitempty"`
}

func journalParts() []string { return []string{DatDir, "pending.json"} }

// prepareSync writes the journal of the changes the coming Sync makes and
// returns them.
func (r *realFiles) prepareSync(metadataLength uint64) ([]folderOp, error) {
	r.mu.Lock()
	ops := r.coalesce(r.unsynced)
	r.unsynced = nil
	r.mu.Unlock()
	if len(ops) == 0 {
		return nil, nil
	}
	j := journal{MetadataLength: metadataLength}
	requeue := func(err error) ([]folderOp, error) {
		// Not done: the next Sync tries them again. Dropping them would
		// let a later Sync make the metadata durable without the files it
		// points at.
		r.requeue(ops)
		return nil, err
	}
	for i := range ops {
		op := &ops[i]
		if op.kind == opMove && op.mem != nil {
			// The file's bytes go to disk now, once.
			f, name, err := r.tempFile(op.mem.b)
			if err == nil {
				err = f.Sync()
				f.Close()
				if err != nil {
					r.folder.remove(tmpParts(name))
				}
			}
			if err != nil {
				return requeue(err)
			}
			op.tmp = name
			r.mu.Lock()
			for k := range r.extents {
				if r.extents[k].mem == op.mem {
					r.extents[k].mem, r.extents[k].tmp = nil, op.tmp
				}
			}
			r.mu.Unlock()
			op.mem = nil
		} else if op.kind == opMove {
			if err := r.folder.syncFile(tmpParts(op.tmp)); err != nil {
				return requeue(err)
			}
		}
		j.Ops = append(j.Ops, jsonOp{Kind: op.kind, Name: op.name, Tmp: op.tmp})
	}
	raw, _ := json.Marshal(j)
	if err := r.folder.writeDurably(journalParts(), raw); err != nil {
		return requeue(err)
	}
	return ops, nil
}

// requeue puts back folder changes a Sync did not finish, before those
// queued since, for the next Sync.
func (r *realFiles) requeue(ops []folderOp) {
	if len(ops) == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.unsynced = append(slices.Clone(ops), r.unsynced...)
}

// coalesce keeps, of the folder changes queued since the last Sync, only
// the last for each name (a file written a thousand times between flushes
// is moved into place once); the temporary files of the others are
// deleted, as nothing reads them any more.
func (r *realFiles) coalesce(ops []folderOp) []folderOp {
	last := map[string]int{}
	for i, op := range ops {
		last[op.name] = i
	}
	out := ops[:0]
	for i, op := range ops {
		if last[op.name] == i {
			out = append(out, op)
		} else if op.kind == opMove && op.tmp != "" {
			r.folder.remove(tmpParts(op.tmp))
		}
	}
	return out
}

// finishSync makes the journaled changes once the feeds are flushed.
func (r *realFiles) finishSync(ops []folderOp) error {
	r.mu.Lock()
	r.holds = nil // look at the folder afresh until the next flush
	r.mu.Unlock()
	if len(ops) == 0 {
		return nil
	}
	r.mu.Lock()
	for k, op := range ops {
		if err := r.applyLocked(op); err != nil {
			r.mu.Unlock()
			r.requeue(ops[k:])
			return err
		}
	}
	list := r.unflushed
	r.unflushed = nil
	r.mu.Unlock()
	dirs := map[string]bool{}
	for _, name := range list {
		dirs[path.Dir(name)] = true
	}
	for _, op := range ops {
		dirs[path.Dir(op.name)] = true
	}
	for d := range dirs {
		parts, err := folderParts(d, r.reserved)
		if err != nil {
			continue // nothing was put there
		}
		if err := r.folder.syncDir(parts); err != nil && !errors.Is(err, os.ErrNotExist) && !unsafe(err) {
			return err
		}
	}
	return r.folder.remove(journalParts())
}

// recover finishes or throws away the changes of a Sync a crash cut short
// (see above), and removes temporary files nothing refers to.
func (r *realFiles) recover(metadataLength uint64) error {
	raw, err := r.folder.readFile(journalParts())
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return err
	default:
		var j journal
		if err := json.Unmarshal(raw, &j); err != nil {
			return fmt.Errorf("%w: %s: %v", ErrCorrupt, r.folder.path(journalParts()...), err)
		}
		if metadataLength >= j.MetadataLength {
			r.mu.Lock()
			for _, op := range j.Ops {
				if op.Kind == opMove {
					// Only a file of .dat/tmp is ever moved into place.
					if _, err := folderParts(op.Tmp, nil); err != nil || !strings.HasPrefix(op.Tmp, "write-") || strings.Contains(op.Tmp, "/") {
						continue
					}
					if _, err := r.folder.lstat(tmpParts(op.Tmp)); err != nil {
						continue // moved before the crash
					}
				}
				if err := r.applyLocked(folderOp{kind: op.Kind, name: op.Name, tmp: op.Tmp}); err != nil {
					r.mu.Unlock()
					return err
				}
			}
			r.unflushed = nil
			r.mu.Unlock()
		}
		if err := r.folder.remove(journalParts()); err != nil {
			return err
		}
	}
	tmps, _ := r.folder.list(tmpDir())
	for _, t := range tmps {
		if strings.HasPrefix(t, "write-") {
			r.folder.remove(tmpParts(t))
		}
	}
	return nil
}

// remove forgets the file name and deletes it from the folder.
func (r *realFiles) remove(name string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.dropLocked(name)
	delete(r.lost, name)
	return r.doLocked(folderOp{kind: opRemove, name: name})
}

// removeDir deletes the folder's directory name if it is empty.
func (r *realFiles) removeDir(name string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.doLocked(folderOp{kind: opRemoveDir, name: name})
}

func (r *realFiles) dropLocked(name string) {
	for i, e := range r.extents {
		if e.name == name {
			r.extents = append(r.extents[:i], r.extents[i+1:]...)
			return
		}
	}
}

// ReadAt implements hypercore.File.
func (r *realFiles) ReadAt(p []byte, off int64) (int, error) {
	r.mu.Lock()
	x := uint64(off)
	var e extent
	var mem []byte
	inFolder := false
	switch w := r.writing; {
	case w != nil && x >= w.start && x < w.end:
		e = *w
		if w.mem != nil {
			mem = w.mem.b
		}
	default:
		i := sort.Search(len(r.extents), func(i int) bool { return r.extents[i].end > x })
		if i == len(r.extents) || r.extents[i].start > x {
			r.mu.Unlock()
			return 0, fmt.Errorf("%w: no file holds content byte %d", ErrNotFound, x)
		}
		e = r.extents[i]
		if e.mem != nil {
			mem = e.mem.b
		} else if e.tmp == "" {
			inFolder = true
		}
	}
	if x+uint64(len(p)) > e.end {
		r.mu.Unlock()
		return 0, fmt.Errorf("%w: content bytes %d..%d span two files", ErrCorrupt, x, x+uint64(len(p)))
	}
	if mem != nil || (!inFolder && e.tmp == "") {
		if x+uint64(len(p)) > e.start+uint64(len(mem)) {
			r.mu.Unlock()
			return 0, fmt.Errorf("%w: content bytes %d..%d of %s were never written", ErrCorrupt, x, x+uint64(len(p)), e.name)
		}
		n := copy(p, mem[x-e.start:])
		r.mu.Unlock()
		return n, nil
	}
	r.mu.Unlock()
	var f *os.File
	parts, err := tmpParts(e.tmp), error(nil)
	if inFolder {
		parts, err = r.parts(e.name)
	}
	if err == nil {
		f, err = r.folder.open(parts)
	}
	if err != nil {
		return 0, fmt.Errorf("%w: %s: %v", ErrModified, e.name, err)
	}
	defer f.Close()
	n, err := f.ReadAt(p, int64(x-e.start))
	if errors.Is(err, io.EOF) && n < len(p) {
		return n, fmt.Errorf("%w: %s is shorter than it was written", ErrModified, e.name)
	}
	return n, err
}

// WriteAt implements hypercore.File: bytes for the file being written, or
// (see fill) the staged bytes of files already finished.
func (r *realFiles) WriteAt(p []byte, off int64) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	w := r.writing
	if w == nil || uint64(off) < w.start {
		return r.fillLocked(p, uint64(off))
	}
	var n int
	var err error
	if w.mem != nil && uint64(off)+uint64(len(p))-w.start > maxBuffered {
		// Too big to keep in memory: to a temporary file from here on.
		f, name, ferr := r.tempFile(w.mem.b)
		if ferr != nil {
			return 0, ferr
		}
		r.out, w.tmp, w.mem = f, name, nil
	}
	if w.mem != nil {
		at := off - int64(w.start)
		if need := int(at) + len(p); need > len(w.mem.b) {
			w.mem.b = append(w.mem.b, make([]byte, need-len(w.mem.b))...)
		}
		n = copy(w.mem.b[at:], p)
	} else {
		n, err = r.out.WriteAt(p, off-int64(w.start))
	}
	if end := uint64(off) + uint64(n); end > w.end {
		w.end = end
	}
	if w.end > r.end {
		r.end = w.end
	}
	return n, err
}

// fillLocked writes the bytes a held content feed staged for files that
// finish recorded, as the outermost transaction commits: into their
// buffers, spilled to a temporary file past maxBuffered. Bytes no file
// covers any more (a file written again in the same transaction) are
// dropped, as its feed blocks are cleared.
func (r *realFiles) fillLocked(p []byte, off uint64) (int, error) {
	end := off + uint64(len(p))
	i := sort.Search(len(r.extents), func(i int) bool { return r.extents[i].end > off })
	for ; i < len(r.extents) && r.extents[i].start < end; i++ {
		e := &r.extents[i]
		if e.mem == nil {
			return 0, fmt.Errorf("hyperdrive: content write at %d into %s, which is already written", max(off, e.start), e.name)
		}
		lo, hi := max(off, e.start), min(end, e.end)
		at := lo - e.start
		if need := at + (hi - lo); need > uint64(len(e.mem.b)) {
			e.mem.b = append(e.mem.b, make([]byte, need-uint64(len(e.mem.b)))...)
		}
		copy(e.mem.b[at:], p[lo-off:hi-off])
		if uint64(len(e.mem.b)) > maxBuffered && uint64(len(e.mem.b)) == e.end-e.start {
			if err := r.spillLocked(e.mem); err != nil {
				return 0, err
			}
		}
	}
	return len(p), nil
}

// spillLocked moves the bytes of a file from memory to a temporary file,
// for the extents and queued folder changes that hold them.
func (r *realFiles) spillLocked(mem *fileBuffer) error {
	f, name, err := r.tempFile(mem.b)
	if err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		r.folder.remove(tmpParts(name))
		return err
	}
	for k := range r.extents {
		if r.extents[k].mem == mem {
			r.extents[k].mem, r.extents[k].tmp = nil, name
		}
	}
	queues := [][]folderOp{r.unsynced}
	for _, h := range r.held {
		queues = append(queues, h.ops)
		for k := range h.extents {
			if h.extents[k].mem == mem {
				h.extents[k].mem, h.extents[k].tmp = nil, name
			}
		}
	}
	for _, ops := range queues {
		for k := range ops {
			if ops[k].mem == mem {
				ops[k].mem, ops[k].tmp = nil, name
			}
		}
	}
	return nil
}

// Size implements hypercore.File. The files are the content feed's bytes,
// so its length is the feed's: unknown while the feed opens (which checks
// the data file against its tree), and then the feed's byte length.
func (r *realFiles) Size() (int64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.sized {
		return math.MaxInt64, nil
	}
	return int64(r.end), nil
}

// Sync implements hypercore.File.
func (r *realFiles) Sync() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.out != nil {
		return r.out.Sync()
	}
	return nil
}

// reset forgets everything not on disk, for an archive that reopens: the
// extents are loaded again, and recover finishes or drops what the folder
// was in the middle of.
func (r *realFiles) reset() {
	r.finish(false, 0)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.extents, r.end, r.sized = nil, 0, false
	r.unflushed, r.held, r.unsynced = nil, nil, nil
	r.lost, r.holds = nil, nil
}

// Close implements hypercore.File.
func (r *realFiles) Close() error { return r.finish(false, 0) }

// checkSizes returns the current files whose size on disk is not the size
// they were written with, or that are not plain files reached without a
// symlink, or that the folder cannot hold.
func (r *realFiles) checkSizes(sizes map[string]uint64) []string {
	var bad []string
	for name, size := range sizes {
		parts, err := r.parts(name)
		var st unix.Stat_t
		if err == nil {
			st, err = r.folder.lstat(parts)
		}
		if err != nil || !isRegular(st) || uint64(st.Size) != size {
			bad = append(bad, name)
		}
	}
	sort.Strings(bad)
	return bad
}
