// Package bench holds throughput benchmarks, run side by side with the
// JavaScript reference by ./compare (see README.md). The workloads match
// js/append.js.
package bench

import (
	"bytes"
	"testing"

	"github.com/nodevms/nodevms/hypercore"
)

func openWriter(b *testing.B) *hypercore.Feed {
	b.Helper()
	kp := hypercore.KeyPairFromSeed(bytes.Repeat([]byte{1}, 32))
	f, err := hypercore.Open(hypercore.Config{Storage: hypercore.DirStorage{Dir: b.TempDir()}, SecretKey: kp.SecretKey, Create: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
	return f
}

func block100(i int) []byte { return bytes.Repeat([]byte{byte(i)}, 100) }

// BenchmarkAppendSingle appends 100-byte blocks one at a time: every append
// is its own batch with its own signature, written to files (no fsync).
func BenchmarkAppendSingle(b *testing.B) {
	f := openWriter(b)
	blk := block100(1)
	b.SetBytes(100)
	b.ResetTimer()
	for range b.N {
		if _, err := f.Append(blk); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "blocks/s")
}

// BenchmarkAppendSingleSync is BenchmarkAppendSingle with a Sync (fsync)
// after every append: the durable rate of a host that answers each call
// only once its log entry is on disk.
func BenchmarkAppendSingleSync(b *testing.B) {
	f := openWriter(b)
	blk := block100(1)
	b.SetBytes(100)
	b.ResetTimer()
	for range b.N {
		if _, err := f.Append(blk); err != nil {
			b.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "blocks/s")
}

// BenchmarkAppendBatch1000 appends batches of 1000 blocks of 100 bytes, one
// signature per batch.
func BenchmarkAppendBatch1000(b *testing.B) {
	f := openWriter(b)
	batch := make([][]byte, 1000)
	for i := range batch {
		batch[i] = block100(i)
	}
	b.SetBytes(100 * 1000)
	b.ResetTimer()
	for range b.N {
		if _, err := f.Append(batch...); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "blocks/s")
}

// feedOf returns a feed of n 100-byte blocks in batches of 1000.
func feedOf(b *testing.B, n int) *hypercore.Feed {
	b.Helper()
	f := openWriter(b)
	for i := 0; i < n; i += 1000 {
		batch := make([][]byte, 0, 1000)
		for j := i; j < min(i+1000, n); j++ {
			batch = append(batch, block100(j))
		}
		if _, err := f.Append(batch...); err != nil {
			b.Fatal(err)
		}
	}
	return f
}

// BenchmarkGet reads blocks of a 100,000-block feed in a scattered order.
func BenchmarkGet(b *testing.B) {
	const n = 100_000
	f := feedOf(b, n)
	b.SetBytes(100)
	b.ResetTimer()
	for i := range b.N {
		if _, err := f.Get(uint64(i*7919) % n); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "blocks/s")
}

// proofItems returns blocks of src with proofs for a requester that has
// nothing.
func proofItems(b *testing.B, src *hypercore.Feed, n int) []proofItem {
	b.Helper()
	items := make([]proofItem, 256)
	for k := range items {
		i := uint64(k*7919) % uint64(n)
		data, err := src.Get(i)
		if err != nil {
			b.Fatal(err)
		}
		proof, err := src.Proof(i, hypercore.ProofRequest{})
		if err != nil {
			b.Fatal(err)
		}
		items[k] = proofItem{i, data, proof}
	}
	return items
}

type proofItem struct {
	i     uint64
	data  []byte
	proof hypercore.Proof
}

// BenchmarkVerifyProof puts single blocks of a 100,000-block feed into empty
// replicas: each Put hashes the block up its proof to the roots and checks
// the writer's signature over them.
func BenchmarkVerifyProof(b *testing.B) {
	const n = 100_000
	src := feedOf(b, n)
	items := proofItems(b, src, n)
	replicas := make([]*hypercore.Feed, len(items))
	b.ResetTimer()
	for k := 0; k < b.N; k += len(items) {
		b.StopTimer()
		for j := range replicas {
			r, err := hypercore.Open(hypercore.Config{Storage: hypercore.NewMemoryStorage(), PublicKey: src.PublicKey(), Create: true})
			if err != nil {
				b.Fatal(err)
			}
			replicas[j] = r
		}
		b.StartTimer()
		for j := 0; j < len(items) && k+j < b.N; j++ {
			it := items[j]
			if err := replicas[j].Put(it.i, it.data, it.proof); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "proofs/s")
}

// BenchmarkDownload moves a 100,000-block feed into a replica block by
// block in order, with the requester's digest, as replication does: after
// the first block, proofs stop at nodes the replica already trusts.
func BenchmarkDownload(b *testing.B) {
	const n = 100_000
	src := feedOf(b, n)
	var replica *hypercore.Feed
	b.SetBytes(100)
	b.ResetTimer()
	for k := range b.N {
		i := uint64(k % n)
		if i == 0 {
			b.StopTimer()
			var err error
			replica, err = hypercore.Open(hypercore.Config{Storage: hypercore.NewMemoryStorage(), PublicKey: src.PublicKey(), Create: true})
			if err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
		proof, err := src.Proof(i, hypercore.ProofRequest{Digest: replica.Digest(i)})
		if err != nil {
			b.Fatal(err)
		}
		data, err := src.Get(i)
		if err != nil {
			b.Fatal(err)
		}
		if err := replica.Put(i, data, proof); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "blocks/s")
}
