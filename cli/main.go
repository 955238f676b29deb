// Command nodevms is the NodeVMS command line.
//
// It grows one command per capability as the capabilities land; --help lists
// exactly what this build can do.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/nodevms/nodevms"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

const usage = `nodevms: a cryptographically auditable VM service for JavaScript backends.

Usage:
  nodevms [flags]

Flags:
  -h, --help      print this help and exit
  -v, --version   print the version and exit

This build holds the foundation only: serving (-e), the REPL (-r) and
auditing (-a) are not implemented yet and are not accepted.
`

// run is main without the process: it parses args, writes to stdout and
// stderr, and returns the exit code, so that tests can drive it.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("nodevms", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var showHelp, showVersion bool
	fs.BoolVar(&showHelp, "h", false, "")
	fs.BoolVar(&showHelp, "help", false, "")
	fs.BoolVar(&showVersion, "v", false, "")
	fs.BoolVar(&showVersion, "version", false, "")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usage)
			return exitOK
		}
		fmt.Fprintf(stderr, "nodevms: %v\nrun 'nodevms --help' for usage\n", err)
		return exitUsage
	}
	switch {
	case showHelp:
		fmt.Fprint(stdout, usage)
		return exitOK
	case showVersion:
		fmt.Fprintf(stdout, "nodevms v%s\n", nodevms.Version)
		return exitOK
	case fs.NArg() > 0:
		fmt.Fprintf(stderr, "nodevms: unknown command %q\nrun 'nodevms --help' for usage\n", fs.Arg(0))
		return exitUsage
	default:
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
}
