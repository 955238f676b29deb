package merkle

import "testing"

func benchmarkAppendBatch(b *testing.B, parallel int) {
	blocks := make([][]byte, 1000)
	for i := range blocks {
		blocks[i] = make([]byte, 100)
	}
	g := NewGenerator(nil)
	b.ResetTimer()
	for range b.N {
		g.AppendBatch(blocks, parallel, func(Node) {})
	}
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "blocks/s")
}

func BenchmarkAppendBatch1000Sequential(b *testing.B) { benchmarkAppendBatch(b, 1) }
func BenchmarkAppendBatch1000Parallel(b *testing.B)   { benchmarkAppendBatch(b, 2) }

// BenchmarkAppendBatchOne appends one block at a time, as a writer does
// for each call's files.
func BenchmarkAppendBatchOne(b *testing.B) {
	blocks := [][]byte{make([]byte, 100)}
	g := NewGenerator(nil)
	b.ReportAllocs()
	for b.Loop() {
		g.AppendBatch(blocks, 2, func(Node) {})
	}
}
