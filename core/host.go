package core

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nodevms/nodevms/calllog"
	"github.com/nodevms/nodevms/hypercore"
	"github.com/nodevms/nodevms/hyperdrive"
	"github.com/nodevms/nodevms/receipt"
	"github.com/nodevms/nodevms/sandbox"
)

// Errors a call can get from the host.
var (
	// ErrBusy: the call queue is full; try again later.
	ErrBusy = errors.New("core: too many calls waiting; try again later")
	// ErrClosed: the host is shutting down.
	ErrClosed = errors.New("core: the backend is closed")
	// ErrAborted wraps the sandbox's reason for stopping a call (a budget,
	// or the caller's context): the call left no trace.
	ErrAborted = errors.New("core: the call was aborted")
	// ErrSequence: a signed call whose sequence number is not after the
	// last one its key's calls logged. The host checks this as it runs
	// calls, in log order, so that calls from several connections (or a
	// batch whose signatures take long to check) cannot reach the log out
	// of order.
	ErrSequence = errors.New("core: a signed call's sequence number is out of order")
	// ErrEntryTooLarge: a call whose result, error and oracle values
	// would make a log entry larger than Config.MaxEntry. It is stopped and
	// leaves no trace.
	ErrEntryTooLarge = errors.New("core: the call's log entry would be too large")
	// ErrInvalidArguments: arguments a script cannot be given exactly
	// (sandbox.CheckArguments); nothing ran.
	ErrInvalidArguments = errors.New("core: invalid arguments")
	// ErrInitFailed: the script's init export threw at deploy. Nothing was
	// logged; a backend whose first state is an error is not deployed.
	ErrInitFailed = errors.New("core: the script's init failed")
	// ErrNotCallable: init (run once, at deploy) and unknown methods.
	ErrNotCallable = errors.New("core: method not supported")
	// ErrUnavailable: the host cannot write its stores (a full disk, say);
	// the call was not run, or, if the failure came as its group was being
	// logged, may or may not have been logged. The host reopens its stores
	// as calls come, at most once a second, and serves again once they
	// take writes.
	ErrUnavailable = errors.New("core: the host cannot write its call log or files archive")
	// ErrDamaged: the folder was changed on disk outside the host: a real
	// file of the archive, or its feeds. The host refuses to start rather
	// than serve or sign over it.
	ErrDamaged = errors.New("core: the backend's folder was changed on disk")
	// ErrState: the archive and the log disagree in a way the host cannot
	// repair.
	ErrState = errors.New("core: the files archive and the call log disagree")
	// ErrNoEntry: a receipt asked for past the log's end.
	ErrNoEntry = errors.New("core: no such log entry")
)

// Config configures a host.
type Config struct {
	// Archive is the backend's files archive; writable.
	Archive *hyperdrive.Archive
	// Log is the call log: a writable feed, best opened with
	// AnnounceOnSync so that peers only see durable entries, and (like the
	// archive) with DeferSignatures so that a busy host signs every
	// SignEvery rather than every group.
	Log *hypercore.Feed
	// SignEvery is how long new entries of a DeferSignatures log (and
	// archive) may wait for their signature, and so for peers to see them
	// (5ms if zero). Callers are answered without waiting for it.
	SignEvery time.Duration
	// Limits bound each call. Limits.Retained bounds the process's live
	// heap after a call: what the backend keeps, and what its standby
	// runtime keeps while it has one (a standby gives itself up once the
	// two pass half of Retained).
	Limits sandbox.Limits
	// Quota bounds what the backend's archive may hold and what one call
	// may write (no limit if zero). A call that would pass it is stopped
	// and leaves no trace (sandbox.ErrQuota), so that the quota, a setting
	// of this host, never becomes an outcome that a replay would need.
	Quota hyperdrive.Quota
	// MaxEntry bounds what one call's result, error and oracle values add
	// to the log, in bytes (no limit if zero): the log is the host's disk
	// too, and no archive quota covers it. A call past it is stopped.
	MaxEntry int
	// QueueSize bounds the calls waiting to run (1000 if zero); more get
	// ErrBusy.
	QueueSize int
	// MaxGroup bounds the calls that share one log append and one flush
	// (256 if zero).
	MaxGroup int
	// Now is the host's clock (time.Now if nil) and Rand the source of
	// call seeds (crypto/rand if nil).
	Now  func() time.Time
	Rand io.Reader
	// ArchiveChecked says that the archive was checked as stored
	// (hyperdrive.Archive.CheckStored) just before it was opened, so that
	// Open need not check it again; package server does so before it
	// opens a folder for writing.
	ArchiveChecked bool
	// Clock is the host's own timekeeping (time.Now if nil): when to sign,
	// flush the archive, retry stores that failed, and let the standby
	// run. Unlike Now it is never recorded, so a test can move it on to
	// make time pass.
	Clock func() time.Time
	// Logger receives what the host and the scripts' consoles say.
	Logger *slog.Logger
	// MemoryAfresh, at Deploy, records in the init entry that the
	// backend's memory may start afresh (SchemaAfresh): after a stopped
	// call the host then loads the script again and logs a reload entry,
	// which costs a load, instead of restoring its memory from the log.
	// Open reads it from the log.
	MemoryAfresh bool
	// UnrecordedRandom makes the host nondeterministic. For tests only:
	// see sandbox.Call.UnrecordedRandom.
	UnrecordedRandom func() float64
}

func (c *Config) defaults() {
	if c.QueueSize == 0 {
		c.QueueSize = 1000
	}
	if c.MaxGroup == 0 {
		c.MaxGroup = 256
	}
	if c.SignEvery == 0 {
		c.SignEvery = 5 * time.Millisecond
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.Rand == nil {
		c.Rand = rand.Reader
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.Limits = c.Limits.WithDefaults()
}

// Host serves one backend: it runs calls one at a time, in arrival order,
// and answers each only once its log entry is durable.
//
// Calls that arrive together share a group commit: each runs in its own
// archive transaction inside the group's (so that an aborted call can be
// taken back alone), their entries are appended to the log in one batch
// and flushed with one Sync, and only then are the group's archive blocks
// shown to peers and the callers answered. A log opened with
// DeferSignatures is signed, and its new entries shown to peers, at most
// SignEvery later, once for all the groups in between.
type Host struct {
	cfg     Config
	m       *machine
	methods []string // what callers may call: fixed at start
	queue   chan *pending
	done    chan struct{}
	// maxStaged is maxStagedBytes; tests lower it.
	maxStaged int

	mu      sync.Mutex
	closing bool
	wg      sync.WaitGroup

	// run is held while a group runs or the host signs: by the loop, or by
	// a caller running its own batch (SubmitBatch). What follows is under
	// it.
	run             sync.Mutex
	queued          atomic.Int64 // calls queued and not yet run (not under run)
	signTimer       *time.Timer
	armed, unsigned bool
	lastSign        time.Time
	lastArchiveSync time.Time
	encoded         []byte            // the last group's entries, encoded: its buffer is reused
	seqs            map[string]uint64 // each signer's last logged sequence number
	standby         *standby          // the runtime that takes over after a stopped call
	lastBusy        atomic.Int64      // when a group last ran (UnixNano), for the standby
	fullReplays     int               // rebuilds that had no standby and replayed the whole log
	// lost is why the host could not restore the backend's memory after a
	// stopped call: it answers every later call with it.
	lost error
	// storeErr is the write to the log or the archive that failed, until
	// recoverStores reopens them; lastRecovery is when it last tried.
	storeErr     error
	lastRecovery time.Time

	// Answers held until their entries are signed (Request.Receipt); not
	// under run, since an early commit answers without it.
	receiptsMu sync.Mutex
	awaiting   []awaitingReceipt
}

// unavailableError is what callers get while the stores fail: the
// sentinel, and the cause for errors.Is and the host's own use, but not
// in its text, which would name the host's paths.
type unavailableError struct {
	cause     error
	maybeDone bool // the call's group failed as it was logged
}

func unavailable(cause error, maybeDone bool) error {
	return &unavailableError{cause: cause, maybeDone: maybeDone}
}

func (e *unavailableError) Error() string {
	if e.maybeDone {
		return ErrUnavailable.Error() + " (the call may or may not have been logged; see the host's log)"
	}
	return ErrUnavailable.Error() + " (see the host's log)"
}

func (e *unavailableError) Unwrap() []error { return []error{ErrUnavailable, e.cause} }

// recoverEvery is how often a host whose stores failed tries to reopen
// them, as calls come.
const recoverEvery = time.Second

// archiveSyncEvery is how often the host flushes the archive. The log is
// flushed with every group; the archive can lag, since a restart redoes
// from the log what a crash lost (see Open).
const archiveSyncEvery = time.Second

// maxStagedBytes is how much a group's archive writes may reach before the
// group ends and commits, for the calls after to run in the next one: the
// writes are staged in memory until then (hyperdrive.Archive.Begin).
const maxStagedBytes = 32 << 20

// Request is a call to run.
type Request struct {
	Method   string
	Args     json.RawMessage // a JSON array; nil for none
	CallerID *string
	Auth     *calllog.Auth
	// Receipt asks for the call's receipt: the answer then waits until
	// the call's entry is signed (SignEvery at most) and carries it.
	Receipt bool
	// SignedEntry asks, instead, for the entry's bytes once it is signed:
	// the answer waits as for Receipt and carries Response.Entry, from
	// which a server makes the receipt's part for its connection
	// (receipt.Sender), cheaper than a whole receipt for every call.
	SignedEntry bool
}

// Response is a call's outcome.
type Response struct {
	Res          json.RawMessage
	Err          *sandbox.ScriptError // the script threw
	FilesVersion uint64
	Block        uint64 // the call's entry in the log
	// Receipt proves the entry at Block, if the request asked for it;
	// ReceiptErr is why there is none (the stores failed before the entry
	// was signed: the call stands, its receipt can be asked for later).
	Receipt    *receipt.Receipt
	ReceiptErr error
	// Entry is the entry's bytes, signed, if the request asked for
	// SignedEntry (and ReceiptErr is nil).
	Entry []byte
}

type pending struct {
	ctx  context.Context
	req  Request
	done func(Response, error)
	took time.Duration // how long the call ran, once it has
}

// Deploy starts a new backend: the archive and the log must be empty. It
// writes the init entry (and what deploy puts in the archive), runs the
// script's init export if it has one, with callerID as its caller, and
// starts serving. An init that throws fails the deploy (ErrInitFailed);
// what the deploy wrote to the stores is then to be discarded.
func Deploy(ctx context.Context, cfg Config, code, title string, callerID *string) (*Host, error) {
	cfg.defaults()
	if cfg.Log.Length() != 0 || cfg.Archive.Metadata().Length() > 1 {
		return nil, fmt.Errorf("%w: deploy needs an empty log and archive", ErrState)
	}
	seed, err := newSeed(cfg.Rand)
	if err != nil {
		return nil, err
	}
	init := &calllog.Entry{
		Type:            calllog.TypeInit,
		Schema:          calllog.SchemaVersion,
		Code:            code,
		FilesArchiveURL: "dat://" + hex.EncodeToString(cfg.Archive.Key()),
		FilesContentKey: hex.EncodeToString(cfg.Archive.Content().PublicKey()),
		Title:           title,
		Time:            cfg.Now().UnixMilli(),
		Seed:            calllog.FormatSeed(seed),
	}
	if cfg.MemoryAfresh {
		init.Schema, init.Memory = calllog.SchemaAfresh, calllog.MemoryAfresh
	}
	if err := cfg.Archive.Begin(); err != nil { // shown once the entry is durable
		return nil, err
	}
	rec := &sandbox.Record{}
	m, out, err := deploy(ctx, cfg.Archive, init, callerID, cfg.Limits, cfg.Logger, rec, cfg.UnrecordedRandom)
	if err != nil {
		cfg.Archive.Rollback()
		return nil, err
	}
	if out.err != nil {
		cfg.Archive.Rollback()
		return nil, fmt.Errorf("%w: %v", ErrInitFailed, out.err)
	}
	if m.script.HasMethod("init") {
		init.Call = &calllog.CallRecord{UserID: callerID, MethodName: "init", Args: json.RawMessage("[]")}
		init.Result = &calllog.ResultRecord{Res: out.res, Err: calllog.ShortError(out.err), FilesVersion: out.filesVersion}
		init.Error, init.Oracles = out.err, rec.Values
	}
	init.FilesRoot = &out.filesRoot
	if err := appendEntries(cfg.Log, []*calllog.Entry{init}, nil); err != nil {
		cfg.Archive.Rollback()
		return nil, err
	}
	if err := cfg.Archive.Commit(); err != nil {
		return nil, err
	}
	if err := signArchiveAndLog(cfg.Archive, cfg.Log); err != nil { // peers see a new backend at once
		return nil, err
	}
	return start(cfg, m), nil
}

// Open restarts a deployed backend. It replays the log into a fresh
// runtime, checking every entry: entries whose effects the archive already
// holds into a private copy, and the rest (what a crash lost between an
// entry becoming durable and the archive's next flush) into the archive
// itself, redoing them. Then it checks that the archive is where the log
// says before serving.
//
// A backend whose memory starts afresh is not replayed when the archive
// holds exactly what the log's last entry left (a clean stop, or a crash
// after the archive's last flush): its script is loaded again and a
// reload entry (reason "start") logged, so that a start costs a check of
// the stores and a load, at any length of log.
func Open(ctx context.Context, cfg Config) (*Host, error) {
	cfg.defaults()
	for _, f := range []struct {
		name string
		feed *hypercore.Feed
	}{{"metadata", cfg.Archive.Metadata()}, {"content", cfg.Archive.Content()}} {
		if f.feed == nil {
			continue
		}
		if err := f.feed.Reclaimed(); err != nil {
			cfg.Logger.Warn("the files archive's bitfield was torn by a crash, and rebuilt", "feed", f.name, "cause", err)
		}
	}
	if err := checkStores(cfg); err != nil {
		return nil, err
	}
	cfg.ArchiveChecked = false // a later reopen (recoverStores) checks it again
	m, reload, err := resume(cfg)
	if err != nil {
		return nil, err
	}
	if m != nil {
		if err := appendEntries(cfg.Log, []*calllog.Entry{reload}, nil); err != nil {
			return nil, err
		}
		if err := signArchiveAndLog(cfg.Archive, cfg.Log); err != nil {
			return nil, err
		}
		return start(cfg, m), nil
	}
	if m, err = replayMachine(ctx, cfg); err != nil {
		return nil, err
	}
	return start(cfg, m), nil
}

// checkStores checks the archive and the log as stored, and the folder
// against the archive.
func checkStores(cfg Config) error {
	if !cfg.ArchiveChecked {
		if err := cfg.Archive.CheckStored(); err != nil {
			return fmt.Errorf("%w: the files archive's %w", ErrDamaged, err)
		}
	}
	if err := cfg.Log.CheckStored(hypercore.CheckOptions{AllBlocks: true}); err != nil {
		return fmt.Errorf("%w: the call log: %w", ErrDamaged, err)
	}
	if names := cfg.Archive.Modified(); len(names) > 0 {
		return fmt.Errorf("%w: %s in the folder is not what the archive holds (changed, or replaced by something else); restore it from a copy of the archive", ErrDamaged, strings.Join(names, ", "))
	}
	return nil
}

// resume starts a backend whose memory starts afresh without replaying
// its log, if the archive holds exactly what the log's last entry left:
// it loads the script again, and returns the machine and the reload entry
// (reason "start") that records the load, to be logged before any call.
// It returns no machine, and no error, when a replay is needed instead (a
// backend whose memory is kept, an archive a crash left behind the log,
// or a log a replay will report on).
func resume(cfg Config) (*machine, *calllog.Entry, error) {
	n := cfg.Log.Length()
	if n == 0 {
		return nil, nil, nil
	}
	init, err := readEntry(cfg.Log, 0)
	if err != nil || init.Type != calllog.TypeInit || init.Memory != calllog.MemoryAfresh ||
		init.FilesArchiveURL != "dat://"+hex.EncodeToString(cfg.Archive.Key()) {
		return nil, nil, nil
	}
	last, err := readEntry(cfg.Log, n-1)
	if err != nil || entryVersion(last) != cfg.Archive.Version() || checkRoot(cfg.Archive, last.FilesRoot) != nil {
		return nil, nil, nil
	}
	m := &machine{archive: cfg.Archive, files: cfg.Archive.Files(), log: cfg.Logger, unrecorded: cfg.UnrecordedRandom,
		code: init.Code, afresh: true, limits: cfg.Limits}
	e, err := reloadEntry(m, cfg, calllog.ReloadStart)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: loading the backend: %w", ErrState, err)
	}
	m.quota, m.maxEntry = cfg.Quota, cfg.MaxEntry
	return m, e, nil
}

// openMachine checks the stores and replays the log into a new machine,
// redoing into the archive what it lacks (see Open).
func openMachine(ctx context.Context, cfg Config) (*machine, error) {
	if err := checkStores(cfg); err != nil {
		return nil, err
	}
	return replayMachine(ctx, cfg)
}

// replayMachine replays the log into a new machine, redoing into the
// archive what it lacks (see Open).
func replayMachine(ctx context.Context, cfg Config) (*machine, error) {
	n := cfg.Log.Length()
	if n == 0 {
		return nil, fmt.Errorf("%w: the call log has no init entry", ErrState)
	}
	init, err := readEntry(cfg.Log, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrState, err)
	}
	if init.Type != calllog.TypeInit {
		return nil, fmt.Errorf("%w: the call log has no init entry", ErrState)
	}
	if want := "dat://" + hex.EncodeToString(cfg.Archive.Key()); init.FilesArchiveURL != want {
		return nil, fmt.Errorf("%w: the log is for %s, the archive is %s", ErrState, init.FilesArchiveURL, want)
	}
	// The archive holds the effects of the entries before the first whose
	// version is past its own (versions only grow along a log): those are
	// replayed into a private copy, and from there on into the archive,
	// redoing what it lost. The entries are read as the replay goes, never
	// all at once.
	version := cfg.Archive.Version()
	opts := ReplayOptions{Limits: cfg.Limits, Logger: cfg.Logger}
	inArchive := entryVersion(init) > version // not even the deploy reached it
	if inArchive {
		opts.archive = cfg.Archive
	}
	prev := init
	intoArchive := func(r *Replayer) error {
		if got := entryVersion(prev); got != version {
			return fmt.Errorf("%w: the archive is at version %d, which no log entry reached (entry %d is at %d)", ErrState, version, r.next-1, got)
		}
		if err := checkRoot(cfg.Archive, prev.FilesRoot); err != nil {
			return err
		}
		scratch := r.m.archive
		r.m.archive, r.m.files = cfg.Archive, cfg.Archive.Files()
		inArchive = true
		return scratch.Close()
	}
	opts.before = func(r *Replayer, e *calllog.Entry) error {
		if !inArchive && entryVersion(e) > version && r.m != nil {
			if err := intoArchive(r); err != nil {
				return err
			}
		}
		prev = e
		return nil
	}
	r, err := replayLog(ctx, cfg.Log, n, opts)
	if err != nil {
		return nil, err
	}
	if !inArchive && r.m != nil && r.verdict.Divergence == nil {
		if err := intoArchive(r); err != nil {
			r.Close()
			return nil, err
		}
	}
	v := r.Verdict()
	if v.Divergence != nil {
		return nil, fmt.Errorf("%w: replaying the log: %v", ErrState, v.Divergence)
	}
	m := r.m
	m.unrecorded = cfg.UnrecordedRandom
	m.setLimits(cfg.Limits)
	if err := cfg.Archive.Sync(); err != nil {
		return nil, err
	}
	root, err := m.root()
	if err != nil {
		return nil, err
	}
	if root != v.FilesRoot || cfg.Archive.Version() != v.FilesVersion {
		return nil, fmt.Errorf("%w: the archive is at version %d, root %s; the log says %d, %s",
			ErrState, cfg.Archive.Version(), root.Metadata, v.FilesVersion, v.FilesRoot.Metadata)
	}
	m.quota, m.maxEntry = cfg.Quota, cfg.MaxEntry
	return m, nil
}

// entryVersion is the archive version an entry left: its result's, a
// reload's own, or, for an init entry of a script without an init export,
// the version deploy's two files make.
// ArchiveVersion is the files archive's version after entry e (as a
// replay leaves it).
func ArchiveVersion(e *calllog.Entry) uint64 { return entryVersion(e) }

func entryVersion(e *calllog.Entry) uint64 {
	if e.Type == calllog.TypeReload {
		return e.FilesVersion
	}
	if e.Result != nil {
		return e.Result.FilesVersion
	}
	return deployVersion
}

// deployVersion is the archive's version after deploy: the index, then
// /dat.json and /backend.js.
const deployVersion = 2

// checkRoot checks the archive's tree hashes against a logged root.
func checkRoot(a *hyperdrive.Archive, want *calllog.FilesRoot) error {
	if want == nil {
		return fmt.Errorf("%w: the entry has no files root", ErrState)
	}
	m := &machine{archive: a}
	got, err := m.root()
	if err != nil {
		return err
	}
	switch {
	case got.Metadata != want.Metadata:
		return fmt.Errorf("%w: the archive's metadata root %s is not the logged %s", ErrState, got.Metadata, want.Metadata)
	case got != *want:
		return fmt.Errorf("%w: the archive's content root %s (%d blocks) is not the logged %s (%d blocks)",
			ErrState, got.Content, got.ContentLength, want.Content, want.ContentLength)
	}
	return nil
}

func start(cfg Config, m *machine) *Host {
	h := newHost(cfg, m)
	go h.loop()
	return h
}

// newHost returns a host whose loop is not running yet.
func newHost(cfg Config, m *machine) *Host {
	h := &Host{cfg: cfg, m: m, queue: make(chan *pending, cfg.QueueSize), done: make(chan struct{}), lastArchiveSync: cfg.Clock(),
		maxStaged: maxStagedBytes}
	m.quota, m.maxEntry = cfg.Quota, cfg.MaxEntry
	seqs, err := logSeqs(cfg.Log)
	if err != nil {
		// Open has just read every entry: this does not happen.
		cfg.Logger.Error("reading the signers' sequence numbers from the log", "error", err)
	}
	h.seqs = seqs
	// The script is replaced when a call aborts (rebuild), while callers
	// are being checked on their own goroutines; its exports are the
	// same.
	for _, name := range m.script.Methods() {
		if name != "init" {
			h.methods = append(h.methods, name)
		}
	}
	h.signTimer = time.NewTimer(time.Hour)
	h.signTimer.Stop()
	h.standby = h.newStandby()
	return h
}

// newStandby starts a standby runtime following the log as it is. Its
// console is silent: the host's runtime has said it all once.
func (h *Host) newStandby() *standby {
	if h.m.afresh {
		return nil // a stopped call reloads the script: nothing to stand by
	}
	t := turns{run: &h.run, lastBusy: &h.lastBusy, clock: h.cfg.Clock, waiting: func() bool { return h.queued.Load() > 0 }}
	return newStandby(h.cfg.Log, h.cfg.Log.Length(), ReplayOptions{Limits: h.cfg.Limits}, h.cfg.Limits.Retained/2, t, h.cfg.Logger)
}

// dropStandbyIfTooLarge lets a standby go that gave itself up because the
// backend keeps too much for two copies. h.run is held.
func (h *Host) dropStandbyIfTooLarge() {
	if h.standby != nil && h.standby.tooLarge.Load() {
		h.standby.close()
		h.standby = nil
	}
}

// Methods lists the methods callers may call (init is not one).
func (h *Host) Methods() []string { return slices.Clone(h.methods) }

// Call queues a call and waits for its answer, which comes once its entry
// is durable. A full queue answers ErrBusy at once. If ctx ends while the
// call waits in the queue, it is not run; once it has started it runs to
// its end (or its budget) whatever ctx does, and Call returns ctx's error
// without waiting.
func (h *Host) Call(ctx context.Context, req Request) (Response, error) {
	type reply struct {
		resp Response
		err  error
	}
	ch := make(chan reply, 1)
	h.Submit(ctx, req, func(resp Response, err error) { ch <- reply{resp, err} })
	select {
	case r := <-ch:
		return r.resp, r.err
	case <-ctx.Done():
		// The call may still run (and be logged) if it was already taken.
		return Response{}, ctx.Err()
	}
}

// Submit queues a call without waiting: done gets its answer, once, as
// Call would return it. done runs on the host's goroutine (or, for a call
// refused at once, on the caller's), so it must be quick and must not
// block: hand the answer to another goroutine. A server uses Submit to
// answer many calls without a goroutine waiting for each.
func (h *Host) Submit(ctx context.Context, req Request, done func(Response, error)) {
	if p := h.prepare(ctx, req, done); p != nil {
		h.enqueue(p)
	}
}

// prepare checks a call and counts it for Close; nil if it was refused
// (and answered).
func (h *Host) prepare(ctx context.Context, req Request, done func(Response, error)) *pending {
	if !slices.Contains(h.methods, req.Method) {
		done(Response{}, fmt.Errorf("%w: %q", ErrNotCallable, req.Method))
		return nil
	}
	if req.Args == nil {
		req.Args = json.RawMessage("[]")
	}
	if !isJSONArray(req.Args) {
		done(Response{}, errors.New("core: arguments must be a JSON array"))
		return nil
	}
	h.mu.Lock()
	if h.closing {
		h.mu.Unlock()
		done(Response{}, ErrClosed)
		return nil
	}
	h.wg.Add(1) // Close waits until every call has its answer
	h.mu.Unlock()
	return &pending{ctx: ctx, req: req, done: func(r Response, err error) {
		done(r, err)
		h.wg.Done()
	}}
}

func (h *Host) enqueue(p *pending) {
	h.queued.Add(1)
	select {
	case h.queue <- p:
	default:
		h.queued.Add(-1)
		p.done(Response{}, ErrBusy)
	}
}

// Batch collects calls for SubmitBatch. Its zero value is empty; it is
// not safe for concurrent use.
type Batch struct {
	calls []*pending
}

// Len is the number of calls in b.
func (b *Batch) Len() int { return len(b.calls) }

// Add checks a call as Submit does and adds it to b; done gets its answer
// as with Submit (at once, if the call is refused).
func (h *Host) Add(b *Batch, ctx context.Context, req Request, done func(Response, error)) {
	if p := h.prepare(ctx, req, done); p != nil {
		b.calls = append(b.calls, p)
	}
}

// SubmitBatch submits b's calls, in order, and empties b. If the host is
// idle and no call is queued, they run at once on the caller's goroutine,
// as one group; otherwise they are queued as Submit queues them, behind
// the calls already there. Running on the caller's goroutine saves handing
// the calls to the host's, and their answers back: on machines where
// waking another thread is costly, that is most of a small call's cost.
// done callbacks may then run on the caller's goroutine, before
// SubmitBatch returns.
func (h *Host) SubmitBatch(b *Batch) {
	if len(b.calls) == 0 {
		return
	}
	defer func() {
		clear(b.calls)
		b.calls = b.calls[:0]
	}()
	if h.queued.Load() == 0 && h.run.TryLock() {
		// Checked again under the lock: a queued call must not be
		// overtaken (it may be the same caller's earlier one).
		if h.queued.Load() == 0 {
			for calls := b.calls; len(calls) > 0; {
				n := min(len(calls), h.cfg.MaxGroup)
				h.runGroupAndSign(calls[:n])
				calls = calls[n:]
			}
			h.run.Unlock()
			return
		}
		h.run.Unlock()
	}
	for _, p := range b.calls {
		h.enqueue(p)
	}
}

// isJSONArray reports whether b is one JSON array.
func isJSONArray(b []byte) bool {
	b = bytes.TrimSpace(b)
	return len(b) > 0 && b[0] == '[' && json.Valid(b)
}

// Close stops taking calls, answers those queued, and flushes everything.
func (h *Host) Close() error {
	h.mu.Lock()
	if h.closing {
		h.mu.Unlock()
		return nil
	}
	h.closing = true
	h.mu.Unlock()
	h.wg.Wait() // every Call has its answer
	close(h.queue)
	<-h.done
	if h.standby != nil {
		h.standby.close()
	}
	err := h.cfg.Archive.Sync()
	if lerr := h.cfg.Log.Sync(); err == nil {
		err = lerr
	}
	return err
}

// loop runs calls, a group at a time, and signs the archive and the log at
// most every SignEvery: a signature costs more than a counter's call, and
// only peers wait for it.
func (h *Host) loop() {
	defer close(h.done)
	defer func() {
		h.run.Lock()
		if h.unsigned {
			h.sign()
		}
		h.run.Unlock()
	}()
	for {
		var p *pending
		select {
		case q, ok := <-h.queue:
			if !ok {
				return
			}
			p = q
		case <-h.signTimer.C:
			h.run.Lock()
			h.armed = false
			if h.unsigned {
				h.sign()
			}
			h.run.Unlock()
			continue
		}
		// The lock first, then the group: calls queued while a caller ran
		// its own batch join this group.
		h.run.Lock()
		group := h.takeQueued([]*pending{p})
		h.queued.Add(-int64(len(group))) // taken: they run now, under h.run
		h.runGroupAndSign(group)
		h.run.Unlock()
	}
}

// takeQueued adds queued calls to group, up to MaxGroup, without waiting.
func (h *Host) takeQueued(group []*pending) []*pending {
	for len(group) < h.cfg.MaxGroup {
		select {
		case q, ok := <-h.queue:
			if !ok {
				return group
			}
			group = append(group, q)
		default:
			return group
		}
	}
	return group
}

// runGroupAndSign runs a group, then signs if SignEvery has passed since
// the last signature (or sets the timer for it), and flushes the archive
// if archiveSyncEvery has. h.run is held.
func (h *Host) runGroupAndSign(group []*pending) {
	if h.storeErr != nil {
		if err := h.recoverStores(); err != nil {
			for _, p := range group {
				p.done(Response{}, unavailable(err, false))
			}
			return
		}
	}
	for len(group) > 0 {
		appended, rest := h.runGroup(group)
		if appended {
			h.unsigned = true
			if wait := h.cfg.SignEvery - h.since(h.lastSign); wait <= 0 || h.awaitingReceipts() >= signForReceipts {
				h.sign()
			} else if !h.armed {
				h.signTimer.Reset(wait)
				h.armed = true
			}
		}
		group = rest
	}
	if h.unsigned && h.queued.Load() == 0 && h.awaitingReceipts() > 0 {
		// Nothing else to run: answers held for their receipts would wait
		// out SignEvery with no call to share the signature with, and a
		// caller whose calls in flight all wait sends no more until then.
		h.sign()
	}
	if h.since(h.lastArchiveSync) > archiveSyncEvery && h.storeErr == nil {
		if err := h.cfg.Archive.Sync(); err != nil {
			h.storesFailed("flushing the files archive", err)
		}
		h.lastArchiveSync = h.cfg.Clock()
	}
	h.lastBusy.Store(h.cfg.Clock().UnixNano())
}

// since is how long ago t was by the host's clock.
func (h *Host) since(t time.Time) time.Duration { return h.cfg.Clock().Sub(t) }

// sign signs the archive and the log. h.run is held.
func (h *Host) sign() {
	if h.storeErr == nil {
		if err := signArchiveAndLog(h.cfg.Archive, h.cfg.Log); err != nil {
			h.storesFailed("signing", err)
		}
	}
	h.lastSign, h.unsigned = h.cfg.Clock(), false
	h.answerReceipts(h.storeErr)
}

// storesFailed notes a failed write to the log or the archive: the feed
// refuses writes from then on (hypercore.ErrFailed), and so does the host,
// until recoverStores reopens them. h.run is held.
func (h *Host) storesFailed(doing string, err error) {
	if h.storeErr == nil {
		h.cfg.Logger.Error(doing+" failed; calls fail until the stores take writes again", "error", err)
		h.storeErr = fmt.Errorf("%s: %w", doing, err)
		h.lastRecovery = h.cfg.Clock()
	}
}

// recoverStores reopens the log and the archive in place, as a start opens
// them: what was durable is there, what was not is redone from the log, or
// was never acknowledged. Peers keep the same feeds. It tries at most every
// recoverEvery. h.run is held.
func (h *Host) recoverStores() error {
	if h.since(h.lastRecovery) < recoverEvery {
		return h.storeErr
	}
	h.lastRecovery = h.cfg.Clock()
	if h.standby != nil {
		h.standby.close()
		h.standby = nil
	}
	err := h.cfg.Log.Reopen()
	if err == nil {
		err = h.cfg.Archive.Reopen()
	}
	var m *machine
	if err == nil {
		m, err = openMachine(context.Background(), h.cfg)
	}
	if err == nil {
		// Proof that the disk takes writes again, and what was redone is
		// durable.
		err = h.cfg.Archive.Sync()
	}
	if err != nil {
		h.cfg.Logger.Warn("the stores are still failing", "error", err)
		h.storeErr = fmt.Errorf("reopening the stores: %w", err)
		return h.storeErr
	}
	h.m = m
	if seqs, err := logSeqs(h.cfg.Log); err == nil {
		h.seqs = seqs
	}
	h.standby = h.newStandby()
	h.storeErr = nil
	h.lastArchiveSync = h.cfg.Clock()
	h.cfg.Logger.Warn("the stores take writes again; serving", "log length", h.cfg.Log.Length())
	return nil
}

// signArchiveAndLog signs what is new in the archive, then in the log (both
// DeferSignatures; Sign does nothing otherwise): the archive first, so that
// an entry a peer can see has its files there.
func signArchiveAndLog(archive *hyperdrive.Archive, log *hypercore.Feed) error {
	if err := archive.Sign(); err != nil {
		return fmt.Errorf("core: signing the files archive: %w", err)
	}
	if err := log.Sign(); err != nil {
		return fmt.Errorf("core: signing the call log: %w", err)
	}
	return nil
}

// runGroup runs calls in one outer archive transaction, then hands what
// they left ready (their entries and callers) to commitGroup, which makes
// it durable and answers. It reports whether it appended to the log, and
// returns the calls it left for another group: the archive stages a
// group's writes in memory until it commits, so a group ends early once
// they pass maxStagedBytes.
//
// A call that runs long (sandbox.SlowAfter) does not hold up the answers
// of the group's calls before it: their entries are appended, flushed and
// answered while it runs (earlyCommit), so that a call stopped at its
// budget delays the others by that budget at most, not by the next one's
// too.
func (h *Host) runGroup(group []*pending) (appended bool, rest []*pending) {
	a := h.cfg.Archive
	if err := a.Begin(); err != nil {
		failAll(group, err)
		return false, nil
	}
	var r ready
	flushed := 0 // r's first flushed entries are in the log and answered
	var reuse *earlyCommit
	for i, p := range group {
		if h.storeErr != nil {
			// The archive failed under this group: none of it is logged.
			a.Rollback()
			r.from(flushed).fail(unavailable(h.storeErr, false))
			failAll(group[i:], unavailable(h.storeErr, false))
			return flushed > 0, nil
		}
		if i > 0 && a.StagedBytes() > h.maxStaged {
			rest = group[i:]
			break
		}
		if err := p.ctx.Err(); err != nil {
			p.done(Response{}, fmt.Errorf("%w: %w", ErrAborted, err))
			continue
		}
		var early *earlyCommit
		if len(r.entries) > flushed {
			// One per group, reset for each call: most groups are of small
			// calls, and pay nothing for it but this.
			if reuse == nil {
				reuse = &earlyCommit{h: h}
				reuse.slow = reuse.start
			}
			early = reuse
			early.reset(r.from(flushed))
		}
		e, err := h.runCall(p, r.entries[flushed:], early)
		if early.committed() {
			flushed = len(r.entries)
		}
		if e != nil && err != nil {
			// A reload after the stopped call: logged, nobody's answer.
			r.add(e, nil)
		}
		if err != nil {
			p.done(Response{}, err)
			continue
		}
		r.add(e, p)
	}
	if !h.commitGroup(r.from(flushed)) {
		failAll(rest, unavailable(h.storeErr, false))
		return flushed > 0, nil
	}
	return len(r.entries) > 0, rest
}

// runCall runs one call; earlier are the entries of the group so far, not
// yet in the log, which a rebuild after an abort must replay too.
//
// early, if set, commits the earlier entries if the call runs long; it has
// settled when runCall returns, and earlier is then empty.
func (h *Host) runCall(p *pending, earlier []*calllog.Entry, early *earlyCommit) (*calllog.Entry, error) {
	if h.lost != nil {
		return nil, h.lost
	}
	h.dropStandbyIfTooLarge()
	auth := p.req.Auth
	if auth != nil {
		if last, ok := h.seqs[auth.Key]; ok && auth.Seq <= last {
			return nil, fmt.Errorf("%w: %d is not after %d, the last this key's calls logged", ErrSequence, auth.Seq, last)
		}
	}
	seed, err := newSeed(h.cfg.Rand)
	if err != nil {
		return nil, err
	}
	now := h.cfg.Now().UnixMilli()
	env := callEnv{method: p.req.Method, args: p.req.Args, callerID: p.req.CallerID, time: now, seed: seed}
	// An entry and its parts in one allocation: a small call's entry was
	// five.
	ce := &struct {
		calllog.Entry
		call   calllog.CallRecord
		result calllog.ResultRecord
		root   calllog.FilesRoot
		rec    sandbox.Record
	}{}
	// The caller going away does not stop a call that has started: only
	// the budgets do (stopping it would cost a rebuild, which a client
	// could otherwise force at will).
	if early != nil {
		env.slow = early.slow
	}
	began := h.cfg.Clock()
	out, err := h.m.run(context.Background(), env, &ce.rec)
	p.took = h.since(began)
	early.settle()
	if early.committed() {
		earlier = nil // in the log now
	}
	if h.storeErr != nil {
		// The early commit's append failed: the group is given up.
		return nil, unavailable(h.storeErr, false)
	}
	if errors.Is(err, sandbox.ErrArguments) {
		// Refused before anything ran: the script is as it was.
		return nil, fmt.Errorf("%w: %w", ErrInvalidArguments, err)
	}
	if err != nil && h.cfg.Archive.Failed() != nil {
		// Not the call's doing: the archive could not be written (a full
		// disk). The group is given up, and the stores reopened later.
		h.storesFailed("writing to the files archive", h.cfg.Archive.Failed())
		return nil, unavailable(h.storeErr, false)
	}
	if err != nil {
		h.cfg.Logger.Warn("call aborted", "method", p.req.Method, "reason", err)
		if h.m.afresh {
			reload, rerr := h.reload(calllog.ReloadStoppedCall)
			if rerr != nil {
				h.cfg.Logger.Error("the backend could not be loaded again after an aborted call; every call will fail until a restart", "error", rerr)
				h.lost = fmt.Errorf("%w: the backend could not be loaded again after an aborted call (see the host's log)", ErrState)
				return nil, fmt.Errorf("%w: %w (and reloading the backend failed)", ErrAborted, err)
			}
			return reload, fmt.Errorf("%w: %w", ErrAborted, err)
		}
		if rerr := h.rebuild(earlier); rerr != nil {
			h.cfg.Logger.Error("the backend's memory could not be restored after an aborted call; every call will fail until a restart", "error", rerr)
			h.lost = fmt.Errorf("%w: the backend's memory could not be restored after an aborted call (see the host's log)", ErrState)
			return nil, fmt.Errorf("%w: %w (and restoring the backend failed)", ErrAborted, err)
		}
		return nil, fmt.Errorf("%w: %w", ErrAborted, err)
	}
	ce.call = calllog.CallRecord{UserID: p.req.CallerID, MethodName: p.req.Method, Args: p.req.Args}
	ce.result = calllog.ResultRecord{Res: out.res, Err: calllog.ShortError(out.err), FilesVersion: out.filesVersion}
	ce.root = out.filesRoot
	ce.Entry = calllog.Entry{
		Type:      calllog.TypeCall,
		Call:      &ce.call,
		Result:    &ce.result,
		Time:      now,
		Seed:      calllog.FormatSeed(seed),
		Oracles:   ce.rec.Values,
		Error:     out.err,
		FilesRoot: &ce.root,
		Auth:      p.req.Auth,
	}
	if auth != nil {
		h.seqs[auth.Key] = auth.Seq
	}
	return &ce.Entry, nil
}

// reloadAttempts bounds the loads a reload tries: a script's top-level
// code may throw for some seeds (an attempt that fails leaves no trace).
const reloadAttempts = 3

// reload starts the script's memory afresh (a backend deployed with
// MemoryAfresh) and returns the reload entry to log, which holds the clock
// and seed its top-level code ran with. h.run is held.
func (h *Host) reload(reason string) (*calllog.Entry, error) {
	return reloadEntry(h.m, h.cfg, reason)
}

// reloadEntry loads m's script again with a fresh clock and seed, and
// returns the reload entry that records it.
func reloadEntry(m *machine, cfg Config, reason string) (*calllog.Entry, error) {
	var err error
	for range reloadAttempts {
		var seed uint64
		if seed, err = newSeed(cfg.Rand); err != nil {
			return nil, err
		}
		now := cfg.Now().UnixMilli()
		if err = m.reload(now, seed); err != nil {
			cfg.Logger.Warn("loading the backend again failed", "error", err)
			continue
		}
		root, err := m.root()
		if err != nil {
			return nil, err
		}
		return &calllog.Entry{Type: calllog.TypeReload, Reason: reason, Time: now, Seed: calllog.FormatSeed(seed), FilesVersion: m.archive.Version(), FilesRoot: &root}, nil
	}
	return nil, err
}

// rebuild replaces the script's runtime, which an aborted call left in an
// unknown state, with the standby's, once it has replayed the log (it
// follows it, so this costs its lag), and then the group's entries not yet
// in the log. A new standby starts following at once. If the standby has
// failed, the log is replayed here, under the lock. The archive itself
// was rolled back by the machine.
func (h *Host) rebuild(pendingEntries []*calllog.Entry) error {
	ctx := context.Background()
	n := h.cfg.Log.Length()
	h.dropStandbyIfTooLarge()
	var r *Replayer
	err := errNoStandby
	if h.standby != nil {
		r, err = h.standby.take(n)
		h.standby = h.newStandby()
	}
	if err != nil {
		h.cfg.Logger.Warn("no standby runtime to take over; replaying the whole log", "reason", err)
		h.fullReplays++
		if r, err = replayLog(ctx, h.cfg.Log, n, ReplayOptions{Limits: h.cfg.Limits}); err != nil {
			return err
		}
	}
	defer r.Close()
	for i, e := range pendingEntries {
		if err := r.Apply(ctx, h.cfg.Log.Length()+uint64(i), e); err != nil {
			return err
		}
	}
	if d := r.Verdict().Divergence; d != nil {
		return fmt.Errorf("%w: %v", ErrState, d)
	}
	h.m.script = r.m.script
	h.m.script.SetLimits(h.cfg.Limits)
	h.m.script.SetLogger(h.cfg.Logger)
	return nil
}

// LoggedSeqs returns each signer's last sequence number in the log, as of
// now: what a server checks a signed call's against as it arrives (the
// host checks again as it logs it).
func (h *Host) LoggedSeqs() map[string]uint64 {
	h.run.Lock()
	defer h.run.Unlock()
	return maps.Clone(h.seqs)
}

// logSeqs reads each signer's last sequence number from a log.
func logSeqs(log *hypercore.Feed) (map[string]uint64, error) {
	seqs := map[string]uint64{}
	err := log.Blocks(1, log.Length(), func(_ uint64, blk []byte) error {
		if !bytes.Contains(blk, []byte(`"auth"`)) {
			return nil // no signed call: most entries, not worth decoding
		}
		e, err := calllog.DecodeEntry(blk)
		if err != nil {
			return err
		}
		if e.Auth != nil && e.Auth.Seq > seqs[e.Auth.Key] {
			seqs[e.Auth.Key] = e.Auth.Seq
		}
		return nil
	})
	return seqs, err
}

// appendEntries appends entries as one batch and makes them durable. buf,
// if not nil, is a buffer to encode them in, kept for the next batch: the
// feed copies what it writes.
func appendEntries(log *hypercore.Feed, entries []*calllog.Entry, buf *[]byte) error {
	_, err := appendEntryBlocks(log, entries, buf)
	return err
}

// appendEntryBlocks is appendEntries, and returns the blocks it appended,
// which share buf's memory.
func appendEntryBlocks(log *hypercore.Feed, entries []*calllog.Entry, buf *[]byte) ([][]byte, error) {
	if len(entries) == 0 {
		return nil, nil
	}
	var data []byte
	if buf != nil {
		data = (*buf)[:0]
	}
	ends := make([]int, len(entries))
	for i, e := range entries {
		var err error
		if data, err = calllog.AppendEntry(data, e); err != nil {
			return nil, err
		}
		ends[i] = len(data)
	}
	if buf != nil && cap(data) <= 1<<20 {
		*buf = data // (a burst of large entries does not keep its buffer)
	}
	blocks := make([][]byte, len(entries))
	for i, start := 0, 0; i < len(entries); i++ {
		blocks[i] = data[start:ends[i]:ends[i]]
		start = ends[i]
	}
	if _, err := log.Append(blocks...); err != nil {
		return nil, err
	}
	return blocks, log.Sync()
}

func newSeed(r io.Reader) (uint64, error) {
	var b [8]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return 0, fmt.Errorf("core: seed: %w", err)
	}
	return binary.BigEndian.Uint64(b[:]), nil
}
