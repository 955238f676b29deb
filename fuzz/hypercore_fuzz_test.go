package fuzz

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/nodevms/nodevms/hypercore"
	"github.com/nodevms/nodevms/hypercore/bitfield"
	"github.com/nodevms/nodevms/hypercore/merkle"
	"github.com/nodevms/nodevms/hypercore/sleep"
)

// FuzzSleepHeader: any 32 bytes either fail to parse with ErrHeader or
// parse to a header that encodes and parses back to itself.
func FuzzSleepHeader(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := sleep.ParseHeader(b)
		if err != nil {
			if !errors.Is(err, sleep.ErrHeader) {
				t.Fatalf("error %v does not wrap ErrHeader", err)
			}
			return
		}
		enc := h.Encode()
		back, err := sleep.ParseHeader(enc[:])
		if err != nil || back != h {
			t.Fatalf("round trip: %+v -> %+v, %v", h, back, err)
		}
		_ = h.Check(sleep.TreeHeader)
	})
}

// FuzzTreeEntry: a decoded entry encodes back to the same 40 bytes.
func FuzzTreeEntry(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		hash, size, ok := sleep.DecodeTreeEntry(b)
		if !ok {
			return
		}
		var out [sleep.TreeEntrySize]byte
		sleep.EncodeTreeEntry(out[:], hash, size)
		if !bytes.Equal(out[:], b[:sleep.TreeEntrySize]) {
			t.Fatalf("re-encoded %x, want %x", out, b[:sleep.TreeEntrySize])
		}
	})
}

// FuzzBitfieldPages loads arbitrary page bytes as a bitfield and works it:
// nothing may panic, and bits set read back as set.
func FuzzBitfieldPages(f *testing.F) {
	f.Fuzz(func(t *testing.T, legacy bool, data []byte, probe uint64) {
		pageSize := bitfield.PageSize
		if legacy {
			pageSize = bitfield.LegacyPageSize
		}
		var pages [][]byte
		for off := 0; off+pageSize <= len(data) && len(pages) < 4; off += pageSize {
			pages = append(pages, data[off:off+pageSize])
		}
		if rest := len(data) % pageSize; rest > 0 && len(pages) < 4 {
			// Short tails are padded, so that small inputs still reach Load.
			page := make([]byte, pageSize)
			copy(page, data[len(data)-rest:])
			pages = append(pages, page)
		}
		b, err := bitfield.Load(pageSize, pages)
		if err != nil {
			t.Fatal(err)
		}
		tree := b.Tree()
		n := tree.Blocks()
		_ = tree.Roots()
		probe %= 1 << 20
		_ = tree.Digest(2 * probe)
		_, _ = tree.Proof(2*probe, probe, probe&1 == 1, nil)
		_ = tree.VerifiedBy(probe)
		b.Set(probe, true)
		if !b.Get(probe) {
			t.Fatalf("block %d not set after Set", probe)
		}
		tree.Set(2 * probe)
		if !tree.Get(2 * probe) {
			t.Fatalf("node %d not set after Set", 2*probe)
		}
		_ = n
		b.WriteDirty(func(_ uint64, page []byte) error {
			if len(page) != pageSize {
				t.Fatalf("dirty page of %d bytes", len(page))
			}
			return nil
		})
	})
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
// fail cleanly or succeed, and whatever Get returns must be the block the
// stored tree commits to.
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
