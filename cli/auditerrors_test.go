package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
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
	"github.com/google/go-cmp/cmp"
	"github.com/gorilla/websocket"

	"github.com/nodevms/nodevms/calllog"
	"github.com/nodevms/nodevms/core"
	"github.com/nodevms/nodevms/hypercore"
	"github.com/nodevms/nodevms/hyperdrive"
	"github.com/nodevms/nodevms/rpc"
)

// auditRun is what one run of the audit command did.
type auditRun struct {
	Code           int
	Stdout, Stderr string
}

func exitCode(t *testing.T, err error) int {
	t.Helper()
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exitErr):
		return exitErr.ExitCode()
	}
	t.Fatal(err)
	return 0
}

// TestAuditBadKeyFlags: a --files or --log that is no dat:// key is a
// usage error (exit 2), said before the audit connects to anything, not a
// divergence found in the host.
func TestAuditBadKeyFlags(t *testing.T) {
	// A host that counts the connections it is offered (and drops them).
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var dialed atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			dialed.Add(1)
			c.Close()
		}
	}()
	key := strings.Repeat("ab", 32)
	const usageHint = "run 'nodevms --help' for usage\n"
	tests := []struct {
		name       string
		flag, val  string
		wantStderr string
	}{
		{"not hex", "--files", "dat://xyz",
			`nodevms: --files: "dat://xyz" is not a dat:// URL (dat:// and a key of 64 hex digits)` + "\n"},
		{"a short key", "--log", "dat://" + key[:62],
			`nodevms: --log: "dat://` + key[:62] + `" is not a dat:// URL (dat:// and a key of 64 hex digits)` + "\n"},
		{"a long key", "--files", "dat://" + key + "ab",
			`nodevms: --files: "dat://` + key + `ab" is not a dat:// URL (dat:// and a key of 64 hex digits)` + "\n"},
		{"64 digits, not all hex", "--log", "dat://" + strings.Repeat("g", 64),
			`nodevms: --log: "dat://` + strings.Repeat("g", 64) + `" is not a dat:// URL (dat:// and a key of 64 hex digits)` + "\n"},
		{"another scheme", "--files", "https://" + key,
			`nodevms: --files: "https://` + key + `" is not a dat:// URL (dat:// and a key of 64 hex digits)` + "\n"},
		{"no scheme", "--log", key,
			`nodevms: --log: "` + key + `" is not a dat:// URL (dat:// and a key of 64 hex digits)` + "\n"},
		{"a path after the key", "--files", "dat://" + key + "/counter",
			`nodevms: --files: "dat://` + key + `/counter" is not a dat:// URL (dat:// and a key of 64 hex digits)` + "\n"},
		{"empty", "--files", "",
			`nodevms: --files: "" is not a dat:// URL (dat:// and a key of 64 hex digits)` + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, err := runNodevms(t, "-a", ln.Addr().String(), tt.flag, tt.val)
			got := auditRun{exitCode(t, err), stdout, stderr}
			want := auditRun{exitUsage, "", tt.wantStderr + usageHint}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("nodevms -a ADDR %s %q (-want +got):\n%s", tt.flag, tt.val, diff)
			}
		})
	}
	if n := dialed.Load(); n != 0 {
		t.Errorf("the audit connected to the host %d times; a usage error should stop it before", n)
	}
}

// TestAuditKeyFlagsCompareKeys: --files and --log pin keys, not spellings:
// upper-case hex and a trailing slash name the same key.
func TestAuditKeyFlagsCompareKeys(t *testing.T) {
	addr := dishonest(t, nil, func(_ *core.Host, _ *hyperdrive.Archive, log *hypercore.Feed) *hypercore.Feed { return log })
	c, err := rpc.Dial(context.Background(), addr, rpc.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	info := c.Handshake()
	c.Close()
	files := "dat://" + strings.ToUpper(strings.TrimPrefix(info.FilesArchiveURL, "dat://"))
	code, text := auditBinary(t, addr, "--files", files, "--log", info.CallLogURL+"/")
	if code != 0 || !strings.Contains(text, "VERIFIED 4 calls") {
		t.Errorf("exit %d, want 0 and VERIFIED\n%s", code, text)
	}
}

// TestAuditNotNodeVMS: a server that answers the WebSocket upgrade with
// 200 OK (or a redirect) is not a backend, and the audit says so instead
// of printing a status that reads like success.
func TestAuditNotNodeVMS(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
		status  string
	}{
		{"200 OK to everything", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("<html>hello</html>")) }, "200 OK"},
		{"a redirect", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/login", http.StatusFound) }, "302 Found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := httptest.NewServer(tt.handler)
			defer ts.Close()
			stdout, stderr, err := runNodevms(t, "-a", ts.URL)
			got := auditRun{exitCode(t, err), stdout, stderr}
			want := auditRun{auditFailed, "",
				"nodevms: could not audit: " + ts.URL + " is not a NodeVMS server (it answered the WebSocket upgrade with " + tt.status + ")\n"}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestAuditProgressBarsOnlyOnATerminal: the progress bars redraw a line
// with \r; they are drawn when stderr is a terminal and left out when it
// is a pipe, where the rest of the output is unchanged.
func TestAuditProgressBarsOnlyOnATerminal(t *testing.T) {
	// An honest host in process, with four calls logged.
	addr := dishonest(t, nil, func(_ *core.Host, _ *hyperdrive.Archive, log *hypercore.Feed) *hypercore.Feed { return log })
	tests := []struct {
		name     string
		terminal bool
	}{
		{"a pipe", false},
		{"a terminal", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(nodevmsBin(t), "-a", addr)
			var stdout, stderr strings.Builder
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			var screen bytes.Buffer
			var read sync.WaitGroup
			if tt.terminal {
				ptmx, tty, err := pty.Open()
				if err != nil {
					t.Fatal(err)
				}
				defer ptmx.Close()
				cmd.Stderr = tty
				read.Go(func() { screen.ReadFrom(ptmx) }) // until the child and we close the terminal
				defer tty.Close()
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				err = cmd.Wait()
				tty.Close()
				read.Wait()
				stderr.Write(screen.Bytes())
				if code := exitCode(t, err); code != 0 {
					t.Fatalf("exit %d\n%s%s", code, stdout.String(), stderr.String())
				}
			} else if err := cmd.Run(); err != nil {
				t.Fatalf("%v\n%s%s", err, stdout.String(), stderr.String())
			}
			if !strings.Contains(stdout.String(), "VERIFIED 4 calls") || !strings.Contains(stderr.String(), "downloaded ") {
				t.Fatalf("the audit's report is missing:\nstdout: %q\nstderr: %q", stdout.String(), stderr.String())
			}
			// A terminal shows a newline as \r\n, so the bar itself is what
			// tells them apart.
			drawn := strings.Contains(stderr.String(), "replaying calls")
			if drawn != tt.terminal {
				t.Errorf("progress bar drawn: %v, want %v\nstderr: %q", drawn, tt.terminal, stderr.String())
			}
			if !tt.terminal && strings.Contains(stderr.String(), "\r") {
				t.Errorf("stderr to a pipe holds \\r:\n%q", stderr.String())
			}
		})
	}
}

// syncBuffer is a buffer a child process writes while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// slowReplayHost serves, in process, a backend whose call log the real
// binary replays for a long time: the host ran spin(1), and the log,
// re-signed, says spin(1e15). wrap, if set, wraps the RPC server.
func slowReplayHost(t *testing.T, wrap func(http.Handler) http.Handler) string {
	t.Helper()
	dir := t.TempDir()
	archive, err := hyperdrive.Open(hyperdrive.Options{Storage: hyperdrive.DatStorage(dir, filepath.Join(dir, ".keys")), Create: true})
	if err != nil {
		t.Fatal(err)
	}
	log, err := hypercore.Open(hypercore.Config{Storage: hypercore.NewMemoryStorage(), Create: true})
	if err != nil {
		t.Fatal(err)
	}
	code := `exports.spin = (n) => { let x = 0; for (let i = 0; i < n; i++) x += i; return x }`
	h, err := core.Deploy(context.Background(), core.Config{Archive: archive, Log: log}, code, "t", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Call(context.Background(), core.Request{Method: "spin", Args: json.RawMessage("[1]")}); err != nil {
		t.Fatal(err)
	}
	served := resigned(t, log, 1, func(e *calllog.Entry) { e.Call.Args = json.RawMessage("[1e15]") })
	srv := rpc.NewServer(rpc.Options{})
	if err := srv.Mount("/", rpc.Backend{Host: h, Title: "t", Archive: archive, Log: served}); err != nil {
		t.Fatal(err)
	}
	var handler http.Handler = srv
	if wrap != nil {
		handler = wrap(handler)
	}
	ts := httptest.NewServer(handler)
	t.Cleanup(func() { ts.Close(); h.Close(); archive.Close(); log.Close(); served.Close() })
	return strings.TrimPrefix(ts.URL, "http://")
}

// TestAuditInterrupted: Ctrl+C (or SIGTERM) at any point of an audit stops
// it with one line and the shell's code for the signal, never with
// "context canceled", a verdict, or a fork that a half-fetched log seems
// to show.
func TestAuditInterrupted(t *testing.T) {
	// stall holds requests for paths ending in suffix until the audit
	// hangs up: it is then waiting there when it is stopped. upgrade says
	// whether to accept the WebSocket first (a replication peer that never
	// speaks). reached is told when a request arrives.
	stall := func(suffix string, upgrade bool, reached chan<- struct{}) func(http.Handler) http.Handler {
		return func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if !strings.HasSuffix(r.URL.Path, suffix) {
					next.ServeHTTP(w, r)
					return
				}
				arrived := func() {
					select {
					case reached <- struct{}{}:
					default:
					}
				}
				if !upgrade {
					arrived()
					<-r.Context().Done()
					return
				}
				ws, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
				if err != nil {
					return
				}
				defer ws.Close()
				arrived()
				for {
					if _, _, err := ws.NextReader(); err != nil {
						return
					}
				}
			})
		}
	}
	tests := []struct {
		name     string
		sig      syscall.Signal
		wantCode int
		wantMsg  string
		// start serves a host, and returns its address, the audit's extra
		// arguments, and what the test waits for before the signal.
		start func(t *testing.T, stderr *syncBuffer) (addr string, extra []string, ready func() bool)
	}{
		{
			name: "connecting", sig: syscall.SIGINT, wantCode: 130, wantMsg: "nodevms: interrupted",
			start: func(t *testing.T, _ *syncBuffer) (string, []string, func() bool) {
				reached := make(chan struct{}, 1)
				addr := slowReplayHost(t, stall("/", false, reached))
				return addr, nil, chanReady(reached)
			},
		},
		{
			name: "connecting, SIGTERM", sig: syscall.SIGTERM, wantCode: 143, wantMsg: "nodevms: terminated",
			start: func(t *testing.T, _ *syncBuffer) (string, []string, func() bool) {
				reached := make(chan struct{}, 1)
				addr := slowReplayHost(t, stall("/", false, reached))
				return addr, nil, chanReady(reached)
			},
		},
		{
			name: "downloading", sig: syscall.SIGINT, wantCode: 130, wantMsg: "nodevms: interrupted",
			start: func(t *testing.T, _ *syncBuffer) (string, []string, func() bool) {
				reached := make(chan struct{}, 1)
				addr := slowReplayHost(t, stall(rpc.ReplicationSuffix, true, reached))
				return addr, nil, chanReady(reached)
			},
		},
		{
			name: "checking for a fork", sig: syscall.SIGINT, wantCode: 130, wantMsg: "nodevms: interrupted",
			start: func(t *testing.T, _ *syncBuffer) (string, []string, func() bool) {
				reached := make(chan struct{}, 1)
				addr := slowReplayHost(t, stall(rpc.ReplicationSuffix, true, reached))
				// A head a previous audit verified: the audit first fetches
				// the host's log to compare.
				out := t.TempDir()
				head := `{"length": 2, "treeHash": "00", "signature": "00"}`
				if err := os.WriteFile(filepath.Join(out, "verified-head.json"), []byte(head), 0o644); err != nil {
					t.Fatal(err)
				}
				return addr, []string{"--out", out, "--once"}, chanReady(reached)
			},
		},
		{
			name: "replaying", sig: syscall.SIGINT, wantCode: 130, wantMsg: "nodevms: interrupted",
			start: func(t *testing.T, stderr *syncBuffer) (string, []string, func() bool) {
				addr := slowReplayHost(t, nil)
				return addr, nil, func() bool { return strings.Contains(stderr.String(), "downloaded ") }
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr syncBuffer
			addr, extra, ready := tt.start(t, &stderr)
			cmd := exec.Command(nodevmsBin(t), append([]string{"-a", addr}, extra...)...)
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			for deadline := time.Now().Add(10 * time.Second); !ready(); {
				if time.Now().After(deadline) {
					cmd.Process.Kill()
					<-done
					t.Fatalf("the audit never got there:\nstdout: %q\nstderr: %q", stdout.String(), stderr.String())
				}
				time.Sleep(10 * time.Millisecond)
			}
			// Let the audit go on into the step it reached (a stream
			// opened, a call begun), where a stop used to misreport.
			time.Sleep(100 * time.Millisecond)
			cmd.Process.Signal(tt.sig)
			var err error
			select {
			case err = <-done:
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				<-done
				t.Fatalf("the audit did not stop:\nstdout: %q\nstderr: %q", stdout.String(), stderr.String())
			}
			// stderr may hold the download's summary before the message.
			lines := strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n")
			got := auditRun{exitCode(t, err), stdout.String(), lines[len(lines)-1]}
			want := auditRun{tt.wantCode, "", tt.wantMsg}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("(-want +got):\n%s\nstderr: %q", diff, stderr.String())
			}
			if strings.Count(stderr.String(), "nodevms:") != 1 {
				t.Errorf("want one message, got stderr %q", stderr.String())
			}
		})
	}
}

// chanReady reports whether something arrived on c, once it has.
func chanReady(c <-chan struct{}) func() bool {
	var got bool
	return func() bool {
		if !got {
			select {
			case <-c:
				got = true
			default:
			}
		}
		return got
	}
}
