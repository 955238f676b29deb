package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/chzyer/readline"

	"github.com/nodevms/nodevms"
	"github.com/nodevms/nodevms/core"
	"github.com/nodevms/nodevms/hypercore"
	"github.com/nodevms/nodevms/hypercore/protocol"
	"github.com/nodevms/nodevms/hyperdrive"
	"github.com/nodevms/nodevms/internal/folderlock"
	"github.com/nodevms/nodevms/rpc"
	"github.com/nodevms/nodevms/sandbox"
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
	fs.BoolVar(&f.debug, "debug", false, "")
	fs.BoolVar(&f.debug, "d", false, "")
	fs.BoolVar(&f.requireSigned, "require-signed", false, "")
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
	if os.Getenv("GOGC") == "" {
		// A server's live heap is small and its garbage is per call:
		// collecting at five times the live heap rather than twice saves
		// a tenth of the CPU (more with files) for a few megabytes.
		debug.SetGCPercent(400)
	}
	if len(pos) == 2 {
		f.dir = pos[1]
	}
	if f.sync != "always" && f.sync != "none" {
		fmt.Fprintf(stderr, "nodevms: --sync must be always or none, not %q\n", f.sync)
		return exitUsage
	}
	if f.memory != "" && f.memory != "kept" && f.memory != core.MemoryAfresh {
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
	if os.Getenv("GOMEMLIMIT") == "" {
		// The collector works harder as the heap nears what a backend may
		// keep plus what one call may use, rather than letting garbage
		// grow the process past them.
		debug.SetMemoryLimit(int64(f.retainedMiB+f.memoryMiB)<<20 + 256<<20)
	}
	if f.dir == "" {
		f.dir = strings.TrimSuffix(filepath.Base(pos[0]), ".js")
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
// written: the ports are bound and the folder locked first, and a deploy
// that fails leaves no folder behind (or, if the folder was there, only
// what was in it before).
func serve(ctx context.Context, scriptPath string, f execFlags, stdout, stderr io.Writer) error {
	code, err := os.ReadFile(scriptPath)
	if err != nil {
		return err
	}
	base := strings.TrimSuffix(filepath.Base(scriptPath), ".js")
	if f.dir == "" {
		f.dir = base
	}
	if f.title == "" {
		f.title = filepath.Base(scriptPath) + " files"
	}
	dir, err := filepath.Abs(f.dir)
	if err != nil {
		return err
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
	folder, err := claimFolder(dir)
	if err != nil {
		return err
	}
	defer folder.release()
	if folder.deployed {
		if err := checkArchiveFirst(dir); err != nil {
			return err
		}
	}
	archive, log, err := openStores(dir, !folder.deployed, f.sync == "none")
	if err != nil {
		return err
	}
	closeStores := func() {
		log.Close()
		archive.Close()
	}
	cfg := core.Config{Archive: archive, Log: log, QueueSize: f.queue, Logger: logger, Limits: f.limits(), Quota: f.quota(),
		MaxEntry: f.entryMiB << 20, MemoryAfresh: f.memory == core.MemoryAfresh}
	var host *core.Host
	if folder.deployed {
		if err = sameScript(log, code, f.memory); err == nil {
			host, err = core.Open(ctx, cfg)
		}
	} else {
		host, err = core.Deploy(ctx, cfg, string(code), f.title, nil)
		if err != nil {
			closeStores()
			if rerr := folder.undoDeploy(); rerr != nil {
				return fmt.Errorf("%w (and removing what the deploy wrote failed: %v)", err, rerr)
			}
			return fmt.Errorf("deploy: %w", err)
		}
	}
	if err != nil {
		closeStores()
		return err
	}
	defer closeStores()
	if err := ctx.Err(); err != nil {
		// Stopped while it started: say so, rather than serve for an
		// instant.
		host.Close()
		return err
	}

	stats := &protocol.Stats{}
	// One cap for Dat peers, over TCP and over the WebSocket at /.dat: they
	// cost the same.
	peers := protocol.NewPeerLimit(f.maxPeers)
	maxConnections := f.maxConnections
	if maxConnections == 0 {
		maxConnections = -1 // the flag's 0 is no cap; the option's is the default
	}
	server := rpc.NewServer(rpc.Options{
		Debug: f.debug, RequireSigned: f.requireSigned, Version: nodevms.Version,
		ReplicationAddr: displayAddr(datLn.Addr()), Stats: stats, Logger: logger,
		MaxConnections: maxConnections, Peers: peers,
	})
	if err := server.Mount("/", rpc.Backend{Host: host, Title: f.title, Archive: archive, Log: log}); err != nil {
		return err
	}
	httpServer := &http.Server{Handler: server, ReadHeaderTimeout: 10 * time.Second}
	go httpServer.Serve(rpcLn)
	lookup := archive.Lookup()
	logDK := log.DiscoveryKey()
	replCtx, stopRepl := context.WithCancel(context.Background())
	go protocol.ServeListener(replCtx, datLn, protocol.Options{Live: true, Stats: stats, Logger: logger, Peers: peers}, func(dk [32]byte) *hypercore.Feed {
		if dk == logDK {
			return log
		}
		return lookup(dk)
	})

	fmt.Fprintf(stdout, "nodevms v%s\n", nodevms.Version)
	fmt.Fprintf(stdout, "Serving at %s\n", displayAddr(rpcLn.Addr()))
	fmt.Fprintf(stdout, "Serving directory %s\n", dir)
	fmt.Fprintf(stdout, "Replicating at %s\n\n", displayAddr(datLn.Addr()))
	fmt.Fprintf(stdout, "Files:    dat://%x\n", archive.Key())
	fmt.Fprintf(stdout, "Call log: dat://%x\n\n", log.PublicKey())
	statusLine(ctx, stdout, server, stats)

	// Shut down: no new connections, queued calls answered, all flushed.
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	httpServer.Shutdown(shutdownCtx)
	stopRepl()
	if err := host.Close(); err != nil {
		// Served, then stopped: what did not reach the disk is redone from
		// the log, or was never acknowledged, at the next start.
		fmt.Fprintf(stderr, "nodevms: flushing at shutdown: %v\n", err)
	}
	fmt.Fprintln(stdout, "Stopped.")
	return nil
}

// sameScript refuses to serve a folder deployed with another script, or
// with another --memory than memory asks for ("" takes the deployed one).
func sameScript(log *hypercore.Feed, code []byte, memory string) error {
	blk, err := log.Get(0)
	if err != nil {
		return fmt.Errorf("reading the call log's init entry: %w", err)
	}
	init, err := core.DecodeEntry(blk)
	if err != nil {
		return err
	}
	if !bytes.Equal([]byte(init.Code), code) {
		return errors.New("this folder serves another script; deploy this one into a new folder (--dir)")
	}
	deployed := "kept"
	if init.Memory == core.MemoryAfresh {
		deployed = core.MemoryAfresh
	}
	if memory != "" && memory != deployed {
		return fmt.Errorf("this backend was deployed with --memory %s, which its log records; --memory %s needs a new folder (--dir)", deployed, memory)
	}
	return nil
}

// checkArchiveFirst checks a deployed folder's files archive, opened
// read-only, before a writable open repairs what a crash left: a folder
// whose archive was changed on disk is refused before anything in it is
// written. (The call log checks its data against its signatures before it
// writes; the folder's files are checked once the archive has finished
// what a crash cut short.)
func checkArchiveFirst(dir string) error {
	datDir := filepath.Join(dir, hyperdrive.DatDir)
	archive, err := hyperdrive.Open(hyperdrive.Options{Storage: hyperdrive.DatStorage(dir, filepath.Join(datDir, "secret_keys")), ReadOnly: true})
	if err != nil {
		return damaged("the files archive", err)
	}
	defer archive.Close()
	if err := archive.CheckStored(); err != nil {
		return fmt.Errorf("%w: the files archive's %w", core.ErrDamaged, err)
	}
	return nil
}

// openStores opens (or creates) a backend folder's files archive and
// call log.
func openStores(dir string, create, noFsync bool) (*hyperdrive.Archive, *hypercore.Feed, error) {
	datDir := filepath.Join(dir, hyperdrive.DatDir)
	archive, err := hyperdrive.Open(hyperdrive.Options{
		Storage: hyperdrive.DatStorage(dir, filepath.Join(datDir, "secret_keys")),
		Create:  create,
		// Signed with the call log, every few milliseconds; flushed
		// every second (a crash is redone from the log).
		DeferSignatures: true,
		WriteBack:       true,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("opening the files archive in %s: %w", dir, err)
	}
	log, err := hypercore.Open(hypercore.Config{
		Storage:        hypercore.DirStorage{Dir: datDir, Prefix: "call-log."},
		Create:         create,
		AnnounceOnSync: true,
		LineLog:        true, // one fsync per commit: the data file is the write-ahead record
		// Signed every few milliseconds, not every group: a signature
		// costs more than most calls (core.Config.SignEvery).
		DeferSignatures: true,
		WriteBack:       true, // tree, bitfield and signatures: rebuilt from the data after a crash
		NoFsync:         noFsync,
		// An fsync that need not grow the file is about 1.6 times as
		// fast. A 1 MiB step is a few thousand calls' entries; writing it
		// costs about 1.5 ms, once per step.
		Preallocate: 1 << 20,
	})
	if err != nil {
		archive.Close()
		return nil, nil, fmt.Errorf("opening the call log in %s: %w", datDir, err)
	}
	return archive, log, nil
}

// claimedFolder is a backend folder this process holds the lock of.
type claimedFolder struct {
	dir      string
	deployed bool // it holds a deployed backend: open it, do not deploy
	// What undoDeploy removes: the folder itself if this process made it,
	// else what a deploy adds to it.
	madeDir bool
	lock    *folderlock.Lock
}

// claimFolder locks dir (making it if need be) for this process. A folder
// whose call log has no entry holds a deploy that did not finish (nothing
// of it was ever acknowledged or published): what it wrote is removed,
// and the folder is deployed again.
func claimFolder(dir string) (*claimedFolder, error) {
	c := &claimedFolder{dir: dir}
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		c.madeDir = true
	}
	datDir := filepath.Join(dir, hyperdrive.DatDir)
	if err := os.MkdirAll(datDir, 0o755); err != nil {
		return nil, err
	}
	lock, err := folderlock.Acquire(filepath.Join(datDir, "lock"))
	if err != nil {
		var held *folderlock.HeldError
		if errors.As(err, &held) && held.PID != 0 {
			return nil, fmt.Errorf("another nodevms (pid %d) is serving %s; stop it first", held.PID, dir)
		}
		if c.madeDir {
			os.RemoveAll(dir)
		}
		return nil, fmt.Errorf("locking %s: %w", dir, err)
	}
	c.lock = lock
	if _, err := os.Stat(filepath.Join(datDir, "call-log.key")); err != nil {
		return c, nil
	}
	// The call log's data file decides, read as it is: opening the log
	// would redo its tree after a crash, which is for the start to do
	// once it has decided the folder is good. A deploy wrote its init
	// entry, a line, before anything else could be acknowledged or shown.
	hasEntry, err := firstLineWritten(filepath.Join(datDir, "call-log.data"))
	if err != nil {
		c.release()
		return nil, fmt.Errorf("reading the call log in %s: %w", datDir, err)
	}
	if hasEntry {
		c.deployed = true
		return c, nil
	}
	if err := c.undoDeploy(); err != nil {
		c.release()
		return nil, fmt.Errorf("%s holds a deploy that did not finish, which could not be removed: %w", dir, err)
	}
	return claimFolder(dir)
}

// firstLineWritten reports whether the line log's data file at path holds
// a whole first line (zeros past a line log's end are preallocated, or
// were never written).
func firstLineWritten(path string) (bool, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for off := int64(0); ; {
		n, err := f.ReadAt(buf, off)
		for _, b := range buf[:n] {
			switch b {
			case '\n':
				return true, nil
			case 0:
				return false, nil
			}
		}
		if err == io.EOF {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		off += int64(n)
	}
}

// undoDeploy removes what a deploy that failed wrote, keeping what the
// folder held before. The stores must be closed.
func (c *claimedFolder) undoDeploy() error {
	c.release()
	if c.madeDir {
		return os.RemoveAll(c.dir)
	}
	for _, name := range []string{"dat.json", "backend.js"} {
		if err := os.Remove(filepath.Join(c.dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return os.RemoveAll(filepath.Join(c.dir, hyperdrive.DatDir))
}

func (c *claimedFolder) release() {
	c.lock.Release()
}

// displayAddr writes loopback addresses as localhost, as users type them.
func displayAddr(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

// statusLine shows connections and replication rates until ctx ends: kept
// current on a terminal, printed once otherwise.
func statusLine(ctx context.Context, stdout io.Writer, server *rpc.Server, stats *protocol.Stats) {
	line := func(down, up float64) string {
		return fmt.Sprintf("%d connections | Download %s Upload %s", server.Connections(), rate(down), rate(up))
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
