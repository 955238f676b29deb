package core_test

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/nodevms/nodevms/core"
	"github.com/nodevms/nodevms/examples"
	"github.com/nodevms/nodevms/hypercore"
	"github.com/nodevms/nodevms/hypercore/protocol"
	"github.com/nodevms/nodevms/hyperdrive"
)

// TestAuditWhileArriving: an audit whose replay starts while the replicas
// download (AuditOptions.Arriving) gives the verdict the audit after the
// download gives, for an honest host, for one whose archive holds a write
// no call explains, and for a log that runs on past the archive; and it
// ends with the download's error when the download fails.
func TestAuditWhileArriving(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name   string
		script string // persistent-counter.js if empty
		// run makes the host's calls; between is called between the
		// archive's download and the log's.
		run, between func(t *testing.T, h *core.Host, archive *hyperdrive.Archive)
	}{
		{name: "memory: a write after the last call", script: "counter.js", run: func(t *testing.T, h *core.Host, archive *hyperdrive.Archive) {
			calls(t, h, 30)
			if err := archive.Files().WriteFile("/extra", []byte("x"), hyperdrive.WriteOptions{}); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "honest", run: func(t *testing.T, h *core.Host, _ *hyperdrive.Archive) { calls(t, h, 40) }},
		{name: "a write no call explains", run: func(t *testing.T, h *core.Host, archive *hyperdrive.Archive) {
			calls(t, h, 20)
			if err := archive.Files().WriteFile("/counter", []byte("1000"), hyperdrive.WriteOptions{}); err != nil {
				t.Fatal(err)
			}
			calls(t, h, 20)
		}},
		{name: "a write after the last call", run: func(t *testing.T, h *core.Host, archive *hyperdrive.Archive) {
			calls(t, h, 20)
			if err := archive.Files().WriteFile("/extra", []byte("x"), hyperdrive.WriteOptions{}); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "the log runs on past the archive", run: func(t *testing.T, h *core.Host, _ *hyperdrive.Archive) { calls(t, h, 30) },
			between: func(t *testing.T, h *core.Host, _ *hyperdrive.Archive) { calls(t, h, 10) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			script := c.script
			if script == "" {
				script = "persistent-counter.js"
			}
			archive, log, h := deployed(t, script)
			c.run(t, h, archive)
			replica, logReplica := replicas(t, archive, log)

			// The replay starts before anything has arrived.
			arrived := make(chan struct{})
			var entries uint64
			type verdict struct {
				v   core.Verdict
				err error
			}
			got := make(chan verdict, 1)
			go func() {
				v, err := core.Audit(ctx, logReplica, replica, core.AuditOptions{Arriving: func() (uint64, error) {
					<-arrived
					return entries, nil
				}})
				got <- verdict{v, err}
			}()
			pullArchive(t, archive, replica)
			if c.between != nil {
				c.between(t, h, archive)
			}
			pull(t, archive, log, logReplica)
			n, ok, err := core.SnapshotLength(logReplica, replica)
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				entries = n
			}
			close(arrived)
			arriving := <-got
			if arriving.err != nil {
				t.Fatal(arriving.err)
			}

			after, err := core.Audit(ctx, logReplica, replica, core.AuditOptions{Entries: entries})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(after, arriving.v); diff != "" {
				t.Errorf("verdict while arriving (-after the download +while arriving):\n%s", diff)
			}
			if c.name == "honest" && (after.Divergence != nil || after.Calls != 40) {
				t.Errorf("honest host: %v", after)
			}
			if strings.HasPrefix(c.name, "a write") && after.Divergence == nil {
				t.Errorf("%s: not found", c.name)
			}
			if c.name == "the log runs on past the archive" && (after.Divergence != nil || after.Calls != 30) {
				t.Errorf("the snapshot: %v, want 30 calls verified", after)
			}
		})
	}

	t.Run("the download fails", func(t *testing.T) {
		t.Parallel()
		archive, log, h := deployed(t, "persistent-counter.js")
		calls(t, h, 5)
		replica, logReplica := replicas(t, archive, log)
		pull(t, archive, log, logReplica)
		failed := errors.New("the host went away")
		_, err := core.Audit(ctx, logReplica, replica, core.AuditOptions{Arriving: func() (uint64, error) { return 0, failed }})
		if !errors.Is(err, failed) {
			t.Errorf("audit with a failed download: %v, want %v", err, failed)
		}
	})
}

// deployed deploys an example script on a host in memory.
func deployed(t *testing.T, script string) (*hyperdrive.Archive, *hypercore.Feed, *core.Host) {
	t.Helper()
	archive, err := hyperdrive.Open(hyperdrive.Options{Storage: hyperdrive.MemoryStorage(), Create: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { archive.Close() })
	log, err := hypercore.Open(hypercore.Config{Storage: hypercore.NewMemoryStorage(), Create: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { log.Close() })
	code, err := examples.Script(script)
	if err != nil {
		t.Fatal(err)
	}
	h, err := core.Deploy(context.Background(), core.Config{Archive: archive, Log: log}, code, "t", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return archive, log, h
}

// replicas opens empty replicas of a host's archive and log.
func replicas(t *testing.T, archive *hyperdrive.Archive, log *hypercore.Feed) (*hyperdrive.Archive, *hypercore.Feed) {
	t.Helper()
	replica, err := hyperdrive.Open(hyperdrive.Options{Storage: hyperdrive.MemoryStorage(), Key: archive.Key(), Create: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { replica.Close() })
	logReplica, err := hypercore.Open(hypercore.Config{Storage: hypercore.NewMemoryStorage(), PublicKey: log.PublicKey(), Create: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logReplica.Close() })
	return replica, logReplica
}

// pullArchive downloads a host's archive into a replica.
func pullArchive(t *testing.T, archive, replica *hyperdrive.Archive) {
	t.Helper()
	dial := func(ctx context.Context) (io.ReadWriteCloser, error) {
		server, client := net.Pipe()
		go protocol.Serve(ctx, server, protocol.Options{}, archive.Lookup())
		return client, nil
	}
	if err := replica.Pull(context.Background(), dial, protocol.Options{}); err != nil {
		t.Fatal(err)
	}
}

// calls makes n calls of increment.
func calls(t *testing.T, h *core.Host, n int) {
	t.Helper()
	for range n {
		if _, err := h.Call(context.Background(), core.Request{Method: "increment"}); err != nil {
			t.Fatal(err)
		}
	}
}
