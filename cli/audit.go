package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/nodevms/nodevms/audit"
	"github.com/nodevms/nodevms/checkpoint"
	"github.com/nodevms/nodevms/rpc"
	"github.com/nodevms/nodevms/sandbox"
	"github.com/nodevms/nodevms/server"
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
	var files, logURL, out, monitorName, checkpointsAddr string
	var once bool
	var network networkFlags
	var datPort int
	var host string
	fs.StringVar(&monitorName, "monitor-name", "nodevms-monitor", "")
	fs.StringVar(&checkpointsAddr, "checkpoints", "", "")
	fs.StringVar(&files, "files", "", "")
	fs.StringVar(&logURL, "log", "", "")
	fs.StringVar(&out, "out", "", "")
	fs.BoolVar(&once, "once", false, "")
	fs.IntVar(&datPort, "dat-port", 0, "")
	fs.StringVar(&host, "host", "127.0.0.1", "")
	network.register(fs)
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
	opts := audit.Options{Addr: pos[0], Out: out, Limits: sandbox.Limits{Time: timeBudget, Memory: uint64(memoryMiB) << 20}}
	for _, p := range []struct {
		flag, url string
		key       *[]byte
	}{{"files", files, &opts.Files}, {"log", logURL, &opts.Log}} {
		if !set[p.flag] {
			continue
		}
		key, err := audit.DatKey(p.url)
		if err != nil {
			fmt.Fprintf(stderr, "nodevms: --%s: %v\nrun 'nodevms --help' for usage\n", p.flag, err)
			return exitUsage
		}
		*p.key = key
	}
	if out != "" {
		// A monitor cosigns what it verified, with a key kept in its folder.
		if err := os.MkdirAll(out, 0o755); err != nil {
			fmt.Fprintf(stderr, "nodevms: %v\n", err)
			return auditFailed
		}
		key, err := rpc.LoadOrCreateKey(filepath.Join(out, "monitor.key"))
		if err == nil {
			opts.Monitor, err = checkpoint.NewSigner(monitorName, key)
		}
		if err != nil {
			fmt.Fprintf(stderr, "nodevms: --monitor-name: %v\n", err)
			return exitUsage
		}
	} else if checkpointsAddr != "" {
		fmt.Fprintf(stderr, "nodevms: --checkpoints needs --out: a monitor keeps its checkpoints there\nrun 'nodevms --help' for usage\n")
		return exitUsage
	}
	if strings.HasPrefix(opts.Addr, "dat://") && !network.on() {
		fmt.Fprintf(stderr, "nodevms: %s is found on the Dat network: say how (--mdns, --discovery or --dht-bootstrap)\nrun 'nodevms --help' for usage\n", opts.Addr)
		return exitUsage
	}
	if err := network.check(host, out != "" && !once); err != nil {
		fmt.Fprintf(stderr, "nodevms: %v\nrun 'nodevms --help' for usage\n", err)
		return exitUsage
	}
	if network.on() {
		state := ""
		if out != "" {
			state = filepath.Join(out, "dht-nodes")
		}
		peers, stop, err := network.start(host, state)
		if err != nil {
			fmt.Fprintf(stderr, "nodevms: %v\n", err)
			return auditFailed
		}
		defer stop()
		opts.Network = peers
	}
	replay := opts.Limits.ForReplay()
	tuneGC(replay.Memory + replay.Retained)
	defer governAuditHeap()()
	r := &auditReport{stdout: stdout, stderr: stderr, bars: isTerminal(stderr), checkpointsAddr: checkpointsAddr}
	opts.Progress = r.progress
	opts.Downloaded = func(d audit.Download) {
		r.finishBar()
		fmt.Fprintf(stderr, "downloaded %d blocks (%.1f MB) in %.1f s: call log %d, files %d + %d\n",
			d.Blocks, float64(d.Bytes)/1e6, d.Duration.Seconds(), d.LogLength, d.Metadata, d.Content)
	}
	code, err := r.run(ctx, opts, out != "" && !once, net.JoinHostPort(host, strconv.Itoa(datPort)))
	r.finishBar()
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

// isTerminal reports whether w is a terminal. Progress bars redraw their
// line with \r, which only a terminal shows as one line: in a pipe or a
// file they are noise.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// auditReport prints an audit: its progress on stderr (bars, on a
// terminal), its verdict on stdout.
type auditReport struct {
	stdout, stderr  io.Writer
	bars            bool
	checkpointsAddr string // where a following monitor serves its checkpoints
	bar             *progressbar.ProgressBar
	stage           audit.Stage
}

// run audits, and follows the host if follow is set (with --out), and
// returns the exit code; an error is an audit that could not be done.
func (r *auditReport) run(ctx context.Context, opts audit.Options, follow bool, rehostAddr string) (int, error) {
	a, err := audit.Open(ctx, opts)
	if err != nil {
		return 0, err
	}
	defer a.Close()
	res, err := a.Audit(ctx)
	r.finishBar()
	if err != nil {
		return 0, err
	}
	if res.Outcome != audit.Verified {
		r.verdict(res)
		return auditDivergence, nil
	}
	v := res.Verdict
	fmt.Fprintf(r.stdout, "VERIFIED %s; files at version %d, root %s\n", v.Replayed(), v.FilesVersion, v.FilesRoot.Metadata)
	if !follow {
		return auditVerified, nil
	}
	ln, err := net.Listen("tcp", rehostAddr)
	if err != nil {
		return 0, err
	}
	if opts.Monitor != nil {
		fmt.Fprintf(r.stdout, "Cosigning checkpoints as %s\n", opts.Monitor.VerifierKey())
	}
	if r.checkpointsAddr != "" {
		hl, err := net.Listen("tcp", r.checkpointsAddr)
		if err != nil {
			return 0, err
		}
		hs := &http.Server{Handler: a.CheckpointHandler(), ReadHeaderTimeout: 10 * time.Second}
		go hs.Serve(hl)
		defer hs.Close()
		fmt.Fprintf(r.stdout, "Checkpoints at http://%s/checkpoint\n", server.DisplayAddr(hl.Addr()))
	}
	res, err = a.Follow(ctx, ln, audit.FollowEvents{
		Cosigned: func(n *checkpoint.Note) {
			fmt.Fprintf(r.stdout, "cosigned the checkpoint of length %d\n", n.Length)
		},
		Rehosting: func(addr net.Addr) {
			fmt.Fprintf(r.stdout, "Following the host; rehosting at %s (Ctrl+C to stop)\n", server.DisplayAddr(addr))
		},
		Verified: func(block, version uint64) {
			fmt.Fprintf(r.stdout, "verified entry %d; files at version %d\n", block, version)
		},
		SaveFailed: func(err error) { fmt.Fprintf(r.stderr, "nodevms: %v\n", err) },
	})
	if err != nil {
		return 0, err
	}
	if res.Outcome != audit.Verified {
		r.verdict(res)
		return auditDivergence, nil
	}
	// Ctrl+C is how following ends: the log was verified so far.
	fmt.Fprintf(r.stdout, "Stopped after verifying %d entries.\n", res.Entries)
	return auditVerified, nil
}

// verdict prints a divergence or a fork.
func (r *auditReport) verdict(res audit.Result) {
	switch {
	case res.Mismatch != nil:
		m := res.Mismatch
		fmt.Fprintf(r.stdout, "DIVERGENCE: the host serves the %s %s, not dat://%x\n", m.What, m.Served, m.Pinned)
	case res.Fork != nil && res.Fork.Err != nil:
		fmt.Fprintf(r.stdout, "FORK: the host sent call log data that does not verify against the history this monitor holds: %v\n", res.Fork.Err)
	case res.Fork != nil:
		f := res.Fork
		fmt.Fprintf(r.stdout, "FORK: the host's call log is not the history this monitor verified before\n"+
			"  verified: length %d, tree hash %s, signature %s\n"+
			"  now:      length %d, tree hash %s, signature %s\n"+
			"  both are signed with the call log's key %x\n",
			f.Verified.Length, f.Verified.TreeHash, f.Verified.Signature, f.Now.Length, f.Now.TreeHash, f.Now.Signature, f.Key)
		switch {
		case f.Evidence != "":
			fmt.Fprintf(r.stdout, "  evidence anyone can check: %s (nodevms evidence verify %s)\n", f.Evidence, f.Evidence)
		case f.EvidenceErr != nil:
			fmt.Fprintf(r.stdout, "  no evidence file: %v\n", f.EvidenceErr)
		}
	case res.Verdict.Divergence != nil:
		d := res.Verdict.Divergence
		fmt.Fprintf(r.stdout, "DIVERGENCE at call log entry %d (%s): %s differs\n  logged:   %s\n  replayed: %s\n  this looks like %s\n",
			d.Block, d.Method, d.Field, d.Logged, d.Replayed, d.Kind)
	}
}

// progress draws the audit's progress bars, on a terminal.
func (r *auditReport) progress(stage audit.Stage, done, total int64) {
	if !r.bars {
		return
	}
	if r.bar == nil || r.stage != stage {
		r.finishBar()
		desc, unit := "downloading blocks", "blocks"
		if stage == audit.Replaying {
			desc, unit = "replaying calls", "calls"
		}
		r.stage = stage
		r.bar = progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(r.stderr), progressbar.OptionSetDescription(desc),
			progressbar.OptionShowCount(), progressbar.OptionShowIts(), progressbar.OptionSetItsString(unit),
			progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionClearOnFinish())
	}
	r.bar.Set64(done)
}

func (r *auditReport) finishBar() {
	if r.bar != nil {
		r.bar.Finish()
		r.bar = nil
	}
}
