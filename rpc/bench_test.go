package rpc

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/gorilla/websocket"
)

// BenchmarkCallSequential is one caller's round trip: client, WebSocket,
// server, queue, script, log append and flush (files on disk, no fsync in
// the test's storage), answer.
func BenchmarkCallSequential(b *testing.B) {
	t := &testing.T{}
	ts, _ := serve(t, Options{})
	c, err := Dial(context.Background(), ts.URL, ClientOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	b.ResetTimer()
	for range b.N {
		if _, err := c.Call(context.Background(), "increment"); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
}

// BenchmarkReceiptCost is what asking for a receipt adds to the server's
// cost of a call, in CPU time per call (cpu-ns/call: the process's user
// and system time), with 256 calls in flight on 4 connections: enough that
// the host always has calls to run while answers wait for the next
// signature, as on a busy host. (Time per call would measure the signing
// interval, which waiting answers spend idle; on an idle host the standby
// uses that time.) The clients are raw WebSockets that send prepared
// requests and only read the answers, so that the CPU measured is the
// server's; a client that parses the receipt (Client.CallWithReceipt)
// spends BenchmarkParse's time more.
func BenchmarkReceiptCost(b *testing.B) {
	for _, withReceipt := range []bool{false, true} {
		name := "plain"
		if withReceipt {
			name = "receipt"
		}
		b.Run(name, func(b *testing.B) {
			const conns, inFlight = 4, 64
			t := &testing.T{}
			ts, _ := serveQueue(t, Options{MaxInFlight: inFlight}, 1000)
			req := []byte(`{"jsonrpc":"2.0","method":"increment","params":[],"id":1}`)
			if withReceipt {
				req = []byte(`{"jsonrpc":"2.0","method":"increment","params":[],"id":1,"receipt":true}`)
			}
			var wss []*websocket.Conn
			for range conns {
				ws, _, err := websocket.DefaultDialer.Dial(strings.Replace(ts.URL, "http", "ws", 1), nil)
				if err != nil {
					b.Fatal(err)
				}
				defer ws.Close()
				wss = append(wss, ws)
			}
			var failed atomic.Value
			var wg sync.WaitGroup
			before := cpuTime()
			b.ResetTimer()
			for k, ws := range wss {
				share := b.N / conns
				if k == 0 {
					share += b.N % conns
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					sent := 0
					for ; sent < min(inFlight, share); sent++ {
						ws.WriteMessage(websocket.TextMessage, req)
					}
					var buf bytes.Buffer // the answers' bytes, read into one buffer
					for got := 0; got < share; got++ {
						buf.Reset()
						_, r, err := ws.NextReader()
						if err == nil {
							_, err = buf.ReadFrom(r)
						}
						msg := buf.Bytes()
						if err == nil && (bytes.Contains(msg, []byte(`"error"`)) || withReceipt != bytes.Contains(msg, []byte(`"receipt":{`))) {
							err = fmt.Errorf("answer %s", msg)
						}
						if err != nil {
							failed.Store(err)
							return
						}
						if sent < share {
							ws.WriteMessage(websocket.TextMessage, req)
							sent++
						}
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			if err := failed.Load(); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(cpuTime()-before)/float64(b.N), "cpu-ns/call")
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
		})
	}
}

// cpuTime is the process's user and system CPU time so far, in ns.
func cpuTime() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}
