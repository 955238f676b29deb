package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nodevms/nodevms/checkpoint"
	"github.com/nodevms/nodevms/receipt"
	"github.com/nodevms/nodevms/rpc"
)

// TestReceiptsEndToEnd: the REPL saves a call's receipt, which verifies
// offline against the call log's URL; no edit of one of its bytes
// verifies; a receipt of another backend's log does not verify against
// this one's.
func TestReceiptsEndToEnd(t *testing.T) {
	s := startServer(t, exampleFile(t, "counter.js"), filepath.Join(t.TempDir(), "counter"))
	other := startServer(t, exampleFile(t, "counter.js"), filepath.Join(t.TempDir(), "other"))
	receipts := t.TempDir()
	saved := regexp.MustCompile(`(?m)^receipt of entry (\d+) saved: (.+)$`)
	call := func(addr string) (entry, path string) {
		t.Helper()
		out, errOut, err := runNodevms(t, "-r", addr, "--receipts", receipts, "--exec", "client.increment()")
		if err != nil {
			t.Fatalf("a call with a receipt: %v\n%s%s", err, out, errOut)
		}
		m := saved.FindStringSubmatch(out)
		if m == nil || !strings.HasSuffix(out, "\n1\n") {
			t.Fatalf("the REPL printed %q", out)
		}
		return m[1], m[2]
	}
	entry, path := call(s.addr)
	if entry != "1" {
		t.Errorf("the first call's receipt is of entry %s", entry)
	}
	_, otherPath := call(other.addr)

	out, errOut, err := runNodevms(t, "receipt", "verify", path, "--log", s.callLog)
	if err != nil || !strings.HasPrefix(out, "VALID "+path+"\n") || !strings.Contains(out, "entry 1 of the call log "+s.callLog) ||
		!strings.Contains(out, "increment[] by key ") || !strings.Contains(out, "returned 1") {
		t.Fatalf("receipt verify: %v\n%s%s", err, out, errOut)
	}
	out, _, err = runNodevms(t, "receipt", "verify", otherPath, "--log", s.callLog)
	if code := exitCode(t, err); code != receiptInvalid || !strings.Contains(out, "for another call log") {
		t.Errorf("another log's receipt: exit %d\n%s", code, out)
	}
	if out, _, err := runNodevms(t, "receipt", "verify", otherPath); err != nil || !strings.Contains(out, "compare it with the backend's call log URL") {
		t.Errorf("without --log: %v\n%s", err, out)
	}

	// Every byte edited, checked in this process (a process each would
	// take minutes).
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	edited := filepath.Join(t.TempDir(), "edited.json")
	for i := range data {
		for _, b := range []byte{data[i] ^ 0x01, data[i] ^ 0x20, ' '} {
			if b == data[i] {
				continue
			}
			e := bytes.Clone(data)
			e[i] = b
			os.WriteFile(edited, e, 0o644)
			var stdout, stderr bytes.Buffer
			if code := run(context.Background(), []string{"receipt", "verify", edited, "--log", s.callLog}, nil, &stdout, &stderr); code != receiptInvalid {
				t.Fatalf("byte %d set to %q: exit %d\n%s%s", i, b, code, stdout.String(), stderr.String())
			}
		}
	}
}

// TestReceiptVerifyUsage: what receipt verify refuses before reading a
// receipt.
func TestReceiptVerifyUsage(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big.json")
	os.WriteFile(big, bytes.Repeat([]byte(" "), receipt.MaxFile+1), 0o644)
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"receipt"}, "usage: nodevms receipt verify"},
		{[]string{"receipt", "check", "x"}, "usage: nodevms receipt verify"},
		{[]string{"receipt", "verify"}, "usage: nodevms receipt verify"},
		{[]string{"receipt", "verify", "a", "b"}, "usage: nodevms receipt verify"},
		{[]string{"receipt", "verify", "x", "--log", "dat://12"}, "--log"},
		{[]string{"receipt", "verify", filepath.Join(dir, "missing.json")}, "no such file"},
		{[]string{"receipt", "verify", big}, "not a receipt"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), tt.args, nil, &stdout, &stderr); code != exitUsage || !strings.Contains(stderr.String(), tt.want) {
			t.Errorf("%q: exit %d, %q; want 2 and %q", tt.args, code, stderr.String(), tt.want)
		}
	}
}

// TestMonitorCosignsReceipts: a following monitor cosigns checkpoints of
// the heads it verified, serves them, and serves receipts that carry one;
// receipt verify accepts such a receipt for the monitor's key and refuses
// it when the monitors it requires did not cosign.
func TestMonitorCosignsReceipts(t *testing.T) {
	s := startServer(t, exampleFile(t, "counter.js"), filepath.Join(t.TempDir(), "c"))
	out := t.TempDir()
	cmd := exec.Command(nodevmsBin(t), "-a", s.addr, "--out", out, "--checkpoints", "127.0.0.1:0", "--monitor-name", "test-monitor")
	var text syncBuffer // both of the process's streams
	cmd.Stdout, cmd.Stderr = &text, &text
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGINT)
		cmd.Wait()
	}()
	c, err := rpc.Dial(context.Background(), s.addr, rpc.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cosigned := regexp.MustCompile(`cosigned the checkpoint of length (\d+)`)
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; ; i++ {
		if m := cosigned.FindAllStringSubmatch(text.String(), -1); len(m) > 0 {
			if n, _ := strconv.Atoi(m[len(m)-1][1]); n >= 4 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the monitor cosigned no checkpoint of length 4:\n%s", text.String())
		}
		if i%10 == 0 && strings.Contains(text.String(), "Following") {
			c.Call(context.Background(), "increment")
		}
		time.Sleep(50 * time.Millisecond)
	}
	base := regexp.MustCompile(`Checkpoints at (http://\S+)/checkpoint`).FindStringSubmatch(text.String())
	if base == nil {
		t.Fatalf("no checkpoints address:\n%s", text.String())
	}
	get := func(path string) []byte {
		t.Helper()
		resp, err := http.Get(base[1] + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %s %s", path, resp.Status, b)
		}
		return b
	}
	vkey := strings.TrimSpace(string(get("/monitor")))
	v, err := checkpoint.ParseVerifier(vkey)
	if err != nil || v.Name != "test-monitor" {
		t.Fatalf("the monitor's key %q: %v", vkey, err)
	}
	note, err := checkpoint.ParseNote(get("/checkpoint"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := note.Verify([]*checkpoint.Verifier{v}, 1); err != nil || fmt.Sprintf("dat://%x", []byte(note.Log)) != s.callLog {
		t.Fatalf("the latest checkpoint: %v\n%s", err, note.Marshal())
	}
	get(fmt.Sprintf("/checkpoint/%d", note.Length)) // kept in the history

	path := filepath.Join(t.TempDir(), "r.json")
	os.WriteFile(path, get("/receipt/2"), 0o644)
	other, _ := checkpoint.NewSigner("other", ed25519.NewKeyFromSeed(bytes.Repeat([]byte{5}, 32)))
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--monitor", vkey}, receiptValid, "cosigned at that length by 1 of the 1 monitors named (1 required): test-monitor"},
		{[]string{"--monitor", other.VerifierKey()}, receiptInvalid, "too few monitors cosigned"},
		{[]string{"--monitor", vkey, "--monitor", other.VerifierKey()}, receiptInvalid, "1 of the 2 needed"},
		{[]string{"--monitor", vkey, "--monitor", other.VerifierKey(), "--require", "1"}, receiptValid, "by 1 of the 2 monitors named (1 required)"},
		{[]string{"--monitor", vkey, "--require", "2"}, exitUsage, ""},
	} {
		var stdout, stderr bytes.Buffer
		args := append([]string{"receipt", "verify", path, "--log", s.callLog}, tt.args...)
		code := run(context.Background(), args, nil, &stdout, &stderr)
		if code != tt.code || !strings.Contains(stdout.String(), tt.want) {
			t.Errorf("%q: exit %d\n%s%s", tt.args, code, stdout.String(), stderr.String())
		}
	}
}
