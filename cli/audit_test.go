package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nodevms/nodevms/calllog"
	"github.com/nodevms/nodevms/checkpoint"
	"github.com/nodevms/nodevms/core"
	"github.com/nodevms/nodevms/hypercore"
	"github.com/nodevms/nodevms/hyperdrive"
	"github.com/nodevms/nodevms/receipt"
	"github.com/nodevms/nodevms/rpc"
)

// auditBinary runs the real binary's audit and returns its exit code and output.
func auditBinary(t *testing.T, addr string, extra ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(nodevmsBin(t), append([]string{"-a", addr}, extra...)...)
	out, err := cmd.CombinedOutput()
	code := 0
	if err != nil {
		exitErr, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatal(err)
		}
		code = exitErr.ExitCode()
	}
	return code, string(out)
}

// TestAuditHonestHost: a served backend, called with signed and unsigned
// calls, audits clean; --out keeps the replicas, and a second audit after
// more calls downloads only what is new.
func TestAuditHonestHost(t *testing.T) {
	s := startServer(t, exampleFile(t, "persistent-counter.js"), filepath.Join(t.TempDir(), "pc"))
	_, key, _ := ed25519.GenerateKey(nil)
	for _, opts := range []rpc.ClientOptions{{}, {Key: key}} {
		c, err := rpc.Dial(context.Background(), s.addr, opts)
		if err != nil {
			t.Fatal(err)
		}
		for range 5 {
			if _, err := c.Call(context.Background(), "increment"); err != nil {
				t.Fatal(err)
			}
		}
		c.Close()
	}
	out := t.TempDir()
	code, text := auditBinary(t, s.addr, "--files", s.files, "--log", s.callLog, "--out", out, "--once")
	if code != 0 || !strings.Contains(text, "VERIFIED 10 calls") {
		t.Fatalf("audit: exit %d\n%s", code, text)
	}
	c, _ := rpc.Dial(context.Background(), s.addr, rpc.ClientOptions{})
	c.Call(context.Background(), "increment")
	c.Close()
	code, text = auditBinary(t, s.addr, "--out", out, "--once")
	if code != 0 || !strings.Contains(text, "VERIFIED 11 calls") || !strings.Contains(text, "call log 12") {
		t.Fatalf("second audit: exit %d\n%s", code, text)
	}
	if !strings.Contains(text, "downloaded 1 blocks") && !strings.Contains(text, "downloaded 2 blocks") && !strings.Contains(text, "downloaded 3 blocks") {
		t.Errorf("the second audit downloaded more than the new blocks:\n%s", text)
	}
	if code, text := auditBinary(t, s.addr, "--files", "dat://"+strings.Repeat("00", 32)); code != 1 || !strings.Contains(text, "DIVERGENCE") {
		t.Errorf("a wrong --files: exit %d\n%s", code, text)
	}
	if code, _ := auditBinary(t, "127.0.0.1:1"); code != 2 {
		t.Errorf("no host: exit %d, want 2", code)
	}
	// A file of the folder edited behind the archive's back: the host no
	// longer serves it, and the audit says which.
	time.Sleep(1200 * time.Millisecond) // the host flushes the folder at most once a second
	c, _ = rpc.Dial(context.Background(), s.addr, rpc.ClientOptions{})
	res, _ := c.Call(context.Background(), "increment") // after the flush interval: /counter moves into place
	c.Close()
	for deadline := time.Now().Add(5 * time.Second); ; {
		if b, _ := os.ReadFile(filepath.Join(s.dir, "counter")); string(b) == string(res) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the folder never showed the counter")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := os.WriteFile(filepath.Join(s.dir, "counter"), []byte("99"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, text = auditBinary(t, s.addr)
	if code != 1 || !strings.Contains(text, "content of /counter") {
		t.Errorf("an edited file: exit %d\n%s", code, text)
	}
}

// dishonest builds a backend in process, lets tamper change it, and serves
// the result for the real binary to audit.
func dishonest(t *testing.T, cfgChange func(*core.Config), tamper func(h *core.Host, archive *hyperdrive.Archive, log *hypercore.Feed) *hypercore.Feed) string {
	t.Helper()
	dir := t.TempDir()
	archive, err := hyperdrive.Open(hyperdrive.Options{Storage: hyperdrive.DatStorage(dir, filepath.Join(dir, ".keys")), Create: true})
	if err != nil {
		t.Fatal(err)
	}
	log, err := hypercore.Open(hypercore.Config{Storage: hypercore.NewMemoryStorage(), Create: true, AnnounceOnSync: true})
	if err != nil {
		t.Fatal(err)
	}
	cfg := core.Config{Archive: archive, Log: log}
	if cfgChange != nil {
		cfgChange(&cfg)
	}
	code := `
		const fs = System.files
		let n = 0
		exports.increment = async () => { n++; await fs.writeFile('/n', String(n) + ':' + Math.random()); return n }`
	h, err := core.Deploy(context.Background(), cfg, code, "t", nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 4 {
		if _, err := h.Call(context.Background(), core.Request{Method: "increment"}); err != nil {
			t.Fatal(err)
		}
	}
	served := tamper(h, archive, log)
	srv := rpc.NewServer(rpc.Options{})
	if err := srv.Mount("/", rpc.Backend{Host: h, Title: "t", Archive: archive, Log: served}); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(func() { ts.Close(); h.Close(); archive.Close(); log.Close() })
	return strings.TrimPrefix(ts.URL, "http://")
}

// resigned copies log with block i changed by edit, signed with the log's
// key, as a host that rewrote its history would.
func resigned(t *testing.T, log *hypercore.Feed, i uint64, edit func(*calllog.Entry)) *hypercore.Feed {
	t.Helper()
	f, err := hypercore.Open(hypercore.Config{Storage: hypercore.NewMemoryStorage(), SecretKey: log.SecretKey(), Create: true})
	if err != nil {
		t.Fatal(err)
	}
	for j := range log.Length() {
		b, _ := log.Get(j)
		if j == i {
			e, _ := calllog.DecodeEntry(b)
			edit(e)
			b, _ = calllog.EncodeEntry(e)
		}
		f.Append(b)
	}
	return f
}

func TestAuditFindsDishonestHosts(t *testing.T) {
	tests := []struct {
		name   string
		cfg    func(*core.Config)
		tamper func(h *core.Host, archive *hyperdrive.Archive, log *hypercore.Feed) *hypercore.Feed
		want   []string
	}{
		{
			name: "a changed result",
			tamper: func(_ *core.Host, _ *hyperdrive.Archive, log *hypercore.Feed) *hypercore.Feed {
				return resigned(t, log, 2, func(e *calllog.Entry) { e.Result.Res = []byte("20") })
			},
			want: []string{"entry 2 (increment): res differs", "logged:   20", "tampering"},
		},
		{
			name: "a forged caller",
			tamper: func(_ *core.Host, _ *hyperdrive.Archive, log *hypercore.Feed) *hypercore.Feed {
				return resigned(t, log, 3, func(e *calllog.Entry) {
					alice := "alice"
					e.Call.UserID = &alice
				})
			},
			want: []string{"entry 3", "tampering"},
		},
		{
			name: "a write no call explains",
			tamper: func(_ *core.Host, archive *hyperdrive.Archive, log *hypercore.Feed) *hypercore.Feed {
				if err := archive.WriteFile("/n", []byte("999"), hyperdrive.WriteOptions{}); err != nil {
					t.Fatal(err)
				}
				return log
			},
			want: []string{"entry 5", "filesVersion differs", "tampering"},
		},
		{
			name: "an unrecorded random source",
			cfg: func(c *core.Config) {
				n := 0.0
				c.UnrecordedRandom = func() float64 { n += 0.1; return n }
			},
			tamper: func(_ *core.Host, _ *hyperdrive.Archive, log *hypercore.Feed) *hypercore.Feed { return log },
			want:   []string{"entry 1 (increment)", "nondeterminism"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := dishonest(t, tt.cfg, tt.tamper)
			code, text := auditBinary(t, addr)
			if code != 1 {
				t.Fatalf("exit %d, want 1\n%s", code, text)
			}
			for _, w := range tt.want {
				if !strings.Contains(text, w) {
					t.Errorf("the report lacks %q:\n%s", w, text)
				}
			}
		})
	}
}

// TestAuditFollowsAndFindsForks: with --out the monitor follows the host,
// checking each call as it arrives; a host that later shows another history
// under the same key (an entry removed, the log re-signed) is reported as a
// fork with both signed heads.
func TestAuditFollowsAndFindsForks(t *testing.T) {
	s := startServer(t, exampleFile(t, "counter.js"), filepath.Join(t.TempDir(), "c"))
	out := t.TempDir()
	cmd := exec.Command(nodevmsBin(t), "-a", s.addr, "--out", out)
	var text syncBuffer // written by the process's copying goroutine as the test reads it
	cmd.Stdout, cmd.Stderr = &text, &text
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c, err := rpc.Dial(context.Background(), s.addr, rpc.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; !strings.Contains(text.String(), "verified entry 3"); i++ {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("the monitor never verified entry 3:\n%s", text.String())
		}
		if i%10 == 0 && strings.Contains(text.String(), "Following") {
			c.Call(context.Background(), "increment")
		}
		time.Sleep(50 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGINT)
	if err := cmd.Wait(); err != nil || !strings.Contains(text.String(), "Stopped after verifying") {
		t.Fatalf("the monitor: %v\n%s", err, text.String())
	}

	// A host that rewrites history: the same log key, an entry removed.
	var forked, honest *hypercore.Feed
	var host *core.Host
	var archive *hyperdrive.Archive
	addr := dishonest(t, nil, func(h *core.Host, a *hyperdrive.Archive, log *hypercore.Feed) *hypercore.Feed {
		host, archive, honest = h, a, log
		f, err := hypercore.Open(hypercore.Config{Storage: hypercore.NewMemoryStorage(), SecretKey: log.SecretKey(), Create: true})
		if err != nil {
			t.Fatal(err)
		}
		for j := range log.Length() {
			if j == 2 {
				continue
			}
			b, _ := log.Get(j)
			f.Append(b)
		}
		forked = f
		return log
	})
	forkOut := t.TempDir()
	if code, text := auditBinary(t, addr, "--out", forkOut, "--once"); code != 0 {
		t.Fatalf("the honest history: exit %d\n%s", code, text)
	}
	// The monitor cosigned the honest head: a receipt of entry 2 (which
	// the fork drops) at that length, carrying the checkpoint.
	note, err := os.ReadFile(filepath.Join(forkOut, "checkpoint.note"))
	if err != nil {
		t.Fatalf("the monitor cosigned no checkpoint: %v", err)
	}
	n, err := checkpoint.ParseNote(note)
	if err != nil {
		t.Fatal(err)
	}
	before, err := receipt.MakeAt(honest, 2, n.Length)
	if err != nil {
		t.Fatal(err)
	}
	before.Checkpoint = note
	beforeFile := filepath.Join(t.TempDir(), "before-the-fork.json")
	data, _ := before.Marshal()
	os.WriteFile(beforeFile, data, 0o644)
	monitorKey, err := rpc.LoadOrCreateKey(filepath.Join(forkOut, "monitor.key"))
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := checkpoint.NewSigner("nodevms-monitor", monitorKey)

	srv := rpc.NewServer(rpc.Options{})
	if err := srv.Mount("/", rpc.Backend{Host: host, Title: "t", Archive: archive, Log: forked}); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	code, report := auditBinary(t, strings.TrimPrefix(ts.URL, "http://"), "--out", forkOut, "--once")
	if code != 1 || !strings.Contains(report, "FORK") || !strings.Contains(report, "verified: length 5") || !strings.Contains(report, "now:      length 4") {
		t.Fatalf("the forked history: exit %d\n%s", code, report)
	}
	// The monitor wrote evidence of the fork that anyone can check.
	m := regexp.MustCompile(`evidence anyone can check: (\S+)`).FindStringSubmatch(report)
	if m == nil {
		t.Fatalf("no evidence file:\n%s", report)
	}
	logURL := fmt.Sprintf("dat://%x", forked.PublicKey())
	out, errOut, err := runNodevms(t, "evidence", "verify", m[1], "--log", logURL)
	if err != nil || !strings.Contains(out, "VALID") || !strings.Contains(out, "signed two histories") {
		t.Fatalf("evidence verify: %v\n%s%s", err, out, errOut)
	}
	// The receipt from before the fork still verifies against the
	// checkpoint the monitor cosigned: the host cannot take it back.
	if out, errOut, err := runNodevms(t, "receipt", "verify", beforeFile, "--log", logURL, "--monitor", signer.VerifierKey()); err != nil ||
		!strings.Contains(out, "cosigned at that length by 1 of the 1") {
		t.Errorf("the receipt from before the fork: %v\n%s%s", err, out, errOut)
	}
	// Edited, it proves nothing.
	data, _ = os.ReadFile(m[1])
	edited := filepath.Join(t.TempDir(), "edited.json")
	os.WriteFile(edited, bytes.Replace(data, []byte(`"length": 4`), []byte(`"length": 5`), 1), 0o644)
	if out, _, err := runNodevms(t, "evidence", "verify", edited); exitCode(t, err) != 1 || !strings.Contains(out, "INVALID") {
		t.Errorf("edited evidence: %v\n%s", err, out)
	}
}
