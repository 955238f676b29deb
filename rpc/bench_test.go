package rpc

import (
	"context"
	"testing"
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
