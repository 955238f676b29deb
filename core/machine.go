package core

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/nodevms/nodevms/calllog"
	"github.com/nodevms/nodevms/hyperdrive"
	"github.com/nodevms/nodevms/sandbox"
)

// machine runs a script against a files archive: the part of NodeVMS that
// must behave the same on the host and in every replay. It does no I/O of
// its own beyond the archive it is given.
type machine struct {
	script  *sandbox.Script
	archive *hyperdrive.Archive
	files   *hyperdrive.Files
	// quota, on a host, bounds each call's writes, and maxEntry what its
	// log entry records; replays have neither.
	quota    hyperdrive.Quota
	maxEntry int
	log      *slog.Logger
	// code, afresh and limits are what a reload needs: the script, whether
	// the log lets its memory start afresh (SchemaAfresh), and the limits
	// its top-level code runs under (the host's, or a replay's).
	code   string
	afresh bool
	limits sandbox.Limits
	// unrecorded is the test-only nondeterministic Math.random (see
	// sandbox.Call.UnrecordedRandom).
	unrecorded func() float64

	// lastRoot is the last root computed and the tree hashes it spells:
	// most calls of most scripts leave the files as they were.
	lastRoot           calllog.FilesRoot
	lastMeta, lastData [32]byte
}

// callEnv is everything a call depends on besides the state, and, on a
// host, what to do if it runs long.
type callEnv struct {
	method   string
	args     json.RawMessage
	callerID *string
	time     int64
	seed     uint64
	slow     func() // sandbox.Call.Slow; no part of the outcome
}

// outcome is what a call did.
type outcome struct {
	res          json.RawMessage
	err          *sandbox.ScriptError
	filesVersion uint64
	filesRoot    calllog.FilesRoot
}

// manifest is what deploy writes as /dat.json.
type manifest struct {
	URL   string `json:"url"`
	Title string `json:"title"`
}

// deploy brings an archive and a script to the state an init entry
// describes: it writes /dat.json and /backend.js (with the entry's time),
// loads the script (its top-level code runs with the entry's clock and
// seed), and runs its init export, if any, as a call. The archive must be
// empty and writable.
func deploy(ctx context.Context, archive *hyperdrive.Archive, init *calllog.Entry, caller *string, limits sandbox.Limits, log *slog.Logger, oracles sandbox.Oracles, unrecorded func() float64) (*machine, outcome, error) {
	seed, err := init.SeedValue()
	if err != nil {
		return nil, outcome{}, err
	}
	when := time.UnixMilli(init.Time)
	o := hyperdrive.WriteOptions{Mtime: when, Ctime: when}
	m := &machine{archive: archive, files: archive.Files(), log: log, unrecorded: unrecorded,
		code: init.Code, afresh: init.Memory == calllog.MemoryAfresh, limits: limits}
	if err := archive.Begin(); err != nil {
		return nil, outcome{}, err
	}
	raw, _ := json.MarshalIndent(manifest{URL: init.FilesArchiveURL, Title: init.Title}, "", "  ")
	if err := m.files.WriteFile("/dat.json", raw, o); err != nil {
		archive.Rollback()
		return nil, outcome{}, fmt.Errorf("core: deploy: %w", err)
	}
	if err := m.files.WriteFile("/backend.js", []byte(init.Code), o); err != nil {
		archive.Rollback()
		return nil, outcome{}, fmt.Errorf("core: deploy: %w", err)
	}
	if err := archive.Commit(); err != nil {
		return nil, outcome{}, err
	}
	m.script, err = sandbox.Load(init.Code, sandbox.Options{Time: init.Time, Seed: seed, Limits: limits, Logger: log})
	if err != nil {
		return nil, outcome{}, err
	}
	out := outcome{res: json.RawMessage("null"), filesVersion: archive.Version()}
	if m.script.HasMethod("init") {
		out, err = m.run(ctx, callEnv{method: "init", args: json.RawMessage("[]"), callerID: caller, time: init.Time, seed: seed}, oracles)
		if err != nil {
			return nil, outcome{}, err
		}
	}
	out.filesRoot, err = m.root()
	return m, out, err
}

// setLimits sets the limits of the script's calls and of its reloads.
func (m *machine) setLimits(l sandbox.Limits) {
	m.limits = l
	m.script.SetLimits(l)
}

// reload replaces the script with a fresh load of its code, whose
// top-level code runs with a reload entry's clock and seed: its memory
// starts afresh, and the archive is as it was (top-level code has no
// files). The machine's script is unchanged if the load fails.
func (m *machine) reload(time int64, seed uint64) error {
	s, err := sandbox.Load(m.code, sandbox.Options{Time: time, Seed: seed, Limits: m.limits, Logger: m.log})
	if err != nil {
		return err
	}
	m.script = s
	return nil
}

// run runs one call in its own archive transaction: a call the sandbox
// stops (a budget, a canceled context) leaves no trace in the archive, and
// leaves the machine's script broken.
func (m *machine) run(ctx context.Context, env callEnv, oracles sandbox.Oracles) (outcome, error) {
	if err := m.archive.Begin(); err != nil {
		return outcome{}, err
	}
	files := m.files
	if m.quota != (hyperdrive.Quota{}) {
		files = files.WithQuota(m.quota)
	}
	r, err := m.script.Call(ctx, sandbox.Call{
		Method:           env.method,
		Args:             env.args,
		CallerID:         env.callerID,
		Time:             env.time,
		Seed:             env.seed,
		Files:            files,
		Oracles:          oracles,
		UnrecordedRandom: m.unrecorded,
		Slow:             env.slow,
	})
	if err == nil && m.maxEntry > 0 {
		if n := outcomeSize(r, oracles); n > m.maxEntry {
			err = fmt.Errorf("%w: %d bytes of result, error and oracle values, more than %d", ErrEntryTooLarge, n, m.maxEntry)
		}
	}
	if err != nil {
		if rerr := m.archive.Rollback(); rerr != nil {
			return outcome{}, fmt.Errorf("%w (and the rollback failed: %v)", err, rerr)
		}
		return outcome{}, err
	}
	if err := m.archive.Commit(); err != nil {
		return outcome{}, err
	}
	out := outcome{res: r.Value, err: r.Error, filesVersion: m.archive.Version()}
	out.filesRoot, err = m.root()
	return out, err
}

// outcomeSize is what a call's outcome adds to its log entry: the result,
// the error, and the oracle values recorded.
func outcomeSize(r sandbox.Result, oracles sandbox.Oracles) int {
	n := len(r.Value)
	if r.Error != nil {
		n += len(r.Error.Name) + len(r.Error.Message)
	}
	if rec, ok := oracles.(*sandbox.Record); ok {
		for _, v := range rec.Values {
			n += len(v.Value)
			if v.Error != nil {
				n += len(v.Error.Name) + len(v.Error.Message)
			}
		}
	}
	return n
}

// root returns the archive's tree hashes.
func (m *machine) root() (calllog.FilesRoot, error) {
	meta, content := m.archive.Metadata(), m.archive.Content()
	a, err := meta.TreeHash(meta.Length())
	if err != nil {
		return calllog.FilesRoot{}, err
	}
	b, err := content.TreeHash(content.Length())
	if err != nil {
		return calllog.FilesRoot{}, err
	}
	if n := content.Length(); a != m.lastMeta || b != m.lastData || n != m.lastRoot.ContentLength || m.lastRoot.Metadata == "" {
		m.lastRoot = calllog.FilesRoot{Metadata: hex.EncodeToString(a[:]), Content: hex.EncodeToString(b[:]), ContentLength: n}
		m.lastMeta, m.lastData = a, b
	}
	return m.lastRoot, nil
}
