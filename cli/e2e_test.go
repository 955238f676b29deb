package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/nodevms/nodevms/examples"
	"github.com/nodevms/nodevms/hypercore"
	"github.com/nodevms/nodevms/rpc"
)

// The end-to-end tests run the real binary: $NODEVMS_BIN (Bazel sets it),
// or one built here with go build.

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func nodevmsBin(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		if p := os.Getenv("NODEVMS_BIN"); p != "" {
			if root := os.Getenv("TEST_SRCDIR"); root != "" && !filepath.IsAbs(p) {
				// Bazel gives the path from the runfiles root.
				p = filepath.Join(root, os.Getenv("TEST_WORKSPACE"), p)
			}
			binPath, buildErr = filepath.Abs(p)
			return
		}
		dir, err := os.MkdirTemp("", "nodevms-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "nodevms")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// served is a running `nodevms -e`.
type served struct {
	cmd            *exec.Cmd
	addr           string // host:port of the RPC server
	files, callLog string
	dir            string
	lines          []string
}

// startServer runs `nodevms -e SCRIPT DIR --port 0 --dat-port 0 extra...`
// and waits for its banner.
func startServer(t *testing.T, script, dir string, extra ...string) *served {
	t.Helper()
	return startServerIn(t, "", script, dir, extra...)
}

// startServerIn is startServer in the network namespace netns (none if
// "").
func startServerIn(t *testing.T, netns, script, dir string, extra ...string) *served {
	t.Helper()
	args := append([]string{"-e", script, dir, "--port", "0", "--dat-port", "0"}, extra...)
	cmd := commandIn(netns, nodevmsBin(t), args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &served{cmd: cmd, dir: dir}
	t.Cleanup(func() { s.stop(t) })
	lines := bufio.NewScanner(stdout)
	for lines.Scan() {
		line := lines.Text()
		s.lines = append(s.lines, line)
		switch {
		case strings.HasPrefix(line, "Serving at "):
			s.addr = strings.TrimPrefix(line, "Serving at ")
		case strings.HasPrefix(line, "Files:"):
			s.files = strings.TrimSpace(strings.TrimPrefix(line, "Files:"))
		case strings.HasPrefix(line, "Call log:"):
			s.callLog = strings.TrimSpace(strings.TrimPrefix(line, "Call log:"))
		}
		if strings.Contains(line, "connections | Download") {
			go func() {
				for lines.Scan() {
				}
			}()
			return s
		}
	}
	cmd.Wait()
	t.Fatalf("the server stopped: %v\nstdout: %q\nstderr: %s", cmd.ProcessState, s.lines, stderr.String())
	return nil
}

// stop sends Ctrl+C and waits for a clean exit.
func (s *served) stop(t *testing.T) {
	if s.cmd.ProcessState != nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGINT)
	done := make(chan error, 1)
	go func() { done <- s.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("the server did not exit cleanly: %v", err)
		}
	case <-time.After(15 * time.Second):
		s.cmd.Process.Kill()
		t.Error("the server did not stop on Ctrl+C")
	}
}

func exampleFile(t *testing.T, name string) string {
	t.Helper()
	code, err := examples.Script(name)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(code), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func runNodevms(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	cmd := exec.Command(nodevmsBin(t), args...)
	cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+t.TempDir(), "HOME="+t.TempDir())
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

// TestServeAndCall: the tutorial's first steps. Serve the counter, call it
// from the Go client and from the REPL, stop it with Ctrl+C, serve it
// again: the count goes on.
func TestServeAndCall(t *testing.T) {
	script := exampleFile(t, "counter.js")
	dir := filepath.Join(t.TempDir(), "counter")
	s := startServer(t, script, dir)
	want := []string{"nodevms v", "Serving at localhost:", "Serving directory " + dir, "Replicating at localhost:", "", "Files:    dat://", "Call log: dat://", ""}
	for i, w := range want {
		if i >= len(s.lines) || !strings.HasPrefix(s.lines[i], w) || (w == "" && s.lines[i] != "") {
			t.Fatalf("banner line %d = %q, want %q...\n%q", i, s.lines[i], w, s.lines)
		}
	}
	c, err := rpc.Dial(context.Background(), s.addr, rpc.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 2; i++ {
		if got, err := c.Call(context.Background(), "increment"); err != nil || string(got) != fmt.Sprint(i) {
			t.Fatalf("increment: %s, %v", got, err)
		}
	}
	c.Close()
	out, errOut, err := runNodevms(t, "-r", s.addr, "--exec", "client.increment()")
	if err != nil || strings.TrimSpace(out) != "3" {
		t.Fatalf("repl --exec: %q %q %v", out, errOut, err)
	}
	// The REPL reading lines (as from a pipe): promises awaited, errors
	// shown readably.
	cmd := exec.Command(nodevmsBin(t), "repl", s.addr)
	cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+t.TempDir(), "HOME="+t.TempDir())
	cmd.Stdin = strings.NewReader("client.increment()\nawait client.get()\nclient.nope()\n")
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("repl: %v\n%s", err, b)
	}
	for _, w := range []string{"Connected.", "> 4\n> 4\n", "TypeError: Object has no member 'nope'"} {
		if !strings.Contains(string(b), w) {
			t.Errorf("repl output lacks %q:\n%s", w, b)
		}
	}
	// The call log's data file grows ahead of the log while serving
	// (hypercore's Preallocate), and is cut back to it at shutdown.
	logData := filepath.Join(dir, ".dat", "call-log.data")
	if size := fileSize(t, logData); size < 1<<20 {
		t.Errorf("while serving, call-log.data has %d bytes; want at least 1 MiB preallocated", size)
	}
	s.stop(t)
	log, err := hypercore.Open(hypercore.Config{Storage: hypercore.DirStorage{Dir: filepath.Join(dir, ".dat"), Prefix: "call-log."}, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if size := fileSize(t, logData); uint64(size) != log.ByteLength() {
		t.Errorf("after shutdown, call-log.data has %d bytes; want the log's %d", size, log.ByteLength())
	}
	log.Close()

	// Files: backend.js, dat.json and .dat/ with the archive and the log.
	for _, name := range []string{"backend.js", "dat.json", ".dat/metadata.key", ".dat/content.key", ".dat/call-log.key"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	s = startServer(t, script, dir)
	if out, _, err := runNodevms(t, "-r", s.addr, "--exec", "client.increment()"); err != nil || strings.TrimSpace(out) != "5" {
		t.Errorf("after a restart: %q %v", out, err)
	}
	s.stop(t)
	// Another script into the same folder is refused.
	other := exampleFile(t, "persistent-counter.js")
	if _, errOut, err := runNodevms(t, "-e", other, dir, "--port", "0", "--dat-port", "0"); err == nil || !strings.Contains(errOut, "serves another script") {
		t.Errorf("redeploying another script: %v %q", err, errOut)
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// TestDebugUsersFromTheREPL: --debug lets the REPL name its user; without
// it, naming a user is refused and calls are signed.
func TestDebugUsersFromTheREPL(t *testing.T) {
	script := exampleFile(t, "secure-counter.js")
	s := startServer(t, script, filepath.Join(t.TempDir(), "secure"), "--debug")
	if out, errOut, err := runNodevms(t, "-r", s.addr, "--user", "bob", "--exec", "client.increment()"); err == nil || !strings.Contains(errOut, "You are not my owner!") {
		t.Errorf("bob on a counter deployed by nobody: %q %q %v", out, errOut, err)
	}
	plain := startServer(t, exampleFile(t, "counter.js"), filepath.Join(t.TempDir(), "plain"))
	if _, errOut, err := runNodevms(t, "-r", plain.addr, "--user", "bob", "--exec", "client.increment()"); err == nil || !strings.Contains(errOut, "403") {
		t.Errorf("naming a user without --debug: %q %v", errOut, err)
	}
	if out, errOut, err := runNodevms(t, "-r", plain.addr, "--exec", "client.increment()"); err != nil || strings.TrimSpace(out) != "1" {
		t.Errorf("a signed call: %q %q %v", out, errOut, err)
	}
}

// TestNodeVMSClient: the original JavaScript client calls our server.
func TestNodeVMSClient(t *testing.T) {
	nodePath := jsClient(t)
	s := startServer(t, exampleFile(t, "counter.js"), filepath.Join(t.TempDir(), "counter"), "--debug")
	var got struct {
		BackendInfo rpc.Handshake `json:"backendInfo"`
		Result      any           `json:"result"`
		Error       string        `json:"error"`
	}
	for i := 1; i <= 2; i++ {
		cmd := exec.Command("node", filepath.Join("testdata", "js", "client.js"), "ws://"+s.addr, "increment", "[]", "alice")
		cmd.Env = append(os.Environ(), "NODE_PATH="+nodePath)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("node client: %v", err)
		}
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		if got.Result != float64(i) || got.BackendInfo.CallLogURL != s.callLog || got.BackendInfo.FilesArchiveURL != s.files {
			t.Fatalf("nodevms-client got %+v", got)
		}
	}
}

// jsClient installs nodevms-client from testdata/js's lock file, once, into
// a cache, and returns its node_modules.
func jsClient(t *testing.T) string {
	t.Helper()
	return jsModules(t, "js", "client", "nodevms-client")
}

// jsModules installs testdata/DIR's packages from its lock file, once, into
// a cache (a folder named for cacheName and the lock's hash), and returns
// their node_modules; marker is a package whose presence says the install
// finished.
func jsModules(t *testing.T, dir, cacheName, marker string) string {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("node is needed for this test in CI")
		}
		t.Skip("node is not installed")
	}
	lock, err := os.ReadFile(filepath.Join("testdata", dir, "package-lock.json"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(lock)
	base := os.Getenv("NODEVMS_JS_CACHE")
	if base == "" {
		if base, err = os.UserCacheDir(); err != nil {
			base = os.TempDir()
		}
		base = filepath.Join(base, "nodevms")
	}
	install := filepath.Join(base, cacheName+"-"+hex.EncodeToString(sum[:8]))
	modules := filepath.Join(install, "node_modules")
	if _, err := os.Stat(filepath.Join(modules, marker)); err == nil {
		return modules
	}
	if err := os.MkdirAll(install, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"package.json", "package-lock.json"} {
		b, err := os.ReadFile(filepath.Join("testdata", dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(install, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error")
	cmd.Dir = install
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci: %v\n%s", err, out)
	}
	return modules
}

// TestREPLOnATerminal drives the REPL through a pseudo-terminal, as a user
// types: line editing and history (an up-arrow repeats the last line).
func TestREPLOnATerminal(t *testing.T) {
	s := startServer(t, exampleFile(t, "counter.js"), filepath.Join(t.TempDir(), "counter"))
	cmd := exec.Command(nodevmsBin(t), "-r", s.addr)
	cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+t.TempDir(), "HOME="+t.TempDir(), "TERM=xterm")
	tty, err := pty.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	defer tty.Close()
	var mu sync.Mutex
	var screen strings.Builder
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := tty.Read(buf)
			mu.Lock()
			screen.Write(buf[:n])
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	waitFor := func(what string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			mu.Lock()
			ok := strings.Contains(screen.String(), what)
			mu.Unlock()
			if ok {
				return
			}
			if time.Now().After(deadline) {
				mu.Lock()
				defer mu.Unlock()
				t.Fatalf("the terminal never showed %q:\n%q", what, screen.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor("> ")
	tty.Write([]byte("client.increment()\r"))
	waitFor("1\r\n")
	tty.Write([]byte("\x1b[A\r")) // up-arrow: the same line again
	waitFor("2\r\n")
	tty.Write([]byte("client.increment().then(n => n * 10)\r"))
	waitFor("30\r\n")
	tty.Write([]byte{4}) // Ctrl+D
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("the REPL exited with %v", err)
		}
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Error("Ctrl+D did not end the REPL")
	}
}

// TestFullQueueAndDroppedClient: against the real binary, a flood of calls
// gets busy answers (not a crash), and a client that leaves with calls
// pending does not hurt the server.
func TestFullQueueAndDroppedClient(t *testing.T) {
	script := filepath.Join(t.TempDir(), "slow.js")
	os.WriteFile(script, []byte(`exports.slow = () => { let x = 0; for (let i = 0; i < 3e6; i++) x += i; return x }
exports.ping = () => 'pong'`), 0o644)
	s := startServer(t, script, filepath.Join(t.TempDir(), "slow"), "--queue", "2")
	flood := func(c *rpc.Client, n int) (busy int) {
		var wg sync.WaitGroup
		var mu sync.Mutex
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := c.Call(context.Background(), "slow")
				var ce *rpc.CallError
				if errors.As(err, &ce) && ce.Code == rpc.CodeBusy {
					mu.Lock()
					busy++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		return busy
	}
	// Two clients at once: while one's calls run, the other's wait in the
	// queue.
	var busy atomic.Int64
	var wg sync.WaitGroup
	for range 2 {
		c, err := rpc.Dial(context.Background(), s.addr, rpc.ClientOptions{Timeout: 30 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			busy.Add(int64(flood(c, 20)))
		}()
	}
	wg.Wait()
	if busy.Load() == 0 {
		t.Error("a flood of 2 x 20 calls on a queue of 2 got no busy answer")
	}
	d, err := rpc.Dial(context.Background(), s.addr, rpc.ClientOptions{Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	go flood(d, 10)
	time.Sleep(20 * time.Millisecond)
	d.Close() // leaves with calls pending
	e, err := rpc.Dial(context.Background(), s.addr, rpc.ClientOptions{Timeout: 30 * time.Second})
	if err != nil {
		t.Fatalf("the server after a dropped client: %v", err)
	}
	defer e.Close()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		got, err := e.Call(context.Background(), "ping")
		if err == nil && string(got) == `"pong"` {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server never answered again: %v", err)
		}
	}
}
