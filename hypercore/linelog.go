package hypercore

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/nodevms/nodevms/hypercore/bitfield"
	"github.com/nodevms/nodevms/hypercore/merkle"
	"github.com/nodevms/nodevms/hypercore/sleep"
)

// A line log (Config.LineLog) is a feed whose blocks are lines: each ends
// with "\n" and holds no other, and no NUL byte either (JSON never does),
// so that zeros past its end, preallocated or left by a crash, end it too.
// Its data file then records where blocks start and end by itself, so Sync
// makes only the data file durable (one fsync) and writes the tree,
// signatures and bitfield without waiting: a crash can lose or tear them,
// and Open redoes them from the data, which gives the same tree and,
// Ed25519 being deterministic, the same signatures for the same batches.
// NodeVMS's call log is one: its entries are JSON lines.

// errNotLine is returned by Append on a line log for a block that is not a
// line.
var errNotLine = errors.New("hypercore: a line log's blocks must each end with one newline and hold no other, nor any NUL byte")

func checkLines(blocks [][]byte) error {
	for _, b := range blocks {
		if len(b) == 0 || b[len(b)-1] != '\n' || bytes.IndexByte(b[:len(b)-1], '\n') >= 0 || bytes.IndexByte(b, 0) >= 0 {
			return errNotLine
		}
	}
	return nil
}

// recoverLines brings a line log's tree, signatures and bitfield up to its
// data file: after a clean shutdown there is nothing to do; after a crash,
// the lines past what the bitfield recorded are appended again; if the
// other files are damaged (stateErr), everything is rebuilt from the data.
func (f *Feed) recoverLines(stateErr error) error {
	// Before redoing anything from the data, make sure it is what was
	// signed: a data file changed on disk must not become a new, signed
	// history.
	treeErr, err := f.checkData(stateErr == nil)
	if err != nil {
		return err
	}
	if stateErr == nil {
		stateErr = treeErr
	}
	if stateErr != nil {
		if err := f.resetFromData(); err != nil {
			return fmt.Errorf("%w (and rebuilding from the data failed: %v)", stateErr, err)
		}
	}
	size, err := f.data.Size()
	if err != nil {
		return err
	}
	f.dataEnd = uint64(size)
	if uint64(size) <= f.byteLength {
		return nil
	}
	rest := make([]byte, uint64(size)-f.byteLength)
	if _, err := f.data.ReadAt(rest, int64(f.byteLength)); err != nil {
		return fmt.Errorf("hypercore: reading the data past the log's end: %w", err)
	}
	if i := bytes.IndexByte(rest, 0); i >= 0 {
		// Preallocated zeros, or a page a crash left unwritten: nothing
		// from here on was synced (a synced append holds no NUL, and
		// everything before it was synced first).
		rest = rest[:i]
	}
	var lines [][]byte
	for len(rest) > 0 {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			break // a torn last line: it was never synced, so never shown
		}
		lines = append(lines, rest[:i+1])
		rest = rest[i+1:]
	}
	if len(lines) > 0 {
		f.mu.Unlock()
		_, err = f.Append(lines...)
		if err == nil {
			err = f.Sync()
		}
		f.mu.Lock()
		if err != nil {
			return err
		}
	}
	// What is left past the lines was never synced, so never answered or
	// shown: cut it off, so that the file holds the log and nothing else.
	return f.cutData()
}

// resetFromData empties the tree, signatures and bitfield, so that
// recoverLines appends every line of the data file again. What they held
// is kept first, as NAME.replaced, for an operator to look at.
func (f *Feed) resetFromData() error {
	if f.privateKey == nil {
		return ErrNotWritable
	}
	for name, file := range map[string]File{"tree": f.tree, "signatures": f.signatures, "bitfield": f.bits} {
		if err := f.keepCopy(name, file); err != nil {
			return fmt.Errorf("hypercore: keeping a copy of the %s file before rebuilding it: %w", name, err)
		}
	}
	for _, file := range []File{f.tree, f.signatures, f.bits} {
		t, ok := file.(truncater)
		if !ok {
			return errors.New("hypercore: the storage cannot truncate files")
		}
		if err := t.Truncate(sleep.HeaderSize); err != nil {
			return err
		}
	}
	b, err := bitfield.Load(bitfield.PageSize, nil)
	if err != nil {
		return err
	}
	f.bitfield, f.treeBits = b, b.Tree()
	f.length, f.byteLength, f.synced = 0, 0, 0
	f.nodes, f.lastRead = nodeCache{}, blockSpan{}
	f.gen = merkle.NewGenerator(nil)
	f.failed = nil
	return nil
}

// checkData checks a line log's data file in one pass, a chunk at a
// time, so that its cost in memory does not grow with the log:
//
//   - its lines up to the last stored signature must hash to the tree that
//     signature signs (a signature is only ever made over synced lines,
//     and the data file is synced first, so after any crash the data still
//     holds them). Otherwise err wraps ErrDataChanged: a data file changed
//     on disk must not become a new, signed history.
//   - with againstTree, the bitfield must claim the feed's first f.length
//     blocks and the tree nodes over them, and those lines must hash to
//     the stored tree, node for node.
//     Unsynced tree and bitfield pages can be torn by a crash in ways the
//     signature check does not see; treeErr (wrapping ErrCorrupt) then
//     says to rebuild them from the data.
func (f *Feed) checkData(againstTree bool) (treeErr, err error) {
	var at uint64
	var sig []byte
	if !f.unsigned {
		if at, sig, err = f.lastStoredSignature(); err != nil {
			return nil, err
		}
	}
	corrupt := func(format string, args ...any) error {
		againstTree = false
		return fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...)
	}
	for i := uint64(0); againstTree && i < f.length; i++ {
		if !f.bitfield.Get(i) {
			treeErr = corrupt("the bitfield lacks block %d", i)
		}
	}
	var lines uint64 // how many lines to read
	if sig != nil {
		lines = at + 1
	}
	if againstTree {
		lines = max(lines, f.length)
	}
	if lines == 0 {
		return treeErr, nil
	}
	scan, err := newLineScanner(f.data)
	if err != nil {
		return nil, fmt.Errorf("hypercore: data: %w", err)
	}
	tree := &treeScanner{file: f.tree}
	if f.length > 0 {
		tree.n = 2*f.length - 1
	}
	// The stored parents the data has not completed yet: a parent is
	// computed when its last leaf is read, long after the tree file's
	// forward read passed it, and at most one per level waits.
	waiting := map[uint64]merkle.Node{}
	var next uint64 // the next tree entry to read
	gen := merkle.NewGenerator(nil)
	var nodes []merkle.Node
	for n := range lines {
		line, off, ok, err := scan.next()
		if err != nil {
			return nil, fmt.Errorf("hypercore: data: %w", err)
		}
		if !ok || bytes.IndexByte(line, 0) >= 0 {
			if sig != nil && n <= at {
				return nil, fmt.Errorf("%w: %s: block %d is signed, and the data file ends before it (at byte %d)", ErrDataChanged, f.fileName("data"), at, off)
			}
			treeErr = corrupt("the data does not end with a line")
			break
		}
		nodes = gen.Next(line, nodes[:0])
		if againstTree && n < f.length {
			for ; next <= 2*n; next++ {
				hash, size, ok, err := tree.entry(next)
				if err != nil {
					treeErr = corrupt("tree: %v", err)
					break
				}
				stored := merkle.Node{Index: next, Hash: hash, Size: size}
				if next%2 == 1 {
					if ok {
						waiting[next] = stored
					}
				} else if !ok || stored != nodes[0] || !f.treeBits.Get(next) {
					treeErr = corrupt("tree node %d does not match the data", next)
					break
				}
			}
			for _, nd := range nodes[1:] {
				if !againstTree {
					break
				}
				if stored, ok := waiting[nd.Index]; !ok || stored != nd || !f.treeBits.Get(nd.Index) {
					treeErr = corrupt("tree node %d does not match the data", nd.Index)
				}
				delete(waiting, nd.Index)
			}
			if againstTree && n == f.length-1 {
				roots, err := f.rootsOf(f.length)
				if err != nil || uint64(off)+uint64(len(line)) != f.byteLength || merkle.NewHasher().Tree(roots) != gen.TreeHash() {
					treeErr = corrupt("the tree does not match the data")
				}
			}
		}
		if sig != nil && n == at {
			if th := gen.TreeHash(); !ed25519.Verify(f.publicKey, th[:], sig) {
				return nil, f.unsignedDataError(at)
			}
		}
	}
	return treeErr, nil
}

// unsignedDataError explains why the data's first at+1 lines do not hash
// to the tree the signature of block at signs: it names the first line
// whose hash is not the stored tree's leaf, if the tree file still says.
func (f *Feed) unsignedDataError(at uint64) error {
	scan, err := newLineScanner(f.data)
	if err == nil {
		tree := &treeScanner{file: f.tree, n: 2*at + 1}
		hs := merkle.NewHasher()
		for i := uint64(0); i <= at; i++ {
			line, off, ok, err := scan.next()
			if err != nil || !ok {
				break
			}
			hash, size, ok, err := tree.entry(2 * i)
			if err != nil || !ok {
				break
			}
			if hash != hs.Leaf(line) || size != uint64(len(line)) {
				return fmt.Errorf("%w: %s: block %d (bytes %d to %d) does not hash to the tree the signature of block %d covers",
					ErrDataChanged, f.fileName("data"), i, off, off+int64(len(line)), at)
			}
		}
	}
	return fmt.Errorf("%w: %s: the signature of block %d does not sign the data's first %d blocks", ErrDataChanged, f.fileName("data"), at, at+1)
}

// lastStoredSignature returns the last signature in the signatures file
// and its index, or a nil signature if there is none.
func (f *Feed) lastStoredSignature() (uint64, []byte, error) {
	size, err := f.signatures.Size()
	if err != nil {
		return 0, nil, fmt.Errorf("hypercore: signatures: %w", err)
	}
	if size <= sleep.HeaderSize {
		return 0, nil, nil
	}
	count := (size - sleep.HeaderSize) / SignatureSize
	const step = 1024 // signatures read at a time, from the end
	buf := make([]byte, step*SignatureSize)
	for end := count; end > 0; {
		start := max(end-step, 0)
		chunk := buf[:(end-start)*SignatureSize]
		if _, err := f.signatures.ReadAt(chunk, sleep.SignatureOffset(uint64(start))); err != nil && !errors.Is(err, io.EOF) {
			return 0, nil, fmt.Errorf("hypercore: signatures: %w", err)
		}
		for i := end - 1; i >= start; i-- {
			sig := chunk[(i-start)*SignatureSize : (i-start+1)*SignatureSize]
			if !sleep.IsBlank(sig) {
				return uint64(i), slices.Clone(sig), nil
			}
		}
		end = start
	}
	return 0, nil, nil
}

// keepCopy writes what file holds to the storage's NAME.replaced, made
// durable, replacing an earlier copy.
func (f *Feed) keepCopy(name string, file File) error {
	size, err := file.Size()
	if err != nil {
		return err
	}
	b := make([]byte, size)
	if _, err := file.ReadAt(b, 0); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	out, err := f.storage.Open(name+".replaced", true)
	if err != nil {
		return err
	}
	if t, ok := out.(truncater); ok {
		if err := t.Truncate(0); err != nil {
			out.Close()
			return err
		}
	}
	if _, err := out.WriteAt(b, 0); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
