package main

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodevms/nodevms/rpc"
)

// TestAuditWhileTheHostServes: audits of a host that keeps serving calls
// verify. A serving host shows its archive a moment before the log
// entries that explain it, and keeps only its current files' bytes; an
// audit used to download an empty log (proofs wanted a signature not yet
// written), then to report tampering (an archive ahead of its log, and a
// snapshot's file whose bytes the host had replaced since).
func TestAuditWhileTheHostServes(t *testing.T) {
	for _, name := range []string{"counter.js", "persistent-counter.js"} {
		t.Run(name, func(t *testing.T) {
			s := startServer(t, exampleFile(t, name), t.TempDir()+"/backend")
			defer s.stop(t)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			var wg sync.WaitGroup
			for range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					c, err := rpc.Dial(ctx, s.addr, rpc.ClientOptions{})
					if err != nil {
						return
					}
					defer c.Close()
					for ctx.Err() == nil {
						if _, err := c.Call(ctx, "increment"); err != nil {
							return
						}
					}
				}()
			}
			time.Sleep(300 * time.Millisecond)
			for i := range 3 {
				stdout, stderr, err := runNodevms(t, "-a", s.addr)
				if err != nil || !strings.HasPrefix(stdout, "VERIFIED") {
					t.Errorf("audit %d while serving: %v\nstdout: %s\nstderr: %s", i, err, stdout, stderr)
				}
			}
			cancel()
			wg.Wait()
		})
	}
}
