package hypercore_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/nodevms/nodevms/conformance"
	"github.com/nodevms/nodevms/hypercore"
	"github.com/nodevms/nodevms/hypercore/merkle"
	"github.com/nodevms/nodevms/internal/fuzzcorpus"
)

// vectorDir holds the conformance vectors, which the seeds come from.
const vectorDir = "../conformance/testdata"

// sourceScenario is the vector whose feed FuzzOpenFiles and FuzzPut use:
// small, with every file stored whole.
const sourceScenario = "singles"

func loadVectors(tb testing.TB) *conformance.HypercoreVectors {
	tb.Helper()
	v, err := conformance.LoadHypercoreVectors(vectorDir)
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

// sourceFeed builds the source scenario's feed in memory.
func sourceFeed(tb testing.TB) (*hypercore.Feed, [][]byte) {
	tb.Helper()
	v := loadVectors(tb).Feeds[sourceScenario]
	feed, err := hypercore.Open(hypercore.Config{
		Storage: hypercore.NewMemoryStorage(), SecretKey: hypercore.KeyPairFromSeed(v.Seed).SecretKey, Create: true,
	})
	if err != nil {
		tb.Fatal(err)
	}
	var blocks [][]byte
	for _, batch := range v.BatchBytes() {
		if _, err := feed.Append(batch...); err != nil {
			tb.Fatal(err)
		}
		blocks = append(blocks, batch...)
	}
	return feed, blocks
}

// lineLogStates returns the files of a line log as a crash could leave
// them: synced but not closed, with preallocated zeros; the same with an
// unsynced line half in them; and closed.
func lineLogStates(tb testing.TB) []map[string][]byte {
	tb.Helper()
	st := hypercore.NewMemoryStorage()
	feed, err := openLineLog(st, true)
	if err != nil {
		tb.Fatal(err)
	}
	snapshot := func() map[string][]byte {
		files := map[string][]byte{}
		for _, name := range []string{"tree", "bitfield", "signatures", "data"} {
			files[name] = bytes.Clone(st.Bytes(name))
		}
		return files
	}
	for i := range 5 {
		var lines [][]byte
		for j := range i + 1 {
			lines = append(lines, fmt.Appendf(nil, `{"i":%d,"j":%d}`+"\n", i, j))
		}
		if _, err := feed.Append(lines...); err != nil {
			tb.Fatal(err)
		}
		if err := feed.Sync(); err != nil {
			tb.Fatal(err)
		}
		if i == 2 {
			if err := feed.Sign(); err != nil {
				tb.Fatal(err)
			}
		}
	}
	open := snapshot()
	torn := snapshot()
	copy(torn["data"][feed.ByteLength():], `{"torn":`)
	if err := feed.Close(); err != nil {
		tb.Fatal(err)
	}
	return []map[string][]byte{open, torn, snapshot()}
}

// storageWith returns a memory storage holding kp and the given files.
func storageWith(t *testing.T, kp hypercore.KeyPair, tree, bits, sigs, data []byte) *hypercore.MemoryStorage {
	t.Helper()
	st := hypercore.NewMemoryStorage()
	for name, content := range map[string][]byte{
		"key": kp.PublicKey, "secret_key": kp.SecretKey,
		"tree": tree, "bitfield": bits, "signatures": sigs, "data": data,
	} {
		file, err := st.Open(name, true)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := file.WriteAt(content, 0); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

// FuzzOpenFiles opens a feed whose tree, bitfield, signatures and data files
// are arbitrary bytes (behind a real key pair): Open and every read must
// fail cleanly or succeed, whatever Get returns must be the block the
// stored tree commits to, and a feed that took an append and synced must
// reopen with it.
func FuzzOpenFiles(f *testing.F) {
	kp := hypercore.KeyPairFromSeed(loadVectors(f).Feeds[sourceScenario].Seed)
	f.Fuzz(func(t *testing.T, tree, bits, sigs, data []byte) {
		st := storageWith(t, kp, tree, bits, sigs, data)
		feed, err := hypercore.Open(hypercore.Config{Storage: st})
		if err != nil {
			return
		}
		defer feed.Close()
		for i := uint64(0); i < min(feed.Length(), 64); i++ {
			block, err := feed.Get(i)
			if err != nil {
				continue
			}
			leaf, err := feed.Node(2 * i)
			if err != nil {
				t.Fatalf("Get(%d) succeeded without a leaf node: %v", i, err)
			}
			if merkle.LeafHash(block) != leaf.Hash {
				t.Fatalf("Get(%d) returned bytes that do not match the tree: len %d leaf %+v hash %x", i, len(block), leaf, merkle.LeafHash(block))
			}
		}
		if _, err := feed.Append([]byte("more")); err != nil {
			return
		}
		// What a writer opened (rebuilding a torn bitfield if it had to)
		// and synced opens again, as it was.
		n := feed.Length()
		if err := feed.Sync(); err != nil {
			return
		}
		feed.Close()
		again, err := hypercore.Open(hypercore.Config{Storage: st})
		if err != nil {
			t.Fatalf("reopen after a sync: %v", err)
		}
		defer again.Close()
		if again.Length() != n {
			t.Fatalf("reopened with %d blocks, synced %d", again.Length(), n)
		}
	})
}

// lineLogKey is the key pair of FuzzOpenLineLog's feed and its seeds.
var lineLogKey = hypercore.KeyPairFromSeed(bytes.Repeat([]byte{7}, 32))

// openLineLog opens a line log that preallocates (as the call log does) on
// st.
func openLineLog(st hypercore.Storage, create bool) (*hypercore.Feed, error) {
	return hypercore.Open(hypercore.Config{Storage: st, SecretKey: lineLogKey.SecretKey, Create: create,
		LineLog: true, WriteBack: true, DeferSignatures: true, AnnounceOnSync: true, Preallocate: 64})
}

// FuzzOpenLineLog opens a line log, whose Open rebuilds what it can from
// the data file after a crash, on arbitrary files: Open must fail cleanly
// or give a feed whose blocks are lines that match its tree, whose data
// file holds the log and nothing past it, and which appends and reopens.
func FuzzOpenLineLog(f *testing.F) {
	f.Fuzz(func(t *testing.T, tree, bits, sigs, data []byte) {
		st := storageWith(t, lineLogKey, tree, bits, sigs, data)
		feed, err := openLineLog(st, false)
		if err != nil {
			return
		}
		if n := uint64(len(st.Bytes("data"))); n != feed.ByteLength() {
			t.Fatalf("opened, the data file has %d bytes for a log of %d", n, feed.ByteLength())
		}
		for i := uint64(0); i < min(feed.Length(), 64); i++ {
			block, err := feed.Get(i)
			if err != nil {
				t.Fatalf("the writer lacks block %d of %d: %v", i, feed.Length(), err)
			}
			if len(block) == 0 || block[len(block)-1] != '\n' || bytes.IndexByte(block, 0) >= 0 {
				t.Fatalf("block %d is not a line: %q", i, block)
			}
			leaf, err := feed.Node(2 * i)
			if err != nil || merkle.LeafHash(block) != leaf.Hash {
				t.Fatalf("block %d does not match its leaf %+v (%v)", i, leaf, err)
			}
		}
		length := feed.Length()
		if _, err := feed.Append([]byte("{\"more\":1}\n")); err != nil {
			t.Fatalf("appending to an opened line log: %v", err)
		}
		if err := feed.Close(); err != nil {
			t.Fatalf("closing: %v", err)
		}
		again, err := openLineLog(st, false)
		if err != nil {
			t.Fatalf("reopening: %v", err)
		}
		defer again.Close()
		if again.Length() != length+1 {
			t.Fatalf("reopened at length %d, want %d", again.Length(), length+1)
		}
	})
}

// decodeProof reads a fuzzer's bytes as proof nodes: per node a uvarint
// index, a uvarint size and 32 hash bytes.
func decodeProof(b []byte) []merkle.Node {
	var nodes []merkle.Node
	for len(nodes) < 64 {
		idx, n := binary.Uvarint(b)
		if n <= 0 {
			return nodes
		}
		b = b[n:]
		size, n := binary.Uvarint(b)
		if n <= 0 || len(b[n:]) < 32 {
			return nodes
		}
		b = b[n:]
		nd := merkle.Node{Index: idx, Size: size}
		copy(nd.Hash[:], b[:32])
		b = b[32:]
		nodes = append(nodes, nd)
	}
	return nodes
}

// encodeProof is decodeProof's inverse, for seeds.
func encodeProof(nodes []merkle.Node) []byte {
	var b []byte
	for _, nd := range nodes {
		b = binary.AppendUvarint(b, nd.Index)
		b = binary.AppendUvarint(b, nd.Size)
		b = append(b, nd.Hash[:]...)
	}
	return b
}

// FuzzPut feeds a replica arbitrary proofs for a real feed. A put must either
// fail or store exactly the block the writer appended: the fuzzer cannot
// forge the writer's signature, so anything it gets accepted must be true.
func FuzzPut(f *testing.F) {
	src, blocks := sourceFeed(f)
	f.Fuzz(func(t *testing.T, index uint64, data, proofBytes, sig []byte) {
		replica, err := hypercore.Open(hypercore.Config{
			Storage: hypercore.NewMemoryStorage(), PublicKey: src.PublicKey(), Create: true,
		})
		if err != nil {
			t.Fatal(err)
		}
		defer replica.Close()
		if data == nil {
			data = []byte{}
		}
		err = replica.Put(index, data, hypercore.Proof{Nodes: decodeProof(proofBytes), Signature: sig})
		if err != nil {
			if replica.Has(index) {
				t.Fatalf("failed put of %d left the block stored", index)
			}
			return
		}
		if index >= uint64(len(blocks)) || !bytes.Equal(data, blocks[index]) {
			t.Fatalf("accepted a forged block %d: %q", index, data)
		}
	})
}

// TestSeedCorpus checks that testdata/fuzz holds the seeds the vectors
// give (go test . -run TestSeedCorpus -update-corpus rewrites it).
func TestSeedCorpus(t *testing.T) {
	v := loadVectors(t)
	var s fuzzcorpus.Seeds
	src := v.Feeds[sourceScenario]
	files := func(name string) []byte { return src.Files[name].Hex }
	s.Add("FuzzOpenFiles", files("tree"), files("bitfield"), files("signatures"), files("data"))
	s.Add("FuzzOpenFiles", files("tree")[:len(files("tree"))-40], files("bitfield"), files("signatures"), files("data"))
	s.Add("FuzzOpenFiles", []byte{}, []byte{}, []byte{}, []byte{})
	for _, st := range lineLogStates(t) {
		s.Add("FuzzOpenLineLog", st["tree"], st["bitfield"], st["signatures"], st["data"])
	}

	feed, blocks := sourceFeed(t)
	defer feed.Close()
	for _, name := range v.ReplicaNames() {
		rv := v.Replicas[name]
		if rv.Source != sourceScenario {
			continue
		}
		for _, put := range rv.Puts {
			var nodes []merkle.Node
			for _, n := range put.Nodes {
				nodes = append(nodes, n.Merkle())
			}
			s.Add("FuzzPut", put.Index, blocks[put.Index], encodeProof(nodes), []byte(put.Signature))
		}
	}

	// Staged appends: holds nested, rolled back, released, interleaved
	// with reads; one left open at the end.
	s.Add("FuzzStagedAppends", []byte{opAppend, 3, opHold, 0, opAppend, 7, opRead, 4, opRollback, 0, opRead, 1})
	s.Add("FuzzStagedAppends", []byte{opAppend, 1, opHold, 0, opAppend, 14, opHold, 0, opAppend, 2, opRead, 9,
		opRollback, 0, opAppend, 5, opRelease, 0, opRead, 3, opRelease, 0, opAppend, 6, opRead, 200})
	s.Add("FuzzStagedAppends", []byte{opHold, 0, opAppend, 4, opHold, 0, opAppend, 9, opRelease, 0, opRollback, 0,
		opHold, 0, opAppend, 70, opAppend, 21, opRead, 5})
	s.Add("FuzzStagedAppends", []byte{opRollback, 0, opRelease, 0, opAppend, 0, opHold, 0, opHold, 0, opAppend, 255,
		opRollback, 0, opAppend, 128, opRead, 2})

	fuzzcorpus.Check(t, &s)
}
