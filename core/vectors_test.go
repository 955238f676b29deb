package core

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nodevms/nodevms/calllog"
	"github.com/nodevms/nodevms/hypercore"
	"github.com/nodevms/nodevms/hyperdrive"
	"github.com/nodevms/nodevms/sandbox"
)

var updateVectors = flag.Bool("update-vectors", false, "write testdata/vectors.json from a fresh run of the hosts")

// vectors is testdata/vectors.json: honest call logs, and edits of one of
// their entries, each with the verdict a check must give.
type vectors struct {
	Comment string               `json:"comment"`
	Logs    map[string]vectorLog `json:"logs"`
	Cases   []vectorCase         `json:"cases"`
}

type vectorLog struct {
	Key     string   `json:"key"`     // the call log's public key, hex
	Entries []string `json:"entries"` // its blocks, each one line of JSON
}

type vectorCase struct {
	Name  string `json:"name"`
	Log   string `json:"log"`
	Check string `json:"check"` // "replay" (Replay) or "callers" (calllog.CheckCallers)
	// Block and Entry, if Entry is set, replace that block.
	Block uint64 `json:"block,omitempty"`
	Entry string `json:"entry,omitempty"`
	// Want is the divergence the check must report; null for none.
	Want *vectorVerdict `json:"want"`
}

type vectorVerdict struct {
	Block uint64 `json:"block"`
	Field string `json:"field"`
	Kind  string `json:"kind"`
}

const vectorsFile = "testdata/vectors.json"

// TestVectors checks every committed log and edit against the verdict it
// must give: honest logs verify, and each edit is found at its block, in
// its field, as its kind. With -update-vectors the logs are made again by
// hosts (with fixed keys, clocks and seeds) and the edits' verdicts, which
// the cases state, are checked before anything is written.
func TestVectors(t *testing.T) {
	if *updateVectors {
		writeVectors(t)
	}
	raw, err := os.ReadFile(vectorsFile)
	if err != nil {
		t.Fatal(err)
	}
	var v vectors
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	for _, c := range v.Cases {
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel()
			log, ok := v.Logs[c.Log]
			if !ok {
				t.Fatalf("no log %q", c.Log)
			}
			got, err := runVectorCase(log, c)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(c.Want, got); diff != "" {
				t.Errorf("verdict (-want +got):\n%s", diff)
			}
		})
	}
}

// runVectorCase applies a case's edit to its log and checks the result.
func runVectorCase(log vectorLog, c vectorCase) (*vectorVerdict, error) {
	blocks := append([]string(nil), log.Entries...)
	if c.Entry != "" {
		if c.Block >= uint64(len(blocks)) {
			return nil, fmt.Errorf("block %d of a %d-entry log", c.Block, len(blocks))
		}
		blocks[c.Block] = c.Entry
	}
	var d *calllog.Divergence
	switch c.Check {
	case "replay":
		feed, err := hypercore.Open(hypercore.Config{Storage: hypercore.NewMemoryStorage(), Create: true})
		if err != nil {
			return nil, err
		}
		defer feed.Close()
		for _, b := range blocks {
			if _, err := feed.Append([]byte(b + "\n")); err != nil {
				return nil, err
			}
		}
		v, err := Replay(context.Background(), feed, ReplayOptions{Limits: vectorLimits})
		if err != nil {
			return nil, err
		}
		d = v.Divergence
	case "callers":
		key, err := hex.DecodeString(log.Key)
		if err != nil {
			return nil, err
		}
		entries := make([]*calllog.Entry, len(blocks))
		for i, b := range blocks {
			if entries[i], err = calllog.DecodeEntry([]byte(b)); err != nil {
				return nil, err
			}
		}
		d = calllog.CheckCallers(entries, key, false)
	default:
		return nil, fmt.Errorf("check %q", c.Check)
	}
	if d == nil {
		return nil, nil
	}
	return &vectorVerdict{Block: d.Block, Field: d.Field, Kind: d.Kind}, nil
}

// vectorLimits are the hosts' limits: the "spin" call is stopped in time.
var vectorLimits = sandbox.Limits{Time: 200 * time.Millisecond}

// vectorScript uses what a log records: arguments, Math.random, Date,
// thrown errors, files, oracles, and the script's memory.
const vectorScript = `const fs = System.files
let calls = 0
exports.add = (a, b) => { calls++; return a + b }
exports.roll = () => Math.floor(Math.random() * 1e6)
exports.now = () => Date.now()
exports.fail = (m) => { throw new TypeError(m) }
exports.save = async (name, text) => { await fs.writeFile('/' + name, text); return (await fs.readdir('/')).length }
exports.ask = async () => System.oracle(() => 42)
exports.count = () => calls
exports.spin = () => { calls += 100; for (;;) {} }
`

// vectorHost runs calls on a host with fixed keys, clock and seeds, and
// returns its log.
func vectorHost(t *testing.T, afresh bool, calls func(h *Host, logKey []byte)) vectorLog {
	t.Helper()
	seed := byte(1)
	if afresh {
		seed = 2
	}
	logKeys := hypercore.KeyPairFromSeed(bytes.Repeat([]byte{seed}, 32))
	filesKeys := hypercore.KeyPairFromSeed(bytes.Repeat([]byte{seed + 10}, 32))
	archive, err := hyperdrive.Open(hyperdrive.Options{Storage: hyperdrive.MemoryStorage(), SecretKey: filesKeys.SecretKey, Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer archive.Close()
	log, err := hypercore.Open(hypercore.Config{Storage: hypercore.NewMemoryStorage(), SecretKey: logKeys.SecretKey, Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	var mu sync.Mutex
	clock := time.UnixMilli(1_700_000_000_000)
	h, err := Deploy(context.Background(), Config{
		Archive: archive, Log: log, Limits: vectorLimits, MemoryAfresh: afresh,
		Rand: rand.NewChaCha8([32]byte{seed}),
		Now: func() time.Time {
			mu.Lock()
			defer mu.Unlock()
			clock = clock.Add(1500 * time.Millisecond)
			return clock
		},
	}, vectorScript, "vectors", nil)
	if err != nil {
		t.Fatal(err)
	}
	calls(h, logKeys.PublicKey)
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	out := vectorLog{Key: hex.EncodeToString(logKeys.PublicKey)}
	for i := range log.Length() {
		b, err := log.Get(i)
		if err != nil {
			t.Fatal(err)
		}
		out.Entries = append(out.Entries, strings.TrimSuffix(string(b), "\n"))
	}
	return out
}

// writeVectors makes the logs, states each edit's verdict, checks it, and
// writes testdata/vectors.json.
func writeVectors(t *testing.T) {
	call := func(h *Host, method string, args ...any) {
		raw, _ := json.Marshal(args)
		if args == nil {
			raw = []byte("[]")
		}
		h.Call(context.Background(), Request{Method: method, Args: raw})
	}
	alice := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))
	aliceID := hex.EncodeToString(alice.Public().(ed25519.PublicKey))
	signed := func(h *Host, logKey []byte, seq uint64, method string, args string) {
		msg, err := calllog.SignedBytes(logKey, method, json.RawMessage(args), seq)
		if err != nil {
			t.Fatal(err)
		}
		auth := &calllog.Auth{Key: aliceID, Signature: hex.EncodeToString(ed25519.Sign(alice, msg)), Seq: seq}
		if _, err := h.Call(context.Background(), Request{Method: method, Args: json.RawMessage(args), CallerID: &aliceID, Auth: auth}); err != nil {
			t.Fatal(err)
		}
	}
	v := vectors{
		Comment: "Call logs a host wrote (one JSON entry per block), and edits of one block each, with the divergence a check must report (null: none). Made by go test ./core -run TestVectors -update-vectors.",
		Logs: map[string]vectorLog{
			// 0 init, 1 add, 2 roll, 3 now, 4 fail, 5 save, 6 ask, 7 count,
			// 8 and 9 signed adds.
			"kept": vectorHost(t, false, func(h *Host, logKey []byte) {
				call(h, "add", 2, 3)
				call(h, "roll")
				call(h, "now")
				call(h, "fail", "nope")
				call(h, "save", "a", "hello")
				call(h, "ask")
				call(h, "count")
				signed(h, logKey, 1, "add", "[1,1]")
				signed(h, logKey, 2, "add", "[2,2]")
			}),
			// 0 init, 1 add, 2 reload (after the stopped spin), 3 count.
			"afresh": vectorHost(t, true, func(h *Host, logKey []byte) {
				call(h, "add", 2, 3)
				call(h, "spin")
				call(h, "count")
			}),
		},
	}
	kept, afresh := v.Logs["kept"], v.Logs["afresh"]
	edit := func(log vectorLog, block uint64, from, to string) string {
		b := log.Entries[block]
		if !strings.Contains(b, from) {
			t.Fatalf("block %d has no %q: %s", block, from, b)
		}
		return strings.Replace(b, from, to, 1)
	}
	want := func(block uint64, field, kind string) *vectorVerdict {
		return &vectorVerdict{Block: block, Field: field, Kind: kind}
	}
	root := func(log vectorLog, block uint64) string {
		e, err := calllog.DecodeEntry([]byte(log.Entries[block]))
		if err != nil {
			t.Fatal(err)
		}
		return e.FilesRoot.Metadata
	}
	v.Cases = []vectorCase{
		{Name: "kept: as the host wrote it", Log: "kept", Check: "replay"},
		{Name: "kept: a result edited", Log: "kept", Check: "replay", Block: 1, Entry: edit(kept, 1, `"res":5`, `"res":6`), Want: want(1, "res", calllog.KindTampering)},
		{Name: "kept: arguments edited", Log: "kept", Check: "replay", Block: 1, Entry: edit(kept, 1, `"args":[2,3]`, `"args":[2,4]`), Want: want(1, "res", calllog.KindTampering)},
		{Name: "kept: the seed of Math.random edited", Log: "kept", Check: "replay", Block: 2, Entry: seedEdited(t, kept.Entries[2]), Want: want(2, "res", calllog.KindTampering)},
		{Name: "kept: the clock edited", Log: "kept", Check: "replay", Block: 3, Entry: timeEdited(t, kept.Entries[3]), Want: want(3, "res", calllog.KindTampering)},
		{Name: "kept: a thrown message edited", Log: "kept", Check: "replay", Block: 4, Entry: edit(kept, 4, `"message":"nope"`, `"message":"nope!"`), Want: want(4, "err", calllog.KindTampering)},
		{Name: "kept: a files root edited", Log: "kept", Check: "replay", Block: 5, Entry: edit(kept, 5, root(kept, 5), strings.Repeat("0", 64)), Want: want(5, "filesRoot", calllog.KindNondeterminism)},
		{Name: "kept: a files version edited", Log: "kept", Check: "replay", Block: 5, Entry: edit(kept, 5, `"filesVersion":3`, `"filesVersion":4`), Want: want(5, "filesVersion", calllog.KindNondeterminism)},
		{Name: "kept: an oracle value edited", Log: "kept", Check: "replay", Block: 6, Entry: edit(kept, 6, `"value":42`, `"value":43`), Want: want(6, "res", calllog.KindTampering)},
		{Name: "kept: an oracle value dropped", Log: "kept", Check: "replay", Block: 6, Entry: edit(kept, 6, `,"oracles":[{"value":42}]`, ``), Want: want(6, "oracles", calllog.KindNondeterminism)},
		{Name: "kept: a method that does not exist", Log: "kept", Check: "replay", Block: 7, Entry: edit(kept, 7, `"methodName":"count"`, `"methodName":"counts"`), Want: want(7, "methodName", calllog.KindTampering)},
		{Name: "kept: a call of init", Log: "kept", Check: "replay", Block: 7, Entry: edit(kept, 7, `"methodName":"count"`, `"methodName":"init"`), Want: want(7, "methodName", calllog.KindTampering)},
		{Name: "kept: an entry of no known type", Log: "kept", Check: "replay", Block: 7, Entry: edit(kept, 7, `"type":"call"`, `"type":"cal"`), Want: want(7, "entry", calllog.KindInvalid)},
		{Name: "kept: a reload in a log whose memory is kept", Log: "kept", Check: "replay", Block: 7,
			Entry: fmt.Sprintf(`{"type":"reload","reason":"stopped call","time":1700000000000,"seed":"0000000000000001","filesVersion":4,"filesRoot":%s}`, rootJSON(t, kept.Entries[6])),
			Want:  want(7, "type", calllog.KindInvalid)},
		{Name: "kept: the memory edited (a count the calls before do not give)", Log: "kept", Check: "replay", Block: 7, Entry: edit(kept, 7, `"res":1`, `"res":2`), Want: want(7, "res", calllog.KindTampering)},
		{Name: "kept: callers as the host logged them", Log: "kept", Check: "callers"},
		{Name: "kept: a signature edited", Log: "kept", Check: "callers", Block: 8, Entry: sigEdited(t, kept.Entries[8]), Want: want(8, "auth", calllog.KindTampering)},
		{Name: "kept: a sequence number used twice", Log: "kept", Check: "callers", Block: 9, Entry: kept.Entries[8], Want: want(9, "auth", calllog.KindTampering)},
		{Name: "kept: a signed call's caller renamed", Log: "kept", Check: "callers", Block: 8, Entry: edit(kept, 8, `"userId":"`+aliceID, `"userId":"`+strings.ToUpper(aliceID)), Want: want(8, "auth", calllog.KindTampering)},
		{Name: "afresh: as the host wrote it", Log: "afresh", Check: "replay"},
		{Name: "afresh: a reload at another files root", Log: "afresh", Check: "replay", Block: 2, Entry: edit(afresh, 2, root(afresh, 2), strings.Repeat("0", 64)), Want: want(2, "filesRoot", calllog.KindTampering)},
		{Name: "afresh: the memory after a reload edited", Log: "afresh", Check: "replay", Block: 3, Entry: edit(afresh, 3, `"res":0`, `"res":1`), Want: want(3, "res", calllog.KindTampering)},
		{Name: "afresh: a reload's type edited", Log: "afresh", Check: "replay", Block: 2, Entry: edit(afresh, 2, `"type":"reload"`, `"type":"call"`), Want: want(2, "entry", calllog.KindInvalid)},
	}
	for _, c := range v.Cases {
		got, err := runVectorCase(v.Logs[c.Log], c)
		if err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		if diff := cmp.Diff(c.Want, got); diff != "" {
			t.Fatalf("%s: verdict (-stated +replayed):\n%s", c.Name, diff)
		}
	}
	var raw bytes.Buffer
	enc := json.NewEncoder(&raw)
	enc.SetEscapeHTML(false) // the scripts' => stay readable
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(vectorsFile), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(vectorsFile, raw.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// seedEdited, timeEdited and sigEdited change an entry's seed, clock or
// signature, keeping it well formed.
func seedEdited(t *testing.T, block string) string {
	return reencoded(t, block, func(e *calllog.Entry) { e.Seed = "0123456789abcdef" })
}

func timeEdited(t *testing.T, block string) string {
	return reencoded(t, block, func(e *calllog.Entry) { e.Time += 1000 })
}

func sigEdited(t *testing.T, block string) string {
	return reencoded(t, block, func(e *calllog.Entry) {
		sig := []byte(e.Auth.Signature)
		sig[0] ^= 1 // '0'..'f' stay hex
		if sig[0] > 'f' || (sig[0] > '9' && sig[0] < 'a') {
			sig[0] = '0'
		}
		e.Auth.Signature = string(sig)
	})
}

func reencoded(t *testing.T, block string, edit func(*calllog.Entry)) string {
	t.Helper()
	e, err := calllog.DecodeEntry([]byte(block))
	if err != nil {
		t.Fatal(err)
	}
	edit(e)
	b, err := calllog.EncodeEntry(e)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSuffix(string(b), "\n")
}

func rootJSON(t *testing.T, block string) string {
	t.Helper()
	e, err := calllog.DecodeEntry([]byte(block))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(e.FilesRoot)
	return string(b)
}
