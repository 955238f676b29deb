package audit

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nodevms/nodevms/calllog"
	"github.com/nodevms/nodevms/checkpoint"
	"github.com/nodevms/nodevms/core"
	"github.com/nodevms/nodevms/hypercore"
	"github.com/nodevms/nodevms/hypercore/protocol"
	"github.com/nodevms/nodevms/hyperdrive"
	"github.com/nodevms/nodevms/rpc"
	"github.com/nodevms/nodevms/sandbox"
)

// Options configure an auditor.
type Options struct {
	// Addr is the backend's address: host:port, or a ws:// or http:// URL.
	Addr string
	// Files and Log, if set, are the keys the host must serve (a user's
	// pins): another key is a divergence.
	Files, Log []byte
	// Out, if set, is a folder that keeps the replicas and the verified
	// head between audits; otherwise they are in a temporary folder that
	// Close removes (on disk, not in memory: an audit's memory does not
	// grow with the log).
	Out string
	// Limits are the host's budgets, if it was given more than the
	// defaults: a replay runs under Limits.ForReplay.
	Limits sandbox.Limits
	// Progress, if set, is told how the audit goes: the blocks downloaded
	// so far (total -1: unknown), then the entries replayed out of total.
	Progress func(stage Stage, done, total int64)
	// Downloaded, if set, is told what the download fetched, once it is
	// done and before the replay.
	Downloaded func(Download)
	// Monitor, if set with Out, cosigns a checkpoint of every head the
	// auditor verifies (see CheckpointHandler).
	Monitor *checkpoint.Signer
	// Network, if set, finds feeds' peers by discovery key. An audit by
	// dat:// URL (Addr) needs it; a following auditor announces the feeds
	// it rehosts on it.
	Network Network
	// FindTimeout bounds how long an audit by dat:// URL looks for a peer
	// that serves the call log's first entry (default 30 s).
	FindTimeout time.Duration
}

// Network finds the peers of feeds by discovery key (package discovery's
// Peers is one).
type Network interface {
	// Dial connects to a peer found for the feed, waiting for one until
	// ctx ends; dialled again, it tries another if there is one.
	Dial(ctx context.Context, discoveryKey [32]byte) (io.ReadWriteCloser, error)
	// Announce makes the feed findable at this machine's port.
	Announce(discoveryKey [32]byte, port int)
}

// ErrNotFound is the error of an audit by dat:// URL that found no peer
// serving the call log.
var ErrNotFound = errors.New("audit: the call log was not found on the network")

// ErrNoNetwork is the error of an audit by dat:// URL without
// Options.Network.
var ErrNoNetwork = errors.New("audit: a dat:// URL is found on the network, and no discovery was given")

// Stage is a part of an audit, for Options.Progress.
type Stage int

// Stages of an audit.
const (
	Downloading Stage = iota
	Replaying
)

// Outcome is an audit's verdict on the host.
type Outcome int

// Outcomes.
const (
	// Verified: every call replayed to its logged outcome, and the archive
	// holds every root the log names.
	Verified Outcome = iota
	// Diverged: the host serves other feeds than the pins, or a replay or
	// a check disagrees with the log (Result.Mismatch, Result.Verdict).
	Diverged
	// Forked: the host's call log is not the history verified before
	// (Result.Fork).
	Forked
)

func (o Outcome) String() string {
	switch o {
	case Verified:
		return "verified"
	case Diverged:
		return "divergence"
	case Forked:
		return "fork"
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

// Result is an audit's verdict and what it looked at.
type Result struct {
	Outcome Outcome
	// Verdict is the replay's (Verified, or Diverged with its Divergence).
	Verdict core.Verdict
	// Mismatch, for Diverged without a replay: the host serves another
	// feed than a pin names.
	Mismatch *Mismatch
	// Fork, for Forked: the head verified before and the host's now.
	Fork *Fork
	// Entries is how many of the log's first entries were checked (the
	// snapshot where log and archive meet, or, following, so far).
	Entries uint64
	// Download is what the audit downloaded.
	Download Download
}

// Mismatch is a feed the host serves instead of a pinned one.
type Mismatch struct {
	What   string // "files archive" or "call log"
	Served string // dat://KEY the host serves
	Pinned []byte // the key Options named
}

// Fork is a call log that is not the history verified before under the same
// key: shorter than the verified head, or with another tree at its length,
// or with data that does not verify against it (Err, while following).
type Fork struct {
	Key       []byte
	Verified  Head
	Now       Head  // zero if Err is set
	Err       error // data from the host that did not verify
	Following bool  // found while following
	// Evidence is the file in Options.Out that proves the fork to anyone
	// offline (package evidence), when both heads are known;
	// EvidenceErr is why it could not be written.
	Evidence    string
	EvidenceErr error
}

// Download is what an audit fetched.
type Download struct {
	Blocks, Bytes                uint64
	Duration                     time.Duration
	LogLength, Metadata, Content uint64 // the replicas' lengths afterwards
}

// Auditor audits one host.
type Auditor struct {
	opts    Options
	info    rpc.Handshake
	byKey   bool // Addr is the call log's dat:// URL: no host to ask
	log     *hypercore.Feed
	archive *hyperdrive.Archive
	tmp     string // the replicas' temporary folder, without Options.Out
	// cosigned is the length of the last checkpoint cosigned (Monitor).
	cosigned uint64
}

// Open dials the host and reads its handshake (the feeds it serves). For
// an Addr that is the call log's dat:// URL it dials nothing: the audit
// finds the log on Options.Network, and the files archive's key in the
// log's init entry.
func Open(ctx context.Context, opts Options) (*Auditor, error) {
	if strings.HasPrefix(opts.Addr, "dat://") {
		key, err := DatKey(opts.Addr)
		if err != nil {
			return nil, err
		}
		if opts.Network == nil {
			return nil, ErrNoNetwork
		}
		return &Auditor{opts: opts, byKey: true, info: rpc.Handshake{CallLogURL: fmt.Sprintf("dat://%x", key)}}, nil
	}
	client, err := rpc.Dial(ctx, opts.Addr, rpc.ClientOptions{})
	if err != nil {
		return nil, err
	}
	a := &Auditor{opts: opts, info: client.Handshake()}
	client.Close()
	return a, nil
}

// Handshake is what the host said it serves.
func (a *Auditor) Handshake() rpc.Handshake { return a.info }

// Close closes the replicas (Options.Out's are flushed, a temporary
// folder's removed).
func (a *Auditor) Close() error {
	var err error
	if a.log != nil {
		err = errors.Join(a.log.Close(), a.archive.Close())
	}
	if a.tmp != "" {
		err = errors.Join(err, os.RemoveAll(a.tmp))
	}
	return err
}

// Audit checks the pins, compares the host's log with the head verified
// before (Options.Out), downloads what is new, and replays the log up to
// where it meets the archive (a host that serves runs on past it). An
// error is an audit that could not be done.
func (a *Auditor) Audit(ctx context.Context) (Result, error) {
	if a.byKey && a.log == nil {
		var err error
		if a.log, a.archive, err = a.openReplicas(ctx); err != nil {
			return Result{}, err
		}
	}
	for _, p := range []struct {
		what   string
		pinned []byte
		served string
	}{{"files archive", a.opts.Files, a.info.FilesArchiveURL}, {"call log", a.opts.Log, a.info.CallLogURL}} {
		if p.pinned == nil {
			continue
		}
		// Keys, not strings: dat://AB.. and dat://ab../ are the same.
		if key, _ := DatKey(p.served); !bytes.Equal(key, p.pinned) {
			if err := ctx.Err(); err != nil {
				return Result{}, err
			}
			return Result{Outcome: Diverged, Mismatch: &Mismatch{What: p.what, Served: p.served, Pinned: p.pinned}}, nil
		}
	}
	if a.log == nil {
		var err error
		if a.log, a.archive, err = a.openReplicas(ctx); err != nil {
			return Result{}, err
		}
	}
	if fork, err := a.checkFork(ctx); err != nil {
		return Result{}, err
	} else if fork != nil {
		if err := ctx.Err(); err != nil {
			return Result{}, err
		}
		return Result{Outcome: Forked, Fork: fork}, nil
	}
	// The replay starts at once, on the log's entries as they arrive,
	// beside the download: replaying is the audit's longest part, and it
	// runs on one core.
	dctx, cancelDownload := context.WithCancel(ctx)
	var (
		downloaded   = make(chan struct{})
		dl           Download
		dlErr        error
		n, entries   uint64
		replayCounts atomic.Bool // the download is over: replay progress is told
	)
	defer func() {
		cancelDownload()
		<-downloaded
	}()
	go func() {
		defer close(downloaded)
		if dl, dlErr = a.download(dctx); dlErr != nil {
			return
		}
		if a.opts.Downloaded != nil {
			a.opts.Downloaded(dl)
		}
		// The log runs on past the archive while the host serves: audit
		// the snapshot where they meet.
		var ok bool
		if n, ok, dlErr = core.SnapshotLength(a.log, a.archive); ok {
			entries = n
		}
		replayCounts.Store(true)
	}()
	replayed := int64(0)
	opts := core.ReplayOptions{Limits: a.opts.Limits, ScratchDir: os.TempDir()}
	if a.opts.Progress != nil {
		opts.Progress = func(uint64) {
			replayed++
			if replayCounts.Load() {
				a.opts.Progress(Replaying, replayed, int64(n))
			}
		}
	}
	arriving := func() (uint64, error) {
		<-downloaded
		return entries, dlErr
	}
	v, err := core.Audit(ctx, a.log, a.archive, core.AuditOptions{ReplayOptions: opts, Signed: a.info.Auth == "signed", Arriving: arriving})
	if err != nil {
		select {
		case <-downloaded:
			// The download was over: if it failed, that is why.
			if dlErr != nil {
				return Result{}, dlErr
			}
		default:
			// The replay failed first: the download is of no more use.
			cancelDownload()
			<-downloaded
		}
		return Result{}, err
	}
	<-downloaded
	if dlErr != nil {
		return Result{}, dlErr
	}
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	res := Result{Download: dl}
	res.Verdict, res.Entries = v, n
	if v.Divergence != nil {
		res.Outcome = Diverged
		return res, nil
	}
	if a.opts.Out != "" {
		if err := saveHead(a.opts.Out, a.log); err != nil {
			return Result{}, err
		}
	}
	if _, err := a.cosign(n); err != nil {
		return Result{}, fmt.Errorf("cosigning a checkpoint: %w", err)
	}
	return res, nil
}

// openReplicas opens the replicas: kept in Options.Out, or in a temporary
// folder. By key, it first downloads the call log to read the files
// archive's key from its init entry.
func (a *Auditor) openReplicas(ctx context.Context) (*hypercore.Feed, *hyperdrive.Archive, error) {
	logKey, err := DatKey(a.info.CallLogURL)
	if err != nil {
		return nil, nil, err
	}
	dir := a.opts.Out
	if dir == "" {
		if a.tmp, err = os.MkdirTemp("", "nodevms-audit-"); err != nil {
			return nil, nil, fmt.Errorf("a folder for the replicas: %w", err)
		}
		dir = a.tmp
	}
	logStorage := hypercore.DirStorage{Dir: dir, Prefix: "call-log."}
	filesStorage := hyperdrive.FlatStorage(filepath.Join(dir, "files"))
	// A replica is made again from the host if lost: no fsync.
	log, err := hypercore.Open(hypercore.Config{Storage: logStorage, PublicKey: logKey, Create: true, NoFsync: a.opts.Out == "", WriteBack: true})
	if err != nil {
		return nil, nil, fmt.Errorf("the call log replica: %w", err)
	}
	if a.byKey {
		if err := a.readInit(ctx, log); err != nil {
			log.Close()
			return nil, nil, err
		}
	}
	filesKey, err := DatKey(a.info.FilesArchiveURL)
	if err != nil {
		log.Close()
		return nil, nil, err
	}
	archive, err := hyperdrive.Open(hyperdrive.Options{Storage: filesStorage, Key: filesKey, Create: true, WriteBack: true})
	if err != nil {
		log.Close()
		return nil, nil, fmt.Errorf("the files archive replica: %w", err)
	}
	return log, archive, nil
}

// readInit downloads the call log from a peer found by its key until its
// init entry is here, and takes the files archive's URL from it.
func (a *Auditor) readInit(ctx context.Context, log *hypercore.Feed) error {
	timeout := a.opts.FindTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	findCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	dial := a.dialerFor(log.DiscoveryKey())
	for attempt := 0; !log.Has(0) && attempt < 10; attempt++ {
		conn, err := dial(findCtx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("%w: no peer with the call log %s answered within %v", ErrNotFound, a.info.CallLogURL, timeout)
		}
		if err := protocol.Replicate(findCtx, conn, protocol.Options{}, log); err != nil && findCtx.Err() == nil {
			continue // another peer, if there is one
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	b, err := log.Get(0)
	if err != nil {
		return fmt.Errorf("%w: no peer found served the call log %s's first entry", ErrNotFound, a.info.CallLogURL)
	}
	init, err := calllog.DecodeEntry(b)
	if err != nil || init.Type != calllog.TypeInit {
		return fmt.Errorf("the call log's first entry is not an init entry naming the files archive (%v)", err)
	}
	a.info.FilesArchiveURL = init.FilesArchiveURL
	return nil
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

// contentReachesMetadata reports whether a replica's content feed is as
// long as its metadata needs.
func contentReachesMetadata(archive *hyperdrive.Archive) bool {
	referenced, err := archive.ReferencedContent()
	if err != nil || archive.Content() == nil {
		return true // nothing more to fetch for: the audit says what is wrong
	}
	return referenced <= archive.Content().Length()
}

// DatKey parses dat://KEY (64 hex digits, either case, and an optional
// trailing slash, as Dat tools print URLs).
func DatKey(u string) ([]byte, error) {
	rest, ok := strings.CutPrefix(u, "dat://")
	key, err := hex.DecodeString(strings.TrimSuffix(rest, "/"))
	if !ok || err != nil || len(key) != 32 {
		return nil, fmt.Errorf("%q is not a dat:// URL (dat:// and a key of 64 hex digits)", u)
	}
	return key, nil
}

// dialerFor dials a peer of the feed whose discovery key is dk: by key,
// one found on the network; otherwise the backend's replication path,
// which serves every feed.
func (a *Auditor) dialerFor(dk [32]byte) func(context.Context) (io.ReadWriteCloser, error) {
	if a.byKey {
		return func(ctx context.Context) (io.ReadWriteCloser, error) { return a.opts.Network.Dial(ctx, dk) }
	}
	return a.dialer
}

// dialer dials the backend's replication path.
func (a *Auditor) dialer(ctx context.Context) (io.ReadWriteCloser, error) {
	u, err := url.Parse(rpc.BackendURL(a.opts.Addr))
	if err != nil {
		return nil, err
	}
	u.Path = a.info.ReplicationPath
	ws, resp, err := rpc.DialWebSocket(ctx, u.String(), nil)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("replication at %s: %s", u, resp.Status)
		}
		return nil, fmt.Errorf("replication at %s: %w", u, err)
	}
	return rpc.NewWebSocketStream(ws), nil
}

// download fetches the call log and the files archive over the host's
// WebSocket replication path (it is where the RPC server is, so it is
// reachable wherever the backend is).
func (a *Auditor) download(ctx context.Context) (Download, error) {
	log, archive := a.log, a.archive
	dialLog, dialArchive := a.dialerFor(log.DiscoveryKey()), a.dialerFor(archive.Metadata().DiscoveryKey())
	start := time.Now()
	stats := &protocol.Stats{}
	opts := protocol.Options{Stats: stats}
	if a.opts.Progress != nil {
		// Progress is told from here, and never after download returns.
		done, stopped := make(chan struct{}), make(chan struct{})
		defer func() { close(done); <-stopped }()
		go func() {
			defer close(stopped)
			tick := time.NewTicker(200 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-done:
					return
				case <-tick.C:
					a.opts.Progress(Downloading, int64(stats.DownloadedBlocks.Load()), -1)
				}
			}
		}()
	}
	// A host that appends as it is downloaded can show blocks past a gap
	// that one pass did not fill: go again, a few times at most.
	fetchLog := func() error {
		for pass := 0; pass < 5 && (pass == 0 || firstMissing(log) < log.Length()); pass++ {
			conn, err := dialLog(ctx)
			if err != nil {
				return err
			}
			if err := protocol.Replicate(ctx, conn, opts, log); err != nil {
				return fmt.Errorf("downloading the call log: %w", err)
			}
		}
		return nil
	}
	fetchArchive := func() error {
		for pass := 0; pass < 5 && (pass == 0 || firstMissing(archive.Metadata()) < archive.Metadata().Length()); pass++ {
			if err := archive.Pull(ctx, dialArchive, opts); err != nil {
				return fmt.Errorf("downloading the files archive: %w", err)
			}
		}
		return nil
	}
	// Side by side: neither the host's serving nor this side's checking
	// of one stream fills a core.
	archiveErr := make(chan error, 1)
	go func() { archiveErr <- fetchArchive() }()
	logErr := fetchLog()
	if err := errors.Join(logErr, <-archiveErr); err != nil {
		return Download{}, err
	}
	// The two feeds of the archive replicate side by side, each as far as
	// the host announced when its stream began: the metadata can name
	// content past the content downloaded. Fetch the content feed alone
	// again (the host signs content first, so it has it; the metadata,
	// fetched again, would run on ahead). A busy folder-backed host may
	// have replaced the last blocks meanwhile, and the replica then stays
	// short: the audit checks what it has (see core.Audit).
	for pass := 0; pass < 3 && ctx.Err() == nil && !contentReachesMetadata(archive); pass++ {
		conn, err := dialArchive(ctx)
		if err != nil {
			return Download{}, err
		}
		if err := protocol.Replicate(ctx, conn, opts, archive.Content()); err != nil {
			return Download{}, fmt.Errorf("downloading the files archive's content: %w", err)
		}
	}
	// A serving host signs its archive a moment before the log entries
	// that explain it: fetch the log again until it reaches the archive.
	for pass := 0; pass < 5 && ctx.Err() == nil; pass++ {
		if _, ok, err := core.SnapshotLength(log, archive); err != nil || ok {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Millisecond):
		}
		if err := fetchLog(); err != nil {
			return Download{}, err
		}
	}
	// A folder keeps only its current files' bytes, so a file the
	// snapshot names as current may be gone from the host because a call
	// replaced it since. The audit holds the host to its current files
	// only if the log has not moved past the snapshot: fetch it once more
	// when one is missing, a moment later, after the host has signed what
	// it wrote meanwhile.
	if core.CheckCurrentFiles(archive, 0) != nil && ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
		if err := fetchLog(); err != nil {
			return Download{}, err
		}
	}
	// Replication ends without an error when ctx does: what arrived is
	// only part of the feeds.
	if err := ctx.Err(); err != nil {
		return Download{}, err
	}
	// Every log and metadata block is needed; content blocks of replaced
	// files may be gone from a folder-backed host (the audit checks that
	// the current files' are there).
	if archive.Content() == nil {
		return Download{}, errors.New("the files archive has no content feed")
	}
	for _, f := range []*hypercore.Feed{log, archive.Metadata()} {
		for i := range f.Length() {
			if !f.Has(i) {
				return Download{}, fmt.Errorf("block %d of %x did not arrive", i, f.PublicKey()[:4])
			}
		}
	}
	dl := Download{
		Blocks: stats.DownloadedBlocks.Load(), Bytes: stats.DownloadedBytes.Load(), Duration: time.Since(start),
		LogLength: log.Length(), Metadata: archive.Metadata().Length(), Content: archive.Content().Length(),
	}
	if a.opts.Out != "" {
		return dl, errors.Join(log.Sync(), archive.Sync())
	}
	return dl, nil
}
