package core

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nodevms/nodevms/calllog"
	"github.com/nodevms/nodevms/hypercore"
	"github.com/nodevms/nodevms/hyperdrive"
)

// TestCrashWithContentAheadOfMetadata: the archive's content feed reached
// the disk further than its metadata feed (a crash between the two syncs
// of a flush); a restart recovers, and the log's history stands.
func TestCrashWithContentAheadOfMetadata(t *testing.T) {
	for _, flushedAfter := range []int{0, 2} {
		t.Run(fmt.Sprintf("archive flushed after %d calls", flushedAfter), func(t *testing.T) {
			b := deployScript(t, script(t, "persistent-counter.js"), nil)
			for i := range 4 {
				if i == flushedAfter {
					if err := b.archive.Sync(); err != nil {
						t.Fatal(err)
					}
				}
				b.call(t, "increment", nil)
			}
			if err := b.archive.Content().Sync(); err != nil {
				t.Fatal(err)
			}
			b.host = nil // the crashed host is never closed
			// An offline check sees what the crash left, and calls it
			// good: a start repairs it.
			ro, err := hyperdrive.Open(hyperdrive.Options{Storage: hyperdrive.DatStorage(b.dir, filepath.Join(b.dir, ".keys")), ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			roLog, err := hypercore.Open(hypercore.Config{Storage: hypercore.DirStorage{Dir: filepath.Join(b.dir, hyperdrive.DatDir), Prefix: "call-log."}, LineLog: true})
			if err != nil {
				t.Fatal(err)
			}
			rep, err := CheckFolder(context.Background(), roLog, ro, ReplayOptions{})
			ro.Close()
			roLog.Close()
			if err != nil || rep.Verdict.Divergence != nil || rep.Redo != 4-flushedAfter || rep.Unreferenced == 0 {
				t.Errorf("CheckFolder = %+v, %v; want good, %d calls to redo, some content to take back", rep, err, 4-flushedAfter)
			}
			archive, log := openStores(t, b.dir, false)
			h, err := Open(context.Background(), testConfig(archive, log))
			if err != nil {
				t.Fatal(err)
			}
			defer func() { h.Close(); archive.Close(); log.Close() }()
			if got, err := h.Call(context.Background(), Request{Method: "increment"}); err != nil || string(got.Res) != "5" {
				t.Fatalf("after the crash: %s, %v", got.Res, err)
			}
			if got, _ := archive.ReadFile("/counter"); string(got) != "5" {
				t.Errorf("/counter = %q", got)
			}
		})
	}
}

// TestChangedFileStopsTheStart: a real file of the archive changed on disk
// stops the start, naming it, and the folder is left as it was: the host
// never answers from, or signs over, what it cannot stand behind.
func TestChangedFileStopsTheStart(t *testing.T) {
	b := deployScript(t, script(t, "persistent-counter.js"), nil)
	for range 3 {
		b.call(t, "increment", nil)
	}
	b.close(t)
	counter := filepath.Join(b.dir, "counter")
	if err := os.WriteFile(counter, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, b.dir)
	archive, log := openStores(t, b.dir, false)
	_, err := Open(context.Background(), testConfig(archive, log))
	archive.Close()
	log.Close()
	if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "/counter") {
		t.Fatalf("Open = %v, want ErrDamaged naming /counter", err)
	}
	if diff := cmp.Diff(before, snapshot(t, b.dir)); diff != "" {
		t.Errorf("the refused start changed the folder (-before +after):\n%s", diff)
	}
}

// snapshot maps each file under dir (but the lock) to its bytes.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		rel, _ := filepath.Rel(dir, path)
		out[rel] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// fullDisk wraps a feed's storage so that every write fails while full
// is set, as on a full disk.
type fullDisk struct {
	hypercore.Storage
	full *atomic.Bool
}

func (s fullDisk) Open(name string, create bool) (hypercore.File, error) {
	f, err := s.Storage.Open(name, create)
	if err != nil {
		return f, err
	}
	return fullDiskFile{f, s.full}, nil
}

type fullDiskFile struct {
	hypercore.File
	full *atomic.Bool
}

func (f fullDiskFile) WriteAt(p []byte, off int64) (int, error) {
	if f.full.Load() {
		return 0, fmt.Errorf("write of %d bytes at %d: %w", len(p), off, syscall.ENOSPC)
	}
	return f.File.WriteAt(p, off)
}

func (f fullDiskFile) Truncate(size int64) error {
	if f.full.Load() {
		return syscall.ENOSPC
	}
	return f.File.(interface{ Truncate(int64) error }).Truncate(size)
}

func (f fullDiskFile) Sync() error {
	if f.full.Load() {
		return syscall.ENOSPC
	}
	return f.File.Sync()
}

// TestFullDiskIsSurvivable: while the disk is full, calls fail with
// ErrUnavailable and nothing is acknowledged that is not durable; once
// there is space again, the host serves again without a restart, every
// acknowledged call is in the log, and the log replays clean, also after
// a restart.
func TestFullDiskIsSurvivable(t *testing.T) {
	dir := t.TempDir()
	full := &atomic.Bool{}
	datDir := filepath.Join(dir, hyperdrive.DatDir)
	open := func(create bool) (*hyperdrive.Archive, *hypercore.Feed) {
		archive, err := hyperdrive.Open(hyperdrive.Options{
			Storage: hyperdrive.FeedStorage(
				fullDisk{hypercore.DirStorage{Dir: datDir, Prefix: "metadata."}, full},
				fullDisk{hypercore.DirStorage{Dir: datDir, Prefix: "content."}, full}),
			Create: create, DeferSignatures: true, WriteBack: true})
		if err != nil {
			t.Fatal(err)
		}
		log, err := hypercore.Open(hypercore.Config{Storage: fullDisk{hypercore.DirStorage{Dir: datDir, Prefix: "call-log."}, full}, Create: create,
			AnnounceOnSync: true, LineLog: true, DeferSignatures: true, WriteBack: true, Preallocate: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		return archive, log
	}
	archive, log := open(true)
	cfg := testConfig(archive, log)
	clock := newManualClock()
	cfg.Clock = clock.Now
	h, err := Deploy(context.Background(), cfg, script(t, "persistent-counter.js"), "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	increment := func() (int, error) {
		r, err := h.Call(context.Background(), Request{Method: "increment"})
		if err != nil {
			return 0, err
		}
		n, err := strconv.Atoi(string(r.Res))
		if err != nil || r.Err != nil {
			t.Fatalf("increment = %s, %v, %v", r.Res, r.Err, err)
		}
		return n, nil
	}
	var acked []int
	for range 3 {
		n, err := increment()
		if err != nil {
			t.Fatal(err)
		}
		acked = append(acked, n)
	}
	full.Store(true)
	failures := 0
	for range 5 {
		n, err := increment()
		switch {
		case err == nil:
			acked = append(acked, n) // made durable before the disk filled
		case errors.Is(err, ErrUnavailable):
			failures++
			if strings.Contains(err.Error(), dir) {
				t.Errorf("the caller is told the host's path: %v", err)
			}
		default:
			t.Fatalf("a call on a full disk: %v, want ErrUnavailable", err)
		}
		clock.Advance(recoverEvery / 3) // a retry of the stores every third call
	}
	if failures == 0 {
		t.Fatal("no call failed on a full disk")
	}
	full.Store(false)
	if _, err := increment(); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("a call before the next retry of the stores: %v, want ErrUnavailable", err)
	}
	clock.Advance(recoverEvery)
	n, err := increment()
	if err != nil {
		t.Fatalf("with space again: %v", err)
	}
	acked = append(acked, n)
	for range 3 {
		n, err := increment()
		if err != nil {
			t.Fatalf("after recovering: %v", err)
		}
		acked = append(acked, n)
	}
	for i := 1; i < len(acked); i++ {
		if acked[i] <= acked[i-1] {
			t.Fatalf("acknowledged values not increasing: %v", acked)
		}
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	archive.Close()
	log.Close()

	archive, log = open(false)
	defer archive.Close()
	defer log.Close()
	h, err = Open(context.Background(), testConfig(archive, log))
	if err != nil {
		t.Fatalf("restarting: %v", err)
	}
	defer h.Close()
	last := acked[len(acked)-1]
	if n, err := increment(); err != nil || n != last+1 {
		t.Fatalf("after a restart: %d, %v; want %d", n, err, last+1)
	}
	if v, err := Replay(context.Background(), log, ReplayOptions{}); err != nil || v.Divergence != nil {
		t.Fatalf("replay: %v, %v", err, v.Divergence)
	}
}

// TestUnavailableNamesNoPath: what a caller is told of a failed store is
// the sentinel, never the host's error text, which names its paths.
func TestUnavailableNamesNoPath(t *testing.T) {
	err := unavailable(fmt.Errorf("write /srv/backend/.dat/call-log.signatures: %w", syscall.ENOSPC), true)
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("errors.Is: %v", err)
	}
	if strings.Contains(err.Error(), "/srv") || strings.Contains(err.Error(), "no space") {
		t.Errorf("the caller's error %q names the host's error", err)
	}
}

// TestEarlyCommitOnAFullDisk: when the calls a long call's group ran
// before it cannot be appended while it runs (the log's disk is full),
// none of the group is acknowledged, and once the disk has room the host
// serves on with the state the log holds.
func TestEarlyCommitOnAFullDisk(t *testing.T) {
	dir := t.TempDir()
	full := &atomic.Bool{}
	archive, err := hyperdrive.Open(hyperdrive.Options{Storage: hyperdrive.DatStorage(dir, filepath.Join(dir, ".keys")), Create: true, DeferSignatures: true, WriteBack: true})
	if err != nil {
		t.Fatal(err)
	}
	log, err := hypercore.Open(hypercore.Config{Storage: fullDisk{hypercore.DirStorage{Dir: filepath.Join(dir, hyperdrive.DatDir), Prefix: "call-log."}, full}, Create: true,
		AnnounceOnSync: true, LineLog: true, DeferSignatures: true, WriteBack: true})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { archive.Close(); log.Close() }()
	cfg := testConfig(archive, log)
	logs := &logBuffer{}
	cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	h, err := Deploy(context.Background(), cfg, `let n = 0
		exports.add = () => ++n
		exports.slow = () => { let x = 0; for (let i = 0; i < 3e6; i++) x += i; return ++n }`, "t", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	full.Store(true)
	errs := make([]error, 3)
	var wg sync.WaitGroup
	batch := &Batch{}
	for i, method := range []string{"add", "slow", "add"} {
		wg.Add(1)
		h.Add(batch, context.Background(), Request{Method: method}, func(_ Response, err error) { errs[i] = err; wg.Done() })
	}
	h.SubmitBatch(batch)
	wg.Wait()
	for i, err := range errs {
		if !errors.Is(err, ErrUnavailable) {
			t.Errorf("call %d on a full disk: %v, want ErrUnavailable", i, err)
		}
	}
	if !strings.Contains(logs.String(), "appending to the call log while a long call ran failed") {
		t.Errorf("the early commit did not meet the full disk:\n%s", logs)
	}
	full.Store(false)
	h.run.Lock()
	h.lastRecovery = time.Time{} // try again at once
	h.run.Unlock()
	r, err := h.Call(context.Background(), Request{Method: "add"})
	if err != nil || string(r.Res) != "1" {
		t.Errorf("add once the disk has room: %s, %v; want 1 (nothing of the failed group stands)", r.Res, err)
	}
	if v, err := Replay(context.Background(), log, ReplayOptions{}); err != nil || v.Divergence != nil || v.Calls != 1 {
		t.Errorf("replay: %v, %v", v, err)
	}
}

// TestCheckFolderFindsWritesNoEntryExplains: an offline check, which checks
// the archive entry by entry as it replays, names an archive that holds a
// write no logged call made, and passes the same folder before the write.
func TestCheckFolderFindsWritesNoEntryExplains(t *testing.T) {
	b := deployScript(t, script(t, "persistent-counter.js"), nil)
	for range 3 {
		b.call(t, "increment", nil)
	}
	if err := b.host.Close(); err != nil {
		t.Fatal(err)
	}
	b.host = nil
	check := func() (FolderReport, error) {
		ro, err := hyperdrive.Open(hyperdrive.Options{Storage: hyperdrive.DatStorage(b.dir, filepath.Join(b.dir, ".keys")), ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		defer ro.Close()
		roLog, err := hypercore.Open(hypercore.Config{Storage: hypercore.DirStorage{Dir: filepath.Join(b.dir, hyperdrive.DatDir), Prefix: "call-log."}, LineLog: true})
		if err != nil {
			t.Fatal(err)
		}
		defer roLog.Close()
		return CheckFolder(context.Background(), roLog, ro, ReplayOptions{})
	}
	if rep, err := check(); err != nil || rep.Verdict.Divergence != nil || rep.Verdict.Calls != 3 || rep.Redo != 0 {
		t.Fatalf("the folder as the host left it: %+v, %v", rep, err)
	}
	if err := b.archive.Files().WriteFile("/counter", []byte("1000"), hyperdrive.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := b.archive.Sync(); err != nil {
		t.Fatal(err)
	}
	if rep, err := check(); !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "which no log entry reached") {
		t.Errorf("after a write no call made: %+v, %v; want the archive damaged at a version no entry reached", rep, err)
	}
}

// TestCheckArchiveHoldsEveryEntryToItsRoots: entries that repeat the roots
// before them are checked as cheaply as the archive allows, but an entry
// that logs the same roots at another version, or other roots at the same
// version, is still held against the archive.
func TestCheckArchiveHoldsEveryEntryToItsRoots(t *testing.T) {
	b := deployScript(t, `let n = 0; exports.add = () => ++n`, nil)
	for range 4 {
		b.call(t, "add", nil)
	}
	entries := logEntries(t, b.log)
	if d := CheckArchive(entries, b.archive); d != nil {
		t.Fatalf("the host's own archive: %v", d)
	}
	last := len(entries) - 1
	for name, change := range map[string]func(e *calllog.Entry){
		"another version": func(e *calllog.Entry) { e.Result.FilesVersion++ },
		"other roots":     func(e *calllog.Entry) { e.FilesRoot.Metadata = strings.Repeat("0", 64) },
		"another length":  func(e *calllog.Entry) { e.FilesRoot.ContentLength++ },
	} {
		forged := slices.Clone(entries)
		e := *entries[last]
		result, root := *e.Result, *e.FilesRoot
		e.Result, e.FilesRoot = &result, &root
		change(&e)
		forged[last] = &e
		if d := CheckArchive(forged, b.archive); d == nil || d.Block != uint64(last) {
			t.Errorf("%s in entry %d: divergence %v, want one at that entry", name, last, d)
		}
	}
}
