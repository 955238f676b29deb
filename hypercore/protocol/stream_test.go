package protocol_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/nodevms/nodevms/hypercore"
	"github.com/nodevms/nodevms/hypercore/protocol"
)

func writer(t *testing.T, seed byte, batches ...[][]byte) *hypercore.Feed {
	t.Helper()
	kp := hypercore.KeyPairFromSeed(bytes.Repeat([]byte{seed}, 32))
	f, err := hypercore.Open(hypercore.Config{Storage: hypercore.NewMemoryStorage(), SecretKey: kp.SecretKey, Create: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range batches {
		if _, err := f.Append(b...); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func replicaOf(t *testing.T, f *hypercore.Feed) *hypercore.Feed {
	t.Helper()
	r, err := hypercore.Open(hypercore.Config{Storage: hypercore.NewMemoryStorage(), PublicKey: f.PublicKey(), Create: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func blocksOf(prefix string, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = fmt.Appendf(nil, "%s %d", prefix, i)
	}
	return out
}

func lookupOf(feeds ...*hypercore.Feed) protocol.Lookup {
	return func(dk [32]byte) *hypercore.Feed {
		for _, f := range feeds {
			if f.DiscoveryKey() == dk {
				return f
			}
		}
		return nil
	}
}

// pipe returns the two ends of an in-memory connection and a context that
// bounds the test.
func pipe(t *testing.T) (server, client net.Conn, ctx context.Context) {
	t.Helper()
	server, client = net.Pipe()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return server, client, ctx
}

func sameBlocks(t *testing.T, a, b *hypercore.Feed) {
	t.Helper()
	if a.Length() != b.Length() {
		t.Fatalf("lengths %d and %d", a.Length(), b.Length())
	}
	for i := range a.Length() {
		x, err := a.Get(i)
		if err != nil {
			t.Fatalf("get %d: %v", i, err)
		}
		y, err := b.Get(i)
		if err != nil {
			t.Fatalf("get %d: %v", i, err)
		}
		if !bytes.Equal(x, y) {
			t.Fatalf("block %d differs", i)
		}
	}
}

func TestGoToGoFullDownload(t *testing.T) {
	t.Parallel()
	src := writer(t, 1, blocksOf("a", 10), blocksOf("b", 300), [][]byte{{}, make([]byte, 70000)})
	dst := replicaOf(t, src)
	c1, c2, ctx := pipe(t)
	serveErr := make(chan error, 1)
	go func() { serveErr <- protocol.Serve(ctx, c1, protocol.Options{}, lookupOf(src)) }()
	var stats protocol.Stats
	if err := protocol.Replicate(ctx, c2, protocol.Options{Stats: &stats}, dst); err != nil {
		t.Fatalf("Replicate: %v", err)
	}
	if err := <-serveErr; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	sameBlocks(t, src, dst)
	if got := stats.DownloadedBlocks.Load(); got != src.Length() {
		t.Errorf("downloaded %d blocks, want %d", got, src.Length())
	}
}

func TestGoToGoSparseDownload(t *testing.T) {
	t.Parallel()
	src := writer(t, 2, blocksOf("s", 100))
	dst := replicaOf(t, src)
	c1, c2, ctx := pipe(t)
	go protocol.Serve(ctx, c1, protocol.Options{}, lookupOf(src))
	s := protocol.NewStream(c2, protocol.Options{Sparse: true}, nil)
	if err := s.AddFeed(dst); err != nil {
		t.Fatal(err)
	}
	want := []uint64{3, 50, 99}
	s.Download(dst, want...)
	if err := s.Run(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range uint64(100) {
		has := dst.Has(i)
		wanted := i == 3 || i == 50 || i == 99
		if has != wanted {
			t.Errorf("block %d: has %v, wanted %v", i, has, wanted)
		}
	}
}

func TestGoToGoLive(t *testing.T) {
	t.Parallel()
	src := writer(t, 3, blocksOf("l", 5))
	dst := replicaOf(t, src)
	c1, c2, ctx := pipe(t)
	go protocol.Serve(ctx, c1, protocol.Options{Live: true}, lookupOf(src))
	go protocol.Replicate(ctx, c2, protocol.Options{Live: true}, dst)
	if _, err := dst.Wait(ctx, 4); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		start := time.Now()
		seq, err := src.Append(fmt.Appendf(nil, "live %d", i))
		if err != nil {
			t.Fatal(err)
		}
		got, err := dst.Wait(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != fmt.Sprintf("live %d", i) {
			t.Fatalf("block %d = %q", seq, got)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("append reached the replica after %v", d)
		}
	}
}

// TestSeveralFeedsOnOneStream: two feeds (as a hyperdrive's metadata and
// content) replicate over one stream, on channels 0 and 1; a third feed
// the server does not have is ignored without ending the stream.
func TestSeveralFeedsOnOneStream(t *testing.T) {
	t.Parallel()
	metadata := writer(t, 4, blocksOf("m", 20))
	content := writer(t, 5, blocksOf("c", 50))
	unknown := writer(t, 6, blocksOf("u", 1))
	m, c := replicaOf(t, metadata), replicaOf(t, content)
	c1, c2, ctx := pipe(t)
	var serverStats protocol.Stats
	serveCtx, stopServing := context.WithCancel(ctx)
	defer stopServing()
	served := make(chan error, 1)
	go func() {
		served <- protocol.Serve(serveCtx, c1, protocol.Options{Stats: &serverStats}, lookupOf(metadata, content))
	}()
	s := protocol.NewStream(c2, protocol.Options{Live: true}, nil)
	for _, f := range []*hypercore.Feed{m, c, replicaOf(t, unknown)} {
		if err := s.AddFeed(f); err != nil {
			t.Fatal(err)
		}
	}
	go s.Run(ctx)
	for _, f := range []*hypercore.Feed{m, c} {
		for i := range uint64(map[*hypercore.Feed]int{m: 20, c: 50}[f]) {
			if _, err := f.Wait(ctx, i); err != nil {
				t.Fatal(err)
			}
		}
	}
	sameBlocks(t, metadata, m)
	sameBlocks(t, content, c)
	// Once Serve has returned, the server counts no more.
	stopServing()
	select {
	case <-served:
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return")
	}
	if got := serverStats.UploadedBlocks.Load(); got != 70 {
		t.Errorf("server counted %d uploaded blocks, want 70", got)
	}
}

// TestKeepAlivesHoldAnIdleStream: a live stream with nothing to say stays
// open well past the timeout, because both sides send keep-alives.
func TestKeepAlivesHoldAnIdleStream(t *testing.T) {
	t.Parallel()
	src := writer(t, 7, blocksOf("k", 2))
	dst := replicaOf(t, src)
	c1, c2, ctx := pipe(t)
	opts := protocol.Options{Live: true, Timeout: 200 * time.Millisecond}
	serveErr := make(chan error, 1)
	go func() { serveErr <- protocol.Serve(ctx, c1, opts, lookupOf(src)) }()
	go protocol.Replicate(ctx, c2, opts, dst)
	if _, err := dst.Wait(ctx, 1); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // more than seven timeouts
	select {
	case err := <-serveErr:
		t.Fatalf("the idle stream ended: %v", err)
	default:
	}
	if _, err := src.Append([]byte("still here")); err != nil {
		t.Fatal(err)
	}
	if got, err := dst.Wait(ctx, 2); err != nil || string(got) != "still here" {
		t.Fatalf("after idling: %q, %v", got, err)
	}
}

// TestReplicaRehosts: appends travel from a writer to a replica and on to a
// replica of that replica, which never talks to the writer.
func TestReplicaRehosts(t *testing.T) {
	t.Parallel()
	src := writer(t, 12, blocksOf("w", 3))
	first, second := replicaOf(t, src), replicaOf(t, src)
	a1, a2, ctx := pipe(t)
	b1, b2, _ := pipe(t)
	opts := protocol.Options{Live: true}
	go protocol.Serve(ctx, a1, opts, lookupOf(src))
	go protocol.Replicate(ctx, a2, opts, first)
	go protocol.Serve(ctx, b1, opts, lookupOf(first))
	go protocol.Replicate(ctx, b2, opts, second)
	for i := range uint64(3) {
		if _, err := second.Wait(ctx, i); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		seq, err := src.Append(fmt.Appendf(nil, "later %d", i))
		if err != nil {
			t.Fatal(err)
		}
		got, err := second.Wait(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != fmt.Sprintf("later %d", i) {
			t.Fatalf("block %d = %q", seq, got)
		}
	}
}
