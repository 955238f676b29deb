package conformance

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/nodevms/nodevms/hypercore"
	"github.com/nodevms/nodevms/hypercore/bitfield"
	"github.com/nodevms/nodevms/hypercore/merkle"
	"github.com/nodevms/nodevms/hypercore/sleep"
)

func loadVectors(t *testing.T) *HypercoreVectors {
	t.Helper()
	v, err := LoadHypercoreVectors("testdata")
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// checkFiles compares every file in dir with the reference's files.
func checkFiles(t *testing.T, dir string, want map[string]File) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var gotNames, wantNames []string
	for _, e := range entries {
		gotNames = append(gotNames, e.Name())
	}
	for name := range want {
		wantNames = append(wantNames, name)
	}
	sort.Strings(wantNames)
	if diff := cmp.Diff(wantNames, gotNames); diff != "" {
		t.Errorf("files in the feed directory (-reference +go):\n%s", diff)
	}
	for name, w := range want {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			continue // reported above
		}
		if int64(len(got)) != w.Size {
			t.Errorf("%s: %d bytes, reference has %d", name, len(got), w.Size)
			continue
		}
		if w.Hex != nil {
			if !bytes.Equal(got, w.Hex) {
				t.Errorf("%s differs from the reference at byte %d", name, firstDiff(got, w.Hex))
			}
			continue
		}
		if sum := sha256.Sum256(got); !bytes.Equal(sum[:], w.SHA256) {
			t.Errorf("%s: sha256 %x, reference %x", name, sum, []byte(w.SHA256))
		}
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func nodesOf(ns []Node) []merkle.Node {
	out := make([]merkle.Node, len(ns))
	for i, n := range ns {
		out[i] = n.Merkle()
	}
	return out
}

// writeFeed builds the feed of v with the Go implementation, batch by batch,
// checking each state against the reference's.
func writeFeed(t *testing.T, v *FeedVector, st hypercore.Storage) *hypercore.Feed {
	t.Helper()
	kp := hypercore.KeyPairFromSeed(v.Seed)
	feed, err := hypercore.Open(hypercore.Config{Storage: st, SecretKey: kp.SecretKey, Create: true})
	if err != nil {
		t.Fatal(err)
	}
	for i, batch := range v.BatchBytes() {
		if _, err := feed.Append(batch...); err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
		want := v.States[i]
		roots, err := feed.Roots(feed.Length())
		if err != nil {
			t.Fatalf("batch %d: roots: %v", i, err)
		}
		th := merkle.TreeHash(roots)
		got := State{Length: feed.Length(), ByteLength: feed.ByteLength(), TreeHash: th[:]}
		for _, r := range roots {
			got.Roots = append(got.Roots, Node{Index: r.Index, Hash: r.Hash[:], Size: r.Size})
		}
		if sig, at, err := feed.Signature(feed.Length() - 1); err != nil || at != feed.Length()-1 {
			t.Fatalf("batch %d: signature: %v at %d", i, err, at)
		} else {
			got.Signature = sig
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("state after batch %d (-reference +go):\n%s", i, diff)
		}
	}
	return feed
}

func TestFeedVectors(t *testing.T) {
	t.Parallel()
	vectors := loadVectors(t)
	for _, name := range vectors.FeedNames() {
		v := vectors.Feeds[name]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			kp := hypercore.KeyPairFromSeed(v.Seed)
			if !bytes.Equal(kp.PublicKey, v.PublicKey) || !bytes.Equal(kp.SecretKey, v.SecretKey) {
				t.Fatalf("key pair from seed: %x / %x, reference %x / %x", []byte(kp.PublicKey), []byte(kp.SecretKey), []byte(v.PublicKey), []byte(v.SecretKey))
			}
			if dk := hypercore.DiscoveryKey(kp.PublicKey); !bytes.Equal(dk[:], v.DiscoveryKey) {
				t.Errorf("discovery key %x, reference %x", dk, []byte(v.DiscoveryKey))
			}
			if v.ValueEncoding == "json" {
				checkJSONValues(t, v)
			}

			dir := t.TempDir()
			if len(v.Files["bitfield"].Hex) >= 7 {
				// A feed of the legacy layout keeps its page size: start the
				// Go feed from the reference's bitfield header.
				if ps := int(v.Files["bitfield"].Hex[5])<<8 | int(v.Files["bitfield"].Hex[6]); ps != bitfield.PageSize {
					h := sleep.BitfieldHeader(ps).Encode()
					if err := os.WriteFile(filepath.Join(dir, "bitfield"), h[:], 0o644); err != nil {
						t.Fatal(err)
					}
				}
			}
			feed := writeFeed(t, v, hypercore.DirStorage{Dir: dir})

			if v.Nodes != nil {
				var got []merkle.Node
				for i := uint64(0); feed.Length() > 0 && i <= 2*(feed.Length()-1); i++ {
					n, err := feed.Node(i)
					if errors.Is(err, hypercore.ErrNotFound) {
						continue
					}
					if err != nil {
						t.Fatal(err)
					}
					got = append(got, n)
				}
				if diff := cmp.Diff(nodesOf(v.Nodes), got, cmpopts.EquateEmpty()); diff != "" {
					t.Errorf("tree nodes (-reference +go):\n%s", diff)
				}
			}
			for _, pv := range v.Proofs {
				p, err := feed.Proof(pv.Index, hypercore.ProofRequest{Digest: pv.Digest, Hash: pv.Hash})
				if err != nil {
					t.Fatalf("proof of %d: %v", pv.Index, err)
				}
				if diff := cmp.Diff(nodesOf(pv.Nodes), p.Nodes); diff != "" {
					t.Errorf("proof of %d (digest %d, hash %v) nodes (-reference +go):\n%s", pv.Index, pv.Digest, pv.Hash, diff)
				}
				if !bytes.Equal(p.Signature, pv.Signature) {
					t.Errorf("proof of %d: signature %x, reference %x", pv.Index, p.Signature, []byte(pv.Signature))
				}
			}
			if err := feed.Close(); err != nil {
				t.Fatal(err)
			}
			checkFiles(t, dir, v.Files)

			// Reopen what Go wrote and read every block back.
			reopened, err := hypercore.Open(hypercore.Config{Storage: hypercore.DirStorage{Dir: dir, ReadOnly: true}, ReadOnly: true})
			if err != nil {
				t.Fatalf("reopen: %v", err)
			}
			defer reopened.Close()
			checkBlocks(t, reopened, v)
		})
	}
}

// checkBlocks reads every block of feed and compares it with the vector's.
func checkBlocks(t *testing.T, feed *hypercore.Feed, v *FeedVector) {
	t.Helper()
	var want [][]byte
	for _, batch := range v.BatchBytes() {
		want = append(want, batch...)
	}
	if feed.Length() != uint64(len(want)) {
		t.Fatalf("length %d, want %d", feed.Length(), len(want))
	}
	for i, w := range want {
		got, err := feed.Get(uint64(i))
		if err != nil {
			t.Fatalf("get %d: %v", i, err)
		}
		if !bytes.Equal(got, w) {
			t.Fatalf("block %d: %q, want %q", i, got, w)
		}
	}
}

// checkJSONValues holds EncodeJSON to the reference's JSON blocks.
func checkJSONValues(t *testing.T, v *FeedVector) {
	t.Helper()
	batches := v.BatchBytes()
	for i, values := range v.Values {
		for j, value := range values {
			got, err := hypercore.EncodeJSON(value)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, batches[i][j]) {
				t.Errorf("EncodeJSON(%v) = %q, reference %q", value, got, batches[i][j])
			}
			var back any
			if err := hypercore.DecodeJSON(batches[i][j], &back); err != nil {
				t.Errorf("DecodeJSON(%q): %v", batches[i][j], err)
			}
		}
	}
}

// TestOpenReferenceFiles opens the feeds the reference wrote, from the
// vectors' files, and reads them back. Only vectors whose files are all
// stored whole can be rebuilt.
func TestOpenReferenceFiles(t *testing.T) {
	t.Parallel()
	vectors := loadVectors(t)
	for _, name := range vectors.FeedNames() {
		v := vectors.Feeds[name]
		if !allInline(v.Files) {
			continue
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			for fname, f := range v.Files {
				if err := os.WriteFile(filepath.Join(dir, fname), f.Hex, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			feed, err := hypercore.Open(hypercore.Config{Storage: hypercore.DirStorage{Dir: dir}})
			if err != nil {
				t.Fatal(err)
			}
			defer feed.Close()
			if !feed.Writable() {
				t.Error("a feed with its secret key opened read-only")
			}
			checkBlocks(t, feed, v)
		})
	}
}

func allInline(files map[string]File) bool {
	for _, f := range files {
		if f.Hex == nil && f.Size > 0 {
			return false
		}
	}
	return true
}

func TestReplicaVectors(t *testing.T) {
	t.Parallel()
	vectors := loadVectors(t)
	for _, name := range vectors.ReplicaNames() {
		rv := vectors.Replicas[name]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			sv := vectors.Feeds[rv.Source]
			if sv == nil {
				t.Fatalf("source %q missing", rv.Source)
			}
			source := writeFeed(t, sv, hypercore.NewMemoryStorage())
			defer source.Close()

			dir := t.TempDir()
			replica, err := hypercore.Open(hypercore.Config{Storage: hypercore.DirStorage{Dir: dir}, PublicKey: []byte(rv.PublicKey), Create: true})
			if err != nil {
				t.Fatal(err)
			}
			remote := bitfield.NewTreeIndex()
			for _, put := range rv.Puts {
				if d := replica.Digest(put.Index); d != put.Digest {
					t.Errorf("digest of %d = %d, reference %d", put.Index, d, put.Digest)
				}
				proof, err := source.Proof(put.Index, hypercore.ProofRequest{Digest: put.Digest, Remote: remote})
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(nodesOf(put.Nodes), proof.Nodes); diff != "" {
					t.Errorf("proof of %d (-reference +go):\n%s", put.Index, diff)
				}
				if !bytes.Equal(proof.Signature, put.Signature) {
					t.Errorf("proof of %d: signature %x, reference %x", put.Index, proof.Signature, []byte(put.Signature))
				}
				data, err := source.Get(put.Index)
				if err != nil {
					t.Fatal(err)
				}
				if err := replica.Put(put.Index, data, proof); err != nil {
					t.Fatalf("put %d: %v", put.Index, err)
				}
				if replica.Length() != put.LengthAfter {
					t.Errorf("after put %d: length %d, reference %d", put.Index, replica.Length(), put.LengthAfter)
				}
			}
			for _, d := range rv.Digests {
				if got := replica.Digest(d.Index); got != d.Digest {
					t.Errorf("final digest of %d = %d, reference %d", d.Index, got, d.Digest)
				}
			}
			if replica.Length() != rv.Length || replica.ByteLength() != rv.ByteLength {
				t.Errorf("replica length %d/%d bytes, reference %d/%d", replica.Length(), replica.ByteLength(), rv.Length, rv.ByteLength)
			}
			if err := replica.Close(); err != nil {
				t.Fatal(err)
			}
			checkFiles(t, dir, rv.Files)

			// The replica reopens with what it had, and only that.
			reopened, err := hypercore.Open(hypercore.Config{Storage: hypercore.DirStorage{Dir: dir}})
			if err != nil {
				t.Fatalf("reopen: %v", err)
			}
			defer reopened.Close()
			if reopened.Length() != rv.Length || reopened.Writable() {
				t.Errorf("reopened replica: length %d, writable %v", reopened.Length(), reopened.Writable())
			}
			fetched := map[uint64]bool{}
			for _, put := range rv.Puts {
				fetched[put.Index] = true
			}
			for i := range reopened.Length() {
				want, _ := source.Get(i)
				got, err := reopened.Get(i)
				switch {
				case fetched[i] && (err != nil || !bytes.Equal(got, want)):
					t.Errorf("reopened replica: block %d = %q, %v", i, got, err)
				case !fetched[i] && !errors.Is(err, hypercore.ErrNotFound):
					t.Errorf("reopened replica: block %d was never fetched, Get = %v", i, err)
				}
			}
		})
	}
}

// TestReplicaRejectsMutatedProofs replays the replica vectors with one thing
// changed at a time: every change must be refused, and refused cleanly.
func TestReplicaRejectsMutatedProofs(t *testing.T) {
	t.Parallel()
	vectors := loadVectors(t)
	rv := vectors.Replicas["replica-sparse"]
	source := writeFeed(t, vectors.Feeds[rv.Source], hypercore.NewMemoryStorage())
	defer source.Close()
	first := rv.Puts[0]
	data, err := source.Get(first.Index)
	if err != nil {
		t.Fatal(err)
	}
	proof := hypercore.Proof{Nodes: nodesOf(first.Nodes), Signature: first.Signature}

	flip := func(b []byte, i int) []byte {
		if len(b) == 0 {
			return []byte{1}
		}
		c := append([]byte(nil), b...)
		c[i%len(c)] ^= 1
		return c
	}
	tests := []struct {
		name  string
		index uint64
		data  []byte
		proof func() hypercore.Proof
	}{
		{"data changed", first.Index, flip(data, 0), func() hypercore.Proof { return proof }},
		{"data extended", first.Index, append(append([]byte(nil), data...), 0), func() hypercore.Proof { return proof }},
		{"wrong index", first.Index + 1, data, func() hypercore.Proof { return proof }},
		{"node hash changed", first.Index, data, func() hypercore.Proof {
			p := hypercore.Proof{Nodes: nodesOf(first.Nodes), Signature: first.Signature}
			p.Nodes[1].Hash[3] ^= 1
			return p
		}},
		{"node size changed", first.Index, data, func() hypercore.Proof {
			p := hypercore.Proof{Nodes: nodesOf(first.Nodes), Signature: first.Signature}
			p.Nodes[0].Size++
			return p
		}},
		{"node dropped", first.Index, data, func() hypercore.Proof {
			return hypercore.Proof{Nodes: nodesOf(first.Nodes)[1:], Signature: first.Signature}
		}},
		{"root dropped", first.Index, data, func() hypercore.Proof {
			n := nodesOf(first.Nodes)
			return hypercore.Proof{Nodes: n[:len(n)-1], Signature: first.Signature}
		}},
		{"signature changed", first.Index, data, func() hypercore.Proof {
			return hypercore.Proof{Nodes: nodesOf(first.Nodes), Signature: flip(first.Signature, 10)}
		}},
		{"signature missing", first.Index, data, func() hypercore.Proof {
			return hypercore.Proof{Nodes: nodesOf(first.Nodes)}
		}},
		{"no proof", first.Index, data, func() hypercore.Proof { return hypercore.Proof{} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			st := hypercore.NewMemoryStorage()
			replica, err := hypercore.Open(hypercore.Config{Storage: st, PublicKey: []byte(rv.PublicKey), Create: true})
			if err != nil {
				t.Fatal(err)
			}
			defer replica.Close()
			err = replica.Put(tt.index, tt.data, tt.proof())
			if !errors.Is(err, hypercore.ErrVerify) {
				t.Fatalf("Put = %v, want ErrVerify", err)
			}
			if replica.Length() != 0 || replica.Has(tt.index) {
				t.Errorf("a rejected put changed the replica: length %d, has %v", replica.Length(), replica.Has(tt.index))
			}
			// The honest block still goes in afterwards.
			if err := replica.Put(first.Index, data, proof); err != nil {
				t.Errorf("honest put after a rejected one: %v", err)
			}
		})
	}
}
