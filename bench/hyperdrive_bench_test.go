package bench

import (
	"bytes"
	"flag"
	"fmt"
	"testing"
	"time"

	"github.com/nodevms/nodevms/hyperdrive"
)

var archiveFiles = flag.Int("files", 10000, "files for BenchmarkArchiveOneDirectory")

// BenchmarkArchiveOneDirectory is js/drive.js's workload: writeFile of
// -files 100-byte files into one directory (one call per file), readFile of
// each, then one readdir, in an archive on disk (node-dat-archive's layout,
// no fsync). One iteration is the whole workload; it reports writes/s,
// reads/s and the readdir's milliseconds. The format makes each write and
// lookup in a directory of n entries cost O(n), so rates fall with -files.
func BenchmarkArchiveOneDirectory(b *testing.B) {
	n := *archiveFiles
	body := bytes.Repeat([]byte{7}, 100)
	name := func(i int) string { return fmt.Sprintf("/dir/file-%d", i) }
	var writeTime, readTime, listTime time.Duration
	for range b.N {
		a, err := hyperdrive.Open(hyperdrive.Options{Storage: hyperdrive.FlatStorage(b.TempDir()), Create: true})
		if err != nil {
			b.Fatal(err)
		}
		o := hyperdrive.WriteOptions{Mtime: time.UnixMilli(1), Ctime: time.UnixMilli(1)}
		start := time.Now()
		for i := range n {
			if err := a.WriteFile(name(i), body, o); err != nil {
				b.Fatal(err)
			}
		}
		writeTime += time.Since(start)

		start = time.Now()
		for i := range n {
			got, err := a.ReadFile(name(i))
			if err != nil || len(got) != len(body) {
				b.Fatalf("read %s: %d bytes, %v", name(i), len(got), err)
			}
		}
		readTime += time.Since(start)

		start = time.Now()
		list, err := a.Readdir("/dir")
		if err != nil || len(list) != n {
			b.Fatalf("readdir: %d names, %v", len(list), err)
		}
		listTime += time.Since(start)
		if err := a.Close(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n*b.N)/writeTime.Seconds(), "writes/s")
	b.ReportMetric(float64(n*b.N)/readTime.Seconds(), "reads/s")
	b.ReportMetric(listTime.Seconds()*1000/float64(b.N), "readdir-ms")
}
