package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nodevms/nodevms/calllog"
	"github.com/nodevms/nodevms/hypercore"
	"github.com/nodevms/nodevms/rpc"
)

// The crash harness's knobs. The defaults keep CI fast; a long run is
// `go test ./cli -run Crash -crash.kills=50 -timeout 30m -v`.
var (
	crashKills = flag.Int("crash.kills", 5, "TestCrashKill: SIGKILLs per --sync mode")
	crashSeed  = flag.Uint64("crash.seed", 0, "TestCrashKill: the seed of the kill schedule (0: from the clock)")
	crashKeep  = flag.String("crash.keep", "", "TestCrashKill: copy a damaged backend folder into this folder when a check fails")
)

// How the harness loads and kills a server.
const (
	crashConns   = 4 // connections per server run
	crashPerConn = 4 // calls in flight on each: 16 in all
	// Kills come in fours: after 20 to 300 ms of load; while the server
	// starts; after 1 to 2.5 s of load, so that the host has flushed its
	// archive (once a second, core's archiveSyncEvery) and the kill may
	// land in or after a flush rather than only in the log's appends; and
	// at a flush, as soon as the bitfield of one of the archive's feeds
	// is written (only a flush writes it), so that the kill lands between
	// the two feeds' syncs or just after them.
	crashMinLoad     = 20 // ms
	crashMaxLoad     = 300
	crashMinLongLoad = 1000
	crashMaxLongLoad = 2500
	crashStartWait   = 2 * time.Minute
	crashExitWait    = 15 * time.Second
	crashCallTimeout = 10 * time.Second
	crashAuditWait   = 10 * time.Minute
	crashFlushWait   = 3 * time.Second // at most, for a flush
)

// TestCrashKill runs the real binary serving examples/persistent-counter.js
// under 16 calls in flight and kills it with SIGKILL at random moments,
// some of them while it starts (replaying its log and redoing what the
// archive lost), then checks what a crash must never do: every restart
// succeeds; no acknowledged call is lost or answered twice; the count is
// the number of calls logged; and the audit verifies the result.
//
// Each call carries a unique tag as its argument (the script ignores it,
// the log keeps it), so that the log says which call made each count:
// an acknowledged call whose entry was lost and whose count a later call
// took is caught even when that later call was never answered.
//
// A SIGKILL ends the process, not the machine: what it wrote is in the
// operating system's cache and survives. So --sync none (which leaves
// flushing to the operating system, and may lose answered calls only
// when the machine goes down) must lose nothing here either.
func TestCrashKill(t *testing.T) {
	if testing.Short() {
		t.Skip("the crash harness kills the real binary under load, for half a minute")
	}
	seed := *crashSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -crash.seed=%d)", seed, seed)
	modes := []string{"always", "none"}
	for i, mode := range modes {
		// Each mode's kills end by its share of three quarters of the
		// time left, leaving the rest for the final checks (whose start
		// and audit replay the whole log).
		stopBy := time.Now().Add(24 * time.Hour)
		if d, ok := t.Deadline(); ok {
			stopBy = time.Now().Add(time.Until(d) * 3 / 4 / time.Duration(len(modes)-i))
		}
		t.Run("sync="+mode, func(t *testing.T) {
			h := &crashHarness{t: t, mode: mode, seed: seed, stopBy: stopBy,
				rng: rand.New(rand.NewPCG(seed, uint64(i)))}
			h.run()
		})
	}
}

// crashHarness is one --sync mode's run.
type crashHarness struct {
	t      *testing.T
	mode   string
	seed   uint64
	rng    *rand.Rand
	stopBy time.Time // no kill after it
	script string
	dir    string
	kill   int // the kill under way (after the loop, the number made), for reports

	mu     sync.Mutex
	nextID int64           // the next call's tag
	acked  map[int64]int64 // tag -> the count its answer gave
	stats  crashStats
	before string // a copy of the folder before the current start
}

type crashStats struct {
	kills, earlyKills, lateEarly int // lateEarly: meant for the start, landed after the banner
	acked, unanswered, errors    int
	failedStarts, starts         int
}

func (h *crashHarness) run() {
	t := h.t
	h.script = exampleFile(t, "persistent-counter.js")
	h.dir = filepath.Join(t.TempDir(), "pc")
	h.acked = map[int64]int64{}
	h.before = filepath.Join(t.TempDir(), "before")

	lastStart := 200 * time.Millisecond
	for h.kill = 0; h.kill < *crashKills; h.kill++ {
		if time.Now().After(h.stopBy) {
			t.Logf("stopping after %d kills: the test's deadline is near", h.kill)
			break
		}
		// All drawn whatever the kill, so that a seed gives the same
		// draws (the start-up kills' delays are scaled by the last
		// start-up measured).
		earlyDelay := time.Duration(h.rng.Int64N(int64(lastStart)*3/2 + 1))
		loadDelay := time.Duration(crashMinLoad+h.rng.IntN(crashMaxLoad-crashMinLoad+1)) * time.Millisecond
		longDelay := time.Duration(crashMinLongLoad+h.rng.IntN(crashMaxLongLoad-crashMinLongLoad+1)) * time.Millisecond
		watch := flushFiles[h.rng.IntN(len(flushFiles))]
		switch h.kill % 4 {
		case 1:
			h.killWhileStarting(earlyDelay)
			continue
		case 2:
			loadDelay, watch = longDelay, ""
		case 3:
			loadDelay = crashFlushWait
		default:
			watch = ""
		}
		p := h.startOrRetry()
		lastStart = p.startTime
		h.load(p, loadDelay, watch)
	}

	// The last start, then the checks.
	p := h.startOrRetry()
	final := h.finalCall(p)
	h.check(final)
	code, text := h.audit(p.addr)
	auditOK := code == 0 && strings.Contains(text, fmt.Sprintf("VERIFIED %d calls", final))
	if !auditOK {
		t.Errorf("the audit of the final server: exit %d, want 0 and VERIFIED %d calls (seed %d)\n%s", code, final, h.seed, text)
	}
	if err := p.stop(); err != nil {
		t.Errorf("the final server did not stop cleanly: %v\nstderr:\n%s", err, p.stderr())
	}
	h.checkLog(final)
	if t.Failed() {
		h.keep("final", h.dir)
	}
	s := h.stats
	t.Logf("--sync %s: %d kills (%d while starting, %d of those after the banner), %d acknowledged calls, %d unanswered at a kill, %d error answers, %d failed starts of %d, final count %d, audit exit %d\n%s",
		h.mode, s.kills, s.earlyKills, s.lateEarly, s.acked, s.unanswered, s.errors, s.failedStarts, s.starts, final, code, strings.TrimSpace(text))
}

// audit runs `nodevms -a addr`, bounded in time, and returns its exit code
// and report.
func (h *crashHarness) audit(addr string) (int, string) {
	ctx, cancel := context.WithTimeout(context.Background(), crashAuditWait)
	defer cancel()
	out, err := exec.CommandContext(ctx, nodevmsBin(h.t), "-a", addr).CombinedOutput()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		return exit.ExitCode(), withoutProgress(string(out))
	case err != nil:
		h.t.Fatalf("the audit: %v", err)
	}
	return 0, withoutProgress(string(out))
}

// killWhileStarting starts the server and kills it after delay, whether
// or not it has finished starting: delay is drawn from up to one and a
// half start-up times, so that most of these kills land in the start-up's
// replay and recovery.
func (h *crashHarness) killWhileStarting(delay time.Duration) {
	h.snapshot()
	p := h.spawn()
	select {
	case <-p.exited:
		h.failedStart(p, "before it was killed")
		return
	case <-time.After(delay):
	}
	up := p.ready()
	if err := p.sigkill(); err != nil {
		h.failedStart(p, err.Error())
		return
	}
	h.stats.kills++
	h.stats.earlyKills++
	if up {
		h.stats.lateEarly++
	}
	h.t.Logf("kill %d: %v after the start (banner shown: %v)", h.kill, delay, up)
}

// startOrRetry starts the server and waits for its banner. A start that
// fails is a test failure; it is tried once more, so that the report says
// whether the folder is damaged for good.
func (h *crashHarness) startOrRetry() *crashProc {
	for try := 0; ; try++ {
		h.snapshot()
		p := h.spawn()
		select {
		case <-p.up:
			return p
		case <-p.exited:
			h.failedStart(p, "")
		case <-time.After(crashStartWait):
			p.sigkill()
			h.failedStart(p, fmt.Sprintf("no banner within %v", crashStartWait))
		}
		if try == 1 {
			h.t.Fatalf("%s failed twice in a row (seed %d)", h.startName(), h.seed)
		}
	}
}

// failedStart reports a start that ended on its own, with its stderr, and
// keeps the folder as the kill left it and as the start left it.
func (h *crashHarness) failedStart(p *crashProc, why string) {
	h.stats.failedStarts++
	if why != "" {
		why = " (" + why + ")"
	}
	h.t.Errorf("--sync %s: %s failed%s: %v (seed %d)\nstderr:\n%s",
		h.mode, h.startName(), why, p.cmd.ProcessState, h.seed, p.stderr())
	name := fmt.Sprintf("failed-start%d-after-kill%d", h.stats.failedStarts, h.kill-1)
	h.keep(name+"-before", h.before)
	h.keep(name+"-after", h.dir)
}

// flushFiles are files of .dat that only a flush of the archive writes
// (the trees and signatures are written when the host signs, every few
// milliseconds), content first (hyperdrive's Sync); the kills at a flush
// watch them.
var flushFiles = []string{"content.bitfield", "metadata.bitfield"}

// startName names the start under way, for reports.
func (h *crashHarness) startName() string {
	if h.kill == 0 {
		return "the deploy"
	}
	return fmt.Sprintf("the start after kill %d", h.kill-1)
}

// load runs 16 calls in flight on p for delay, kills it, and records
// every answer. With watch, the kill comes as soon as that file of the
// folder's .dat is written, if it is within delay.
func (h *crashHarness) load(p *crashProc, delay time.Duration, watch string) {
	t := h.t
	var clients []*rpc.Client
	for range crashConns {
		c, err := rpc.Dial(context.Background(), p.addr, rpc.ClientOptions{Timeout: crashCallTimeout})
		if err != nil {
			t.Fatalf("dialling the server before kill %d: %v\nstderr:\n%s", h.kill, err, p.stderr())
		}
		defer c.Close()
		clients = append(clients, c)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for _, c := range clients {
		for range crashPerConn {
			wg.Add(1)
			go func() {
				defer wg.Done()
				h.caller(c, stop)
			}()
		}
	}
	flushed := make(chan struct{})
	if watch != "" {
		go watchWrite(filepath.Join(h.dir, ".dat", watch), flushed, stop)
	}
	timer := time.NewTimer(delay)
	defer timer.Stop()
	began := time.Now()
	fired := false
	select {
	case <-timer.C:
	case <-flushed:
		fired = true
	case <-p.exited:
	}
	err := p.sigkill()
	close(stop)
	wg.Wait()
	if err != nil {
		t.Errorf("--sync %s: the server ended on its own under load before kill %d (seed %d): %v\nstderr:\n%s",
			h.mode, h.kill, h.seed, err, p.stderr())
		h.keep(fmt.Sprintf("exit-under-load-%d", h.kill), h.dir)
		return
	}
	h.stats.kills++
	switch {
	case watch == "":
		t.Logf("kill %d: %v of load, after a start of %v", h.kill, delay, p.startTime)
	case fired:
		t.Logf("kill %d: as %s was written, %v into the load, after a start of %v", h.kill, watch, time.Since(began).Round(time.Millisecond), p.startTime)
	default:
		t.Logf("kill %d: %s was not written in %v of load, after a start of %v", h.kill, watch, delay, p.startTime)
	}
	if s := p.stderr(); s != "" {
		t.Logf("kill %d: stderr of the run:\n%s", h.kill, s)
	}
}

// watchWrite closes written as soon as path's size or modification time
// differs from when it was first seen, polling fast (a flush's syncs take
// milliseconds), until stop.
func watchWrite(path string, written, stop chan struct{}) {
	var size int64
	var mtime time.Time
	if st, err := os.Stat(path); err == nil {
		size, mtime = st.Size(), st.ModTime()
	}
	for {
		select {
		case <-stop:
			return
		default:
		}
		if st, err := os.Stat(path); err == nil && (st.Size() != size || !st.ModTime().Equal(mtime)) {
			close(written)
			return
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// caller calls increment until stop or an error; a call that got no
// answer (the server was killed) may or may not have been logged.
func (h *crashHarness) caller(c *rpc.Client, stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		h.mu.Lock()
		h.nextID++
		tag := h.nextID
		h.mu.Unlock()
		res, err := c.Call(context.Background(), "increment", tag)
		var ce *rpc.CallError
		switch {
		case errors.As(err, &ce):
			h.mu.Lock()
			h.stats.errors++
			h.mu.Unlock()
			h.t.Errorf("--sync %s: increment answered an error before kill %d: %v", h.mode, h.kill, err)
			return
		case err != nil:
			h.mu.Lock()
			h.stats.unanswered++
			h.mu.Unlock()
			return
		}
		n, perr := strconv.ParseInt(string(res), 10, 64)
		h.mu.Lock()
		if perr == nil {
			h.acked[tag] = n
			h.stats.acked++
		}
		h.mu.Unlock()
		if perr != nil {
			h.t.Errorf("increment answered %s, not a count", res)
			return
		}
	}
}

// finalCall makes one more call and returns the count before it: the
// number of calls logged before it, if the host kept its word.
func (h *crashHarness) finalCall(p *crashProc) int64 {
	c, err := rpc.Dial(context.Background(), p.addr, rpc.ClientOptions{Timeout: crashCallTimeout})
	if err != nil {
		h.t.Fatalf("dialling the final server: %v\nstderr:\n%s", err, p.stderr())
	}
	defer c.Close()
	h.mu.Lock()
	h.nextID++
	tag := h.nextID
	h.mu.Unlock()
	res, err := c.Call(context.Background(), "increment", tag)
	if err != nil {
		h.t.Fatalf("the final increment: %v\nstderr:\n%s", err, p.stderr())
	}
	n, err := strconv.ParseInt(string(res), 10, 64)
	if err != nil {
		h.t.Fatalf("the final increment answered %s", res)
	}
	h.acked[tag] = n
	h.stats.acked++
	return n
}

// check: every answered count is at most the final one, and no count was
// answered twice.
func (h *crashHarness) check(final int64) {
	byCount := map[int64][]int64{}
	var over []int64
	for tag, n := range h.acked {
		byCount[n] = append(byCount[n], tag)
		if n > final || n < 1 {
			over = append(over, n)
		}
	}
	var dups []string
	for n, tags := range byCount {
		if len(tags) > 1 {
			sort.Slice(tags, func(i, j int) bool { return tags[i] < tags[j] })
			dups = append(dups, fmt.Sprintf("%d (calls %v)", n, tags))
		}
	}
	sort.Slice(over, func(i, j int) bool { return over[i] < over[j] })
	sort.Strings(dups)
	if len(over) > 0 {
		h.t.Errorf("--sync %s: %d answered counts are not in 1..%d, the final count (seed %d): %v", h.mode, len(over), final, h.seed, firstFew(over))
	}
	if len(dups) > 0 {
		h.t.Errorf("--sync %s: %d counts answered twice (seed %d): %v", h.mode, len(dups), h.seed, firstFew(dups))
	}
}

// checkLog reads the stopped server's call log: entry i is the call that
// made the count i, and each answered call is the entry of its count.
func (h *crashHarness) checkLog(final int64) {
	t := h.t
	log, err := hypercore.Open(hypercore.Config{Storage: hypercore.DirStorage{Dir: filepath.Join(h.dir, ".dat"), Prefix: "call-log."}, ReadOnly: true})
	if err != nil {
		t.Errorf("opening the call log: %v", err)
		return
	}
	defer log.Close()
	if got := log.Length(); got != uint64(final)+1 {
		t.Errorf("--sync %s: the call log has %d entries, want %d: the init entry and one per count (seed %d)", h.mode, got, final+1, h.seed)
	}
	tagAt := map[int64]int64{} // count -> the tag of the call that made it
	seen := map[int64]uint64{} // tag -> its entry
	var bad []string
	for i := uint64(1); i < log.Length(); i++ {
		blk, err := log.Get(i)
		if err != nil {
			t.Errorf("call log entry %d: %v", i, err)
			return
		}
		e, err := calllog.DecodeEntry(blk)
		if err != nil {
			t.Errorf("call log entry %d: %v", i, err)
			return
		}
		var args []int64
		if e.Call == nil || e.Result == nil || e.Result.Err != nil || string(e.Result.Res) != strconv.FormatUint(i, 10) ||
			json.Unmarshal(e.Call.Args, &args) != nil || len(args) != 1 {
			bad = append(bad, fmt.Sprintf("entry %d: %s", i, strings.TrimSpace(string(blk[:min(len(blk), 300)]))))
			continue
		}
		if j, ok := seen[args[0]]; ok {
			bad = append(bad, fmt.Sprintf("call %d logged twice, at %d and %d", args[0], j, i))
		}
		seen[args[0]] = i
		tagAt[int64(i)] = args[0]
	}
	if len(bad) > 0 {
		t.Errorf("--sync %s: %d call log entries are not the counter's (seed %d): %v", h.mode, len(bad), h.seed, firstFew(bad))
	}
	var lost []string
	for tag, n := range h.acked {
		if got, ok := tagAt[n]; !ok || got != tag {
			lost = append(lost, fmt.Sprintf("call %d answered %d, whose entry is call %d", tag, n, got))
		}
	}
	sort.Strings(lost)
	if len(lost) > 0 {
		t.Errorf("--sync %s: %d answered calls are not in the log (seed %d): %v", h.mode, len(lost), h.seed, firstFew(lost))
	}
	inPlace := len(h.acked) - len(lost)
	t.Logf("--sync %s: the log holds %d calls: %d answered and in place, %d never answered (in flight at a kill); %d answered calls lost",
		h.mode, len(seen), inPlace, len(seen)-inPlace, len(lost))
}

// withoutProgress keeps the audit's report and drops its progress bars.
func withoutProgress(out string) string {
	var keep []string
	for _, line := range strings.FieldsFunc(out, func(r rune) bool { return r == '\n' || r == '\r' }) {
		for _, word := range []string{"VERIFIED", "DIVERGENCE", "downloaded ", "nodevms:", "  "} {
			if i := strings.Index(line, word); i >= 0 && (word != "  " || i == 0 && strings.TrimSpace(line) != "") {
				keep = append(keep, strings.TrimRight(line[i:], " "))
				break
			}
		}
	}
	return strings.Join(keep, "\n")
}

func firstFew[T any](s []T) []T { return s[:min(len(s), 10)] }

// snapshot copies the folder as the last kill left it, to keep if the
// start fails (only with -crash.keep: it costs a copy per start).
func (h *crashHarness) snapshot() {
	if *crashKeep == "" {
		return
	}
	os.RemoveAll(h.before)
	if _, err := os.Stat(h.dir); err != nil {
		return // not deployed yet
	}
	if err := os.CopyFS(h.before, os.DirFS(h.dir)); err != nil {
		h.t.Logf("copying the folder before a start: %v", err)
	}
}

// keep copies a folder into -crash.keep for a post-mortem.
func (h *crashHarness) keep(name, from string) {
	if *crashKeep == "" {
		h.t.Logf("set -crash.keep=DIR to keep the folder (%s)", name)
		return
	}
	if _, err := os.Stat(from); err != nil {
		return // nothing deployed yet
	}
	to := filepath.Join(*crashKeep, fmt.Sprintf("sync-%s-seed%d-%s", h.mode, h.seed, name))
	os.RemoveAll(to)
	if err := os.CopyFS(to, os.DirFS(from)); err != nil {
		h.t.Errorf("keeping %s: %v", name, err)
		return
	}
	h.t.Logf("kept %s", to)
}

// crashProc is one run of `nodevms -e`.
type crashProc struct {
	cmd       *exec.Cmd
	out       *bannerWriter
	errOut    *syncBuffer
	up        chan struct{} // closed at the banner
	exited    chan struct{} // closed when the process has been waited for
	waitErr   error
	addr      string
	startTime time.Duration // from exec to the banner
}

func (h *crashHarness) spawn() *crashProc {
	h.stats.starts++
	cmd := exec.Command(nodevmsBin(h.t), "-e", h.script, h.dir, "--port", "0", "--dat-port", "0", "--sync", h.mode)
	p := &crashProc{cmd: cmd, up: make(chan struct{}), exited: make(chan struct{}), errOut: &syncBuffer{}}
	start := time.Now()
	p.out = &bannerWriter{onAddr: func(addr string) {
		p.addr = addr
		p.startTime = time.Since(start)
		close(p.up)
	}}
	cmd.Stdout, cmd.Stderr = p.out, p.errOut
	if err := cmd.Start(); err != nil {
		h.t.Fatal(err)
	}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	h.t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			cmd.Process.Kill()
			<-p.exited
		}
	})
	return p
}

func (p *crashProc) ready() bool {
	select {
	case <-p.up:
		return true
	default:
		return false
	}
}

// sigkill kills the process and waits for it; it fails if the process
// had already ended some other way.
func (p *crashProc) sigkill() error {
	p.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-p.exited:
	case <-time.After(crashExitWait):
		return errors.New("the process outlived SIGKILL")
	}
	if ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
		return nil
	}
	return fmt.Errorf("it had ended before the kill: %v", p.cmd.ProcessState)
}

// stop sends Ctrl+C and waits for a clean exit.
func (p *crashProc) stop() error {
	p.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-p.exited:
		return p.waitErr
	case <-time.After(crashExitWait):
		p.cmd.Process.Kill()
		<-p.exited
		return errors.New("it did not stop on Ctrl+C")
	}
}

func (p *crashProc) stderr() string { return p.errOut.String() }

// bannerWriter takes the server's stdout and reports its address once the
// banner is complete.
type bannerWriter struct {
	mu     sync.Mutex
	buf    []byte
	addr   string
	done   bool
	onAddr func(string)
}

func (w *bannerWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return len(b), nil
	}
	w.buf = append(w.buf, b...)
	for {
		i := strings.IndexByte(string(w.buf), '\n')
		if i < 0 {
			return len(b), nil
		}
		line := string(w.buf[:i])
		w.buf = w.buf[i+1:]
		if a, ok := strings.CutPrefix(line, "Serving at "); ok {
			w.addr = a
		}
		if strings.Contains(line, "connections | Download") && w.addr != "" {
			w.done = true
			w.onAddr(w.addr)
			return len(b), nil
		}
	}
}
