package audit

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/nodevms/nodevms/checkpoint"
	"github.com/nodevms/nodevms/core"
	"github.com/nodevms/nodevms/evidence"
	"github.com/nodevms/nodevms/hypercore"
	"github.com/nodevms/nodevms/hypercore/protocol"
)

// Head is a call log as an auditor verified it: enough to prove a fork if
// the host later shows another history under the same key.
type Head struct {
	Length    uint64 `json:"length"`
	TreeHash  string `json:"treeHash"`
	Signature string `json:"signature"`
}

func headFile(out string) string { return filepath.Join(out, "verified-head.json") }

func readHead(log *hypercore.Feed, length uint64) (Head, error) {
	th, err := log.TreeHash(length)
	if err != nil {
		return Head{}, err
	}
	sig, _, err := log.Signature(length - 1)
	if err != nil {
		return Head{}, err
	}
	return Head{Length: length, TreeHash: hex.EncodeToString(th[:]), Signature: hex.EncodeToString(sig)}, nil
}

// saveHead records the log's verified head in the replicas' folder.
func saveHead(out string, log *hypercore.Feed) error {
	h, err := readHead(log, log.Length())
	if err != nil {
		return err
	}
	raw, _ := json.MarshalIndent(h, "", "  ")
	return os.WriteFile(headFile(out), raw, 0o644)
}

// checkFork compares the host's call log with the head a previous audit
// verified (in Options.Out): a shorter log, or one whose tree at the
// verified length differs, is another history under the same key. It
// returns nil when there is nothing to compare or they agree.
func (a *Auditor) checkFork(ctx context.Context) (*Fork, error) {
	if a.opts.Out == "" {
		return nil, nil
	}
	raw, err := os.ReadFile(headFile(a.opts.Out))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var mine Head
	if err := json.Unmarshal(raw, &mine); err != nil {
		return nil, fmt.Errorf("%s: %w", headFile(a.opts.Out), err)
	}
	theirs, err := hypercore.Open(hypercore.Config{Storage: hypercore.NewMemoryStorage(), PublicKey: a.log.PublicKey(), Create: true})
	if err != nil {
		return nil, err
	}
	defer theirs.Close()
	dial := a.dialerFor(a.log.DiscoveryKey())
	conn, err := dial(ctx)
	if err != nil {
		return nil, err
	}
	if err := protocol.Replicate(ctx, conn, protocol.Options{}, theirs); err != nil {
		return nil, fmt.Errorf("fetching the host's call log: %w", err)
	}
	// Replication ends without an error when ctx does, with part of the
	// log: compared with the verified head, it would look like a fork.
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if theirs.Length() == 0 {
		return nil, errors.New("the host's call log is empty")
	}
	now, err := readHead(theirs, theirs.Length())
	if err != nil {
		return nil, err
	}
	if theirs.Length() >= mine.Length {
		if at, err := readHead(theirs, mine.Length); err == nil && at.TreeHash == mine.TreeHash {
			return nil, nil
		}
	} else if a.byKey {
		// A peer found by key may be behind the head verified before (a
		// rehoster catching up): only another tree at its length is a
		// fork.
		ours, err1 := a.log.TreeHash(theirs.Length())
		at, err2 := theirs.TreeHash(theirs.Length())
		if err1 == nil && err2 == nil && ours == at {
			return nil, nil
		}
	}
	fork := &Fork{Key: a.log.PublicKey(), Verified: mine, Now: now}
	path, err := a.writeEvidence(mine, theirs)
	if err != nil {
		fork.EvidenceErr = err
	}
	fork.Evidence = path
	return fork, nil
}

// writeEvidence writes the evidence that the head verified before (mine,
// whose history the replicas hold) and the host's log now (theirs) are
// two histories under one key, to a new file in Options.Out, and returns
// its path.
func (a *Auditor) writeEvidence(mine Head, theirs *hypercore.Feed) (string, error) {
	roots, err := a.log.Roots(mine.Length)
	if err != nil {
		return "", fmt.Errorf("the verified head's roots: %w", err)
	}
	sig, err := hex.DecodeString(mine.Signature)
	if err != nil {
		return "", fmt.Errorf("the verified head's signature: %w", err)
	}
	verified := evidence.Head{Length: mine.Length, Roots: roots, Signature: sig}
	now, err := evidence.HeadOf(theirs, theirs.Length())
	if err != nil {
		return "", err
	}
	longer := theirs
	if mine.Length > now.Length {
		longer = a.log
	}
	e, err := evidence.Find(a.log.PublicKey(), verified, now, longer)
	if err != nil {
		return "", err
	}
	data, err := e.Marshal()
	if err != nil {
		return "", err
	}
	path := filepath.Join(a.opts.Out, fmt.Sprintf("fork-evidence-%d-%d.json", mine.Length, now.Length))
	return path, writeAtomically(path, data)
}

// FollowEvents are told what Follow does; any may be nil.
type FollowEvents struct {
	// Rehosting: the replicas are served to other peers at addr.
	Rehosting func(addr net.Addr)
	// Verified: entry block checked, leaving the archive at version.
	Verified func(block, version uint64)
	// SaveFailed: the verified head could not be recorded, or its
	// checkpoint cosigned (following goes on).
	SaveFailed func(err error)
	// Cosigned: the monitor cosigned a checkpoint (Options.Monitor).
	Cosigned func(n *checkpoint.Note)
}

// Follow keeps the replicas live after a verified Audit, rehosts them on
// rehost (which it owns from then on; nil: none), and checks each new
// entry as it arrives, recording the verified head in Options.Out, until
// ctx ends (Verified; Result.Entries says how far) or the host diverges or
// forks. An error is a check that could not be done.
func (a *Auditor) Follow(ctx context.Context, rehost net.Listener, events FollowEvents) (Result, error) {
	if a.log == nil {
		return Result{}, errors.New("audit: Follow before a verified Audit")
	}
	mon, err := core.NewMonitor(ctx, a.log, a.archive, core.AuditOptions{Signed: a.info.Auth == "signed", ReplayOptions: core.ReplayOptions{Limits: a.opts.Limits, ScratchDir: os.TempDir()}})
	if err != nil {
		if ctx.Err() != nil {
			return Result{Outcome: Verified}, nil
		}
		return Result{}, err
	}
	defer mon.Close()
	// stopped is how following ends: the log was verified so far.
	stopped := func(v core.Verdict) (Result, error) {
		return Result{Outcome: Verified, Verdict: v, Entries: mon.Verified()}, nil
	}
	verdict := func(v core.Verdict, err error) (Result, error) {
		if ctx.Err() != nil {
			return stopped(v)
		}
		if err != nil {
			return Result{}, err
		}
		return Result{Outcome: Diverged, Verdict: v, Entries: mon.Verified()}, nil
	}
	v, err := mon.Advance(ctx)
	if err != nil || v.Divergence != nil {
		return verdict(v, err)
	}
	if rehost != nil {
		lookup := a.archive.Lookup()
		logDK := a.log.DiscoveryKey()
		go protocol.ServeListener(ctx, rehost, protocol.Options{Live: true}, func(dk [32]byte) *hypercore.Feed {
			if dk == logDK {
				return a.log
			}
			return lookup(dk)
		})
		if tcp, ok := rehost.Addr().(*net.TCPAddr); ok && a.opts.Network != nil {
			a.opts.Network.Announce(logDK, tcp.Port)
			a.opts.Network.Announce(a.archive.Metadata().DiscoveryKey(), tcp.Port)
		}
		if events.Rehosting != nil {
			events.Rehosting(rehost.Addr())
		}
	}
	forks := make(chan error, 1)
	go a.replicateLive(ctx, forks)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	verified := mon.Verified()
	for {
		select {
		case <-ctx.Done():
			return stopped(v)
		case err := <-forks:
			return Result{Outcome: Forked, Verdict: v, Fork: &Fork{Key: a.log.PublicKey(), Err: err, Following: true}, Entries: mon.Verified()}, nil
		case <-a.log.Changed():
		case <-tick.C:
		}
		v, err = mon.Advance(ctx)
		if err != nil || v.Divergence != nil {
			return verdict(v, err)
		}
		for ; verified < mon.Verified(); verified++ {
			if events.Verified != nil {
				events.Verified(verified, v.FilesVersion)
			}
		}
		if a.opts.Out != "" {
			if err := saveHead(a.opts.Out, a.log); err != nil && events.SaveFailed != nil {
				events.SaveFailed(err)
			}
		}
		if n, err := a.cosign(mon.Verified()); err != nil && events.SaveFailed != nil {
			events.SaveFailed(fmt.Errorf("cosigning a checkpoint: %w", err))
		} else if n != nil && events.Cosigned != nil {
			events.Cosigned(n)
		}
	}
}

// replicateLive keeps live streams to the host for the log and the archive,
// reconnecting when they drop; data that does not verify is a fork.
func (a *Auditor) replicateLive(ctx context.Context, forks chan<- error) {
	run := func(dial func(context.Context) (io.ReadWriteCloser, error), replicate func(io.ReadWriteCloser) error) {
		for ctx.Err() == nil {
			conn, err := dial(ctx)
			if err == nil {
				err = replicate(conn)
			}
			if errors.Is(err, hypercore.ErrVerify) {
				select {
				case forks <- err:
				default:
				}
				return
			}
			select {
			case <-ctx.Done():
			case <-time.After(2 * time.Second):
			}
		}
	}
	opts := protocol.Options{Live: true}
	go run(a.dialerFor(a.log.DiscoveryKey()), func(c io.ReadWriteCloser) error { return protocol.Replicate(ctx, c, opts, a.log) })
	run(a.dialerFor(a.archive.Metadata().DiscoveryKey()), func(c io.ReadWriteCloser) error { return a.archive.Replicate(ctx, c, opts) })
}
