package hypercore_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nodevms/nodevms/hypercore"
	"github.com/nodevms/nodevms/hypercore/flat"
)

// countingStorage counts the reads and writes of the files it opens, by
// name.
type countingStorage struct {
	hypercore.Storage
	reads, writes map[string]*atomic.Int64
}

func newCountingStorage(st hypercore.Storage) *countingStorage {
	c := &countingStorage{Storage: st, reads: map[string]*atomic.Int64{}, writes: map[string]*atomic.Int64{}}
	for _, name := range []string{"key", "secret_key", "tree", "data", "bitfield", "signatures"} {
		c.reads[name], c.writes[name] = new(atomic.Int64), new(atomic.Int64)
	}
	return c
}

func (s *countingStorage) Open(name string, create bool) (hypercore.File, error) {
	f, err := s.Storage.Open(name, create)
	if err != nil {
		return nil, err
	}
	return countingFile{f, s.reads[name], s.writes[name]}, nil
}

type countingFile struct {
	hypercore.File
	reads, writes *atomic.Int64
}

func (f countingFile) ReadAt(p []byte, off int64) (int, error) {
	f.reads.Add(1)
	return f.File.ReadAt(p, off)
}

func (f countingFile) WriteAt(p []byte, off int64) (int, error) {
	f.writes.Add(1)
	return f.File.WriteAt(p, off)
}

func (f countingFile) Truncate(size int64) error {
	return f.File.(interface{ Truncate(int64) error }).Truncate(size)
}

// TestNewNodesReadNothing: the nodes a few appended blocks complete stay
// in the node cache, so that the proofs of the newest entries (a host
// makes one for every receipt, right after the append) read nothing from
// the tree file.
func TestNewNodesReadNothing(t *testing.T) {
	t.Parallel()
	st := newCountingStorage(hypercore.NewMemoryStorage())
	f := mustOpen(t, hypercore.Config{Storage: st, SecretKey: seedKey(32).SecretKey, Create: true})
	for b := range 100 {
		if _, err := f.Append(blocks(fmt.Sprint("c", b), 1+b%3)...); err != nil {
			t.Fatal(err)
		}
		// Every node of the newest block's path: its siblings, up to
		// the root that covers it.
		n := f.Length()
		var path []uint64
		for i := 2 * (n - 1); ; i = flat.Parent(i) {
			if flat.RightSpan(flat.Parent(i)) >= 2*n {
				break
			}
			path = append(path, flat.Sibling(i))
		}
		before := st.reads["tree"].Load()
		if _, err := f.AppendNodes(nil, path); err != nil {
			t.Fatal(err)
		}
		if reads := st.reads["tree"].Load() - before; reads != 0 {
			t.Fatalf("after append %d, the newest block's path %v read the tree file %d times", b, path, reads)
		}
	}
}

// TestTreeHashReadsRootsOnce: the roots of a long feed stay in the node
// cache, so that asking for a tree hash again (an audit does, entry after
// entry) reads nothing. The roots of spans of 1024 blocks and more all
// have indices one less than a multiple of 1024, and a cache indexed by
// the node's index modulo its size kept only one of them.
func TestTreeHashReadsRootsOnce(t *testing.T) {
	t.Parallel()
	st := newCountingStorage(hypercore.NewMemoryStorage())
	f := mustOpen(t, hypercore.Config{Storage: st, SecretKey: seedKey(31).SecretKey, Create: true})
	const n = 1<<14 + 1<<12 + 1<<10 + 5 // roots over 16384, 4096, 1024, 4 and 1 blocks
	for b := 0; b < n; b += 1000 {
		if _, err := f.Append(blocks("r", min(1000, n-b))...); err != nil {
			t.Fatal(err)
		}
	}
	first, err := f.TreeHash(n - 1) // not the head, which the signer keeps
	if err != nil {
		t.Fatal(err)
	}
	before := st.reads["tree"].Load()
	again, err := f.TreeHash(n - 1)
	if err != nil {
		t.Fatal(err)
	}
	if first != again {
		t.Fatal("two tree hashes of one length differ")
	}
	if reads := st.reads["tree"].Load() - before; reads != 0 {
		t.Errorf("the second TreeHash read the tree file %d times", reads)
	}
}

// TestReplicaWriteBack: a replica with Config.WriteBack stores what it
// downloads in the same bytes as one without, in far fewer writes to its
// tree file, and has it all after Close and a reopen.
func TestReplicaWriteBack(t *testing.T) {
	t.Parallel()
	kp := seedKey(32)
	src := mustOpen(t, hypercore.Config{Storage: hypercore.NewMemoryStorage(), SecretKey: kp.SecretKey, Create: true})
	want := blocks("w", 3000)
	for i := 0; i < len(want); i += 100 {
		if _, err := src.Append(want[i : i+100]...); err != nil {
			t.Fatal(err)
		}
	}
	files := map[bool]map[string][]byte{}
	treeWrites := map[bool]int64{}
	for _, writeBack := range []bool{false, true} {
		dir := t.TempDir()
		st := newCountingStorage(hypercore.DirStorage{Dir: dir})
		replica := mustOpen(t, hypercore.Config{Storage: st, PublicKey: kp.PublicKey, Create: true, WriteBack: writeBack})
		putInOrder(t, src, replica, want)
		if err := replica.Close(); err != nil {
			t.Fatal(err)
		}
		treeWrites[writeBack] = st.writes["tree"].Load()
		files[writeBack] = map[string][]byte{}
		for _, name := range []string{"tree", "data", "bitfield", "signatures"} {
			b, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			files[writeBack][name] = b
		}
		again := mustOpen(t, hypercore.Config{Storage: hypercore.DirStorage{Dir: dir}, WriteBack: writeBack})
		if diff := cmp.Diff(want, readAll(t, again)); diff != "" {
			t.Fatalf("write-back %v: reopened replica (-want +got):\n%s", writeBack, diff)
		}
	}
	for name, b := range files[false] {
		if !bytes.Equal(b, files[true][name]) {
			t.Errorf("%s differs with write-back", name)
		}
	}
	if treeWrites[true]*10 > treeWrites[false] {
		t.Errorf("tree file writes: %d with write-back, %d without", treeWrites[true], treeWrites[false])
	}
}

// putInOrder stores src's blocks (want) in replica, first to last, each
// with the proof src gives for the replica's digest, as a download does.
func putInOrder(t *testing.T, src, replica *hypercore.Feed, want [][]byte) {
	t.Helper()
	for i := range uint64(len(want)) {
		proof, err := src.Proof(i, hypercore.ProofRequest{Digest: replica.Digest(i)})
		if err != nil {
			t.Fatal(err)
		}
		if err := replica.Put(i, want[i], proof); err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
	}
}

// TestDownloadPlacesBlocksForward: a block stored right after the one
// before it starts where that one ended, so a download in order reads
// almost nothing from its tree file. Placing each block from the roots to
// its left read about one node every 40 blocks here (488 for 20,000).
func TestDownloadPlacesBlocksForward(t *testing.T) {
	t.Parallel()
	kp := seedKey(33)
	src := mustOpen(t, hypercore.Config{Storage: hypercore.NewMemoryStorage(), SecretKey: kp.SecretKey, Create: true})
	want := blocks("f", 20000)
	for i := 0; i < len(want); i += 1000 {
		if _, err := src.Append(want[i : i+1000]...); err != nil {
			t.Fatal(err)
		}
	}
	st := newCountingStorage(hypercore.NewMemoryStorage())
	replica := mustOpen(t, hypercore.Config{Storage: st, PublicKey: kp.PublicKey, Create: true})
	putInOrder(t, src, replica, want)
	if reads := st.reads["tree"].Load(); reads > int64(len(want))/100 {
		t.Errorf("%d reads of the tree file to store %d blocks in order", reads, len(want))
	}
	if diff := cmp.Diff(want, readAll(t, replica)); diff != "" {
		t.Errorf("replica (-want +got):\n%s", diff)
	}
}
