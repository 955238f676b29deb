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
	if err := f.checkSignedData(); err != nil {
		return err
	}
	if stateErr == nil {
		stateErr = f.checkAgainstData()
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
	f.nodes = nodeCache{}
	f.gen = merkle.NewGenerator(nil)
	f.failed = nil
	return nil
}

// checkAgainstData checks what the tree and bitfield say against the data
// file: a writer has every block, and the lines up to the recorded end must
// hash to the recorded roots. Unsynced tree and bitfield pages can be torn
// by a crash in ways the signature check at open does not see.
func (f *Feed) checkAgainstData() error {
	for i := uint64(0); i < f.length; i++ {
		if !f.bitfield.Get(i) {
			return fmt.Errorf("%w: the bitfield lacks block %d", ErrCorrupt, i)
		}
	}
	if f.length == 0 {
		return nil
	}
	data := make([]byte, f.byteLength)
	if _, err := f.data.ReadAt(data, 0); err != nil {
		return fmt.Errorf("%w: data: %v", ErrCorrupt, err)
	}
	tree := make([]byte, sleep.TreeOffset(2*f.length-1))
	if _, err := f.tree.ReadAt(tree, 0); err != nil {
		return fmt.Errorf("%w: tree: %v", ErrCorrupt, err)
	}
	gen := merkle.NewGenerator(nil)
	var n uint64
	var nodes []merkle.Node
	var entry [sleep.TreeEntrySize]byte
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			return fmt.Errorf("%w: the data does not end with a line", ErrCorrupt)
		}
		nodes = gen.Next(data[:i+1], nodes[:0])
		for _, nd := range nodes {
			// Every node the data gives must be the stored one.
			off := sleep.TreeOffset(nd.Index)
			sleep.EncodeTreeEntry(entry[:], nd.Hash, nd.Size)
			if off+sleep.TreeEntrySize > int64(len(tree)) || !bytes.Equal(tree[off:off+sleep.TreeEntrySize], entry[:]) {
				return fmt.Errorf("%w: tree node %d does not match the data", ErrCorrupt, nd.Index)
			}
		}
		data = data[i+1:]
		n++
	}
	roots, err := f.rootsOf(f.length)
	if err != nil || n != f.length || merkle.NewHasher().Tree(roots) != gen.TreeHash() {
		return fmt.Errorf("%w: the tree does not match the data", ErrCorrupt)
	}
	return nil
}

// checkSignedData checks the data file against the last signature the
// signatures file holds: it must sign the tree of the data's lines up to
// it. (A signature is only ever made over synced lines, and the data file
// is synced first, so after any crash the data still holds those lines.)
func (f *Feed) checkSignedData() error {
	if f.unsigned {
		return nil
	}
	at, sig, err := f.lastStoredSignature()
	if err != nil || sig == nil {
		return err
	}
	size, err := f.data.Size()
	if err != nil {
		return fmt.Errorf("hypercore: data: %w", err)
	}
	data := make([]byte, size)
	if _, err := f.data.ReadAt(data, 0); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("hypercore: data: %w", err)
	}
	gen := merkle.NewGenerator(nil)
	var leaves []merkle.Node
	var offsets []int
	rest, off := data, 0
	for n := uint64(0); n <= at; n++ {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 || bytes.IndexByte(rest[:i], 0) >= 0 {
			return fmt.Errorf("%w: %s: block %d is signed, and the data file ends before it (at byte %d)", ErrDataChanged, f.fileName("data"), at, off)
		}
		nodes := gen.Next(rest[:i+1], nil)
		leaves = append(leaves, nodes[0])
		offsets = append(offsets, off)
		rest, off = rest[i+1:], off+i+1
	}
	th := gen.TreeHash()
	if ed25519.Verify(f.publicKey, th[:], sig) {
		return nil
	}
	// Name the first block whose hash is not the stored tree's, if the
	// tree file still says.
	for i, leaf := range leaves {
		var entry [sleep.TreeEntrySize]byte
		if _, err := f.tree.ReadAt(entry[:], sleep.TreeOffset(leaf.Index)); err != nil {
			break
		}
		hash, size, _ := sleep.DecodeTreeEntry(entry[:])
		if hash != leaf.Hash || size != leaf.Size {
			return fmt.Errorf("%w: %s: block %d (bytes %d to %d) does not hash to the tree the signature of block %d covers",
				ErrDataChanged, f.fileName("data"), i, offsets[i], offsets[i]+int(leaf.Size), at)
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
