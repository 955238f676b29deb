package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nodevms/nodevms/core"
	"github.com/nodevms/nodevms/hypercore"
	"github.com/nodevms/nodevms/hypercore/protocol"
	"github.com/nodevms/nodevms/hyperdrive"
	"github.com/nodevms/nodevms/rpc"
)

// head is the call log as a monitor last verified it: enough to prove a
// fork if the host later shows another history under the same key.
type head struct {
	Length    uint64 `json:"length"`
	TreeHash  string `json:"treeHash"`
	Signature string `json:"signature"`
}

func headFile(out string) string { return filepath.Join(out, "verified-head.json") }

func readHead(log *hypercore.Feed, length uint64) (head, error) {
	th, err := log.TreeHash(length)
	if err != nil {
		return head{}, err
	}
	sig, _, err := log.Signature(length - 1)
	if err != nil {
		return head{}, err
	}
	return head{Length: length, TreeHash: hex.EncodeToString(th[:]), Signature: hex.EncodeToString(sig)}, nil
}

// saveHead records the log's verified head in the --out folder.
func saveHead(out string, log *hypercore.Feed) error {
	h, err := readHead(log, log.Length())
	if err != nil {
		return err
	}
	raw, _ := json.MarshalIndent(h, "", "  ")
	return os.WriteFile(headFile(out), raw, 0o644)
}

// wsDialer dials the backend's replication path.
func (a *auditor) wsDialer() (func(context.Context) (io.ReadWriteCloser, error), error) {
	u, err := url.Parse(rpc.BackendURL(a.addr))
	if err != nil {
		return nil, err
	}
	u.Path = a.info.ReplicationPath
	return func(ctx context.Context) (io.ReadWriteCloser, error) {
		ws, resp, err := rpc.DialWebSocket(ctx, u.String(), nil)
		if err != nil {
			if resp != nil {
				return nil, fmt.Errorf("replication at %s: %s", u, resp.Status)
			}
			return nil, fmt.Errorf("replication at %s: %w", u, err)
		}
		return rpc.NewWebSocketStream(ws), nil
	}, nil
}

// checkFork compares the host's call log with the head a previous audit
// verified (in --out): a shorter log, or one whose tree at the verified
// length differs, is another history under the same key. It returns the
// report, or "" when there is nothing to compare or they agree.
func (a *auditor) checkFork(ctx context.Context, local *hypercore.Feed) (string, error) {
	if a.out == "" {
		return "", nil
	}
	raw, err := os.ReadFile(headFile(a.out))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	var mine head
	if err := json.Unmarshal(raw, &mine); err != nil {
		return "", fmt.Errorf("%s: %w", headFile(a.out), err)
	}
	theirs, err := hypercore.Open(hypercore.Config{Storage: hypercore.NewMemoryStorage(), PublicKey: local.PublicKey(), Create: true})
	if err != nil {
		return "", err
	}
	defer theirs.Close()
	dial, err := a.wsDialer()
	if err != nil {
		return "", err
	}
	conn, err := dial(ctx)
	if err != nil {
		return "", err
	}
	if err := protocol.Replicate(ctx, conn, protocol.Options{}, theirs); err != nil {
		return "", fmt.Errorf("fetching the host's call log: %w", err)
	}
	// Replication ends without an error when ctx does, with part of the
	// log: compared with the verified head, it would look like a fork.
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if theirs.Length() == 0 {
		return "", errors.New("the host's call log is empty")
	}
	now, err := readHead(theirs, theirs.Length())
	if err != nil {
		return "", err
	}
	if theirs.Length() >= mine.Length {
		if at, err := readHead(theirs, mine.Length); err == nil && at.TreeHash == mine.TreeHash {
			return "", nil
		}
	}
	return fmt.Sprintf("FORK: the host's call log is not the history this monitor verified before\n"+
		"  verified: length %d, tree hash %s, signature %s\n"+
		"  now:      length %d, tree hash %s, signature %s\n"+
		"  both are signed with the call log's key %x\n",
		mine.Length, mine.TreeHash, mine.Signature, now.Length, now.TreeHash, now.Signature, local.PublicKey()), nil
}

// followHost keeps the replicas live, rehosts them, and checks each new
// entry as it arrives, until ctx ends or something diverges. Ctrl+C is how
// following ends, so it exits 0 (the log was verified so far), whatever
// it interrupts.
func (a *auditor) followHost(ctx context.Context, log *hypercore.Feed, archive *hyperdrive.Archive) int {
	var mon *core.Monitor
	stopped := func() int {
		n := uint64(0)
		if mon != nil {
			n = mon.Verified()
		}
		fmt.Fprintf(a.stdout, "Stopped after verifying %d entries.\n", n)
		return auditVerified
	}
	mon, err := core.NewMonitor(ctx, log, archive, core.AuditOptions{Signed: a.info.Auth == "signed", ReplayOptions: core.ReplayOptions{Limits: a.limits}})
	if err != nil {
		if ctx.Err() != nil {
			return stopped()
		}
		fmt.Fprintf(a.stderr, "nodevms: %v\n", err)
		return auditFailed
	}
	defer mon.Close()
	if v, err := mon.Advance(ctx); err != nil || v.Divergence != nil {
		if ctx.Err() != nil {
			return stopped()
		}
		return a.reportFollow(v, err)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(a.datPort)))
	if err != nil {
		fmt.Fprintf(a.stderr, "nodevms: %v\n", err)
		return auditFailed
	}
	lookup := archive.Lookup()
	logDK := log.DiscoveryKey()
	go protocol.ServeListener(ctx, ln, protocol.Options{Live: true}, func(dk [32]byte) *hypercore.Feed {
		if dk == logDK {
			return log
		}
		return lookup(dk)
	})
	fmt.Fprintf(a.stdout, "Following the host; rehosting at %s (Ctrl+C to stop)\n", displayAddr(ln.Addr()))
	forks := make(chan error, 1)
	go a.replicateLive(ctx, log, archive, forks)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	verified := mon.Verified()
	for {
		select {
		case <-ctx.Done():
			return stopped()
		case err := <-forks:
			fmt.Fprintf(a.stdout, "FORK: the host sent call log data that does not verify against the history this monitor holds: %v\n", err)
			return auditDivergence
		case <-log.Changed():
		case <-tick.C:
		}
		v, err := mon.Advance(ctx)
		if err != nil || v.Divergence != nil {
			if ctx.Err() != nil {
				return stopped()
			}
			return a.reportFollow(v, err)
		}
		for ; verified < mon.Verified(); verified++ {
			fmt.Fprintf(a.stdout, "verified entry %d; files at version %d\n", verified, v.FilesVersion)
		}
		if err := saveHead(a.out, log); err != nil {
			fmt.Fprintf(a.stderr, "nodevms: %v\n", err)
		}
	}
}

func (a *auditor) reportFollow(v core.Verdict, err error) int {
	if err != nil {
		fmt.Fprintf(a.stderr, "nodevms: could not audit: %v\n", err)
		return auditFailed
	}
	d := v.Divergence
	fmt.Fprintf(a.stdout, "DIVERGENCE at call log entry %d (%s): %s differs\n  logged:   %s\n  replayed: %s\n  this looks like %s\n",
		d.Block, d.Method, d.Field, d.Logged, d.Replayed, d.Kind)
	return auditDivergence
}

// replicateLive keeps live streams to the host for the log and the archive,
// reconnecting when they drop; data that does not verify is a fork.
func (a *auditor) replicateLive(ctx context.Context, log *hypercore.Feed, archive *hyperdrive.Archive, forks chan<- error) {
	dial, err := a.wsDialer()
	if err != nil {
		return
	}
	run := func(replicate func(io.ReadWriteCloser) error) {
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
	go run(func(c io.ReadWriteCloser) error { return protocol.Replicate(ctx, c, opts, log) })
	run(func(c io.ReadWriteCloser) error { return archive.Replicate(ctx, c, opts) })
}
