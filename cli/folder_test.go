package main

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nodevms/nodevms/rpc"
)

// TestOneHostPerFolder: a second server on a served folder is refused at
// once, naming the process that serves it, and changes nothing.
func TestOneHostPerFolder(t *testing.T) {
	script := exampleFile(t, "counter.js")
	dir := filepath.Join(t.TempDir(), "counter")
	first := startServer(t, script, dir)
	_, stderr, err := runNodevms(t, "-e", script, dir, "--port", "0", "--dat-port", "0")
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != exitError {
		t.Fatalf("the second server: %v, want exit %d\nstderr: %s", err, exitError, stderr)
	}
	if want := "pid " + strconv.Itoa(first.cmd.Process.Pid); !strings.Contains(stderr, want) || !strings.Contains(stderr, "another nodevms") {
		t.Errorf("stderr = %q, want it to name another nodevms, %s", stderr, want)
	}
	first.stop(t)
	startServer(t, script, dir).stop(t)
}

// TestFailedDeployLeavesNothing: a script that does not load leaves no
// folder behind (or, in a folder that was there, only what it held), and
// the corrected script then deploys into the same place.
func TestFailedDeployLeavesNothing(t *testing.T) {
	for _, tc := range []struct{ name, code string }{
		{"syntax error", "exports.f = () => {"},
		{"throws while loading", "throw new Error('no')"},
		{"init throws", "exports.init = () => { throw new Error('no') }"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			script := filepath.Join(t.TempDir(), "bad.js")
			os.WriteFile(script, []byte(tc.code), 0o644)
			dir := filepath.Join(t.TempDir(), "new")
			kept := filepath.Join(t.TempDir(), "kept")
			os.MkdirAll(kept, 0o755)
			os.WriteFile(filepath.Join(kept, "notes.txt"), []byte("mine"), 0o644)
			for _, d := range []string{dir, kept} {
				_, stderr, err := runNodevms(t, "-e", script, d, "--port", "0", "--dat-port", "0")
				if err == nil {
					t.Fatalf("%s: the deploy succeeded", d)
				}
				if !strings.Contains(stderr, "deploy") {
					t.Errorf("stderr = %q, want it to say the deploy failed", stderr)
				}
			}
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the failed deploy left %s: %v", dir, err)
			}
			entries, _ := os.ReadDir(kept)
			if len(entries) != 1 || entries[0].Name() != "notes.txt" {
				t.Errorf("the failed deploy left in a folder that was there: %v", entries)
			}
			good := filepath.Join(filepath.Dir(script), "good.js")
			os.WriteFile(good, []byte("let n = 0; exports.increment = () => ++n"), 0o644)
			startServer(t, good, kept).stop(t)
		})
	}
}

// TestUnfinishedDeployIsRedone: a folder whose call log has no entry (a
// deploy killed before its init entry was durable) is deployed again.
func TestUnfinishedDeployIsRedone(t *testing.T) {
	script := exampleFile(t, "counter.js")
	dir := filepath.Join(t.TempDir(), "counter")
	startServer(t, script, dir).stop(t)
	datDir := filepath.Join(dir, ".dat")
	for _, name := range []string{"call-log.data", "call-log.tree", "call-log.signatures", "call-log.bitfield"} {
		if err := os.Truncate(filepath.Join(datDir, name), 0); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
	}
	s := startServer(t, script, dir)
	got := rpcCall(t, s.addr, "increment")
	if got != "1" {
		t.Errorf("increment = %s, want 1 (a fresh deploy)", got)
	}
}

// TestPortsBoundFirst: a port in use is reported before anything is
// written.
func TestPortsBoundFirst(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	dir := filepath.Join(t.TempDir(), "counter")
	_, stderr, err := runNodevms(t, "-e", exampleFile(t, "counter.js"), dir, "--host", "127.0.0.1", "--port", port, "--dat-port", "0")
	if err == nil || !strings.Contains(stderr, "address already in use") {
		t.Fatalf("serving on a used port: %v, %q", err, stderr)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the refused start made %s", dir)
	}
}

// rpcCall makes one call and returns its result's JSON text.
func rpcCall(t *testing.T, addr, method string, args ...any) string {
	t.Helper()
	c, err := rpc.Dial(context.Background(), addr, rpc.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	res, err := c.Call(context.Background(), method, args...)
	if err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	return string(res)
}

// TestInterruptDuringStart: Ctrl+C while the start-up replay runs stops
// the server at once, with exit 130 and no error of the replay.
func TestInterruptDuringStart(t *testing.T) {
	script := filepath.Join(t.TempDir(), "spin.js")
	os.WriteFile(script, []byte("exports.spin = () => { let x = 0; for (let i = 0; i < 2e6; i++) x += i % 7; return x }"), 0o644)
	dir := filepath.Join(t.TempDir(), "spin")
	s := startServer(t, script, dir)
	for range 6 {
		rpcCall(t, s.addr, "spin")
	}
	s.stop(t)
	cmd := exec.Command(nodevmsBin(t), "-e", script, dir, "--port", "0", "--dat-port", "0")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGINT)
	start := time.Now()
	err := cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 130 || !strings.Contains(stderr.String(), "interrupted before serving") {
		t.Fatalf("interrupted during the replay: %v, %q; want exit 130, interrupted before serving", err, stderr.String())
	}
	if waited := time.Since(start); waited > 2*time.Second {
		t.Errorf("it took %v to stop", waited)
	}
	startServer(t, script, dir).stop(t)
}
