package conformance

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/nodevms/nodevms/hypercore"
	"github.com/nodevms/nodevms/hypercore/protocol"
)

// The live replication checks run the reference (js/peer.js) against Go
// over loopback TCP, both ways.

func protocolShape() [][][]byte {
	var batches [][][]byte
	batches = append(batches, [][]byte{[]byte("first"), {}, []byte("third")})
	var many [][]byte
	for i := range 200 {
		many = append(many, fmt.Appendf(nil, "block %d", i))
	}
	batches = append(batches, many, [][]byte{bytes.Repeat([]byte{7}, 100000)})
	return batches
}

func flatten(batches [][][]byte) [][]byte {
	var out [][]byte
	for _, b := range batches {
		out = append(out, b...)
	}
	return out
}

// goServer serves feed on a loopback port until the test ends.
func goServer(t *testing.T, opts protocol.Options, feeds ...*hypercore.Feed) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		protocol.ServeListener(ctx, ln, opts, func(dk [32]byte) *hypercore.Feed {
			for _, f := range feeds {
				if f.DiscoveryKey() == dk {
					return f
				}
			}
			return nil
		})
	}()
	t.Cleanup(func() { cancel(); <-done })
	return ln.Addr().String()
}

func goWriter(t *testing.T, seed byte, batches [][][]byte) *hypercore.Feed {
	t.Helper()
	kp := hypercore.KeyPairFromSeed(bytes.Repeat([]byte{seed}, 32))
	f, err := hypercore.Open(hypercore.Config{Storage: hypercore.NewMemoryStorage(), SecretKey: kp.SecretKey, Create: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	for _, b := range batches {
		if _, err := f.Append(b...); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

type jsDownload struct {
	Length uint64            `json:"length"`
	Blocks map[string]string `json:"blocks"`
}

func jsDownloadFrom(t *testing.T, addr string, key []byte, extra ...string) jsDownload {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	out := runNode(t, "peer.js", append([]string{"download", host, port, hex.EncodeToString(key)}, extra...)...)
	var d jsDownload
	if err := json.Unmarshal(out, &d); err != nil {
		t.Fatalf("reading the reference's report: %v: %.200s", err, out)
	}
	return d
}

// TestJSDownloadsFromGo: a reference replica downloads every block of a Go
// feed over TCP and verifies it; then a sparse one fetches chosen blocks.
func TestJSDownloadsFromGo(t *testing.T) {
	t.Parallel()
	jsReference(t)
	batches := protocolShape()
	want := flatten(batches)
	src := goWriter(t, 0x31, batches)
	addr := goServer(t, protocol.Options{}, src)

	d := jsDownloadFrom(t, addr, src.PublicKey())
	if d.Length != uint64(len(want)) || len(d.Blocks) != len(want) {
		t.Fatalf("reference downloaded %d of %d blocks (length %d)", len(d.Blocks), len(want), d.Length)
	}
	for i, b := range want {
		if d.Blocks[strconv.Itoa(i)] != hex.EncodeToString(b) {
			t.Fatalf("block %d differs", i)
		}
	}

	sparse := jsDownloadFrom(t, addr, src.PublicKey(), "blocks", "150,2,202")
	for _, i := range []int{150, 2, 202} {
		if sparse.Blocks[strconv.Itoa(i)] != hex.EncodeToString(want[i]) {
			t.Errorf("sparse block %d differs", i)
		}
	}
}

// startJSPeer starts js/peer.js with args as a long-running process and
// decodes the first line it prints into hello. It returns a function that
// writes a line to the process's standard input.
func startJSPeer(t *testing.T, hello any, args ...string) func(line string) {
	t.Helper()
	return startJSScript(t, "peer.js", hello, args...)
}

// startJSScript is startJSPeer for any script in js/.
func startJSScript(t *testing.T, name string, hello any, args ...string) func(line string) {
	t.Helper()
	ref := jsReference(t)
	script, _ := filepath.Abs(filepath.Join("js", name))
	cmd := exec.Command("node", append([]string{script}, args...)...)
	cmd.Env = append(os.Environ(), "NODE_PATH="+filepath.Join(ref, "node_modules"))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Process.Kill(); cmd.Wait() })
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() {
		t.Fatalf("the reference peer printed nothing: %v", lines.Err())
	}
	if err := json.Unmarshal(lines.Bytes(), hello); err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, stdout)
	return func(line string) {
		if _, err := fmt.Fprintln(stdin, line); err != nil {
			t.Error(err)
		}
	}
}

// batchesFile writes batches as the JS peers read them: arrays of hex.
func batchesFile(t *testing.T, batches [][][]byte) string {
	t.Helper()
	hexBatches := make([][]string, len(batches))
	for i, b := range batches {
		hexBatches[i] = []string{}
		for _, x := range b {
			hexBatches[i] = append(hexBatches[i], hex.EncodeToString(x))
		}
	}
	file := filepath.Join(t.TempDir(), "batches.json")
	raw, _ := json.Marshal(hexBatches)
	if err := os.WriteFile(file, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

// jsServer starts the reference serving a feed; it returns the address,
// the key, and a function that appends a block through the reference.
func jsServer(t *testing.T, seed byte, batches [][][]byte, live bool) (addr string, key []byte, appendBlock func([]byte)) {
	t.Helper()
	args := []string{"serve", hex.EncodeToString(bytes.Repeat([]byte{seed}, 32)), batchesFile(t, batches)}
	if live {
		args = append(args, "live")
	}
	var hello struct {
		Port int    `json:"port"`
		Key  string `json:"key"`
	}
	send := startJSPeer(t, &hello, args...)
	key, _ = hex.DecodeString(hello.Key)
	appendBlock = func(b []byte) { send(fmt.Sprintf("append %x", b)) }
	return fmt.Sprintf("127.0.0.1:%d", hello.Port), key, appendBlock
}

func emptyReplica(t *testing.T, key []byte) *hypercore.Feed {
	t.Helper()
	r, err := hypercore.Open(hypercore.Config{Storage: hypercore.NewMemoryStorage(), PublicKey: key, Create: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// TestGoDownloadsFromJS: Go downloads a reference feed over TCP, all of it
// and then chosen blocks only.
func TestGoDownloadsFromJS(t *testing.T) {
	t.Parallel()
	jsReference(t)
	batches := protocolShape()
	want := flatten(batches)
	addr, key, _ := jsServer(t, 0x32, batches, false)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	full := emptyReplica(t, key)
	if err := protocol.Dial(ctx, addr, protocol.Options{}, full); err != nil {
		t.Fatalf("Dial: %v", err)
	}
	if full.Length() != uint64(len(want)) {
		t.Fatalf("length %d, want %d", full.Length(), len(want))
	}
	for i, w := range want {
		got, err := full.Get(uint64(i))
		if err != nil || !bytes.Equal(got, w) {
			t.Fatalf("block %d: %v", i, err)
		}
	}

	sparse := emptyReplica(t, key)
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	s := protocol.NewStream(conn, protocol.Options{Sparse: true}, nil)
	if err := s.AddFeed(sparse); err != nil {
		t.Fatal(err)
	}
	chosen := []uint64{202, 7, 100}
	s.Download(sparse, chosen...)
	if err := s.Run(ctx); err != nil {
		t.Fatal(err)
	}
	var have []uint64
	for i := range uint64(len(want)) {
		if sparse.Has(i) {
			have = append(have, i)
		}
	}
	sort.Slice(chosen, func(a, b int) bool { return chosen[a] < chosen[b] })
	if fmt.Sprint(have) != fmt.Sprint(chosen) {
		t.Errorf("sparse replica has %v, want %v", have, chosen)
	}
}

// TestLiveAppendsReachJS: while a reference replica is connected live to a
// Go writer, each append reaches it promptly.
func TestLiveAppendsReachJS(t *testing.T) {
	t.Parallel()
	jsReference(t)
	src := goWriter(t, 0x33, [][][]byte{{[]byte("before")}})
	addr := goServer(t, protocol.Options{Live: true}, src)
	const appends = 5
	done := make(chan jsDownload, 1)
	go func() { done <- jsDownloadFrom(t, addr, src.PublicKey(), "live", strconv.Itoa(1+appends)) }()
	time.Sleep(500 * time.Millisecond) // let the reference connect and catch up
	for i := range appends {
		if _, err := src.Append(fmt.Appendf(nil, "live %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case d := <-done:
		if d.Blocks[strconv.Itoa(appends)] != hex.EncodeToString([]byte(fmt.Sprintf("live %d", appends-1))) {
			t.Errorf("reference got %v", d.Blocks)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the reference did not receive the live appends")
	}
}

// TestLiveAppendsReachGo: while Go is connected live to a reference
// writer, each append reaches Go within 100 ms (the median of several).
func TestLiveAppendsReachGo(t *testing.T) {
	t.Parallel()
	jsReference(t)
	addr, key, appendBlock := jsServer(t, 0x34, [][][]byte{{[]byte("before")}}, true)
	replica := emptyReplica(t, key)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	go protocol.Dial(ctx, addr, protocol.Options{Live: true}, replica)
	if _, err := replica.Wait(ctx, 0); err != nil {
		t.Fatal(err)
	}
	var delays []time.Duration
	for i := range 7 {
		start := time.Now()
		appendBlock(fmt.Appendf(nil, "live %d", i))
		got, err := replica.Wait(ctx, uint64(1+i))
		if err != nil {
			t.Fatal(err)
		}
		delays = append(delays, time.Since(start))
		if string(got) != fmt.Sprintf("live %d", i) {
			t.Fatalf("block %d = %q", 1+i, got)
		}
	}
	sort.Slice(delays, func(a, b int) bool { return delays[a] < delays[b] })
	if median := delays[len(delays)/2]; median > 100*time.Millisecond {
		t.Errorf("median delay from a reference append to Go: %v (all: %v)", median, delays)
	}
}

func reversed(b []byte) []byte {
	out := make([]byte, len(b))
	for i := range b {
		out[len(b)-1-i] = b[i]
	}
	return out
}

// TestTwoFeedsOnOneStreamWithJS: two feeds replicate over one stream, as a
// hyperdrive's metadata and content do, from the reference to Go and from
// Go to the reference.
func TestTwoFeedsOnOneStreamWithJS(t *testing.T) {
	t.Parallel()
	jsReference(t)
	batches := protocolShape()
	want := [2][][]byte{flatten(batches), nil}
	for _, b := range want[0] {
		want[1] = append(want[1], reversed(b))
	}

	t.Run("reference serves", func(t *testing.T) {
		var hello struct {
			Port int      `json:"port"`
			Keys []string `json:"keys"`
		}
		startJSPeer(t, &hello, "serve-two", hex.EncodeToString(bytes.Repeat([]byte{0x41}, 32)),
			hex.EncodeToString(bytes.Repeat([]byte{0x42}, 32)), batchesFile(t, batches))
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		var replicas []*hypercore.Feed
		for _, k := range hello.Keys {
			key, _ := hex.DecodeString(k)
			replicas = append(replicas, emptyReplica(t, key))
		}
		if err := protocol.Dial(ctx, fmt.Sprintf("127.0.0.1:%d", hello.Port), protocol.Options{}, replicas...); err != nil {
			t.Fatal(err)
		}
		for f, r := range replicas {
			if r.Length() != uint64(len(want[f])) {
				t.Fatalf("feed %d: length %d, want %d", f, r.Length(), len(want[f]))
			}
			for i, w := range want[f] {
				if got, err := r.Get(uint64(i)); err != nil || !bytes.Equal(got, w) {
					t.Fatalf("feed %d block %d: %v", f, i, err)
				}
			}
		}
	})

	t.Run("Go serves", func(t *testing.T) {
		first := goWriter(t, 0x43, batches)
		var rev [][][]byte
		for _, b := range batches {
			var rb [][]byte
			for _, x := range b {
				rb = append(rb, reversed(x))
			}
			rev = append(rev, rb)
		}
		second := goWriter(t, 0x44, rev)
		addr := goServer(t, protocol.Options{}, first, second)
		host, port, _ := net.SplitHostPort(addr)
		out := runNode(t, "peer.js", "download-two", host, port, hex.EncodeToString(first.PublicKey()), hex.EncodeToString(second.PublicKey()))
		var got []jsDownload
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("%v: %.200s", err, out)
		}
		for f := range 2 {
			for i, w := range want[f] {
				if got[f].Blocks[strconv.Itoa(i)] != hex.EncodeToString(w) {
					t.Fatalf("feed %d block %d differs", f, i)
				}
			}
		}
	})
}
