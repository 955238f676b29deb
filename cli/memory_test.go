package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nodevms/nodevms/rpc"
)

// TestMemoryAfresh: a backend deployed with --memory afresh answers on
// after stopped calls, its files' state kept and its memory loaded again;
// the audit verifies the reloads; the folder keeps its mode (another
// --memory is refused, none takes the deployed one), and a restart loads
// the script again (a logged reload) instead of replaying the log.
func TestMemoryAfresh(t *testing.T) {
	script := filepath.Join(t.TempDir(), "files-counter.js")
	code := `const fs = System.files
		let sinceLoad = 0
		exports.inc = async () => {
			let n = 0
			try { n = Number(await fs.readFile('/count', 'utf8')) } catch (e) {}
			await fs.writeFile('/count', String(n + 1))
			return [n + 1, ++sinceLoad]
		}
		exports.spin = () => { sinceLoad = 1000; for (;;) {} }`
	if err := os.WriteFile(script, []byte(code), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "backend")
	s := startServer(t, script, dir, "--memory", "afresh", "--time-budget", "50ms")
	c, err := rpc.Dial(context.Background(), s.addr, rpc.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	call := func(method string) (string, error) {
		res, err := c.Call(context.Background(), method)
		return string(res), err
	}
	for range 3 {
		call("inc")
	}
	for i := range 20 {
		if _, err := call("spin"); err == nil || !strings.Contains(err.Error(), "time budget") {
			t.Fatalf("spin %d: %v, want the time budget", i, err)
		}
	}
	if got, err := call("inc"); err != nil || got != "[4,1]" {
		t.Errorf("inc after 20 stops: %s, %v; want [4,1] (the file's count, a fresh memory)", got, err)
	}
	if code, out := auditBinary(t, s.addr, "--time-budget", "50ms"); code != 0 || !strings.Contains(out, "VERIFIED 4 calls and 20 reloads") {
		t.Errorf("audit: exit %d\n%s", code, out)
	}
	s.stop(t)

	_, stderr, err := runNodevms(t, "-e", script, dir, "--port", "0", "--dat-port", "0", "--memory", "kept")
	if exitCode(t, err) != 1 || !strings.Contains(stderr, "deployed with --memory afresh") {
		t.Errorf("--memory kept on an afresh folder: %v\n%s", err, stderr)
	}
	_, stderr, err = runNodevms(t, "-e", script, filepath.Join(t.TempDir(), "b"), "--memory", "sometimes")
	if exitCode(t, err) != 2 || !strings.Contains(stderr, "--memory must be kept or afresh") {
		t.Errorf("--memory sometimes: %v\n%s", err, stderr)
	}
	s = startServer(t, script, dir, "--time-budget", "50ms")
	if got := rpcCall(t, s.addr, "inc"); got != "[5,1]" {
		t.Errorf("inc after a restart: %s, want [5,1] (the script loaded again at start, not the log replayed)", got)
	}
	if code, out := auditBinary(t, s.addr, "--time-budget", "50ms"); code != 0 || !strings.Contains(out, "VERIFIED 5 calls and 21 reloads") {
		t.Errorf("audit after the restart: exit %d\n%s", code, out)
	}
}
