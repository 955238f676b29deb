package core

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"strings"

	"github.com/nodevms/nodevms/calllog"
	"github.com/nodevms/nodevms/hypercore"
	"github.com/nodevms/nodevms/hyperdrive"
	"github.com/nodevms/nodevms/sandbox"
)

// ErrUnverifiable: a replay could not finish a logged call within its
// own limits. It says nothing about the host; an audit that meets it
// could not audit (it is not a divergence).
var ErrUnverifiable = errors.New("core: could not verify the log")

// Verdict is the outcome of a replay.
type Verdict struct {
	Calls        int    // call entries replayed (the init entry not counted)
	Reloads      int    // reload entries replayed
	FilesVersion uint64 // the archive's version after the last entry
	FilesRoot    calllog.FilesRoot
	Divergence   *calllog.Divergence // nil if every entry matched
}

func (v Verdict) String() string {
	if v.Divergence != nil {
		return "divergence: " + v.Divergence.Error()
	}
	return fmt.Sprintf("verified %s, files at version %d, root %s", v.Replayed(), v.FilesVersion, v.FilesRoot.Metadata)
}

// Replayed says what was replayed: "N calls", and the reloads if any.
func (v Verdict) Replayed() string {
	if v.Reloads == 0 {
		return fmt.Sprintf("%d calls", v.Calls)
	}
	return fmt.Sprintf("%d calls and %d reloads", v.Calls, v.Reloads)
}

// ReplayOptions configure a replay.
type ReplayOptions struct {
	// Limits are the limits of the host that ran the log (the sandbox's
	// defaults if zero). A replay runs under Limits.ForReplay: generous,
	// so that a slower machine reproduces what the host did.
	Limits sandbox.Limits
	Logger *slog.Logger

	// Progress, if set, is told each entry replayed (its block number).
	Progress func(block uint64)

	// ScratchDir, if set, is where the replay keeps its private copy of
	// the files archive: in a new folder under it, removed by Close. By
	// default the copy is in memory, where a long log's history of
	// writes adds up (an audit of a million file writes held half a
	// gigabyte).
	ScratchDir string

	// archive, if set, is replayed into instead of a private copy (a
	// restart redoing what the archive lost).
	archive *hyperdrive.Archive
	// before, if set, is called before each entry after the init entry is
	// applied; an error stops the replay.
	before func(r *Replayer, e *calllog.Entry) error
	// check, if set, is called with every entry as it is decoded, in log
	// order, init entry first, on the goroutine that decodes ahead of the
	// replay: for the checks of an entry that do not need the replay (an
	// audit's of the archive and the callers), which so run beside it.
	// It is not called again once the replay returns.
	check func(block uint64, e *calllog.Entry)
	// checked, if set, is called on that goroutine when it has called
	// check for the last time.
	checked func()
	// arrivals, if set, is the log still downloading: replayLog reads
	// its entries as they arrive, up to the snapshot's end (n is then
	// not used).
	arrivals *arrivals
}

// Replayer replays a call log entry by entry through the same core the host
// runs, into a private, unsigned copy of the files archive in memory, and
// compares each entry with what the replay computed. The host rebuilds its
// state with one after a restart or an aborted call, and an auditor checks
// a host with one.
type Replayer struct {
	m        *machine
	verdict  Verdict
	next     uint64 // the next log block expected
	progress func(block uint64)
	scratch  string // the folder of the archive's copy (ScratchDir), if any
}

// NewReplayer starts a replay with the log's init entry (block 0).
func NewReplayer(ctx context.Context, init *calllog.Entry, opts ReplayOptions) (*Replayer, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Replayer{next: 1, progress: opts.Progress}
	if init.Type != calllog.TypeInit {
		r.verdict.Divergence = &calllog.Divergence{Block: 0, Field: "type", Logged: init.Type, Replayed: calllog.TypeInit, Kind: calllog.KindInvalid}
		return r, nil
	}
	var err error
	key, errK := urlKey(init.FilesArchiveURL)
	content, errC := hex.DecodeString(init.FilesContentKey)
	if errK != nil || errC != nil || len(content) != ed25519.PublicKeySize {
		r.verdict.Divergence = &calllog.Divergence{Block: 0, Field: "filesArchiveUrl", Logged: init.FilesArchiveURL, Replayed: "a dat:// URL and a content key", Kind: calllog.KindInvalid}
		return r, nil
	}
	archive := opts.archive
	if archive == nil {
		storage := hyperdrive.MemoryStorage()
		if opts.ScratchDir != "" {
			if r.scratch, err = os.MkdirTemp(opts.ScratchDir, "nodevms-replay-"); err != nil {
				return nil, fmt.Errorf("core: a folder for the replay's archive: %w", err)
			}
			storage = hyperdrive.FlatStorage(r.scratch)
		}
		archive, err = hyperdrive.Open(hyperdrive.Options{
			Storage: storage, Key: key, ContentKey: content, Unsigned: true, Create: true, WriteBack: opts.ScratchDir != "",
		})
		if err != nil {
			r.removeScratch()
			return nil, err
		}
	}
	var oracles []sandbox.OracleValue
	var caller *string
	if init.Call != nil {
		oracles, caller = init.Oracles, init.Call.UserID
	}
	replay := &sandbox.Replay{Values: oracles}
	m, out, err := deploy(ctx, archive, init, caller, opts.Limits.ForReplay(), opts.Logger, replay, nil)
	if err != nil {
		if opts.archive == nil {
			archive.Close()
			r.removeScratch()
		}
		if d := divergenceOf(0, "init", err); d != nil {
			r.verdict.Divergence = d
			return r, nil
		}
		return nil, unverifiable(0, "init", err)
	}
	r.m = m
	if init.Call != nil || init.Result != nil {
		r.verdict.Divergence = compare(0, "init", init, out, replay)
	} else if m.script.HasMethod("init") {
		r.verdict.Divergence = &calllog.Divergence{Block: 0, Method: "init", Field: "result", Logged: "none", Replayed: "the script exports init", Kind: calllog.KindTampering}
	}
	if r.verdict.Divergence == nil && init.FilesRoot != nil && *init.FilesRoot != out.filesRoot {
		r.verdict.Divergence = &calllog.Divergence{Block: 0, Method: "init", Field: "filesRoot", Logged: init.FilesRoot.Metadata, Replayed: out.filesRoot.Metadata, Kind: calllog.KindTampering}
	}
	r.verdict.FilesVersion, r.verdict.FilesRoot = out.filesVersion, out.filesRoot
	return r, nil
}

// urlKey parses dat://<64 hex>.
func urlKey(url string) (ed25519.PublicKey, error) {
	key, err := hex.DecodeString(strings.TrimPrefix(url, "dat://"))
	if err != nil || len(key) != ed25519.PublicKeySize || !strings.HasPrefix(url, "dat://") {
		return nil, fmt.Errorf("%w: %q is not a dat:// URL", calllog.ErrEntry, url)
	}
	return key, nil
}

// Apply replays the call entry at block and compares. Once a divergence is
// found it is kept and further entries are ignored.
func (r *Replayer) Apply(ctx context.Context, block uint64, e *calllog.Entry) error {
	if r.verdict.Divergence != nil {
		return nil
	}
	if block != r.next {
		return fmt.Errorf("core: replay expected block %d, got %d", r.next, block)
	}
	r.next++
	if e.Type == calllog.TypeReload {
		return r.reload(block, e)
	}
	if e.Type != calllog.TypeCall {
		r.verdict.Divergence = &calllog.Divergence{Block: block, Field: "type", Logged: e.Type, Replayed: calllog.TypeCall, Kind: calllog.KindInvalid}
		return nil
	}
	if e.Call.MethodName == "init" {
		r.verdict.Divergence = &calllog.Divergence{Block: block, Method: "init", Field: "methodName", Logged: "init", Replayed: "init is not callable", Kind: calllog.KindTampering}
		return nil
	}
	seed, _ := e.SeedValue() // checked by calllog.DecodeEntry
	replay := &sandbox.Replay{Values: e.Oracles}
	out, err := r.m.run(ctx, callEnv{method: e.Call.MethodName, args: e.Call.Args, callerID: e.Call.UserID, time: e.Time, seed: seed}, replay)
	if err != nil {
		if d := divergenceOf(block, e.Call.MethodName, err); d != nil {
			r.verdict.Divergence = d
			return nil
		}
		return unverifiable(block, e.Call.MethodName, err)
	}
	r.verdict.Calls++
	r.verdict.FilesVersion, r.verdict.FilesRoot = out.filesVersion, out.filesRoot
	r.verdict.Divergence = compare(block, e.Call.MethodName, e, out, replay)
	if r.progress != nil {
		r.progress(block)
	}
	return nil
}

// reload replays a reload entry: the script's memory starts afresh from
// its code, loaded with the entry's clock and seed, in a log that allows
// it (SchemaAfresh); the archive, which a reload does not change, must be
// where the entry says.
func (r *Replayer) reload(block uint64, e *calllog.Entry) error {
	d := &calllog.Divergence{Block: block, Method: calllog.TypeReload}
	switch {
	case !r.m.afresh:
		d.Field, d.Logged, d.Replayed, d.Kind = "type", calllog.TypeReload, "no reload: the backend's memory is kept (schema 1)", calllog.KindInvalid
	case e.FilesVersion != r.verdict.FilesVersion || *e.FilesRoot != r.verdict.FilesRoot:
		d.Field, d.Kind = "filesRoot", calllog.KindTampering
		d.Logged = fmt.Sprintf("version %d, %s", e.FilesVersion, rootString(e.FilesRoot))
		d.Replayed = fmt.Sprintf("version %d, %s", r.verdict.FilesVersion, rootString(&r.verdict.FilesRoot))
	default:
		seed, _ := e.SeedValue() // checked by calllog.DecodeEntry
		err := r.m.reload(e.Time, seed)
		if err == nil {
			r.verdict.Reloads++
			if r.progress != nil {
				r.progress(block)
			}
			return nil
		}
		if errors.Is(err, sandbox.ErrTimeBudget) || errors.Is(err, sandbox.ErrMemoryBudget) || errors.Is(err, sandbox.ErrRuntimeFault) {
			return unverifiable(block, calllog.TypeReload, err)
		}
		// The host logs only a reload that loaded.
		d.Field, d.Logged, d.Replayed, d.Kind = "reload", "the script loaded", err.Error(), calllog.KindNondeterminism
	}
	r.verdict.Divergence = d
	return nil
}

// divergenceOf turns a call the replay could not finish into a divergence:
// a call the host logged must use no more oracle values than it
// recorded, call a method that exists, take arguments a script can be
// given, and nest no deeper than the stack limit (which the runtime
// counts exactly, the same on every machine). Running past the replay's
// own time or memory is not a divergence (see unverifiable).
func divergenceOf(block uint64, method string, err error) *calllog.Divergence {
	d := &calllog.Divergence{Block: block, Method: method, Field: "result", Logged: "a result", Replayed: err.Error(), Kind: calllog.KindNondeterminism}
	switch {
	case errors.Is(err, sandbox.ErrOracleMismatch):
		d.Field = "oracles"
	case errors.Is(err, sandbox.ErrNoMethod):
		d.Field, d.Kind = "methodName", calllog.KindTampering
	case errors.Is(err, sandbox.ErrArguments):
		d.Field, d.Logged, d.Kind = "call.args", "arguments", calllog.KindInvalid
	case errors.Is(err, sandbox.ErrStackDepth):
	default:
		return nil
	}
	return d
}

// unverifiable is the error of a replay that could not finish a logged
// call within its own limits (time, memory: generous, but this machine's
// and not the host's) or whose runtime failed: that says nothing about
// the host, so it is not a divergence, and the replay stops.
func unverifiable(block uint64, method string, err error) error {
	switch {
	case errors.Is(err, sandbox.ErrTimeBudget), errors.Is(err, sandbox.ErrMemoryBudget), errors.Is(err, sandbox.ErrRuntimeFault):
		return fmt.Errorf("%w: call log entry %d (%s): %w (a replay runs under four times --time-budget and --max-memory; raise them)",
			ErrUnverifiable, block, method, err)
	}
	return err
}

// compare checks a logged entry against a replay of it.
func compare(block uint64, method string, e *calllog.Entry, out outcome, replay *sandbox.Replay) *calllog.Divergence {
	// A value, copied to the heap only when returned: compare runs for
	// every entry replayed, and nearly all agree.
	d := calllog.Divergence{Block: block, Method: method}
	filesDiffer := e.Result == nil || e.Result.FilesVersion != out.filesVersion || e.FilesRoot == nil || *e.FilesRoot != out.filesRoot
	kind := calllog.KindTampering
	if filesDiffer {
		kind = calllog.KindNondeterminism
	}
	switch {
	case e.Result == nil:
		d.Field, d.Logged, d.Replayed, d.Kind = "result", "none", string(out.res), calllog.KindInvalid
	case replay.Used != len(replay.Values):
		d.Field, d.Kind = "oracles", calllog.KindNondeterminism
		d.Logged, d.Replayed = fmt.Sprintf("%d values", len(replay.Values)), fmt.Sprintf("%d used", replay.Used)
	case !jsonEqual(e.Result.Res, out.res):
		d.Field, d.Logged, d.Replayed, d.Kind = "res", string(e.Result.Res), string(out.res), kind
		if out.err != nil {
			d.Replayed += fmt.Sprintf(" (it threw %q)", out.err.Error())
		}
	case !reflect.DeepEqual(e.Result.Err, calllog.ShortError(out.err)) || !reflect.DeepEqual(e.Error, out.err):
		d.Field, d.Logged, d.Replayed, d.Kind = "err", describeErr(e.Error, e.Result.Err), describeErr(out.err, calllog.ShortError(out.err)), kind
	// The same result with other files: the call wrote something the log
	// does not explain. If the published archive agrees with the log (an
	// audit checks that), the host's own run wrote it: nondeterminism.
	case e.Result.FilesVersion != out.filesVersion:
		d.Field, d.Kind = "filesVersion", calllog.KindNondeterminism
		d.Logged, d.Replayed = fmt.Sprint(e.Result.FilesVersion), fmt.Sprint(out.filesVersion)
	case e.FilesRoot == nil || *e.FilesRoot != out.filesRoot:
		d.Field, d.Kind = "filesRoot", calllog.KindNondeterminism
		d.Logged, d.Replayed = rootString(e.FilesRoot), rootString(&out.filesRoot)
	default:
		return nil
	}
	found := d
	return &found
}

func describeErr(e *sandbox.ScriptError, short *string) string {
	switch {
	case e != nil:
		return fmt.Sprintf("%q", e.Error())
	case short != nil:
		return fmt.Sprintf("%q", *short)
	}
	return "none"
}

func rootString(r *calllog.FilesRoot) string {
	if r == nil {
		return "none"
	}
	return r.Metadata + "/" + r.Content
}

// jsonEqual compares two JSON texts as values.
func jsonEqual(a, b json.RawMessage) bool {
	if bytes.Equal(a, b) {
		return true
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

// Verdict is the replay so far.
func (r *Replayer) Verdict() Verdict { return r.verdict }

// Close releases the replay's archive (and removes its ScratchDir
// folder).
func (r *Replayer) Close() error {
	var err error
	if r.m != nil {
		err = r.m.archive.Close()
	}
	return errors.Join(err, r.removeScratch())
}

func (r *Replayer) removeScratch() error {
	if r.scratch == "" {
		return nil
	}
	dir := r.scratch
	r.scratch = ""
	return os.RemoveAll(dir)
}

// Replay replays a whole call log (whose blocks the feed has verified
// against its writer's signatures) and returns the verdict.
func Replay(ctx context.Context, log *hypercore.Feed, opts ReplayOptions) (Verdict, error) {
	r, err := replayLog(ctx, log, log.Length(), opts)
	if err != nil {
		return Verdict{}, err
	}
	defer r.Close()
	return r.Verdict(), nil
}

// replayLog replays the first n entries of log, reading them as it goes:
// it keeps none.
func replayLog(ctx context.Context, log *hypercore.Feed, n uint64, opts ReplayOptions) (*Replayer, error) {
	arr := opts.arrivals
	var init *calllog.Entry
	if arr != nil {
		b, ok, err := arr.block(ctx, 0)
		if err != nil {
			return nil, fmt.Errorf("core: call log block 0: %w", err)
		}
		if !ok {
			<-arr.over
			if arr.err != nil {
				return nil, arr.err
			}
			return nil, errors.New("core: the call log is empty")
		}
		if init, err = decodeEntry(0, b); err != nil {
			return nil, err
		}
	} else {
		if n == 0 {
			return nil, errors.New("core: the call log is empty")
		}
		var err error
		if init, err = readEntry(log, 0); err != nil {
			return nil, err
		}
	}
	r, err := NewReplayer(ctx, init, opts)
	if err != nil {
		return nil, err
	}
	if opts.check != nil {
		opts.check(0, init)
	}
	// Reading and decoding entries runs ahead on its own goroutine: it
	// costs about as much as running the calls.
	type decoded struct {
		e   *calllog.Entry
		err error
	}
	ahead := make(chan decoded, 1024)
	stop := make(chan struct{})
	decoding := make(chan struct{})
	defer func() {
		close(stop)
		<-decoding // and so no check runs after this returns
	}()
	go func() {
		defer close(decoding)
		defer close(ahead)
		if opts.checked != nil {
			defer opts.checked()
		}
		errStop := errors.New("stopped")
		scan := func(fn func(i uint64, b []byte) error) error { return log.Blocks(1, n, fn) }
		if arr != nil {
			scan = func(fn func(i uint64, b []byte) error) error { return arr.blocks(ctx, 1, fn) }
		}
		err := scan(func(i uint64, b []byte) error {
			e, err := decodeEntry(i, b)
			if arr != nil {
				// Past the snapshot's end, the replay stops.
				var in bool
				var aerr error
				if err == nil {
					in, aerr = arr.admits(ctx, i, e)
				} else {
					in, aerr = arr.within(ctx, i) // an entry that does not decode
				}
				if aerr != nil {
					return aerr
				}
				if !in {
					return errStop
				}
			}
			if err == nil && opts.check != nil {
				opts.check(i, e)
			}
			select {
			case ahead <- decoded{e, err}:
			case <-stop:
				return errStop
			}
			return err
		})
		if err != nil && err != errStop {
			var derr *calllog.Divergence
			if !errors.As(err, &derr) {
				select {
				case ahead <- decoded{nil, fmt.Errorf("core: call log: %w", err)}:
				case <-stop:
				}
			}
		}
	}()
	i := uint64(1)
	for d := range ahead {
		if r.verdict.Divergence != nil {
			break
		}
		if d.err != nil {
			var derr *calllog.Divergence
			if errors.As(d.err, &derr) {
				r.verdict.Divergence = derr
				break
			}
			r.Close()
			return nil, d.err
		}
		if opts.before != nil {
			if err := opts.before(r, d.e); err != nil {
				r.Close()
				return nil, err
			}
		}
		if err := r.Apply(ctx, i, d.e); err != nil {
			r.Close()
			return nil, err
		}
		i++
	}
	return r, nil
}

// readEntry reads and decodes log block i; a block that does not decode is
// a Divergence of kind KindInvalid.
func readEntry(log *hypercore.Feed, i uint64) (*calllog.Entry, error) {
	b, err := log.Get(i)
	if err != nil {
		return nil, fmt.Errorf("core: call log block %d: %w", i, err)
	}
	return decodeEntry(i, b)
}

// decodeEntry decodes log block i, as readEntry does.
func decodeEntry(i uint64, b []byte) (*calllog.Entry, error) {
	e, err := calllog.DecodeEntry(b)
	if err != nil {
		return nil, &calllog.Divergence{Block: i, Field: "entry", Logged: err.Error(), Replayed: "a valid entry", Kind: calllog.KindInvalid}
	}
	return e, nil
}
