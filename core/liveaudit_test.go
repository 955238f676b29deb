package core_test

import (
	"context"
	"io"
	"net"
	"testing"

	"github.com/nodevms/nodevms/core"
	"github.com/nodevms/nodevms/examples"
	"github.com/nodevms/nodevms/hypercore"
	"github.com/nodevms/nodevms/hypercore/protocol"
	"github.com/nodevms/nodevms/hyperdrive"
)

// pull downloads feeds from a host's archive and log, as a peer does.
func pull(t *testing.T, archive *hyperdrive.Archive, log *hypercore.Feed, feeds ...*hypercore.Feed) {
	t.Helper()
	server, client := net.Pipe()
	lookup := archive.Lookup()
	go protocol.Serve(context.Background(), server, protocol.Options{}, func(dk [32]byte) *hypercore.Feed {
		if dk == log.DiscoveryKey() {
			return log
		}
		return lookup(dk)
	})
	if err := protocol.Replicate(context.Background(), client, protocol.Options{}, feeds...); err != nil {
		t.Fatal(err)
	}
}

// TestAuditOfALiveHostWithShortContent: the audit of a snapshot of a host
// that has moved on does not hold a content root against a replica that
// could not fetch its last blocks (a busy folder-backed host replaces them
// as they are asked for), and the audit of a host that has not moved on
// does.
func TestAuditOfALiveHostWithShortContent(t *testing.T) {
	ctx := context.Background()
	archive, err := hyperdrive.Open(hyperdrive.Options{Storage: hyperdrive.MemoryStorage(), Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer archive.Close()
	log, err := hypercore.Open(hypercore.Config{Storage: hypercore.NewMemoryStorage(), Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	code, err := examples.Script("persistent-counter.js")
	if err != nil {
		t.Fatal(err)
	}
	h, err := core.Deploy(ctx, core.Config{Archive: archive, Log: log}, code, "t", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	increment := func(n int) {
		for range n {
			if _, err := h.Call(ctx, core.Request{Method: "increment"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	increment(3)
	// The replica: the archive as it was after three calls, then the
	// metadata alone after two more, and the log.
	replica, err := hyperdrive.Open(hyperdrive.Options{Storage: hyperdrive.MemoryStorage(), Key: archive.Key(), Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer replica.Close()
	dial := func(context.Context) (io.ReadWriteCloser, error) {
		server, client := net.Pipe()
		go protocol.Serve(ctx, server, protocol.Options{}, archive.Lookup())
		return client, nil
	}
	if err := replica.Pull(ctx, dial, protocol.Options{}); err != nil {
		t.Fatal(err)
	}
	increment(2)
	pull(t, archive, log, replica.Metadata())
	logReplica, err := hypercore.Open(hypercore.Config{Storage: hypercore.NewMemoryStorage(), PublicKey: log.PublicKey(), Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer logReplica.Close()
	pull(t, archive, log, logReplica)
	if replica.Content().Length() >= archive.Content().Length() {
		t.Fatalf("the replica's content has %d blocks, the host's %d: not short", replica.Content().Length(), archive.Content().Length())
	}
	n, ok, err := core.SnapshotLength(logReplica, replica)
	if err != nil || !ok || n != logReplica.Length() {
		t.Fatalf("snapshot %d, %v, %v; want the whole log of %d", n, ok, err, logReplica.Length())
	}
	// The host has not moved on: its current file must be served.
	v, err := core.Audit(ctx, logReplica, replica, core.AuditOptions{Entries: n})
	if err != nil {
		t.Fatal(err)
	}
	if v.Divergence == nil || v.Divergence.Field != "filesRoot" || v.Divergence.Block != n-1 {
		t.Errorf("audit of a host that has not moved on, with its last content missing: %v, want a filesRoot divergence at %d", v.Divergence, n-1)
	}
	// It moves on: the snapshot's last content root is not held against it.
	increment(1)
	pull(t, archive, log, logReplica)
	v, err = core.Audit(ctx, logReplica, replica, core.AuditOptions{Entries: n})
	if err != nil || v.Divergence != nil {
		t.Errorf("audit of the snapshot of a host that moved on: %v, %v", v.Divergence, err)
	}
}
