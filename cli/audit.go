package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/nodevms/nodevms/core"
	"github.com/nodevms/nodevms/hypercore"
	"github.com/nodevms/nodevms/hypercore/protocol"
	"github.com/nodevms/nodevms/hyperdrive"
	"github.com/nodevms/nodevms/rpc"
	"github.com/nodevms/nodevms/sandbox"
)

// Exit codes of an audit.
const (
	auditVerified   = 0
	auditDivergence = 1
	auditFailed     = 2
)

func runAudit(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("audit", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var files, logURL, out string
	var once bool
	var datPort int
	fs.StringVar(&files, "files", "", "")
	fs.StringVar(&logURL, "log", "", "")
	fs.StringVar(&out, "out", "", "")
	fs.BoolVar(&once, "once", false, "")
	fs.IntVar(&datPort, "dat-port", 0, "")
	// The host's budgets, if it was given more than the defaults: the
	// replay runs under four times them.
	var timeBudget time.Duration
	var memoryMiB int
	fs.DurationVar(&timeBudget, "time-budget", 5*time.Second, "")
	fs.IntVar(&memoryMiB, "max-memory", defaultMemoryMiB, "")
	pos, err := parseInterleaved(fs, args)
	if err != nil || len(pos) != 1 {
		if err == nil {
			err = errors.New("audit needs the backend's address")
		}
		fmt.Fprintf(stderr, "nodevms: %v\nrun 'nodevms --help' for usage\n", err)
		return exitUsage
	}
	if timeBudget <= 0 || memoryMiB <= 0 {
		fmt.Fprintf(stderr, "nodevms: --time-budget and --max-memory must be more than 0\n")
		return exitUsage
	}
	// --files and --log pin the keys the host must serve. A value that is
	// no key is the user's mistake, said before any network work: compared
	// with the host's, it would read as a divergence. A flag given empty
	// (an unset shell variable) is an error too, not a pin silently dropped.
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var pins []pin
	for _, p := range []pin{{what: "files archive", flag: "files", url: files}, {what: "call log", flag: "log", url: logURL}} {
		if !set[p.flag] {
			continue
		}
		var err error
		if p.key, err = datKey(p.url); err != nil {
			fmt.Fprintf(stderr, "nodevms: --%s: %v\nrun 'nodevms --help' for usage\n", p.flag, err)
			return exitUsage
		}
		pins = append(pins, p)
	}
	a := &auditor{addr: pos[0], out: out, follow: out != "" && !once, datPort: datPort, stdout: stdout, stderr: stderr,
		bars: isTerminal(stderr), limits: sandbox.Limits{Time: timeBudget, Memory: uint64(memoryMiB) << 20}}
	code, err := a.run(ctx, pins)
	if err != nil {
		if ctx.Err() != nil {
			// Stopped by Ctrl+C: whatever failed failed for that, and
			// "context canceled" or a half-downloaded log would mislead.
			code, msg := interruption(ctx)
			fmt.Fprintf(stderr, "nodevms: %s\n", msg)
			return code
		}
		fmt.Fprintf(stderr, "nodevms: could not audit: %v\n", err)
		return auditFailed
	}
	return code
}

// pin is a key the user expects the host to serve (--files, --log).
type pin struct {
	what, flag, url string
	key             []byte
}

// isTerminal reports whether w is a terminal. Progress bars redraw their
// line with \r, which only a terminal shows as one line: in a pipe or a
// file they are noise.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// dialBackend is rpc.Dial, with a clearer error for a server that is not
// a backend at all: one that answers the upgrade with 200 OK, say, would
// otherwise be reported as "200 OK", which reads like success.
func dialBackend(ctx context.Context, addr string, opts rpc.ClientOptions) (*rpc.Client, error) {
	c, err := rpc.Dial(ctx, addr, opts)
	var se *rpc.StatusError
	if errors.As(err, &se) && se.StatusCode < 400 {
		return nil, fmt.Errorf("%s is not a NodeVMS server (it answered the WebSocket upgrade with %s)", addr, se.Status)
	}
	return c, err
}

type auditor struct {
	addr, out      string
	follow         bool
	datPort        int
	stdout, stderr io.Writer
	bars           bool // draw progress bars (stderr is a terminal)
	info           rpc.Handshake
	limits         sandbox.Limits // the host's; replays run under ForReplay
}

// run audits and reports a verdict on stdout; an error is an audit that
// could not be done. No verdict is reported once ctx is done: a stopped
// download or replay can look like a fork or a divergence.
func (a *auditor) run(ctx context.Context, pins []pin) (int, error) {
	client, err := dialBackend(ctx, a.addr, rpc.ClientOptions{})
	if err != nil {
		return 0, err
	}
	a.info = client.Handshake()
	client.Close()
	for _, p := range pins {
		got := a.info.FilesArchiveURL
		if p.flag == "log" {
			got = a.info.CallLogURL
		}
		// Keys, not strings: dat://AB.. and dat://ab../ are the same.
		if key, _ := datKey(got); !bytes.Equal(key, p.key) {
			if err := ctx.Err(); err != nil {
				return 0, err
			}
			fmt.Fprintf(a.stdout, "DIVERGENCE: the host serves the %s %s, not %s\n", p.what, got, p.url)
			return auditDivergence, nil
		}
	}
	log, archive, err := a.openReplicas()
	if err != nil {
		return 0, err
	}
	defer log.Close()
	defer archive.Close()
	if fork, err := a.checkFork(ctx, log); err != nil {
		return 0, err
	} else if fork != "" {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		fmt.Fprint(a.stdout, fork)
		return auditDivergence, nil
	}
	if err := a.download(ctx, log, archive); err != nil {
		return 0, err
	}
	// The log runs on past the archive while the host serves: audit the
	// snapshot where they meet.
	n, ok, err := core.SnapshotLength(log, archive)
	if err != nil {
		return 0, err
	}
	var entries uint64
	if ok {
		entries = n
	}
	bar := a.newBar(int64(n), "replaying calls", "calls")
	v, err := core.Audit(ctx, log, archive, core.AuditOptions{
		ReplayOptions: core.ReplayOptions{Limits: a.limits, Progress: func(uint64) { bar.Add(1) }},
		Signed:        a.info.Auth == "signed",
		Entries:       entries,
	})
	bar.Finish()
	if err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if v.Divergence != nil {
		fmt.Fprintf(a.stdout, "DIVERGENCE at call log entry %d (%s): %s differs\n  logged:   %s\n  replayed: %s\n  this looks like %s\n",
			v.Divergence.Block, v.Divergence.Method, v.Divergence.Field, v.Divergence.Logged, v.Divergence.Replayed, v.Divergence.Kind)
		return auditDivergence, nil
	}
	fmt.Fprintf(a.stdout, "VERIFIED %s; files at version %d, root %s\n", v.Replayed(), v.FilesVersion, v.FilesRoot.Metadata)
	if a.out != "" {
		if err := saveHead(a.out, log); err != nil {
			return 0, err
		}
	}
	if a.follow {
		return a.followHost(ctx, log, archive), nil
	}
	return auditVerified, nil
}

// openReplicas opens the replicas: in memory, or kept in --out (where a
// later audit finds them and downloads only what is new).
func (a *auditor) openReplicas() (*hypercore.Feed, *hyperdrive.Archive, error) {
	logKey, err := datKey(a.info.CallLogURL)
	if err != nil {
		return nil, nil, err
	}
	filesKey, err := datKey(a.info.FilesArchiveURL)
	if err != nil {
		return nil, nil, err
	}
	logStorage, filesStorage := hypercore.Storage(hypercore.NewMemoryStorage()), hyperdrive.MemoryStorage()
	if a.out != "" {
		logStorage = hypercore.DirStorage{Dir: a.out, Prefix: "call-log."}
		filesStorage = hyperdrive.FlatStorage(filepath.Join(a.out, "files"))
	}
	log, err := hypercore.Open(hypercore.Config{Storage: logStorage, PublicKey: logKey, Create: true})
	if err != nil {
		return nil, nil, fmt.Errorf("the call log replica: %w", err)
	}
	archive, err := hyperdrive.Open(hyperdrive.Options{Storage: filesStorage, Key: filesKey, Create: true})
	if err != nil {
		log.Close()
		return nil, nil, fmt.Errorf("the files archive replica: %w", err)
	}
	return log, archive, nil
}

// firstMissing is the first block of f that is not here (its length if
// none is missing).
func firstMissing(f *hypercore.Feed) uint64 {
	for i := range f.Length() {
		if !f.Has(i) {
			return i
		}
	}
	return f.Length()
}

// newBar is a progress bar on stderr, drawn only if it is a terminal.
func (a *auditor) newBar(max int64, desc, unit string) *progressbar.ProgressBar {
	return progressbar.NewOptions64(max,
		progressbar.OptionSetWriter(a.stderr), progressbar.OptionSetVisibility(a.bars),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionShowCount(), progressbar.OptionShowIts(), progressbar.OptionSetItsString(unit),
		progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionClearOnFinish())
}

// datKey parses dat://KEY (64 hex digits, either case, and an optional
// trailing slash, as Dat tools print URLs).
func datKey(u string) ([]byte, error) {
	rest, ok := strings.CutPrefix(u, "dat://")
	key, err := hex.DecodeString(strings.TrimSuffix(rest, "/"))
	if !ok || err != nil || len(key) != 32 {
		return nil, fmt.Errorf("%q is not a dat:// URL (dat:// and a key of 64 hex digits)", u)
	}
	return key, nil
}

// download fetches the call log and the files archive over the host's
// WebSocket replication path (it is where the RPC server is, so it is
// reachable wherever the backend is).
func (a *auditor) download(ctx context.Context, log *hypercore.Feed, archive *hyperdrive.Archive) error {
	dial, err := a.wsDialer()
	if err != nil {
		return err
	}
	start := time.Now()
	stats := &protocol.Stats{}
	opts := protocol.Options{Stats: stats}
	bar := a.newBar(-1, "downloading blocks", "blocks")
	done := make(chan struct{})
	defer func() { close(done); bar.Finish() }()
	go func() {
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				bar.Set64(int64(stats.DownloadedBlocks.Load()))
			}
		}
	}()
	// A host that appends as it is downloaded can show blocks past a gap
	// that one pass did not fill: go again, a few times at most.
	for pass := 0; pass < 5 && (pass == 0 || firstMissing(log) < log.Length()); pass++ {
		conn, err := dial(ctx)
		if err != nil {
			return err
		}
		if err := protocol.Replicate(ctx, conn, opts, log); err != nil {
			return fmt.Errorf("downloading the call log: %w", err)
		}
	}
	for pass := 0; pass < 5 && (pass == 0 || firstMissing(archive.Metadata()) < archive.Metadata().Length()); pass++ {
		if err := archive.Pull(ctx, dial, opts); err != nil {
			return fmt.Errorf("downloading the files archive: %w", err)
		}
	}
	// A serving host signs its archive a moment before the log entries
	// that explain it: fetch the log again until it reaches the archive.
	for pass := 0; pass < 5 && ctx.Err() == nil; pass++ {
		if _, ok, err := core.SnapshotLength(log, archive); err != nil || ok {
			break
		}
		time.Sleep(10 * time.Millisecond)
		conn, err := dial(ctx)
		if err != nil {
			return err
		}
		if err := protocol.Replicate(ctx, conn, opts, log); err != nil {
			return fmt.Errorf("downloading the call log: %w", err)
		}
	}
	// Replication ends without an error when ctx does: what arrived is
	// only part of the feeds.
	if err := ctx.Err(); err != nil {
		return err
	}
	// Every log and metadata block is needed; content blocks of replaced
	// files may be gone from a folder-backed host (the audit checks that
	// the current files' are there).
	if archive.Content() == nil {
		return errors.New("the files archive has no content feed")
	}
	for _, f := range []*hypercore.Feed{log, archive.Metadata()} {
		for i := range f.Length() {
			if !f.Has(i) {
				return fmt.Errorf("block %d of %x did not arrive", i, f.PublicKey()[:4])
			}
		}
	}
	secs := time.Since(start).Seconds()
	fmt.Fprintf(a.stderr, "downloaded %d blocks (%.1f MB) in %.1f s: call log %d, files %d + %d\n",
		stats.DownloadedBlocks.Load(), float64(stats.DownloadedBytes.Load())/1e6, secs,
		log.Length(), archive.Metadata().Length(), archive.Content().Length())
	if a.out != "" {
		return errors.Join(log.Sync(), archive.Sync())
	}
	return nil
}
