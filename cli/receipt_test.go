package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/nodevms/nodevms/receipt"
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
