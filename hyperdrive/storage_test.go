package hyperdrive

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nodevms/nodevms/hypercore"
	"github.com/nodevms/nodevms/hypercore/protocol"
)

func TestDatStorageLayout(t *testing.T) {
	dir, secrets := t.TempDir(), t.TempDir()
	a, err := Open(Options{Storage: DatStorage(dir, secrets), Create: true})
	if err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), 10000) // 160000 bytes: three blocks
	f := a.Files()
	for _, step := range []error{
		f.WriteFile("/dat.json", []byte(`{"title":"t"}`), WriteOptions{}),
		f.Mkdir("/sub", WriteOptions{}),
		f.WriteFile("/sub/big.bin", big, WriteOptions{}),
		f.WriteFile("/gone", []byte("soon gone"), WriteOptions{}),
		f.Unlink("/gone"),
		f.WriteFile("/dat.json", []byte(`{"title":"new"}`), WriteOptions{}),
	} {
		if step != nil {
			t.Fatal(step)
		}
	}
	key := a.Key()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}

	for name, want := range map[string][]byte{"dat.json": []byte(`{"title":"new"}`), "sub/big.bin": big} {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("folder file %s: %d bytes, %v", name, len(got), err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "gone")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("unlinked file still in the folder: %v", err)
	}
	for _, name := range []string{"metadata.key", "metadata.tree", "metadata.data", "metadata.bitfield", "metadata.signatures", "metadata.ogd", "content.key", "content.tree", "content.bitfield", "content.signatures"} {
		if _, err := os.Stat(filepath.Join(dir, DatDir, name)); err != nil {
			t.Errorf(".dat/%s: %v", name, err)
		}
	}
	for _, name := range []string{"metadata.secret_key", "content.secret_key", "content.data"} {
		if _, err := os.Stat(filepath.Join(dir, DatDir, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf(".dat/%s should not exist: %v", name, err)
		}
	}
	dk := hypercore.DiscoveryKey(key)
	hexDK := filepath.Join(secrets, hexString(dk[:1]), hexString(dk[1:]))
	fi, err := os.Stat(hexDK)
	if err != nil {
		t.Fatalf("secret key file: %v", err)
	}
	if fi.Mode().Perm() != 0o600 || fi.Size() != 64 {
		t.Errorf("secret key file: mode %v, %d bytes", fi.Mode().Perm(), fi.Size())
	}

	// Reopened, it is writable (the secret key is found) and reads back.
	a, err = Open(Options{Storage: DatStorage(dir, secrets)})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if !a.Writable() {
		t.Error("reopened archive is not writable")
	}
	info, _ := a.Files().GetInfo()
	if info.Title != "new" || info.Version != 6 {
		t.Errorf("info = %+v", info)
	}
	got, err := a.Files().ReadFile("/sub/big.bin")
	if err != nil || !bytes.Equal(got, big) {
		t.Errorf("read back: %d bytes, %v", len(got), err)
	}
	// The replaced dat.json's old block is no longer claimed.
	if a.Content().Has(0) {
		t.Error("content block of the replaced file is still claimed")
	}
}

func hexString(b []byte) string { return string(appendHex(nil, b)) }

func appendHex(dst, b []byte) []byte {
	const digits = "0123456789abcdef"
	for _, c := range b {
		dst = append(dst, digits[c>>4], digits[c&15])
	}
	return dst
}

func TestDatStorageEditedFile(t *testing.T) {
	dir, secrets := t.TempDir(), t.TempDir()
	a, err := Open(Options{Storage: DatStorage(dir, secrets), Create: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.WriteFile("/same-size", []byte("hello"), WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := a.WriteFile("/longer", []byte("hello"), WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := a.Sync(); err != nil { // the folder shows the archive as of its last Sync
		t.Fatal(err)
	}
	first, _ := a.Stat("/same-size")
	// Edited while open: the hash check catches it.
	if err := os.WriteFile(filepath.Join(dir, "same-size"), []byte("HELLO"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := a.ReadFile("/same-size"); !errors.Is(err, ErrModified) {
		t.Errorf("read of an edited file: %v, want ErrModified", err)
	}
	if _, err := a.Content().GetUnchecked(first.Offset); err == nil {
		t.Error("an edited block would be served to peers")
	}
	if _, err := a.Files().ReadFile("/same-size"); err == nil {
		t.Error("DatArchive read of an edited file succeeded")
	}
	a.Close()

	// Edited while closed, to another size: reported at open.
	if err := os.WriteFile(filepath.Join(dir, "longer"), []byte("hello, world"), 0o644); err != nil {
		t.Fatal(err)
	}
	a, err = Open(Options{Storage: DatStorage(dir, secrets)})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if diff := cmp.Diff([]string{"/longer"}, a.Modified()); diff != "" {
		t.Errorf("Modified (-want +got):\n%s", diff)
	}
	if _, err := a.ReadFile("/longer"); !errors.Is(err, ErrModified) {
		t.Errorf("read of a lengthened file: %v, want ErrModified", err)
	}
	// Writing the file again through the archive repairs it.
	if err := a.WriteFile("/same-size", []byte("fixed"), WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	if got, err := a.ReadFile("/same-size"); err != nil || string(got) != "fixed" {
		t.Errorf("after rewrite: %q, %v", got, err)
	}
}

func TestDatStorageRefusesReplicas(t *testing.T) {
	src := newMemoryArchive(t)
	_, err := Open(Options{Storage: DatStorage(t.TempDir(), t.TempDir()), Key: src.Key(), Create: true})
	if err == nil || errors.Is(err, ErrNotFound) {
		t.Fatalf("a replica in DatStorage: %v, want a clear refusal", err)
	}
}

func TestCheckoutAndHistory(t *testing.T) {
	a := newMemoryArchive(t)
	for i, step := range []func() error{
		func() error { return a.WriteFile("/f", []byte("one"), WriteOptions{}) },
		func() error { return a.WriteFile("/f", []byte("two"), WriteOptions{}) },
		func() error { return a.Unlink("/f") },
	} {
		if err := step(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	for v, want := range map[uint64]string{1: "one", 2: "two"} {
		co, err := a.Checkout(v)
		if err != nil {
			t.Fatal(err)
		}
		got, err := co.ReadFile("/f")
		if err != nil || string(got) != want {
			t.Errorf("version %d: %q, %v; want %q", v, got, err, want)
		}
		if err := co.WriteFile("/x", nil, WriteOptions{}); !errors.Is(err, ErrNotWritable) {
			t.Errorf("write to checkout: %v", err)
		}
	}
	if _, err := a.ReadFile("/f"); !errors.Is(err, ErrNotFound) {
		t.Errorf("read after unlink: %v", err)
	}
	if _, err := a.Checkout(4); !errors.Is(err, ErrNotFound) {
		t.Errorf("checkout of a future version: %v", err)
	}
	hist, err := a.Files().History(0, 0, true)
	if err != nil {
		t.Fatal(err)
	}
	want := []Change{{"/f", 3, "del"}, {"/f", 2, "put"}, {"/f", 1, "put"}}
	if diff := cmp.Diff(want, hist); diff != "" {
		t.Errorf("history (-want +got):\n%s", diff)
	}
	if got, err := a.ReadRange("/f", 0, 1); err == nil {
		t.Errorf("range of a deleted file: %q", got)
	}
}

func TestReadRange(t *testing.T) {
	a := newMemoryArchive(t)
	data := make([]byte, 3*ChunkSize+100)
	for i := range data {
		data[i] = byte(i * 7)
	}
	if err := a.WriteFile("/f", data, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, r := range [][2]uint64{{0, 10}, {ChunkSize - 5, 10}, {ChunkSize, ChunkSize}, {3*ChunkSize + 90, 100}, {uint64(len(data)), 5}, {5, 0}} {
		got, err := a.ReadRange("/f", r[0], r[1])
		end := min(r[0]+r[1], uint64(len(data)))
		if err != nil || !bytes.Equal(got, data[min(r[0], end):end]) {
			t.Errorf("ReadRange(%d, %d) = %d bytes, %v", r[0], r[1], len(got), err)
		}
	}
}

// TestPullOverTCP clones an archive over loopback TCP from a Go server, in
// two steps (the metadata names the content feed), then follows it live.
func TestPullOverTCP(t *testing.T) {
	src := newMemoryArchive(t)
	if err := src.WriteFile("/a/b.txt", []byte("hello"), WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte{9}, 200_000)
	if err := src.WriteFile("/big", big, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go protocol.ServeListener(ctx, ln, protocol.Options{Live: true}, src.Lookup())

	dst, err := Open(Options{Storage: MemoryStorage(), Key: src.Key(), Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	// Pull dials again once it knows the content feed: nothing else tells
	// a waiter that the feed is there to watch.
	dialed := make(chan struct{}, 1)
	dial := func(ctx context.Context) (io.ReadWriteCloser, error) {
		select {
		case dialed <- struct{}{}:
		default:
		}
		var d net.Dialer
		return d.DialContext(ctx, "tcp", ln.Addr().String())
	}
	live, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- dst.Pull(live, dial, protocol.Options{Live: true}) }()

	waitFor(t, dst, dialed, func() bool { b, err := dst.ReadFile("/big"); return err == nil && bytes.Equal(b, big) })
	if got, err := dst.ReadFile("/a/b.txt"); err != nil || string(got) != "hello" {
		t.Fatalf("cloned file: %q, %v", got, err)
	}
	if err := src.WriteFile("/later", []byte("live"), WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, dst, dialed, func() bool { b, err := dst.ReadFile("/later"); return err == nil && string(b) == "live" })
	stop()
	<-done
}

// waitFor waits until ok holds of replica a, checking again whenever one
// of its feeds changes or wake fires.
func waitFor(t *testing.T, a *Archive, wake <-chan struct{}, ok func() bool) {
	t.Helper()
	timeout := time.After(10 * time.Second)
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

// TestDatStorageLargeFile: a file too big to keep in memory until the next
// Sync goes through a temporary file; it reads back before and after. In a
// transaction its bytes are staged by the content feed and reach the
// folder's storage at commit, with those of a file written twice in it
// (whose first bytes no file holds any more) and of a small one.
func TestDatStorageLargeFile(t *testing.T) {
	big := make([]byte, maxBuffered+3*ChunkSize+17)
	for i := range big {
		big[i] = byte(i * 31)
	}
	for _, inTxn := range []bool{false, true} {
		t.Run(fmt.Sprintf("transaction=%v", inTxn), func(t *testing.T) {
			dir := t.TempDir()
			a, err := Open(Options{Storage: DatStorage(dir, t.TempDir()), Create: true})
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			if inTxn {
				must(t, a.Begin())
				must(t, a.WriteFile("/twice", []byte("first"), WriteOptions{}))
			}
			must(t, a.WriteFile("/big", big, WriteOptions{}))
			must(t, a.WriteFile("/twice", []byte("second"), WriteOptions{}))
			if got, err := a.ReadFile("/big"); err != nil || !bytes.Equal(got, big) {
				t.Fatalf("before commit: %d bytes, %v", len(got), err)
			}
			if inTxn {
				must(t, a.Commit())
				tmps, _ := filepath.Glob(filepath.Join(dir, DatDir, "tmp", "*"))
				if len(tmps) != 1 {
					t.Errorf("temporary files after commit: %q, want the big file's", tmps)
				}
			}
			if got, err := a.ReadFile("/big"); err != nil || !bytes.Equal(got, big) {
				t.Fatalf("before Sync: %d bytes, %v", len(got), err)
			}
			must(t, a.Sync())
			for name, want := range map[string][]byte{"big": big, "twice": []byte("second")} {
				if got, err := os.ReadFile(filepath.Join(dir, name)); err != nil || !bytes.Equal(got, want) {
					t.Fatalf("the folder's %s: %d bytes, %v", name, len(got), err)
				}
			}
			if got, err := a.ReadFile("/big"); err != nil || !bytes.Equal(got, big) {
				t.Fatalf("after Sync: %d bytes, %v", len(got), err)
			}
		})
	}
}

// TestFailedSyncKeepsTheFolderChanges: a Sync that fails before the
// metadata is durable (here the folder cannot take a temporary file) keeps
// its folder changes for the next Sync; the next Sync that succeeds puts
// the file in place with the metadata that points at it (a dropped change
// left the folder's file one write behind the archive, for good).
func TestFailedSyncKeepsTheFolderChanges(t *testing.T) {
	dir, secrets, a := counterWithNoTmp(t)
	tmp := filepath.Join(dir, DatDir, "tmp")
	if err := a.Sync(); err == nil {
		t.Fatal("a Sync without a folder for temporary files succeeded")
	}
	os.Remove(tmp)
	if err := a.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "counter")); err != nil || string(b) != "2" {
		t.Errorf("the folder's counter = %q, %v; want 2", b, err)
	}
	a, err := Open(Options{Storage: DatStorage(dir, secrets)})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if m := a.Modified(); len(m) != 0 {
		t.Errorf("modified after reopening: %v", m)
	}
}

// TestCloseAfterAFailedSyncLeavesNoMetadataAhead: an archive closed while
// its folder cannot take the files (a full disk at shutdown) does not
// sync its feeds on the way out: the metadata never gets ahead of the
// folder's files (it used to, leaving a file one write behind for good).
func TestCloseAfterAFailedSyncLeavesNoMetadataAhead(t *testing.T) {
	dir, secrets, a := counterWithNoTmp(t)
	tmp := filepath.Join(dir, DatDir, "tmp")
	if err := a.Close(); err == nil {
		t.Fatal("closing without a folder for temporary files succeeded")
	}
	os.Remove(tmp)
	a, err := Open(Options{Storage: DatStorage(dir, secrets), WriteBack: true, DeferSignatures: true})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if m := a.Modified(); len(m) != 0 {
		t.Errorf("modified after reopening: %v", m)
	}
	if b, err := a.ReadFile("/counter"); err != nil || string(b) != "1" {
		t.Errorf("/counter = %q, %v; want the 1 that was made durable", b, err)
	}
}

// counterWithNoTmp makes an archive in a folder whose /counter holds 1,
// durably, and 2 not yet synced, and then takes away the folder's place
// for temporary files, so that the next Sync cannot put /counter in place.
func counterWithNoTmp(t *testing.T) (dir, secrets string, a *Archive) {
	t.Helper()
	dir, secrets = t.TempDir(), t.TempDir()
	a, err := Open(Options{Storage: DatStorage(dir, secrets), Create: true, WriteBack: true, DeferSignatures: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.WriteFile("/counter", []byte("1"), WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := a.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := a.WriteFile("/counter", []byte("2"), WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, DatDir, "tmp")
	os.RemoveAll(tmp)
	if err := os.WriteFile(tmp, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, secrets, a
}
