package bench

import (
	"context"
	"sync"
	"testing"

	"github.com/nodevms/nodevms/core"
	"github.com/nodevms/nodevms/examples"
	"github.com/nodevms/nodevms/hypercore"
	"github.com/nodevms/nodevms/hyperdrive"
)

// buildLog deploys an example in memory and makes n calls of method from
// 32 callers at once, and returns the call log.
func buildLog(b *testing.B, script, method string, n int) *hypercore.Feed {
	log, _ := buildLogAndArchive(b, script, method, n)
	return log
}

// buildLogAndArchive is buildLog that also returns the files archive.
func buildLogAndArchive(b *testing.B, script, method string, n int) (*hypercore.Feed, *hyperdrive.Archive) {
	b.Helper()
	code, err := examples.Script(script)
	if err != nil {
		b.Fatal(err)
	}
	archive, err := hyperdrive.Open(hyperdrive.Options{Storage: hyperdrive.MemoryStorage(), Create: true})
	if err != nil {
		b.Fatal(err)
	}
	log, err := hypercore.Open(hypercore.Config{Storage: hypercore.NewMemoryStorage(), Create: true})
	if err != nil {
		b.Fatal(err)
	}
	h, err := core.Deploy(context.Background(), core.Config{Archive: archive, Log: log}, code, script, nil)
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	per := n / 32
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range per {
				if _, err := h.Call(context.Background(), core.Request{Method: method}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := h.Close(); err != nil {
		b.Fatal(err)
	}
	return log, archive
}

func benchmarkReplay(b *testing.B, script string, n int) {
	log := buildLog(b, script, "increment", n)
	b.ResetTimer()
	for range b.N {
		v, err := core.Replay(context.Background(), log, core.ReplayOptions{})
		if err != nil || v.Divergence != nil {
			b.Fatalf("replay: %v %v", err, v.Divergence)
		}
	}
	b.ReportMetric(float64(b.N)*float64(log.Length()-1)/b.Elapsed().Seconds(), "calls/s")
}

// BenchmarkReplayCounter100k replays (and checks) a log of 100,000 calls of
// the in-memory counter: decode each entry, run the call, compare.
func BenchmarkReplayCounter100k(b *testing.B) { benchmarkReplay(b, "counter.js", 100_000) }

// BenchmarkReplayPersistentCounter10k replays a log of 10,000 calls of the
// counter kept in the files archive: each call reads and writes /counter.
func BenchmarkReplayPersistentCounter10k(b *testing.B) {
	benchmarkReplay(b, "persistent-counter.js", 10_000)
}
