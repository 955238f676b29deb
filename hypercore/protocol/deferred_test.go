package protocol_test

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/nodevms/nodevms/hypercore"
	"github.com/nodevms/nodevms/hypercore/protocol"
)

// TestDownloadWhileTheWriterAppends: a writer that signs every few
// milliseconds (DeferSignatures) while it appends has blocks that are not
// signed yet whenever a peer asks; its proofs end at the signed length, so
// that a download gets everything shown (it used to get nothing: each
// proof wanted a signature not yet written, and the writer gave up).
func TestDownloadWhileTheWriterAppends(t *testing.T) {
	kp, err := hypercore.GenerateKeyPair(nil)
	if err != nil {
		t.Fatal(err)
	}
	w, err := hypercore.Open(hypercore.Config{Storage: hypercore.DirStorage{Dir: t.TempDir()}, SecretKey: kp.SecretKey, Create: true,
		LineLog: true, AnnounceOnSync: true, DeferSignatures: true, WriteBack: true})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	line := func(i int) []byte { return fmt.Appendf(nil, `{"n":%d}`+"\n", i) }
	for i := range 100 {
		if _, err := w.Append(line(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := w.Sign(); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // appends, as calls come
		defer wg.Done()
		for i := 100; i < 1_000_000; i++ {
			select {
			case <-stop:
				return
			default:
			}
			w.Append(line(i))
			w.Sync()
			time.Sleep(20 * time.Microsecond)
		}
	}()
	go func() { // signs, every few milliseconds
		defer wg.Done()
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				w.Sign()
			}
		}
	}()
	defer func() { close(stop); wg.Wait() }()

	for try := range 10 {
		shown := w.Published()
		a, b := net.Pipe()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		go protocol.Replicate(ctx, a, protocol.Options{Live: true}, w)
		r, err := hypercore.Open(hypercore.Config{Storage: hypercore.NewMemoryStorage(), PublicKey: kp.PublicKey, Create: true})
		if err != nil {
			t.Fatal(err)
		}
		err = protocol.Replicate(ctx, b, protocol.Options{}, r)
		cancel()
		a.Close()
		b.Close()
		if err != nil || r.Length() < shown {
			t.Fatalf("download %d: length %d, %v; the writer showed %d when it began", try, r.Length(), err, shown)
		}
		// Everything shown when it began arrived (blocks appended since
		// may have, in part: the download is not live).
		for i := range shown {
			if b, err := r.Get(i); err != nil || string(b) != string(line(int(i))) {
				t.Fatalf("download %d: block %d = %q, %v", try, i, b, err)
			}
		}
	}
}
