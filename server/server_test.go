package server_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodevms/nodevms/audit"
	"github.com/nodevms/nodevms/core"
	"github.com/nodevms/nodevms/examples"
	"github.com/nodevms/nodevms/rpc"
	"github.com/nodevms/nodevms/server"
)

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func counter(t *testing.T) []byte {
	t.Helper()
	code, err := examples.Script("counter.js")
	if err != nil {
		t.Fatal(err)
	}
	return []byte(code)
}

// TestEmbeddedHostAndAuditor: a program deploys a backend into a folder,
// serves it, calls it, audits and follows it from outside, and opens it
// again after a stop, with no nodevms command involved.
func TestEmbeddedHostAndAuditor(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "counter")
	code := counter(t)
	b, err := server.Open(ctx, server.Options{Dir: dir, Code: code, Title: "counter files"})
	if err != nil {
		t.Fatal(err)
	}
	if !b.Deployed {
		t.Errorf("a new folder was not deployed")
	}
	if _, err := server.Open(ctx, server.Options{Dir: dir, Code: code}); !errors.As(err, new(*server.InUseError)) {
		t.Errorf("a second Open of a served folder: %v, want an InUseError", err)
	}
	rpcLn := listen(t)
	s, err := b.Serve(rpcLn, listen(t), server.ServeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := rpc.Dial(ctx, rpcLn.Addr().String(), rpc.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		res, err := c.Call(ctx, "increment")
		if err != nil || string(res) != string(rune('1'+i)) {
			t.Fatalf("increment %d: %s, %v", i, res, err)
		}
	}
	c.Close()
	// Peers see entries once the host has signed them, a few
	// milliseconds after the answers.
	for b.Log.Published() < 4 {
		select {
		case <-b.Log.Changed():
		case <-time.After(10 * time.Second):
			t.Fatalf("the log shows peers %d entries of 4", b.Log.Published())
		}
	}

	a, err := audit.Open(ctx, audit.Options{Addr: rpcLn.Addr().String(), Log: b.Log.PublicKey(), Out: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	res, err := a.Audit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Outcome != audit.Verified || res.Verdict.Calls != 3 || res.Entries != 4 {
		t.Errorf("audit: %v, %d calls of %d entries; want verified, 3 of 4", res.Outcome, res.Verdict.Calls, res.Entries)
	}
	// Following: each new call is checked as it arrives, until ctx ends.
	followCtx, stopFollowing := context.WithCancel(ctx)
	verified := make(chan uint64, 16)
	followed := make(chan audit.Result, 1)
	go func() {
		res, err := a.Follow(followCtx, nil, audit.FollowEvents{Verified: func(block, _ uint64) { verified <- block }})
		if err != nil {
			t.Error(err)
		}
		followed <- res
	}()
	c, err = rpc.Dial(ctx, rpcLn.Addr().String(), rpc.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := c.Call(ctx, "increment"); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()
	for want := uint64(4); want < 6; want++ {
		select {
		case got := <-verified:
			if got != want {
				t.Errorf("followed entry %d, want %d", got, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("entry %d was not followed", want)
		}
	}
	stopFollowing()
	if res := <-followed; res.Outcome != audit.Verified || res.Entries != 6 {
		t.Errorf("following ended with %v after %d entries, want verified after 6", res.Outcome, res.Entries)
	}
	a.Close()
	// A pin the host does not serve is a divergence, found before any
	// download.
	// Without Out, the replicas are in a temporary folder, gone at Close.
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	a, err = audit.Open(ctx, audit.Options{Addr: rpcLn.Addr().String(), Log: b.Log.PublicKey()})
	if err != nil {
		t.Fatal(err)
	}
	if res, err := a.Audit(ctx); err != nil || res.Outcome != audit.Verified {
		t.Errorf("audit without Out: %+v, %v", res, err)
	}
	if names, _ := filepath.Glob(filepath.Join(tmp, "nodevms-audit-*", "call-log.data")); len(names) != 1 {
		t.Errorf("replicas in the temporary folder: %v", names)
	}
	if err := a.Close(); err != nil {
		t.Error(err)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("left in the temporary folder after Close: %v", left)
	}

	a, err = audit.Open(ctx, audit.Options{Addr: rpcLn.Addr().String(), Files: b.Log.PublicKey()})
	if err != nil {
		t.Fatal(err)
	}
	if res, err := a.Audit(ctx); err != nil || res.Outcome != audit.Diverged || res.Mismatch == nil || res.Mismatch.What != "files archive" {
		t.Errorf("audit with a wrong pin: %+v, %v; want a mismatch of the files archive", res, err)
	}
	a.Close()

	if err := s.Shutdown(ctx); err != nil {
		t.Error(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b, err = server.Open(ctx, server.Options{Dir: dir, Code: code})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.Deployed || b.Title() != "counter files" {
		t.Errorf("reopened: deployed %v, title %q", b.Deployed, b.Title())
	}
	r, err := b.Host.Call(ctx, core.Request{Method: "increment"})
	if err != nil || string(r.Res) != "6" {
		t.Errorf("increment after a restart: %s, %v; want 6", r.Res, err)
	}
}

// TestOpenRefuses: what Open refuses, and what it leaves behind.
func TestOpenRefuses(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "b")
	b, err := server.Open(ctx, server.Options{Dir: dir, Code: counter(t)})
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	for _, c := range []struct {
		name string
		opts server.Options
		want error
	}{
		{"another script", server.Options{Dir: dir, Code: []byte("exports.f = () => 1")}, server.ErrOtherBackend},
		{"another memory mode", server.Options{Dir: dir, Code: counter(t), Memory: server.MemoryAfresh}, server.ErrOtherBackend},
		{"a script that throws while loading", server.Options{Dir: filepath.Join(t.TempDir(), "new"), Code: []byte("throw new Error('no')")}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			b, err := server.Open(ctx, c.opts)
			if err == nil {
				b.Close()
				t.Fatal("opened")
			}
			if c.want != nil && !errors.Is(err, c.want) {
				t.Errorf("%v, want %v", err, c.want)
			}
			if c.want == nil {
				if !strings.HasPrefix(err.Error(), "deploy: ") {
					t.Errorf("%v, want a failed deploy", err)
				}
				if _, err := os.Stat(c.opts.Dir); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("the failed deploy left its folder: %v", err)
				}
			}
		})
	}
	// The refusals let go of the folder.
	b, err = server.Open(ctx, server.Options{Dir: dir, Code: counter(t)})
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
}

// peersAt is a Network that finds every feed at one TCP address (nil:
// nowhere), and records what is announced.
type peersAt struct {
	addr      net.Addr
	announced chan [32]byte
}

func (p *peersAt) Dial(ctx context.Context, dk [32]byte) (io.ReadWriteCloser, error) {
	if p.addr == nil {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", p.addr.String())
}

func (p *peersAt) Announce(dk [32]byte, port int) { p.announced <- dk }

// TestAuditByKey: an auditor given only the call log's dat:// URL finds the
// log on its Network, the files archive through the log's init entry, and
// verifies both; following, it announces the feeds it rehosts. With no
// peer found, it says so within FindTimeout; with no Network, at once.
func TestAuditByKey(t *testing.T) {
	ctx := context.Background()
	b, err := server.Open(ctx, server.Options{Dir: filepath.Join(t.TempDir(), "counter"), Code: counter(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	rpcLn, datLn := listen(t), listen(t)
	s, err := b.Serve(rpcLn, datLn, server.ServeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(ctx)
	c, err := rpc.Dial(ctx, rpcLn.Addr().String(), rpc.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := c.Call(ctx, "increment"); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()
	for b.Log.Published() < 4 {
		select {
		case <-b.Log.Changed():
		case <-time.After(10 * time.Second):
			t.Fatalf("the log shows peers %d entries of 4", b.Log.Published())
		}
	}
	url := fmt.Sprintf("dat://%x", b.Log.PublicKey())
	network := &peersAt{addr: datLn.Addr(), announced: make(chan [32]byte, 2)}
	a, err := audit.Open(ctx, audit.Options{Addr: url, Network: network})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	res, err := a.Audit(ctx)
	if err != nil || res.Outcome != audit.Verified || res.Verdict.Calls != 3 {
		t.Fatalf("audit by key: %+v, %v; want 3 calls verified", res, err)
	}
	followCtx, stop := context.WithCancel(ctx)
	followed := make(chan error, 1)
	go func() {
		_, err := a.Follow(followCtx, listen(t), audit.FollowEvents{})
		followed <- err
	}()
	want := map[[32]byte]bool{b.Log.DiscoveryKey(): true, b.Archive.Metadata().DiscoveryKey(): true}
	for range 2 {
		select {
		case dk := <-network.announced:
			if !want[dk] {
				t.Errorf("announced %x, not a feed of the backend", dk)
			}
			delete(want, dk)
		case <-time.After(10 * time.Second):
			t.Fatalf("following, the auditor did not announce %d feeds", len(want))
		}
	}
	stop()
	if err := <-followed; err != nil {
		t.Error(err)
	}

	a, err = audit.Open(ctx, audit.Options{Addr: url, Network: &peersAt{}, FindTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if _, err := a.Audit(ctx); !errors.Is(err, audit.ErrNotFound) {
		t.Errorf("audit by key with no peer: %v, want ErrNotFound", err)
	}
	if _, err := audit.Open(ctx, audit.Options{Addr: url}); !errors.Is(err, audit.ErrNoNetwork) {
		t.Errorf("audit by key with no Network: %v, want ErrNoNetwork", err)
	}
}
