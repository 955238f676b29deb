package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/nodevms/nodevms/hypercore"
	"github.com/nodevms/nodevms/hypercore/protocol"
)

// memoryFeed returns a feed in memory of count blocks of size bytes.
func memoryFeed(b *testing.B, count, size int) *hypercore.Feed {
	b.Helper()
	kp := hypercore.KeyPairFromSeed(bytes.Repeat([]byte{2}, 32))
	f, err := hypercore.Open(hypercore.Config{Storage: hypercore.NewMemoryStorage(), SecretKey: kp.SecretKey, Create: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
	perBatch := max(1, min(1000, (16<<20)/size))
	for i := 0; i < count; i += perBatch {
		batch := make([][]byte, 0, perBatch)
		for j := i; j < min(i+perBatch, count); j++ {
			batch = append(batch, bytes.Repeat([]byte{byte(j)}, size))
		}
		if _, err := f.Append(batch...); err != nil {
			b.Fatal(err)
		}
	}
	return f
}

// serveLoopback serves f on a loopback TCP port until the benchmark ends.
func serveLoopback(b *testing.B, f *hypercore.Feed) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		protocol.ServeListener(ctx, ln, protocol.Options{}, func(dk [32]byte) *hypercore.Feed {
			if dk == f.DiscoveryKey() {
				return f
			}
			return nil
		})
	}()
	b.Cleanup(func() { cancel(); <-done })
	return ln.Addr().String()
}

func reportReplication(b *testing.B, f *hypercore.Feed, seconds float64) {
	b.ReportMetric(float64(f.Length())*float64(b.N)/seconds, "blocks/s")
	b.ReportMetric(float64(f.ByteLength())*float64(b.N)/seconds/1e6, "MB/s")
}

func benchmarkGoToGo(b *testing.B, count, size int) {
	src := memoryFeed(b, count, size)
	addr := serveLoopback(b, src)
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		dst, err := hypercore.Open(hypercore.Config{Storage: hypercore.NewMemoryStorage(), PublicKey: src.PublicKey(), Create: true})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if err := protocol.Dial(context.Background(), addr, protocol.Options{}, dst); err != nil {
			b.Fatal(err)
		}
		if dst.Length() != src.Length() || !dst.Has(src.Length()-1) {
			b.Fatalf("replica has %d blocks", dst.Length())
		}
		dst.Close()
	}
	reportReplication(b, src, b.Elapsed().Seconds())
}

// BenchmarkReplicateGoToGo100k: 100,000 blocks of 100 bytes, Go server to
// Go replica over loopback TCP, every block verified.
func BenchmarkReplicateGoToGo100k(b *testing.B) { benchmarkGoToGo(b, 100_000, 100) }

// BenchmarkReplicateGoToGo256MiB: 256 MiB in 64 KiB blocks.
func BenchmarkReplicateGoToGo256MiB(b *testing.B) { benchmarkGoToGo(b, 4096, 64<<10) }

// benchmarkGoToJS serves from Go to the reference's replica (bench/js,
// installed with npm ci); it runs when NODEVMS_BENCH_JS names that folder,
// as bench/compare-replication sets it.
func benchmarkGoToJS(b *testing.B, count, size int) {
	dir := os.Getenv("NODEVMS_BENCH_JS")
	if dir == "" {
		b.Skip("set NODEVMS_BENCH_JS to the bench/js folder (bench/compare-replication does)")
	}
	src := memoryFeed(b, count, size)
	addr := serveLoopback(b, src)
	_, port, _ := net.SplitHostPort(addr)
	var seconds float64
	b.ResetTimer()
	for range b.N {
		out, err := exec.Command("node", filepath.Join(dir, "replicate.js"), "download", port, hexKey(src)).Output()
		if err != nil {
			b.Fatal(err)
		}
		var r struct {
			Blocks  uint64
			Seconds float64
			Crypto  string
		}
		if err := json.Unmarshal(out, &r); err != nil {
			b.Fatalf("%v: %s", err, out)
		}
		if r.Blocks != src.Length() {
			b.Fatalf("the reference downloaded %d blocks", r.Blocks)
		}
		seconds += r.Seconds
	}
	reportReplication(b, src, seconds)
}

func hexKey(f *hypercore.Feed) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 64)
	for _, c := range f.PublicKey() {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

func BenchmarkReplicateGoToJS100k(b *testing.B)   { benchmarkGoToJS(b, 100_000, 100) }
func BenchmarkReplicateGoToJS256MiB(b *testing.B) { benchmarkGoToJS(b, 4096, 64<<10) }
