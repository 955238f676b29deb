// Command load drives a NodeVMS backend over its WebSocket JSON-RPC, as
// nodevms-client does, so that it can measure any NodeVMS-compatible server
// by URL (ours, or the original JavaScript one): calls per second and
// latency percentiles for one method, at a number of connections and calls
// in flight, for a duration. It prints one JSON object.
//
// It runs on one OS thread unless told otherwise (-procs): it shares the
// machine with the server it measures, and at these rates one thread keeps
// up while taking less from the server than several do, whose hand-offs
// wake each other's CPUs.
//
// -receipts asks for every call's receipt (as Client.CallWithReceipt
// does, parsing it), and -server-pid names the server's process, whose CPU
// time over the measured calls it reports per call: what a call costs the
// server, whatever the load generator spends.
//
//	go run ./bench/load -url localhost:5555 -method increment -conns 1 -inflight 16 -duration 10s
package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nodevms/nodevms/rpc"
)

type result struct {
	URL         string  `json:"url"`
	Method      string  `json:"method"`
	Conns       int     `json:"conns"`
	InFlight    int     `json:"inflight"`
	Signed      bool    `json:"signed"`
	Procs       int     `json:"procs"`
	Seconds     float64 `json:"seconds"`
	Calls       int64   `json:"calls"`
	Errors      int64   `json:"errors"`
	CallsPerSec float64 `json:"callsPerSec"`
	P50ms       float64 `json:"p50ms"`
	P99ms       float64 `json:"p99ms"`
	P999ms      float64 `json:"p999ms"`
	Receipts    bool    `json:"receipts"`
	// ServerCPUus is the server's CPU time (user and system) per call, in
	// microseconds, when -server-pid names it.
	ServerCPUus float64 `json:"serverCpuUs,omitempty"`
}

func main() {
	url := flag.String("url", "localhost:5555", "the backend")
	method := flag.String("method", "increment", "the method to call (no arguments)")
	conns := flag.Int("conns", 1, "connections")
	inflight := flag.Int("inflight", 1, "calls in flight, over all connections")
	duration := flag.Duration("duration", 10*time.Second, "how long to measure")
	warmup := flag.Duration("warmup", time.Second, "calls before measuring")
	signed := flag.Bool("signed", false, "sign every call (a fresh key per connection)")
	procs := flag.Int("procs", 1, "OS threads running Go code (GOMAXPROCS; 0: one per CPU)")
	receipts := flag.Bool("receipts", false, "ask for every call's receipt")
	serverPID := flag.Int("server-pid", 0, "the server's process id, to measure its CPU time per call")
	pollFor := flag.Duration("poll-for", 0, "how long a connection's reader polls for answers before it sleeps (rpc.ClientOptions.PollFor; 0: off)")
	flag.Parse()
	if *procs > 0 {
		runtime.GOMAXPROCS(*procs)
	}

	ctx := context.Background()
	clients := make([]*rpc.Client, *conns)
	for i := range clients {
		opts := rpc.ClientOptions{Timeout: time.Minute, PollFor: *pollFor}
		if *signed {
			_, opts.Key, _ = ed25519.GenerateKey(nil)
		}
		c, err := rpc.Dial(ctx, *url, opts)
		if err != nil {
			fmt.Fprintln(os.Stderr, "load:", err)
			os.Exit(1)
		}
		defer c.Close()
		clients[i] = c
	}
	var measuring atomic.Bool
	var calls, errs atomic.Int64
	var cpuAtStart atomic.Int64
	var mu sync.Mutex
	var latencies []time.Duration
	stop := time.Now().Add(*warmup + *duration)
	start := time.Now().Add(*warmup)
	var wg sync.WaitGroup
	for w := range *inflight {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := clients[w%len(clients)]
			var mine []time.Duration
			for time.Now().Before(stop) {
				t0 := time.Now()
				var err error
				if *receipts {
					_, _, err = c.CallWithReceipt(ctx, *method)
				} else {
					_, err = c.Call(ctx, *method)
				}
				d := time.Since(t0)
				if !measuring.Load() {
					if time.Now().After(start) && measuring.CompareAndSwap(false, true) {
						cpuAtStart.Store(processCPU(*serverPID))
					}
					continue
				}
				if err != nil {
					errs.Add(1)
					continue
				}
				calls.Add(1)
				mine = append(mine, d)
			}
			mu.Lock()
			latencies = append(latencies, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	cpu := processCPU(*serverPID) - cpuAtStart.Load()
	sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	pct := func(p float64) float64 {
		if len(latencies) == 0 {
			return 0
		}
		return float64(latencies[min(int(p*float64(len(latencies))), len(latencies)-1)].Microseconds()) / 1000
	}
	r := result{
		URL: *url, Method: *method, Conns: *conns, InFlight: *inflight, Signed: *signed, Procs: runtime.GOMAXPROCS(0),
		Seconds: elapsed, Calls: calls.Load(), Errors: errs.Load(),
		CallsPerSec: float64(calls.Load()) / elapsed,
		P50ms:       pct(0.50), P99ms: pct(0.99), P999ms: pct(0.999),
		Receipts: *receipts,
	}
	if *serverPID > 0 && calls.Load() > 0 {
		r.ServerCPUus = float64(cpu) / 1e3 / float64(calls.Load())
	}
	json.NewEncoder(os.Stdout).Encode(r)
}

// processCPU is a process's user and system CPU time so far, in ns, from
// /proc (0 where there is none, or for pid 0).
func processCPU(pid int) int64 {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The fields after the command (which is in parentheses and may hold
	// spaces): utime and stime are the 12th and 13th, in clock ticks.
	rest := b[bytes.LastIndexByte(b, ')')+1:]
	f := strings.Fields(string(rest))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	const ticksPerSecond = 100 // USER_HZ on Linux
	return (utime + stime) * (1e9 / ticksPerSecond)
}
