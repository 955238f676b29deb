package core

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nodevms/nodevms/calllog"
	"github.com/nodevms/nodevms/hypercore"
	"github.com/nodevms/nodevms/sandbox"
)

// afreshScript keeps its count in a file and a boot mark in memory: what a
// reload keeps and what it starts afresh. Its top-level code reads the
// clock and Math.random, which a replay of a reload must reproduce.
const afreshScript = `const fs = System.files
	const boot = Date.now() + ':' + Math.random()
	let inMemory = 0
	exports.inc = async () => {
		let n = 0
		try { n = Number(await fs.readFile('/count', 'utf8')) } catch (e) {}
		await fs.writeFile('/count', String(n + 1))
		return [n + 1, ++inMemory]
	}
	exports.big = () => 'x'.repeat(4096)
	exports.spin = async () => { inMemory += 1000; await fs.writeFile('/count', 'lost'); for (;;) {} }
	exports.boot = () => boot`

// deployAfresh deploys afreshScript with MemoryAfresh, without fsyncs: a
// host that runs no standby runtime, so that nothing but a reload can
// restore the script after a stop.
func deployAfresh(t *testing.T) (*Host, *hypercore.Feed, *logBuffer, func()) {
	t.Helper()
	dir := t.TempDir()
	archive, log := openStoresFsync(t, dir, true, false)
	cfg := testConfig(archive, log)
	cfg.MemoryAfresh = true
	cfg.MaxEntry = 1 << 10
	logs := &logBuffer{}
	cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	h, err := Deploy(context.Background(), cfg, afreshScript, "t", nil)
	if err != nil {
		t.Fatal(err)
	}
	if h.standby != nil {
		t.Fatal("a host whose memory starts afresh runs a standby")
	}
	return h, log, logs, func() { h.Close(); archive.Close(); log.Close() }
}

// TestAfreshStopsReload: a backend deployed with MemoryAfresh restores
// nothing after a stopped call: it loads the script again and logs a
// reload entry, so that 100 stops in a row, with no standby and no pause
// between them, cost no replay of the log. The files keep their state, the
// memory starts afresh, and a replay (an audit, a restart) reproduces both.
func TestAfreshStopsReload(t *testing.T) {
	h, log, logs, closeAll := deployAfresh(t)
	defer closeAll()
	ctx := context.Background()
	call := func(method string) (string, error) {
		r, err := h.Call(ctx, Request{Method: method})
		return string(r.Res), err
	}
	for i := range 500 {
		if got, err := call("inc"); err != nil || got != fmt.Sprintf("[%d,%d]", i+1, i+1) {
			t.Fatalf("inc %d: %s, %v", i, got, err)
		}
	}
	boot, _ := call("boot")
	for i := range 100 {
		if _, err := call("big"); !errors.Is(err, ErrEntryTooLarge) {
			t.Fatalf("stop %d: %v, want the call stopped", i, err)
		}
	}
	got, err := call("inc")
	if err != nil || got != "[501,1]" {
		t.Errorf("inc after 100 stops: %s, %v; want the file's count kept and the memory's afresh, [501,1]", got, err)
	}
	if again, _ := call("boot"); again == boot {
		t.Errorf("the script's top-level code did not run again: boot %s", again)
	}
	if h.fullReplays != 0 {
		t.Errorf("%d stops replayed the whole log", h.fullReplays)
	}
	if strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("the host's log has errors:\n%s", logs)
	}
	v, err := Replay(ctx, log, ReplayOptions{})
	if err != nil || v.Divergence != nil {
		t.Fatalf("replay: %v, %v", v, err)
	}
	if v.Calls != 503 || v.Reloads != 100 {
		t.Errorf("replay: %d calls and %d reloads, want 503 and 100", v.Calls, v.Reloads)
	}
	// With its archive's copy on disk, as an audit keeps it: the same
	// verdict, and the folder gone once the replay is done.
	scratch := t.TempDir()
	var during []os.DirEntry
	onDisk, err := Replay(ctx, log, ReplayOptions{ScratchDir: scratch, Progress: func(uint64) {
		if during == nil {
			during, _ = os.ReadDir(scratch)
		}
	}})
	if err != nil || onDisk != v {
		t.Errorf("replay with a scratch folder: %v, %v; want %v", onDisk, err, v)
	}
	if len(during) != 1 || !strings.HasPrefix(during[0].Name(), "nodevms-replay-") {
		t.Errorf("in the scratch folder during the replay: %v", during)
	}
	if left, _ := os.ReadDir(scratch); len(left) != 0 {
		t.Errorf("left in the scratch folder: %v", left)
	}
	e, err := readEntry(log, 502)
	if err != nil {
		t.Fatal(err)
	}
	if e.Type != calllog.TypeReload || e.Reason != calllog.ReloadStoppedCall || e.FilesVersion != entryVersion(mustEntry(t, log, 501)) {
		t.Errorf("the entry after the first stop: %+v, want a reload at the archive's version", e)
	}
}

func mustEntry(t *testing.T, log *hypercore.Feed, i uint64) *calllog.Entry {
	t.Helper()
	e, err := readEntry(log, i)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestAfreshStopInAGroup: a stop in the middle of a group logs its reload
// between the group's calls: those before ran on the old memory, those
// after on the new, and the stopped call's write is undone.
func TestAfreshStopInAGroup(t *testing.T) {
	h, log, _, closeAll := deployAfresh(t)
	defer closeAll()
	h.cfg.Limits.Time = 50 * time.Millisecond
	h.m.setLimits(h.cfg.Limits)
	batch := &Batch{}
	methods := []string{"inc", "inc", "spin", "inc"}
	results := make([]string, len(methods))
	errs := make([]error, len(methods))
	var wg sync.WaitGroup
	for i, method := range methods {
		wg.Add(1)
		h.Add(batch, context.Background(), Request{Method: method}, func(r Response, err error) {
			results[i], errs[i] = string(r.Res), err
			wg.Done()
		})
	}
	h.SubmitBatch(batch)
	wg.Wait()
	want := []string{"[1,1]", "[2,2]", "", "[3,1]"}
	if diff := cmp.Diff(want, results); diff != "" {
		t.Errorf("results (-want +got):\n%s", diff)
	}
	if !errors.Is(errs[2], sandbox.ErrTimeBudget) {
		t.Errorf("spin: %v, want the time budget", errs[2])
	}
	var types []string
	for i := range log.Length() {
		types = append(types, mustEntry(t, log, i).Type)
	}
	if diff := cmp.Diff([]string{calllog.TypeInit, calllog.TypeCall, calllog.TypeCall, calllog.TypeReload, calllog.TypeCall}, types); diff != "" {
		t.Errorf("log (-want +got):\n%s", diff)
	}
	if v, err := Replay(context.Background(), log, ReplayOptions{}); err != nil || v.Divergence != nil {
		t.Errorf("replay: %v, %v", v, err)
	}
}

// TestAfreshRestart: a backend whose memory starts afresh restarts
// without a replay when its archive holds what the log's last entry left:
// its script is loaded again, with a reload entry ("start") logged, and
// the log replays clean. When a crash left the archive behind the log, the
// restart replays the log instead (redoing what the archive lacks), and the
// host serves on with the memory the last reload started.
func TestAfreshRestart(t *testing.T) {
	for _, crash := range []bool{false, true} {
		t.Run(fmt.Sprintf("crash=%v", crash), func(t *testing.T) {
			dir := t.TempDir()
			archive, log := openStores(t, dir, true)
			cfg := testConfig(archive, log)
			cfg.MemoryAfresh, cfg.MaxEntry = true, 1<<10
			h, err := Deploy(context.Background(), cfg, afreshScript, "t", nil)
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			if err := archive.Sync(); err != nil {
				t.Fatal(err)
			}
			for _, method := range []string{"inc", "inc", "big", "inc"} {
				h.Call(ctx, Request{Method: method})
			}
			boot, _ := h.Call(ctx, Request{Method: "boot"})
			length := log.Length()
			if !crash {
				h.Close()
				archive.Close()
				log.Close()
			}
			// After a crash the files are opened again without closing
			// what the crashed host holds: the archive was last flushed
			// before the calls.
			archive, log = openStores(t, dir, false)
			defer func() { archive.Close(); log.Close() }()
			if crash && archive.Version() > deployVersion {
				t.Skipf("the archive was flushed in the meantime (version %d)", archive.Version())
			}
			h, err = Open(ctx, testConfig(archive, log))
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close()
			again, _ := h.Call(ctx, Request{Method: "boot"})
			r, err := h.Call(ctx, Request{Method: "inc"})
			if crash {
				if string(again.Res) != string(boot.Res) {
					t.Errorf("boot after the restart: %s, want the reload's %s", again.Res, boot.Res)
				}
				if err != nil || string(r.Res) != "[4,2]" {
					t.Errorf("inc after the restart: %s, %v; want [4,2]", r.Res, err)
				}
				if log.Length() != length+2 {
					t.Errorf("the log grew by %d entries at the restart, want 2 (the calls)", log.Length()-length)
				}
			} else {
				if string(again.Res) == string(boot.Res) {
					t.Errorf("boot after the restart is the old load's %s: the script was not loaded again", again.Res)
				}
				if err != nil || string(r.Res) != "[4,1]" {
					t.Errorf("inc after the restart: %s, %v; want [4,1], memory afresh", r.Res, err)
				}
				if e := mustEntry(t, log, length); e.Type != calllog.TypeReload || e.Reason != calllog.ReloadStart {
					t.Errorf("entry %d after the restart is %q (%q), want a reload at start", length, e.Type, e.Reason)
				}
			}
			if !h.m.afresh {
				t.Errorf("the restarted host does not know its memory starts afresh")
			}
			if v, err := Replay(ctx, log, ReplayOptions{}); err != nil || v.Divergence != nil {
				t.Errorf("replay: %v, %v", v, err)
			}
		})
	}
}

// TestReloadEntryChecks: what a replay makes of reload entries a host
// would not have written.
func TestReloadEntryChecks(t *testing.T) {
	h, log, _, closeAll := deployAfresh(t)
	ctx := context.Background()
	h.Call(ctx, Request{Method: "inc"})
	h.Call(ctx, Request{Method: "big"})
	h.Call(ctx, Request{Method: "inc"})
	var entries []*calllog.Entry
	for i := range log.Length() {
		entries = append(entries, mustEntry(t, log, i))
	}
	closeAll()
	if entries[2].Type != calllog.TypeReload {
		t.Fatalf("entry 2 is %q, want a reload", entries[2].Type)
	}
	for _, c := range []struct {
		name  string
		edit  func(init, reload *calllog.Entry)
		field string
		kind  string
	}{
		{"as logged", func(*calllog.Entry, *calllog.Entry) {}, "", ""},
		{"in a log whose memory is kept", func(init, _ *calllog.Entry) { init.Schema, init.Memory = calllog.SchemaVersion, "" }, "type", calllog.KindInvalid},
		{"at another version", func(_, r *calllog.Entry) { r.FilesVersion++ }, "filesRoot", calllog.KindTampering},
		{"at another root", func(_, r *calllog.Entry) {
			r.FilesRoot = &calllog.FilesRoot{Metadata: "00", Content: r.FilesRoot.Content}
		}, "filesRoot", calllog.KindTampering},
		// The boot mark comes from the reload's seed: the next call
		// returns no mark, so only the memory differs, which no call shows.
		{"another seed", func(_, r *calllog.Entry) { r.Seed = "0000000000000001" }, "", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			init, reload := *entries[0], *entries[2]
			c.edit(&init, &reload)
			r, err := NewReplayer(ctx, &init, ReplayOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			for i, e := range append([]*calllog.Entry{entries[1], &reload}, entries[3:]...) {
				if err := r.Apply(ctx, uint64(i+1), e); err != nil {
					t.Fatal(err)
				}
			}
			d := r.Verdict().Divergence
			if c.field == "" {
				if d != nil {
					t.Fatalf("divergence %v, want none", d)
				}
				return
			}
			if d == nil || d.Block != 2 || d.Field != c.field || d.Kind != c.kind {
				t.Fatalf("divergence %v, want block 2, %s (%s)", d, c.field, c.kind)
			}
		})
	}
}

// TestReloadThatThrows: a reload whose top-level code throws leaves no
// trace and is tried again with another clock and seed; a script that
// cannot be loaded again at all leaves the host answering ErrState, with
// the log still one that replays clean.
func TestReloadThatThrows(t *testing.T) {
	for _, c := range []struct {
		name  string
		throw string // when the top-level code throws
		lost  bool
	}{
		{"on every other clock", "Date.now() % 10 === 5", false},
		{"on every clock but the deploy's", "Date.now() !== 1700000000000", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			archive, log := openStoresFsync(t, dir, true, false)
			cfg := testConfig(archive, log)
			cfg.MemoryAfresh, cfg.MaxEntry = true, 1<<10
			logs := &logBuffer{}
			cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
			var mu sync.Mutex
			clock := time.UnixMilli(1_700_000_000_000)
			cfg.Now = func() time.Time { // 0, 5, 10, ... ms on
				mu.Lock()
				defer mu.Unlock()
				now := clock
				clock = clock.Add(5 * time.Millisecond)
				return now
			}
			h, err := Deploy(context.Background(), cfg, `if (`+c.throw+`) throw new Error('unlucky')
				exports.big = () => 'x'.repeat(4096)
				exports.ok = () => 1`, "t", nil)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { h.Close(); archive.Close(); log.Close() }()
			ctx := context.Background()
			h.Call(ctx, Request{Method: "ok"}) // the next clock ends in 0
			for i := range 3 {
				_, err := h.Call(ctx, Request{Method: "big"})
				if (i == 0 || !c.lost) && !errors.Is(err, ErrAborted) || i > 0 && c.lost && !errors.Is(err, ErrState) {
					t.Fatalf("big %d: %v", i, err)
				}
			}
			if retried := strings.Contains(logs.String(), "loading the backend again failed"); !retried {
				t.Errorf("no failed load was retried:\n%s", logs)
			}
			_, err = h.Call(ctx, Request{Method: "ok"})
			if c.lost != errors.Is(err, ErrState) || !c.lost && err != nil {
				t.Errorf("ok after the stops: %v (lost: %v)", err, c.lost)
			}
			v, err := Replay(ctx, log, ReplayOptions{})
			if err != nil || v.Divergence != nil {
				t.Fatalf("replay: %v, %v", v, err)
			}
			want := 3
			if c.lost {
				want = 0
			}
			if v.Reloads != want {
				t.Errorf("%d reloads logged, want %d", v.Reloads, want)
			}
		})
	}
}
