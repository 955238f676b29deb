package bench

import (
	"context"
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/nodevms/nodevms/core"
	"github.com/nodevms/nodevms/hypercore"
	"github.com/nodevms/nodevms/hypercore/protocol"
	"github.com/nodevms/nodevms/hyperdrive"
	"github.com/nodevms/nodevms/rpc"
)

// benchmarkAudit serves a log of n calls of script from a local server and
// measures what an auditor does with it, as nodevms -a does: download the
// log and the archive over the server's WebSocket replication path (every
// block verified against the signatures), then audit (replay, roots,
// callers). It reports the rates of each step and of the whole.
func benchmarkAudit(b *testing.B, script string, n int) {
	log, archive := buildLogAndArchive(b, script, "increment", n)
	srv := rpc.NewServer(rpc.Options{})
	h, err := core.Open(context.Background(), core.Config{Archive: archive, Log: log})
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	if err := srv.Mount("/", rpc.Backend{Host: h, Archive: archive, Log: log}); err != nil {
		b.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	url := "ws" + strings.TrimPrefix(ts.URL, "http") + rpc.ReplicationSuffix
	dial := func(ctx context.Context) (io.ReadWriteCloser, error) {
		ws, _, err := websocket.DefaultDialer.DialContext(ctx, url, nil)
		if err != nil {
			return nil, err
		}
		return rpc.NewWebSocketStream(ws), nil
	}
	var download, audit float64
	b.ResetTimer()
	for range b.N {
		ctx := context.Background()
		start := b.Elapsed()
		logReplica, err := hypercore.Open(hypercore.Config{Storage: hypercore.NewMemoryStorage(), PublicKey: log.PublicKey(), Create: true})
		if err != nil {
			b.Fatal(err)
		}
		files, err := hyperdrive.Open(hyperdrive.Options{Storage: hyperdrive.MemoryStorage(), Key: archive.Key(), Create: true})
		if err != nil {
			b.Fatal(err)
		}
		conn, err := dial(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if err := protocol.Replicate(ctx, conn, protocol.Options{}, logReplica); err != nil {
			b.Fatal(err)
		}
		if err := files.Pull(ctx, dial, protocol.Options{}); err != nil {
			b.Fatal(err)
		}
		mid := b.Elapsed()
		v, err := core.Audit(ctx, logReplica, files, core.AuditOptions{})
		if err != nil || v.Divergence != nil {
			b.Fatalf("audit: %v %v", err, v.Divergence)
		}
		end := b.Elapsed()
		download += (mid - start).Seconds()
		audit += (end - mid).Seconds()
		logReplica.Close()
		files.Close()
	}
	calls := float64(b.N) * float64(log.Length()-1)
	b.ReportMetric(calls/download, "downloaded-calls/s")
	b.ReportMetric(calls/audit, "audited-calls/s")
	b.ReportMetric(calls/(download+audit), "calls/s")
}

// BenchmarkAuditCounter100k audits a 100,000-call counter log from a local
// server (compare BenchmarkReplayCounter100k, the core alone).
func BenchmarkAuditCounter100k(b *testing.B) { benchmarkAudit(b, "counter.js", 100_000) }

// BenchmarkAuditPersistentCounter10k audits a 10,000-call persistent
// counter (compare BenchmarkReplayPersistentCounter10k).
func BenchmarkAuditPersistentCounter10k(b *testing.B) {
	benchmarkAudit(b, "persistent-counter.js", 10_000)
}
