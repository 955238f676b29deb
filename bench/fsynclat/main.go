// Command fsynclat measures this disk's durable append: a write of a few
// bytes at the end of a file followed by fdatasync, as a call log's
// append with --sync always does. It prints the median and the 90th
// percentile in microseconds, as JSON, so that a benchmark can state the
// disk it ran on and how far its durable rates are from the disk's limit.
//
//	go run ./bench/fsynclat -dir /var/tmp -n 200
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"slices"
	"time"
)

func main() {
	dir := flag.String("dir", os.TempDir(), "a folder on the disk to measure")
	n := flag.Int("n", 200, "appends to time")
	size := flag.Int("size", 300, "bytes per append")
	flag.Parse()
	if err := run(*dir, *n, *size); err != nil {
		fmt.Fprintln(os.Stderr, "fsynclat:", err)
		os.Exit(1)
	}
}

func run(dir string, n, size int) error {
	if n <= 0 || size <= 0 {
		return fmt.Errorf("-n and -size must be more than 0")
	}
	f, err := os.CreateTemp(dir, "fsynclat-")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	block := make([]byte, size)
	took := make([]time.Duration, 0, n)
	for range n {
		start := time.Now()
		if _, err := f.Write(block); err != nil {
			return err
		}
		if err := fdatasync(f); err != nil {
			return err
		}
		took = append(took, time.Since(start))
	}
	slices.Sort(took)
	us := func(d time.Duration) float64 { return float64(d.Microseconds()) }
	return json.NewEncoder(os.Stdout).Encode(map[string]any{
		"appends": n, "bytes": size,
		"p50us": us(took[n/2]), "p90us": us(took[n*9/10]),
	})
}
