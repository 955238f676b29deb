// Package fuzz holds the fuzz targets for every decoder of outside bytes, with
// seed corpora under testdata/fuzz made from the conformance vectors.
//
// Run one target for a while with
//
//	go test ./fuzz -run '^$' -fuzz '^FuzzPut$' -fuzztime 1m
//
// and regenerate the seed corpora after the vectors change with
//
//	go test ./fuzz -run TestSeedCorpus -update-corpus
package fuzz

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nodevms/nodevms/calllog"
	"github.com/nodevms/nodevms/conformance"
	"github.com/nodevms/nodevms/hypercore"
	"github.com/nodevms/nodevms/hypercore/merkle"
	"github.com/nodevms/nodevms/hypercore/sleep"
	"github.com/nodevms/nodevms/sandbox"
)

var updateCorpus = flag.Bool("update-corpus", false, "rewrite testdata/fuzz from the conformance vectors")

const vectorDir = "../conformance/testdata"

// sourceScenario is the vector whose feed FuzzOpenFiles and FuzzPut use:
// small, with every file stored whole.
const sourceScenario = "singles"

// loadWireVectors reads the wire vectors for seeds.
func loadWireVectors(tb testing.TB) *wireVectors {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(vectorDir, "wire", "vectors.json"))
	if err != nil {
		tb.Fatal(err)
	}
	var v wireVectors
	if err := json.Unmarshal(b, &v); err != nil {
		tb.Fatal(err)
	}
	return &v
}

type wireVectors struct {
	Messages []struct {
		Type uint8
		Body conformance.HexBytes
	}
	Frames []struct{ Frame conformance.HexBytes }
	RLE    []struct{ Encoded conformance.HexBytes }
}

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

// seedCorpus returns, per fuzz target, the seed inputs made from the vectors.
func seedCorpus(t *testing.T) map[string][][]any {
	v := loadVectors(t)
	corpus := map[string][][]any{}
	seen := map[string]bool{}
	add := func(target string, args ...any) {
		key := target + "\x00" + string(marshalCorpusFile(args))
		if !seen[key] {
			seen[key] = true
			corpus[target] = append(corpus[target], args)
		}
	}

	for _, name := range v.FeedNames() {
		fv := v.Feeds[name]
		for _, file := range []string{"tree", "signatures", "bitfield"} {
			if b := fv.Files[file].Hex; len(b) >= sleep.HeaderSize {
				add("FuzzSleepHeader", []byte(b[:sleep.HeaderSize]))
			}
		}
		if tree := fv.Files["tree"].Hex; len(tree) >= sleep.HeaderSize+2*sleep.TreeEntrySize {
			add("FuzzTreeEntry", []byte(tree[sleep.HeaderSize:sleep.HeaderSize+sleep.TreeEntrySize]))
		}
		if bits := fv.Files["bitfield"].Hex; len(bits) > sleep.HeaderSize {
			add("FuzzBitfieldPages", bits[5] == 0x0d, []byte(bits[sleep.HeaderSize:]), uint64(len(fv.Batches)))
		}
	}
	add("FuzzTreeEntry", make([]byte, sleep.TreeEntrySize))

	src := v.Feeds[sourceScenario]
	files := func(name string) []byte { return src.Files[name].Hex }
	add("FuzzOpenFiles", files("tree"), files("bitfield"), files("signatures"), files("data"))
	add("FuzzOpenFiles", files("tree")[:len(files("tree"))-40], files("bitfield"), files("signatures"), files("data"))
	add("FuzzOpenFiles", []byte{}, []byte{}, []byte{}, []byte{})
	for _, st := range lineLogStates(t) {
		add("FuzzOpenLineLog", st["tree"], st["bitfield"], st["signatures"], st["data"])
	}

	wv := loadWireVectors(t)
	var stream []byte
	for _, m := range wv.Messages {
		add("FuzzDecodeMessage", uint8(m.Type), []byte(m.Body))
	}
	for _, fr := range wv.Frames {
		stream = append(stream, fr.Frame...)
	}
	add("FuzzFrameReader", stream, false)
	add("FuzzFrameReader", append([]byte{0x80, 0x80, 0x80, 0x08}, stream...), false)
	// Behind a frame that grows its buffer, in pieces of one byte and of
	// 256, within limits that stop it at once, in the middle, or never.
	add("FuzzFrameReaderDelivery", stream, uint64(300<<10), uint8(0), true, uint64(0))
	add("FuzzFrameReaderDelivery", stream, uint64(200<<10), uint8(255), false, uint64(64<<10))
	add("FuzzFrameReaderDelivery", stream, uint64(5), uint8(6), false, uint64(40))
	add("FuzzFrameReaderDelivery", []byte{0x80, 0x80, 0x80, 0x04, 1, 2, 3}, uint64(1<<20-1), uint8(99), true, uint64(1<<20+8))
	for _, r := range wv.RLE {
		add("FuzzRLE", []byte(r.Encoded))
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
			add("FuzzPut", put.Index, blocks[put.Index], encodeProof(nodes), []byte(put.Signature))
		}
	}

	hv, err := conformance.LoadHyperdriveVectors(vectorDir)
	if err != nil {
		t.Fatal(err)
	}
	// The reference's metadata entries, each behind its length byte, as a
	// hostile archive would start; and cut short after each one.
	entries := []byte{0xff}
	add("FuzzArchiveMetadata", []byte{})
	add("FuzzArchiveMetadata", []byte{2, 0x0a, 0x00})
	for _, step := range hv.Steps {
		for _, b := range step.Metadata.Blocks {
			if len(b) < 256 {
				entries = append(entries, byte(len(b)))
				entries = append(entries, b...)
				add("FuzzArchiveMetadata", append([]byte{}, entries...))
			}
		}
	}
	// Operation sequences for the model: each op, then the sequences of
	// ops that build a tree, fill it and tear it down.
	for op := byte(0); op < 5; op++ {
		add("FuzzHyperdriveModel", []byte{op, 0, op, 1, op, 2})
	}
	add("FuzzHyperdriveModel", []byte{2, 0, 2, 1, 2, 4, 0, 2, 0, 3, 0, 5, 1, 6, 3, 2, 4, 0, 4, 1, 2, 0, 0, 2})
	add("FuzzHyperdriveModel", []byte{2, 0, 0, 200, 2, 4, 0, 5, 3, 2, 4, 4, 4, 9, 0, 7})

	// Call log entries of each shape.
	bob := "bob"
	for _, e := range []*calllog.Entry{
		{Type: calllog.TypeInit, Schema: calllog.SchemaVersion, Code: "exports.f = () => 1", FilesArchiveURL: "dat://" + strings.Repeat("ab", 32),
			FilesContentKey: strings.Repeat("cd", 32), Title: "t", Time: 1, Seed: "0123456789abcdef",
			FilesRoot: &calllog.FilesRoot{Metadata: strings.Repeat("0", 64), Content: strings.Repeat("1", 64), ContentLength: 2}},
		{Type: calllog.TypeCall, Call: &calllog.CallRecord{UserID: &bob, MethodName: "increment", Args: json.RawMessage(`[1,"two",{"three":[3]}]`)},
			Result: &calllog.ResultRecord{Res: json.RawMessage(`{"n":1}`), FilesVersion: 3}, Time: 1700000000000, Seed: "ffffffffffffffff",
			Oracles: []sandbox.OracleValue{{Value: json.RawMessage(`0.5`)}, {Error: &sandbox.ScriptError{Name: "Error", Message: "x"}}}},
		{Type: calllog.TypeCall, Call: &calllog.CallRecord{MethodName: "fail", Args: json.RawMessage(`[]`)},
			Result: &calllog.ResultRecord{Res: json.RawMessage(`null`), Err: &bob}, Error: &sandbox.ScriptError{Name: "Error", Message: "no"}, Seed: "0000000000000000",
			Auth: &calllog.Auth{Key: strings.Repeat("a", 64), Signature: strings.Repeat("b", 128), Seq: 9}},
	} {
		b, err := calllog.EncodeEntry(e)
		if err != nil {
			t.Fatal(err)
		}
		add("FuzzDecodeEntry", b)
	}
	add("FuzzDecodeEntry", []byte(`{"type":"call"}`))
	add("FuzzDecodeEntry", []byte("{}\n{}"))
	// Schema 2: an init entry whose memory starts afresh, and a reload.
	for _, e := range []*calllog.Entry{
		{Type: calllog.TypeInit, Schema: calllog.SchemaAfresh, Memory: calllog.MemoryAfresh, Code: "exports.f = () => 1", FilesArchiveURL: "dat://" + strings.Repeat("ab", 32),
			FilesContentKey: strings.Repeat("cd", 32), Time: 1, Seed: "0123456789abcdef",
			FilesRoot: &calllog.FilesRoot{Metadata: strings.Repeat("0", 64), Content: strings.Repeat("1", 64), ContentLength: 2}},
		{Type: calllog.TypeReload, Reason: calllog.ReloadStoppedCall, Time: 2, Seed: "fedcba9876543210", FilesVersion: 3,
			FilesRoot: &calllog.FilesRoot{Metadata: strings.Repeat("2", 64), Content: strings.Repeat("3", 64), ContentLength: 2}},
	} {
		b, err := calllog.EncodeEntry(e)
		if err != nil {
			t.Fatal(err)
		}
		add("FuzzDecodeEntry", b)
	}
	add("FuzzEncodeEntry", []byte("increment"), []byte(`[]`), []byte(`1`), uint64(1))
	add("FuzzEncodeEntry", []byte("\x00\b\f\n\r\t\x1f\"\\<&>\x7f \u2028\u2029 \xff\xe2\x80 \xed\xa0\x80 é😀"),
		[]byte(" [ 1 , {\"a\" : \"x\"} ]\n"), []byte(`"<&>"`), uint64(7))
	add("FuzzEncodeEntry", []byte(""), []byte(`[1,`), []byte(``), uint64(3))
	add("FuzzEncodeEntry", []byte("afresh"), []byte(`[]`), []byte(`1`), uint64(12))
	for _, req := range []string{
		`{"jsonrpc":"2.0","method":"increment","params":[],"id":1}`,
		`{"jsonrpc":"2.0","method":"add","params":[1,"two",{"three":[3,{"]":"}"}]}],"id":"x\"y"}`,
		`{"jsonrpc":"2.0","method":"m","params":null,"id":null,"auth":{"key":"ab","signature":"cd","seq":3}}`,
		" {\n\t\"method\" : \"m\" , \"id\" : -1.5e3 , \"extra\": [true, false, null] } ",
		`{"Method":"m","method":"\u0061","me\u0074hod":1}`,
		"{\"\u212a\":1,\"method\":\"\xff\"}",
		`{"id":1 x"method":"m","params":[}`,
		`{"method"x"m"}x`,
	} {
		add("FuzzParseRequest", []byte(req))
	}
	return corpus
}

// marshalCorpusFile writes one input in the go test fuzz v1 format.
func marshalCorpusFile(args []any) []byte {
	var b strings.Builder
	b.WriteString("go test fuzz v1\n")
	for _, a := range args {
		switch v := a.(type) {
		case []byte:
			fmt.Fprintf(&b, "[]byte(%s)\n", strconv.Quote(string(v)))
		case uint64:
			fmt.Fprintf(&b, "uint64(%d)\n", v)
		case uint8:
			fmt.Fprintf(&b, "byte(%d)\n", v)
		case bool:
			fmt.Fprintf(&b, "bool(%v)\n", v)
		default:
			panic(fmt.Sprintf("unsupported corpus value %T", a))
		}
	}
	return []byte(b.String())
}

// TestSeedCorpus checks that testdata/fuzz holds exactly the seeds the
// vectors give (or rewrites them with -update-corpus).
func TestSeedCorpus(t *testing.T) {
	corpus := seedCorpus(t)
	targets := make([]string, 0, len(corpus))
	for target := range corpus {
		targets = append(targets, target)
	}
	sort.Strings(targets)
	for _, target := range targets {
		dir := filepath.Join("testdata", "fuzz", target)
		want := map[string][]byte{}
		for i, args := range corpus[target] {
			want[fmt.Sprintf("seed-%03d", i)] = marshalCorpusFile(args)
		}
		if *updateCorpus {
			old, _ := filepath.Glob(filepath.Join(dir, "seed-*"))
			for _, p := range old {
				os.Remove(p)
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			for name, b := range want {
				if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			continue
		}
		got := map[string][]byte{}
		paths, _ := filepath.Glob(filepath.Join(dir, "seed-*"))
		for _, p := range paths {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			got[filepath.Base(p)] = b
		}
		if diff := cmp.Diff(want, got, cmp.Comparer(bytes.Equal)); diff != "" {
			t.Errorf("%s: seed corpus is stale; run: go test ./fuzz -run TestSeedCorpus -update-corpus\n%s", target, diff)
		}
	}
}
