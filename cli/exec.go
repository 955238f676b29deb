package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"time"

	"github.com/chzyer/readline"

	"github.com/nodevms/nodevms"
	"github.com/nodevms/nodevms/core"
	"github.com/nodevms/nodevms/discovery"
	"github.com/nodevms/nodevms/hypercore"
	"github.com/nodevms/nodevms/hypercore/protocol"
	"github.com/nodevms/nodevms/hyperdrive"
	"github.com/nodevms/nodevms/rpc"
	"github.com/nodevms/nodevms/sandbox"
	"github.com/nodevms/nodevms/server"
)

// parseInterleaved parses flags that may come before or after positional
// arguments, as users type them.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return positional, nil
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
}

type execFlags struct {
	dir, host, title, sync   string
	memory                   string // "kept", "afresh", or "" (as deployed; kept for a deploy)
	port, datPort, queue     int
	maxConnections, maxPeers int
	debug, requireSigned     bool
	network                  networkFlags  // announce the feeds on the Dat network
	pollFor                  time.Duration // a quick caller's reader polls this long (rpc.Options)
	// What a backend may use: each call's time and memory, what it keeps,
	// and its disk.
	timeBudget                         time.Duration
	memoryMiB, retainedMiB             int
	archiveQuotaMiB, callWriteQuotaMiB int
	entryMiB                           int
}

// The defaults of what a backend may use.
const (
	defaultMemoryMiB         = 256
	defaultRetainedMiB       = 512
	defaultArchiveQuotaMiB   = 1024
	defaultCallWriteQuotaMiB = 64
	defaultEntryMiB          = 4
)

// How long a reader whose caller has been quick polls for its next
// request: about the round trip of a small call on a loopback or LAN
// connection, so that a caller sending call after call finds the reader
// awake. At most one reader polls at a time (rpc.Options.PollFor). The
// upper bound keeps a mistyped flag from burning a core.
//
// Only --sync none polls by default. There a group's largest fixed cost is
// the reader's wake-up, which polling saves: 16 calls in flight on one
// connection went from 27,000-32,000 to 37,000-51,000 calls/s (counter,
// 2-core VM). With --sync always it is the fsync, and a reader that wakes
// later finds more calls to share it: polling made groups smaller and cost
// 4 to 13% there.
const (
	defaultPollFor = 200 * time.Microsecond
	maxPollFor     = 10 * time.Millisecond
)

// limits are the sandbox's budgets the flags set.
func (f execFlags) limits() sandbox.Limits {
	return sandbox.Limits{
		Time:     f.timeBudget,
		Memory:   uint64(f.memoryMiB) << 20,
		Retained: uint64(f.retainedMiB) << 20,
	}
}

// quota is the archive's quota the flags set (0: none).
func (f execFlags) quota() hyperdrive.Quota {
	return hyperdrive.Quota{ArchiveBytes: int64(f.archiveQuotaMiB) << 20, CallBytes: int64(f.callWriteQuotaMiB) << 20}
}

func runExec(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("exec", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var f execFlags
	fs.StringVar(&f.dir, "dir", "", "")
	fs.StringVar(&f.host, "host", "127.0.0.1", "")
	fs.StringVar(&f.title, "title", "", "")
	fs.StringVar(&f.sync, "sync", "always", "")
	fs.StringVar(&f.memory, "memory", "", "")
	fs.IntVar(&f.port, "port", 5555, "")
	fs.IntVar(&f.port, "p", 5555, "")
	fs.IntVar(&f.datPort, "dat-port", 3282, "")
	fs.IntVar(&f.queue, "queue", 1000, "")
	fs.IntVar(&f.maxConnections, "max-connections", rpc.DefaultMaxConnections, "")
	fs.IntVar(&f.maxPeers, "max-peers", protocol.DefaultMaxPeers, "")
	fs.DurationVar(&f.pollFor, "poll-for", 0, "")
	fs.BoolVar(&f.debug, "debug", false, "")
	fs.BoolVar(&f.debug, "d", false, "")
	fs.BoolVar(&f.requireSigned, "require-signed", false, "")
	f.network.register(fs)
	fs.DurationVar(&f.timeBudget, "time-budget", 5*time.Second, "")
	fs.IntVar(&f.memoryMiB, "max-memory", defaultMemoryMiB, "")
	fs.IntVar(&f.retainedMiB, "max-retained", defaultRetainedMiB, "")
	fs.IntVar(&f.archiveQuotaMiB, "max-archive", defaultArchiveQuotaMiB, "")
	fs.IntVar(&f.callWriteQuotaMiB, "max-call-write", defaultCallWriteQuotaMiB, "")
	fs.IntVar(&f.entryMiB, "max-entry", defaultEntryMiB, "")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		fmt.Fprintf(stderr, "nodevms: %v\nrun 'nodevms --help' for usage\n", err)
		return exitUsage
	}
	if len(pos) < 1 || len(pos) > 2 {
		fmt.Fprintf(stderr, "nodevms: exec needs a script (and optionally a folder)\nrun 'nodevms --help' for usage\n")
		return exitUsage
	}
	if len(pos) == 2 {
		f.dir = pos[1]
	}
	if f.sync != "always" && f.sync != "none" {
		fmt.Fprintf(stderr, "nodevms: --sync must be always or none, not %q\n", f.sync)
		return exitUsage
	}
	if f.memory != "" && f.memory != "kept" && f.memory != server.MemoryAfresh {
		fmt.Fprintf(stderr, "nodevms: --memory must be kept or afresh, not %q\n", f.memory)
		return exitUsage
	}
	if f.maxConnections < 0 || f.maxPeers < 0 || f.archiveQuotaMiB < 0 || f.callWriteQuotaMiB < 0 || f.entryMiB < 0 {
		fmt.Fprintf(stderr, "nodevms: --max-connections, --max-peers, --max-archive, --max-call-write and --max-entry must be 0 (no cap) or more\n")
		return exitUsage
	}
	if f.timeBudget <= 0 || f.memoryMiB <= 0 || f.retainedMiB <= 0 {
		fmt.Fprintf(stderr, "nodevms: --time-budget, --max-memory and --max-retained must be more than 0\n")
		return exitUsage
	}
	if f.pollFor < 0 || f.pollFor > maxPollFor {
		fmt.Fprintf(stderr, "nodevms: --poll-for must be from 0 (off) to %v\n", maxPollFor)
		return exitUsage
	}
	pollForSet := false
	fs.Visit(func(fl *flag.Flag) { pollForSet = pollForSet || fl.Name == "poll-for" })
	if !pollForSet && f.sync == "none" {
		f.pollFor = defaultPollFor
	}
	tuneGC(uint64(f.retainedMiB+f.memoryMiB) << 20)
	if f.dir == "" {
		f.dir = strings.TrimSuffix(filepath.Base(pos[0]), ".js")
	}
	if err := f.network.check(f.host, true); err != nil {
		fmt.Fprintf(stderr, "nodevms: %v\nrun 'nodevms --help' for usage\n", err)
		return exitUsage
	}
	if err := serve(ctx, pos[0], f, stdout, stderr); err != nil {
		if ctx.Err() != nil {
			// Stopped before it served (during the start-up replay, say):
			// nothing to report but that.
			code, msg := interruption(ctx)
			fmt.Fprintf(stderr, "nodevms: %s before serving\n", msg)
			return code
		}
		fmt.Fprintf(stderr, "nodevms: %v\n", err)
		if errors.Is(err, core.ErrDamaged) || errors.Is(err, hypercore.ErrDataChanged) {
			fmt.Fprintf(stderr, "nodevms: %s\n(nodevms check %s says what is damaged.)\n", damageAdvice, f.dir)
		}
		return exitError
	}
	return exitOK
}

// serve deploys or reopens the backend and serves it until ctx ends.
// Everything that can be refused quickly is decided before anything is
// written: the ports are bound first, then server.Open locks the folder,
// and a deploy that fails leaves no folder behind (or, if the folder was
// there, only what was in it before).
func serve(ctx context.Context, scriptPath string, f execFlags, stdout, stderr io.Writer) error {
	code, err := os.ReadFile(scriptPath)
	if err != nil {
		return err
	}
	if f.title == "" {
		f.title = filepath.Base(scriptPath) + " files"
	}
	rpcLn, err := net.Listen("tcp", net.JoinHostPort(f.host, strconv.Itoa(f.port)))
	if err != nil {
		return err
	}
	defer rpcLn.Close()
	datLn, err := net.Listen("tcp", net.JoinHostPort(f.host, strconv.Itoa(f.datPort)))
	if err != nil {
		return err
	}
	defer datLn.Close()

	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	// Until it serves, callers are told it is starting (a long log's
	// replay can take a while), not refused.
	stopStarting := server.Starting(rpcLn)
	defer stopStarting()
	backend, err := server.Open(ctx, server.Options{
		Dir: f.dir, Code: code, Title: f.title, Memory: f.memory, NoFsync: f.sync == "none",
		Limits: f.limits(), Quota: f.quota(), MaxEntry: f.entryMiB << 20, QueueSize: f.queue, Logger: logger,
	})
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		// Stopped while it started: say so, rather than serve for an
		// instant.
		backend.Close()
		return err
	}
	// The flags' 0 is no cap; the options' is the default.
	noCap := func(n int) int {
		if n == 0 {
			return -1
		}
		return n
	}
	stopStarting()
	serving, err := backend.Serve(rpcLn, datLn, server.ServeOptions{
		Debug: f.debug, RequireSigned: f.requireSigned, Logger: logger,
		MaxConnections: noCap(f.maxConnections), MaxPeers: noCap(f.maxPeers),
		PollFor: f.pollFor,
	})
	if err != nil {
		backend.Close()
		return err
	}

	fmt.Fprintf(stdout, "nodevms v%s\n", nodevms.Version)
	fmt.Fprintf(stdout, "Serving at %s\n", server.DisplayAddr(rpcLn.Addr()))
	fmt.Fprintf(stdout, "Serving directory %s\n", backend.Dir())
	fmt.Fprintf(stdout, "Replicating at %s\n\n", server.DisplayAddr(datLn.Addr()))
	fmt.Fprintf(stdout, "Files:    dat://%x\n", backend.Archive.Key())
	fmt.Fprintf(stdout, "Call log: dat://%x\n\n", backend.Log.PublicKey())
	var peers *discovery.Peers
	if f.network.on() {
		var stop func() error
		peers, stop, err = f.network.start(f.host, filepath.Join(backend.Dir(), ".dat", "dht-nodes"))
		if err != nil {
			serving.Shutdown(context.Background())
			backend.Close()
			return err
		}
		defer stop()
		port := datLn.Addr().(*net.TCPAddr).Port
		peers.Announce(backend.Archive.Metadata().DiscoveryKey(), port)
		peers.Announce(backend.Log.DiscoveryKey(), port)
		fmt.Fprintf(stdout, "Announcing both feeds on the Dat network (%s)\n\n", f.network.describe())
	}
	statusLine(ctx, stdout, serving.RPC, serving.Stats, peers)

	// Shut down: no new connections, queued calls answered, all flushed.
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	serving.Shutdown(shutdownCtx)
	if err := backend.Close(); err != nil {
		// Served, then stopped: what did not reach the disk is redone from
		// the log, or was never acknowledged, at the next start.
		fmt.Fprintf(stderr, "nodevms: flushing at shutdown: %v\n", err)
	}
	fmt.Fprintln(stdout, "Stopped.")
	return nil
}

// statusLine shows connections and replication rates until ctx ends: kept
// current on a terminal, printed once otherwise.
func statusLine(ctx context.Context, stdout io.Writer, server *rpc.Server, stats *protocol.Stats, found *discovery.Peers) {
	line := func(down, up float64) string {
		s := fmt.Sprintf("%d connections | Download %s Upload %s", server.Connections(), rate(down), rate(up))
		if found != nil {
			s += fmt.Sprintf(" | %d peers found", found.Count())
		}
		return s
	}
	tty := false
	if file, ok := stdout.(*os.File); ok {
		tty = readline.IsTerminal(int(file.Fd()))
	}
	if !tty {
		fmt.Fprintln(stdout, line(0, 0))
		<-ctx.Done()
		return
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	lastDown, lastUp := stats.DownloadedBytes.Load(), stats.UploadedBytes.Load()
	fmt.Fprint(stdout, line(0, 0))
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintln(stdout)
			return
		case <-tick.C:
			down, up := stats.DownloadedBytes.Load(), stats.UploadedBytes.Load()
			fmt.Fprintf(stdout, "\r\033[K%s", line(float64(down-lastDown), float64(up-lastUp)))
			lastDown, lastUp = down, up
		}
	}
}

func rate(bytesPerSecond float64) string {
	units := []string{"B/s", "kB/s", "MB/s", "GB/s"}
	i := 0
	for bytesPerSecond >= 1000 && i < len(units)-1 {
		bytesPerSecond /= 1000
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%.0f %s", bytesPerSecond, units[i])
	}
	return fmt.Sprintf("%.1f %s", bytesPerSecond, units[i])
}

// tuneGC sets the collector for a process that runs calls, unless the user
// set GOGC or GOMEMLIMIT: a server's or a replay's live heap is small and
// its garbage is per call, so collecting at five times the live heap rather
// than twice saves a tenth of the CPU (more with files) for a few
// megabytes; and the collector works harder as the heap nears scripts,
// what a backend may keep plus what one call may use, rather than letting
// garbage grow the process past them.
func tuneGC(scripts uint64) {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(int64(scripts) + 256<<20)
	}
}

// auditHeapFloor is the memory an audit's collector keeps the process
// under while its live heap is small. An audit replays while it
// downloads, and so holds the write-back pages of a dozen files and a
// script's heap at once: collecting at five times that (tuneGC) took an
// audit of a million calls to 430 MB, where 256 MiB cost it a few percent.
const auditHeapFloor = 256 << 20

// auditHeapLimit is the memory limit for an audit whose live heap is
// live: auditHeapFloor, or three times the live heap once that is more,
// so that a script that keeps much is not collected without end.
func auditHeapLimit(live uint64) int64 {
	return int64(max(auditHeapFloor, 3*live))
}

// governAuditHeap keeps the collector's memory limit at auditHeapLimit of
// the live heap, checked four times a second, until the returned stop is
// called, which restores the limit. It does nothing if the user set
// GOMEMLIMIT.
func governAuditHeap() (stop func()) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return func() {}
	}
	before := debug.SetMemoryLimit(-1)
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	set := func() {
		metrics.Read(sample)
		if sample[0].Value.Kind() == metrics.KindUint64 {
			debug.SetMemoryLimit(auditHeapLimit(sample[0].Value.Uint64()))
		}
	}
	set()
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				set()
			}
		}
	}()
	return func() {
		close(done)
		<-stopped
		debug.SetMemoryLimit(before)
	}
}
