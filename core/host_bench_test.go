package core

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"

	"github.com/nodevms/nodevms/hyperdrive"
)

// BenchmarkHostGroupOf8 is the host's own cost of a counter call, in groups
// of 8 submitted together as a connection's reader submits them: run, log
// entry, append (files on disk, no fsync, which would be most of the time).
func BenchmarkHostGroupOf8(b *testing.B) { benchmarkGroupOf8(b, "counter.js") }

// BenchmarkHostPersistentGroupOf8 is the same for the persistent counter,
// which reads and writes its file on every call, under the default disk
// quota.
func BenchmarkHostPersistentGroupOf8(b *testing.B) {
	benchmarkGroupOf8(b, "persistent-counter.js")
}

func benchmarkGroupOf8(b *testing.B, name string) {
	dir := b.TempDir()
	archive, log := openStoresFsync(b, dir, true, false)
	cfg := testConfig(archive, log)
	cfg.Quota = hyperdrive.Quota{ArchiveBytes: 1 << 30, CallBytes: 64 << 20}
	h, err := Deploy(context.Background(), cfg, script(b, name), "bench", nil)
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		if err := h.Close(); err != nil {
			b.Error(err)
		}
		archive.Close()
		log.Close()
	}()
	var (
		batch Batch
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	done := func(_ Response, err error) {
		if err != nil {
			mu.Lock()
			first = err
			mu.Unlock()
		}
		wg.Done()
	}
	req := Request{Method: "increment", Args: json.RawMessage("[]")}
	ctx := context.Background()
	b.ResetTimer()
	for calls := 0; calls < b.N; calls += 8 {
		wg.Add(8)
		for range 8 {
			h.Add(&batch, ctx, req, done)
		}
		h.SubmitBatch(&batch)
		wg.Wait() // a group may be queued, if the host was signing
	}
	b.StopTimer()
	if first != nil {
		b.Fatal(first)
	}
}

// BenchmarkStopOnLongLog is what a stopped call costs the host on a log of
// 100,000 counter calls: the stop itself (a result past MaxEntry, found as
// soon as the call returns) and what restores the script. "standby": the
// standby takes over, having caught up before each stop, as it does on a
// host with idle time. "replay": with no standby, the whole log is
// replayed (what every stop cost before the standby, and what a stop costs
// a kept-memory backend whose standby has not caught up). "afresh": a
// backend deployed with MemoryAfresh loads its script again and logs a
// reload, with no standby and no pause between stops.
func BenchmarkStopOnLongLog(b *testing.B) {
	for _, mode := range []string{"standby", "replay", "afresh"} {
		b.Run(mode, func(b *testing.B) {
			dir := b.TempDir()
			archive, log := openStoresFsync(b, dir, true, false)
			cfg := testConfig(archive, log)
			cfg.MaxEntry = 1 << 10
			cfg.MemoryAfresh = mode == "afresh"
			h, err := Deploy(context.Background(), cfg, `let n = 0
				exports.increment = () => ++n
				exports.big = () => 'x'.repeat(4096)`, "bench", nil)
			if err != nil {
				b.Fatal(err)
			}
			defer func() { h.Close(); archive.Close(); log.Close() }()
			var batch Batch
			var wg sync.WaitGroup
			req := Request{Method: "increment", Args: json.RawMessage("[]")}
			for calls := 0; calls < 100_000; calls += 256 {
				wg.Add(256)
				for range 256 {
					h.Add(&batch, context.Background(), req, func(Response, error) { wg.Done() })
				}
				h.SubmitBatch(&batch)
				wg.Wait()
			}
			if mode != "standby" {
				h.run.Lock()
				h.standby.close()
				h.standby.failed = errNoStandby
				h.run.Unlock()
			}
			b.ResetTimer()
			for range b.N {
				if mode == "standby" {
					b.StopTimer()
					waitCaughtUp(b, h)
					b.StartTimer()
				}
				if _, err := h.Call(context.Background(), Request{Method: "big"}); !errors.Is(err, ErrEntryTooLarge) {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if mode == "afresh" && h.fullReplays > 0 {
				b.Fatalf("%d stops replayed the log", h.fullReplays)
			}
		})
	}
}
