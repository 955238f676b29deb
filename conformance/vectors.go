// Package conformance holds NodeVMS to the JavaScript Dat 1.0 reference
// stack: test vectors generated from the pinned reference (testdata/, made
// by js/generate-vectors.js), and live cross-checks that run the reference
// itself against Go-written data and the other way round.
//
// The reference is pinned in js/package.json and js/package-lock.json:
// hypercore 6.26.0 (and 6.22.0 for the legacy bitfield layout),
// hypercore-protocol 6.12.0 and hyperdrive 9.14.5. See README.md.
package conformance

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/nodevms/nodevms/hypercore/merkle"
)

// Reference is the JavaScript package the vectors and live checks are held
// to.
const Reference = "hypercore@6.26.0"

// HexBytes is a byte string written as hex in JSON.
type HexBytes []byte

// UnmarshalJSON implements json.Unmarshaler.
func (h *HexBytes) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := hex.DecodeString(s)
	if err != nil {
		return err
	}
	*h = v
	return nil
}

// Block is one block in a vector: hex bytes, or a pattern of Size bytes
// where byte j is (Pattern + 7j) mod 256.
type Block struct {
	Bytes []byte
}

// UnmarshalJSON implements json.Unmarshaler.
func (b *Block) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err == nil {
		v, err := hex.DecodeString(s)
		if err != nil {
			return err
		}
		b.Bytes = v
		return nil
	}
	var p struct {
		Pattern int `json:"pattern"`
		Size    int `json:"size"`
	}
	if err := json.Unmarshal(data, &p); err != nil {
		return fmt.Errorf("block is neither hex nor a pattern: %s", data)
	}
	b.Bytes = make([]byte, p.Size)
	for j := range b.Bytes {
		b.Bytes[j] = byte(p.Pattern + 7*j)
	}
	return nil
}

// Node is a tree node in a vector.
type Node struct {
	Index uint64   `json:"index"`
	Hash  HexBytes `json:"hash"`
	Size  uint64   `json:"size"`
}

// Merkle returns n as a merkle.Node.
func (n Node) Merkle() merkle.Node {
	m := merkle.Node{Index: n.Index, Size: n.Size}
	copy(m.Hash[:], n.Hash)
	return m
}

// State is a feed's state after one batch.
type State struct {
	Length     uint64   `json:"length"`
	ByteLength uint64   `json:"byteLength"`
	Roots      []Node   `json:"roots"`
	TreeHash   HexBytes `json:"treeHash"`
	Signature  HexBytes `json:"signature"`
}

// ProofVector is the proof the reference sends for one request.
type ProofVector struct {
	Index     uint64   `json:"index"`
	Digest    uint64   `json:"digest"`
	Hash      bool     `json:"hash"`
	Nodes     []Node   `json:"nodes"`
	Signature HexBytes `json:"signature"`
}

// File is a stored file in a vector: whole (Hex) or by SHA-256.
type File struct {
	Size   int64    `json:"size"`
	Hex    HexBytes `json:"hex"`
	SHA256 HexBytes `json:"sha256"`
}

// FeedVector is a feed written by the reference from a fixed seed.
type FeedVector struct {
	Name          string          `json:"name"`
	Reference     string          `json:"reference"`
	Seed          HexBytes        `json:"seed"`
	PublicKey     HexBytes        `json:"publicKey"`
	SecretKey     HexBytes        `json:"secretKey"`
	DiscoveryKey  HexBytes        `json:"discoveryKey"`
	ValueEncoding string          `json:"valueEncoding"`
	Values        [][]any         `json:"values"`
	Batches       [][]Block       `json:"batches"`
	States        []State         `json:"states"`
	Nodes         []Node          `json:"nodes"` // absent for vectors too large to list them
	Proofs        []ProofVector   `json:"proofs"`
	Files         map[string]File `json:"files"`
}

// Put is one block moved from a source feed into a sparse replica.
type Put struct {
	Index       uint64   `json:"index"`
	Digest      uint64   `json:"digest"`
	Nodes       []Node   `json:"nodes"`
	Signature   HexBytes `json:"signature"`
	LengthAfter uint64   `json:"lengthAfter"`
}

// ReplicaVector is a sparse replica filled block by block from a source.
type ReplicaVector struct {
	Name      string   `json:"name"`
	Reference string   `json:"reference"`
	Source    string   `json:"source"`
	PublicKey HexBytes `json:"publicKey"`
	Puts      []Put    `json:"puts"`
	Digests   []struct {
		Index  uint64 `json:"index"`
		Digest uint64 `json:"digest"`
	} `json:"digests"`
	Length     uint64          `json:"length"`
	ByteLength uint64          `json:"byteLength"`
	Files      map[string]File `json:"files"`
}

// HypercoreVectors are all the hypercore vectors in a directory.
type HypercoreVectors struct {
	Feeds    map[string]*FeedVector
	Replicas map[string]*ReplicaVector
}

// FeedNames returns the feed vectors' names, sorted.
func (v *HypercoreVectors) FeedNames() []string { return sortedKeys(v.Feeds) }

// ReplicaNames returns the replica vectors' names, sorted.
func (v *HypercoreVectors) ReplicaNames() []string { return sortedKeys(v.Replicas) }

func sortedKeys[T any](m map[string]T) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// LoadHypercoreVectors reads dir/hypercore/*.json.
func LoadHypercoreVectors(dir string) (*HypercoreVectors, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "hypercore", "*.json"))
	if err != nil {
		return nil, err
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("no hypercore vectors in %s", dir)
	}
	v := &HypercoreVectors{Feeds: map[string]*FeedVector{}, Replicas: map[string]*ReplicaVector{}}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		var probe struct {
			Name   string `json:"name"`
			Source string `json:"source"`
		}
		if err := json.Unmarshal(b, &probe); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		if probe.Source != "" {
			var r ReplicaVector
			if err := json.Unmarshal(b, &r); err != nil {
				return nil, fmt.Errorf("%s: %w", p, err)
			}
			v.Replicas[r.Name] = &r
			continue
		}
		var f FeedVector
		if err := json.Unmarshal(b, &f); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		v.Feeds[f.Name] = &f
	}
	return v, nil
}

// BatchBytes returns the feed's batches as bytes.
func (f *FeedVector) BatchBytes() [][][]byte {
	out := make([][][]byte, len(f.Batches))
	for i, batch := range f.Batches {
		for _, b := range batch {
			out[i] = append(out[i], b.Bytes)
		}
	}
	return out
}

// HyperdriveVectors are testdata/hyperdrive/archive.json: a scripted
// sequence of archive operations on the reference with a fixed key.
type HyperdriveVectors struct {
	Reference   string
	Seed        HexBytes
	MetadataKey HexBytes
	ContentKey  HexBytes
	Steps       []HyperdriveStep
	Versions    []struct {
		Version uint64
		Readdir map[string]json.RawMessage
	}
	History []struct {
		Version uint64
		Type    string
		Name    string
	}
}

// HyperdriveStep is one operation and the state after it.
type HyperdriveStep struct {
	Op       string // writeFile, mkdir, unlink, rmdir
	Path     string
	Data     *Block
	Time     int64 // mtime and ctime, ms; 0 if the op takes none
	Error    *string
	Version  uint64
	Metadata FeedStep
	Content  FeedStep
	// ContentSignatures are the content feed's non-empty signatures from
	// Content.From on, by block index.
	ContentSignatures map[string]HexBytes
	// Readdir and Stat map a path to a list or a stat, or {"error": ...}.
	Readdir map[string]json.RawMessage
	Stat    map[string]json.RawMessage
}

// FeedStep is a feed after a step: its new blocks (from From on), roots and
// latest signature.
type FeedStep struct {
	Length, ByteLength uint64
	From               uint64
	Blocks             []HexBytes
	Roots              []Node
	Signature          HexBytes
}

// LoadHyperdriveVectors reads dir/hyperdrive/archive.json.
func LoadHyperdriveVectors(dir string) (*HyperdriveVectors, error) {
	b, err := os.ReadFile(filepath.Join(dir, "hyperdrive", "archive.json"))
	if err != nil {
		return nil, err
	}
	var v HyperdriveVectors
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("hyperdrive vectors: %w", err)
	}
	return &v, nil
}
