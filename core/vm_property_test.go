package core_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/nodevms/nodevms/calllog"
	"github.com/nodevms/nodevms/core"
	"github.com/nodevms/nodevms/examples"
	"github.com/nodevms/nodevms/hypercore"
	"github.com/nodevms/nodevms/hyperdrive"
	"github.com/nodevms/nodevms/sandbox"
)

// vmScripts are the backends the VM property runs: the examples, and one
// that uses everything that could break determinism.
func vmScripts(t *testing.T) map[string]string {
	out := map[string]string{}
	for _, name := range examples.Names() {
		code, err := examples.Script(name)
		if err != nil {
			t.Fatal(err)
		}
		out[name] = code
	}
	out["mixed.js"] = `
		const fs = System.files
		let memo = []
		exports.draw = async (n) => {
			const r = Math.random()
			const o = await System.oracle(() => Math.random())
			await new Promise((resolve) => setTimeout(resolve, n % 1000))
			memo.push([r, o, Date.now()])
			await fs.writeFile('/draw-' + (n % 5), JSON.stringify(memo.slice(-2)))
			return { r, o, at: new Date().toISOString(), n }
		}
		exports.fail = (n) => { memo.push(n); throw new Error('failed ' + n) }
		exports.spin = (n) => { memo.push('spin'); if (n % 2 === 0) for (;;) {} return memo.length }
		exports.sum = (...xs) => xs.reduce((a, b) => a + b, 0)
		exports.list = async () => fs.readdir('/')`
	return out
}

// vmCall is a random call for a script.
func vmCall(r *rand.Rand, name string) (method string, args []any, caller *string) {
	users := []string{"alice", "bob"}
	u := users[r.IntN(2)]
	caller = &u
	n := r.IntN(10000)
	switch name {
	case "counter.js", "persistent-counter.js", "secure-counter.js":
		return "increment", nil, caller
	case "photo-album.js":
		if r.IntN(3) == 0 {
			return "listPhotos", nil, caller
		}
		return "addPhoto", []any{fmt.Sprintf("p%d.jpg", n%7), "aGVsbG8="}, caller
	case "random.js":
		return "default", nil, caller
	case "key-server.js":
		switch r.IntN(4) {
		case 0:
			return "setKey", []any{fmt.Sprintf("key-%d", n)}, caller
		case 1:
			return "getKey", []any{users[r.IntN(2)]}, caller
		case 2:
			return "removeKey", []any{users[r.IntN(2)]}, caller
		}
		return "listUsers", nil, caller
	}
	switch r.IntN(5) {
	case 0:
		return "fail", []any{n}, caller
	case 1:
		return "spin", []any{n}, caller
	case 2:
		return "sum", []any{n, n % 13, r.IntN(100)}, caller
	case 3:
		return "list", nil, caller
	}
	return "draw", []any{n}, caller
}

// TestVMProperty: for random call sequences against every script, the host's
// log replays to a verified verdict; a one-byte change to any logged result
// or argument is found; and a one-byte change to an archive entry is found
// against the log. Each script runs with its memory kept and afresh (where
// a stopped call logs a reload).
func TestVMProperty(t *testing.T) {
	for name, code := range vmScripts(t) {
		for _, afresh := range []bool{false, true} {
			testVMProperty(t, name, code, afresh)
		}
	}
}

func testVMProperty(t *testing.T, name, code string, afresh bool) {
	test := name
	if afresh {
		test += ", memory afresh"
	}
	t.Run(test, func(t *testing.T) {
		t.Parallel()
		r := rand.New(rand.NewPCG(uint64(len(name)), 7))
		kp := hypercore.KeyPairFromSeed(bytes.Repeat([]byte{9}, 32))
		archive, err := hyperdrive.Open(hyperdrive.Options{Storage: hyperdrive.MemoryStorage(), Create: true})
		if err != nil {
			t.Fatal(err)
		}
		log, err := hypercore.Open(hypercore.Config{Storage: hypercore.NewMemoryStorage(), SecretKey: kp.SecretKey, Create: true})
		if err != nil {
			t.Fatal(err)
		}
		alice := "alice"
		clock := time.UnixMilli(1_700_000_000_000)
		h, err := core.Deploy(context.Background(), core.Config{
			Archive: archive, Log: log, Limits: sandbox.Limits{Time: 300 * time.Millisecond},
			Now: func() time.Time { clock = clock.Add(7 * time.Millisecond); return clock }, MemoryAfresh: afresh,
		}, code, name, &alice)
		if err != nil {
			t.Fatal(err)
		}
		for range 30 {
			method, args, caller := vmCall(r, name)
			raw, _ := json.Marshal(args)
			if args == nil {
				raw = []byte("[]")
			}
			_, err := h.Call(context.Background(), core.Request{Method: method, Args: raw, CallerID: caller})
			if err != nil && !errors.Is(err, core.ErrAborted) {
				t.Fatalf("%s: %v", method, err)
			}
		}
		if err := h.Close(); err != nil {
			t.Fatal(err)
		}
		v, err := core.Replay(context.Background(), log, core.ReplayOptions{Limits: sandbox.Limits{Time: 300 * time.Millisecond}})
		if err != nil || v.Divergence != nil {
			t.Fatalf("replay: %v, %v", err, v.Divergence)
		}
		if afresh && name == "mixed.js" && v.Reloads == 0 {
			t.Errorf("no call was stopped: the reload went untested")
		}
		var entries []*calllog.Entry
		for i := range log.Length() {
			b, _ := log.Get(i)
			e, err := calllog.DecodeEntry(b)
			if err != nil {
				t.Fatal(err)
			}
			entries = append(entries, e)
		}
		if d := core.CheckArchive(entries, archive); d != nil {
			t.Fatalf("the host's own archive: %v", d)
		}
		checkLogMutations(t, r, log, kp)
		checkArchiveMutation(t, r, archive, entries)
	})
}

// checkLogMutations changes one byte of a logged result or argument (in a
// copy of the log, re-signed with the host's key) and expects the replay to
// report a divergence at that entry.
func checkLogMutations(t *testing.T, r *rand.Rand, log *hypercore.Feed, kp hypercore.KeyPair) {
	t.Helper()
	for range 3 {
		block := 1 + r.Uint64N(log.Length()-1)
		orig, _ := log.Get(block)
		e, _ := calllog.DecodeEntry(orig)
		if e.Type != calllog.TypeCall {
			continue // a reload has no result or arguments
		}
		field := e.Result.Res
		what := "res"
		if len(e.Call.Args) > 2 && r.IntN(2) == 0 {
			field, what = e.Call.Args, "args"
		}
		if e.Call.MethodName == "spin" || what == "args" && e.Call.MethodName != "sum" {
			continue // arguments other methods ignore change nothing
		}
		at := bytes.Index(orig, field)
		if at < 0 {
			t.Fatalf("field not found in block %d", block)
		}
		pos := at + r.IntN(len(field))
		mutated := append([]byte(nil), orig...)
		mutated[pos] ^= 1 + byte(r.IntN(255))
		forged, err := hypercore.Open(hypercore.Config{Storage: hypercore.NewMemoryStorage(), SecretKey: kp.SecretKey, Create: true})
		if err != nil {
			t.Fatal(err)
		}
		for i := range log.Length() {
			b, _ := log.Get(i)
			if i == block {
				b = mutated
			}
			forged.Append(b)
		}
		v, err := core.Replay(context.Background(), forged, core.ReplayOptions{Limits: sandbox.Limits{Time: 300 * time.Millisecond}})
		if err != nil {
			t.Fatal(err)
		}
		// At that block and no other: the entries before it are the host's
		// own, and an honest prefix must replay clean.
		if v.Divergence == nil || v.Divergence.Block != block {
			t.Fatalf("a changed byte in the %s of block %d (%s): divergence %v, want one at that block", what, block, e.Call.MethodName, v.Divergence)
		}
	}
}

// checkArchiveMutation changes one byte of an archive entry (in a copy of
// the archive, re-signed) and expects CheckArchive to notice.
func checkArchiveMutation(t *testing.T, r *rand.Rand, archive *hyperdrive.Archive, entries []*calllog.Entry) {
	t.Helper()
	meta := archive.Metadata()
	if meta.Length() < 3 {
		return
	}
	block := 1 + r.Uint64N(meta.Length()-1)
	st := hypercore.NewMemoryStorage()
	copyMeta, err := hypercore.Open(hypercore.Config{Storage: st, SecretKey: meta.SecretKey(), Create: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := range meta.Length() {
		b, _ := meta.Get(i)
		if i == block {
			b = append([]byte(nil), b...)
			b[r.IntN(len(b))] ^= 0x20
		}
		copyMeta.Append(b)
	}
	copyMeta.Close()
	content := hypercore.NewMemoryStorage()
	cf, _ := hypercore.Open(hypercore.Config{Storage: content, SecretKey: hyperdrive.ContentKeyPair(meta.SecretKey()).SecretKey, Create: true, DiscardSecretKey: true})
	for i := range archive.Content().Length() {
		b, _ := archive.Content().Get(i)
		cf.Append(b)
	}
	cf.Close()
	forged, err := hyperdrive.Open(hyperdrive.Options{Storage: hyperdrive.FeedStorage(st, content), Key: meta.PublicKey(), ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer forged.Close()
	d := core.CheckArchive(entries, forged)
	if d == nil {
		t.Fatalf("a changed byte in archive entry %d went unnoticed", block)
	}
}
