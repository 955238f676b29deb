// Command nodevms serves JavaScript backends whose every call is recorded
// in a signed, replicated call log, and talks to them.
//
//	nodevms -e ./counter.js [dir]      serve a backend (also: nodevms exec)
//	nodevms -r localhost:5555          a REPL on a backend (also: nodevms repl)
//
// --help lists everything this build can do.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/nodevms/nodevms"
)

func main() { os.Exit(runMain()) }

// runMain is the command as a process runs it: arguments, standard
// streams, and signals.
func runMain() int {
	if wd := os.Getenv("BUILD_WORKING_DIRECTORY"); wd != "" {
		// Under bazel run: paths the user typed are relative to where they
		// typed them, not to the runfiles tree.
		os.Chdir(wd)
	}
	// Ctrl+C or SIGTERM ends ctx; its cause names the signal, so that a
	// command that stops for it can exit as a shell expects (128 + the
	// signal's number). Later signals are ignored while it winds down.
	ctx, cancel := context.WithCancelCause(context.Background())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		if sig, ok := (<-sigs).(syscall.Signal); ok {
			cancel(signalled{sig})
		}
	}()
	return run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
}

// signalled is the cause of main's context when a signal ends it.
type signalled struct{ sig syscall.Signal }

func (s signalled) Error() string { return s.sig.String() + " signal received" }

// interruption is what a command stopped by ctx exits with and says: 130
// and "interrupted" for Ctrl+C (or when no signal is known, as in tests),
// 143 and "terminated" for SIGTERM.
func interruption(ctx context.Context) (code int, msg string) {
	var s signalled
	if errors.As(context.Cause(ctx), &s) && s.sig == syscall.SIGTERM {
		return 128 + int(syscall.SIGTERM), "terminated"
	}
	return exitInterrupted, "interrupted"
}

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
	// exitInterrupted is a command stopped by Ctrl+C: 128 + SIGINT, as a
	// shell reports a process the signal killed.
	exitInterrupted = 130
)

const usage = `nodevms: a cryptographically auditable VM service for JavaScript backends.

Usage:
  nodevms -e SCRIPT [DIR] [flags]     serve a backend script (also: nodevms exec SCRIPT [--dir DIR])
  nodevms -r ADDR [flags]             a REPL on a served backend (also: nodevms repl ADDR)
  nodevms -a ADDR [flags]             audit a served backend (also: nodevms verify ADDR)
  nodevms check DIR                   check a backend's folder offline
  nodevms receipt verify FILE         check a call's receipt offline
  nodevms evidence verify FILE        check a monitor's fork evidence offline
  nodevms -h | --help                 print this help
  nodevms -v | --version              print the version

Serving (-e, exec):
  --dir DIR          the backend's folder (default: ./SCRIPT without .js)
  --host HOST        the address to listen on (default 127.0.0.1)
  --port N           the RPC port (default 5555; 0 picks one)
  --dat-port N       the Dat replication port (default 3282; 0 picks one)
  --mdns, --discovery, --dht-bootstrap ..., --dns-server ...
                     announce both feeds on the Dat network, so that Dat
                     peers find them by key alone (see "The Dat network";
                     needs a --host the network reaches)
  --title TITLE      the files archive's title (default "SCRIPT files")
  --debug            callers may name themselves (?user=NAME)
  --memory MODE      at deploy, what happens to the backend's memory when
                     a call is stopped: kept (default) restores it as the
                     log left it; afresh loads the script again, which is
                     cheap, and logs a reload (for a backend that keeps its
                     state in its files)
  --require-signed   refuse unsigned (anonymous) calls
  --sync MODE        always (default): answer a call once its log entry is
                     on disk; none: leave it to the operating system
  --queue N          calls that may wait (default 1000)
  --max-connections N
                     JSON-RPC connections served at once (default 1024;
                     0: no cap); more are answered HTTP 503
  --max-peers N      Dat peers served at once, over --dat-port and the
                     WebSocket at /.dat together (default 128; 0: no cap);
                     more are closed (TCP) or answered HTTP 503
  --poll-for D       after answering a caller that sends its calls back to
                     back, look for its next call this long before
                     sleeping (default 200us with --sync none, else 0:
                     never): saves a wake-up per group of calls, at the
                     cost of CPU; one connection at a time does it
  --time-budget D    how long one call may run (default 5s)
  --max-memory MIB   how much one call may allocate (default 256)
  --max-retained MIB how much memory the backend may keep between calls
                     (default 512)
  --max-archive MIB  how large the files archive may grow, history
                     included (default 1024; 0: no cap)
  --max-call-write MIB
                     how much one call may write to it (default 64;
                     0: no cap)
  --max-entry MIB    how much one call's result, error and oracle values
                     may add to the call log (default 4; 0: no cap)
                     A call past any of these is stopped: the caller gets
                     an error and the call leaves no trace in the log

Checking (check):
  nodevms check DIR [--time-budget D] [--max-memory MIB]
                     check a stopped backend's folder, changing nothing:
                     every signature and block of the call log and the
                     files archive, every file against the archive, the
                     replay of every call; exit 0 good, 1 damaged (what
                     and where), 2 could not check

The REPL (-r, repl):
  --user NAME        call as NAME (servers in --debug mode)
  --key FILE         sign calls with this key (default: one kept in the
                     user's config folder, made on first use)
  --exec CMD         run one command, print its result and exit
  --receipts DIR     ask for every call's receipt, check it against the
                     call log's key, and save it in DIR

Receipts (receipt verify):
  nodevms receipt verify FILE [--log dat://KEY] [--monitor VKEY]...
                     [--require K]
                     check a receipt (saved by the REPL's --receipts, or
                     the Go client) offline: that the call log with this
                     key signed this entry at this index; --log requires
                     that key rather than the one the receipt names; exit
                     0 valid, 1 invalid, 2 could not read
  --monitor VKEY     a monitor trusted to have replayed the log (its
                     verifier key, which it prints and serves at
                     /monitor); the receipt must carry a checkpoint of its
                     length cosigned by K of those named (--require;
                     default: all). A monitor's /receipt/INDEX gives such
                     receipts

Fork evidence (evidence verify):
  nodevms evidence verify FILE [--log dat://KEY]
                     check evidence that a call log's key signed two
                     histories that cannot both be true (a monitor with
                     --out writes it when it finds a fork): both signed
                     heads and the node where they differ; exit 0 it
                     proves a fork, 1 it does not, 2 could not read

Auditing (-a, verify):
  nodevms -a ADDR [--files dat://..] [--log dat://..] [--out DIR]
                     download the backend's call log and files archive,
                     replay every call, check every signature and root;
                     exit 0 verified, 1 divergence or fork (reported), 2
                     could not audit, 130 stopped by Ctrl+C first.
  nodevms -a dat://CALL-LOG-KEY --discovery|--mdns [--out DIR]
                     the same with no host to ask: find the call log by
                     its key on the network, read the files archive's key
                     from its first entry, and download both from whoever
                     has them (the host, or an auditor that rehosts them).
                     The log does not say whether its host let callers
                     name themselves (--debug), so a named caller with no
                     signature is not held against it
  --files URL, --log URL
                     the files archive and call log the host must serve
                     (dat:// and a key of 64 hex digits); others diverge
  --out DIR          keep the replicas in DIR (a later audit downloads only
                     what is new, and reports a fork if the host shows
                     another history), then follow the host: check each new
                     call as it arrives and rehost both feeds, until Ctrl+C
  --once             with --out: audit once and exit
  --monitor-name NAME
                     with --out: the name this monitor cosigns checkpoints
                     as (default nodevms-monitor), with a key kept in
                     DIR/monitor.key; it cosigns a checkpoint of every head
                     it verifies, keeping them in DIR/checkpoints/
  --checkpoints ADDR while following, serve the checkpoints over HTTP on
                     ADDR (host:port): /checkpoint, /checkpoint/LENGTH,
                     /receipt/INDEX (a receipt carrying the latest one),
                     /monitor (the verifier key)
  --dat-port N       the port to rehost on while following (default: any)
  --host HOST        the address to rehost on (default 127.0.0.1)
  --mdns, --discovery, --dht-bootstrap ..., --dns-server ...
                     find feeds on the Dat network, and announce the
                     rehosted ones while following (needs a --host the
                     network reaches)
  --time-budget D, --max-memory MIB
                     the host's budgets, if it was given more than the
                     defaults: a replay runs under four times them, and a
                     call it cannot finish within them could not be
                     verified (exit 2), which is not a divergence

The Dat network (nothing goes to other machines unless one is given):
` + networkUsage + `  A DHT node keeps its routing table in the folder (.dat/dht-nodes), or
  in an auditor's --out DIR.
`

// run is main without the process, so that tests can drive it.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "-h", "--help", "-help", "help":
		fmt.Fprint(stdout, usage)
		return exitOK
	case "-v", "--version", "-version", "version":
		fmt.Fprintf(stdout, "nodevms v%s\n", nodevms.Version)
		return exitOK
	case "-e", "--exec", "exec":
		return runExec(ctx, args[1:], stdout, stderr)
	case "-r", "--repl", "repl":
		return runREPL(ctx, args[1:], stdin, stdout, stderr)
	case "-a", "--audit", "audit", "verify":
		return runAudit(ctx, args[1:], stdout, stderr)
	case "check":
		return runCheck(ctx, args[1:], stdout, stderr)
	case "receipt":
		return runReceipt(ctx, args[1:], stdout, stderr)
	case "evidence":
		return runEvidence(ctx, args[1:], stdout, stderr)
	}
	if len(args[0]) > 0 && args[0][0] == '-' {
		fmt.Fprintf(stderr, "nodevms: flag provided but not defined: %s\nrun 'nodevms --help' for usage\n", args[0])
	} else {
		fmt.Fprintf(stderr, "nodevms: unknown command %q\nrun 'nodevms --help' for usage\n", args[0])
	}
	return exitUsage
}
