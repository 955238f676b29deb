// Command longlog makes a backend folder with a long call log, for the
// start-up and audit benchmarks (bench/compare-startup): it deploys a
// script into a new folder, or opens the one there, exactly as nodevms
// does, and runs calls in process, in batches, without fsyncs, until the
// log holds the number of calls asked for.
//
//	go run ./bench/longlog -script examples/persistent-counter.js -memory afresh -calls 1000000 DIR
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/nodevms/nodevms/core"
	"github.com/nodevms/nodevms/server"
)

func main() {
	script := flag.String("script", "examples/persistent-counter.js", "the backend script")
	memory := flag.String("memory", server.MemoryAfresh, "kept or afresh, at deploy")
	method := flag.String("method", "increment", "the method to call")
	calls := flag.Uint64("calls", 100_000, "the log's length to reach, in calls")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: longlog [flags] DIR")
		os.Exit(2)
	}
	if err := run(flag.Arg(0), *script, *memory, *method, *calls); err != nil {
		fmt.Fprintln(os.Stderr, "longlog:", err)
		os.Exit(1)
	}
}

func run(dir, script, memory, method string, calls uint64) error {
	code, err := os.ReadFile(script)
	if err != nil {
		return err
	}
	ctx := context.Background()
	b, err := server.Open(ctx, server.Options{Dir: dir, Code: code, Memory: memory, NoFsync: true})
	if err != nil {
		return err
	}
	defer b.Close()
	const batchSize = 256
	start := time.Now()
	last := start
	for b.Log.Length() <= calls {
		n := min(batchSize, calls+1-b.Log.Length())
		var batch core.Batch
		var wg sync.WaitGroup
		var failed error
		var mu sync.Mutex
		for range n {
			wg.Add(1)
			b.Host.Add(&batch, ctx, core.Request{Method: method}, func(_ core.Response, err error) {
				if err != nil {
					mu.Lock()
					failed = err
					mu.Unlock()
				}
				wg.Done()
			})
		}
		b.Host.SubmitBatch(&batch)
		wg.Wait()
		if failed != nil {
			return failed
		}
		if time.Since(last) > 10*time.Second {
			last = time.Now()
			fmt.Fprintf(os.Stderr, "%d calls, %.0f/s\n", b.Log.Length()-1, float64(b.Log.Length())/time.Since(start).Seconds())
		}
	}
	return b.Close()
}
