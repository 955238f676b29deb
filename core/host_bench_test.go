package core

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
)

// BenchmarkHostGroupOf8 is the host's own cost of a counter call, in groups
// of 8 submitted together as a connection's reader submits them: run, log
// entry, append (files on disk, no fsync, which would be most of the time).
func BenchmarkHostGroupOf8(b *testing.B) {
	dir := b.TempDir()
	archive, log := openStoresFsync(b, dir, true, false)
	h, err := Deploy(context.Background(), testConfig(archive, log), script(b, "counter.js"), "bench", nil)
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
