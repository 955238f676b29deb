package conformance

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nodevms/nodevms/hypercore"
	"github.com/nodevms/nodevms/hypercore/protocol"
	"github.com/nodevms/nodevms/hyperdrive"
)

// driveOp is one archive operation, as js/drive.js reads them.
type driveOp struct {
	Op   string `json:"op"`
	Path string `json:"path"`
	Data string `json:"data,omitempty"` // hex
	Time int64  `json:"time"`
}

// driveOps is the archive the live tests move between Go and the reference:
// nested folders, an overwrite, a deletion, an empty file and one of
// several blocks.
func driveOps() []driveOp {
	big := make([]byte, 200*1024+3)
	for i := range big {
		big[i] = byte(i*13 + 1)
	}
	return []driveOp{
		{Op: "writeFile", Path: "/dat.json", Data: hex.EncodeToString([]byte(`{"title":"live"}`)), Time: 1000},
		{Op: "mkdir", Path: "/sub", Time: 1001},
		{Op: "writeFile", Path: "/sub/a.txt", Data: hex.EncodeToString([]byte("first")), Time: 1002},
		{Op: "writeFile", Path: "/big.bin", Data: hex.EncodeToString(big), Time: 1003},
		{Op: "mkdir", Path: "/sub/deeper", Time: 1004},
		{Op: "writeFile", Path: "/sub/deeper/b.txt", Data: hex.EncodeToString([]byte("bee")), Time: 1005},
		{Op: "writeFile", Path: "/sub/a.txt", Data: hex.EncodeToString([]byte("second, longer")), Time: 1006},
		{Op: "writeFile", Path: "/doomed", Data: hex.EncodeToString([]byte("x")), Time: 1007},
		{Op: "unlink", Path: "/doomed"},
		{Op: "writeFile", Path: "/empty", Time: 1008},
	}
}

// driveReport is what js/drive.js prints about an archive.
type driveReport struct {
	Version uint64            `json:"version"`
	Files   map[string]string `json:"files"` // path: hex
	Dirs    []string          `json:"dirs"`
}

func applyDriveOps(t *testing.T, a *hyperdrive.Archive, ops []driveOp) {
	t.Helper()
	for _, op := range ops {
		o := hyperdrive.WriteOptions{Mtime: time.UnixMilli(op.Time), Ctime: time.UnixMilli(op.Time)}
		data, _ := hex.DecodeString(op.Data)
		var err error
		switch op.Op {
		case "writeFile":
			err = a.WriteFile(op.Path, data, o)
		case "mkdir":
			err = a.Mkdir(op.Path, o)
		case "unlink":
			err = a.Unlink(op.Path)
		}
		if err != nil {
			t.Fatalf("%s %s: %v", op.Op, op.Path, err)
		}
	}
}

// goReport describes a Go archive the way js/drive.js does.
func goReport(t *testing.T, a *hyperdrive.Archive) driveReport {
	t.Helper()
	r := driveReport{Version: a.Version(), Files: map[string]string{}, Dirs: []string{}}
	var walk func(dir string)
	walk = func(dir string) {
		names, err := a.Readdir(dir)
		if err != nil {
			t.Fatalf("readdir %s: %v", dir, err)
		}
		for _, n := range names {
			p := filepath.ToSlash(filepath.Join(dir, n))
			st, err := a.Stat(p)
			if err != nil {
				t.Fatalf("stat %s: %v", p, err)
			}
			if st.IsDir() {
				r.Dirs = append(r.Dirs, p)
				walk(p)
				continue
			}
			b, err := a.ReadFile(p)
			if err != nil {
				t.Fatalf("read %s: %v", p, err)
			}
			r.Files[p] = hex.EncodeToString(b)
		}
	}
	walk("/")
	return r
}

func decodeReport(t *testing.T, out []byte) driveReport {
	t.Helper()
	var r driveReport
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("reading the reference's report: %v: %.300s", err, out)
	}
	if r.Dirs == nil {
		r.Dirs = []string{}
	}
	return r
}

func checkReports(t *testing.T, want, got driveReport) {
	t.Helper()
	sort.Strings(want.Dirs)
	sort.Strings(got.Dirs)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("archives differ (-want +got):\n%.3000s", diff)
	}
}

func opsFile(t *testing.T, ops []driveOp) string {
	t.Helper()
	raw, _ := json.Marshal(ops)
	file := filepath.Join(t.TempDir(), "ops.json")
	if err := os.WriteFile(file, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

var driveSeed = bytes.Repeat([]byte{0x5e}, 32)

// TestJSReadsGoDatFolder: the reference, as the dat command opens a folder,
// reads a Go-written dat folder from disk.
func TestJSReadsGoDatFolder(t *testing.T) {
	t.Parallel()
	jsReference(t)
	dir, secrets := t.TempDir(), t.TempDir()
	kp := hypercore.KeyPairFromSeed(driveSeed)
	a, err := hyperdrive.Open(hyperdrive.Options{Storage: hyperdrive.DatStorage(dir, secrets), SecretKey: kp.SecretKey, Create: true})
	if err != nil {
		t.Fatal(err)
	}
	applyDriveOps(t, a, driveOps())
	want := goReport(t, a)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	got := decodeReport(t, runNode(t, "drive.js", "read-dat", dir, secrets))
	checkReports(t, want, got)
}

// TestFlatLayoutMatchesReference: the reference writes an archive in
// node-dat-archive's flat layout; Go reads it, and Go writing the same
// operations from the same key produces the same files, byte for byte.
func TestFlatLayoutMatchesReference(t *testing.T) {
	t.Parallel()
	jsReference(t)
	jsDir := t.TempDir()
	ops := driveOps()
	want := decodeReport(t, runNode(t, "drive.js", "write-flat", jsDir, hex.EncodeToString(driveSeed), opsFile(t, ops)))

	a, err := hyperdrive.Open(hyperdrive.Options{Storage: hyperdrive.FlatStorage(jsDir), ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	checkReports(t, want, goReport(t, a))
	a.Close()

	goDir := t.TempDir()
	kp := hypercore.KeyPairFromSeed(driveSeed)
	b, err := hyperdrive.Open(hyperdrive.Options{Storage: hyperdrive.FlatStorage(goDir), SecretKey: kp.SecretKey, Create: true})
	if err != nil {
		t.Fatal(err)
	}
	applyDriveOps(t, b, ops)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	names, _ := filepath.Glob(filepath.Join(jsDir, "*"))
	if len(names) == 0 {
		t.Fatal("the reference wrote no files")
	}
	for _, p := range names {
		name := filepath.Base(p)
		js, _ := os.ReadFile(p)
		gob, err := os.ReadFile(filepath.Join(goDir, name))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if !bytes.Equal(js, gob) {
			t.Errorf("%s: Go wrote %d bytes, the reference %d; first difference at %d", name, len(gob), len(js), firstDiff(js, gob))
		}
	}
}

// TestJSClonesGoArchive: a reference hyperdrive clones a Go archive over
// TCP and reads every file.
func TestJSClonesGoArchive(t *testing.T) {
	t.Parallel()
	jsReference(t)
	kp := hypercore.KeyPairFromSeed(driveSeed)
	a, err := hyperdrive.Open(hyperdrive.Options{Storage: hyperdrive.MemoryStorage(), SecretKey: kp.SecretKey, Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	applyDriveOps(t, a, driveOps())
	addr := serveArchive(t, a)
	host, port, _ := net.SplitHostPort(addr)
	got := decodeReport(t, runNode(t, "drive.js", "clone", host, port, hex.EncodeToString(a.Key()), fmt.Sprint(a.Metadata().Length())))
	checkReports(t, goReport(t, a), got)
}

func serveArchive(t *testing.T, a *hyperdrive.Archive) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go protocol.ServeListener(ctx, ln, protocol.Options{Live: true}, a.Lookup())
	return ln.Addr().String()
}

// TestGoClonesJSArchive: Go clones a reference archive over TCP, reads
// every file, and follows a write the reference makes while connected.
func TestGoClonesJSArchive(t *testing.T) {
	t.Parallel()
	var hello struct {
		Port int    `json:"port"`
		Key  string `json:"key"`
	}
	send := startJSScript(t, "drive.js", &hello, "serve", hex.EncodeToString(driveSeed), opsFile(t, driveOps()))
	key, _ := hex.DecodeString(hello.Key)
	addr := fmt.Sprintf("127.0.0.1:%d", hello.Port)

	a, err := hyperdrive.Open(hyperdrive.Options{Storage: hyperdrive.MemoryStorage(), Key: key, Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	// Pull dials again once it knows the content feed: nothing else tells
	// a waiter that the feed is there to watch.
	dialed := make(chan struct{}, 1)
	dial := func(ctx context.Context) (io.ReadWriteCloser, error) {
		select {
		case dialed <- struct{}{}:
		default:
		}
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}
	go func() { done <- a.Pull(ctx, dial, protocol.Options{Live: true}) }()

	// The same operations in Go give the archive to expect.
	kp := hypercore.KeyPairFromSeed(driveSeed)
	ref, err := hyperdrive.Open(hyperdrive.Options{Storage: hyperdrive.MemoryStorage(), SecretKey: kp.SecretKey, Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	applyDriveOps(t, ref, driveOps())
	want := goReport(t, ref)
	waitUntil(t, a, dialed, func() bool {
		return a.Version() == want.Version && a.Content() != nil && a.Content().Length() == ref.Content().Length() && complete(a.Content())
	})
	checkReports(t, want, goReport(t, a))

	send(fmt.Sprintf("write /sub/live.txt %x", "live!"))
	waitUntil(t, a, dialed, func() bool { b, err := a.ReadFile("/sub/live.txt"); return err == nil && string(b) == "live!" })
	cancel()
	<-done
}

func complete(f *hypercore.Feed) bool {
	for i := uint64(0); i < f.Length(); i++ {
		if !f.Has(i) {
			return false
		}
	}
	return true
}

// waitUntil waits until ok holds of replica a, checking again whenever one
// of its feeds changes or wake fires.
func waitUntil(t *testing.T, a *hyperdrive.Archive, wake <-chan struct{}, ok func() bool) {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		// Taken before the check, so that no change in between is missed.
		metadata := a.Metadata().Changed()
		var content <-chan struct{}
		if f := a.Content(); f != nil {
			content = f.Changed()
		}
		if ok() {
			return
		}
		select {
		case <-metadata:
		case <-content:
		case <-wake:
		case <-timeout:
			t.Fatal("timed out")
		}
	}
}
