package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/nodevms/nodevms/core"
	"github.com/nodevms/nodevms/sandbox"
	"github.com/nodevms/nodevms/server"
)

// Exit codes of check.
const (
	checkGood     = 0
	checkDamaged  = 1
	checkCouldNot = 2
)

// runCheck is `nodevms check DIR`: an offline check of a backend's folder
// that changes nothing in it.
func runCheck(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var timeBudget time.Duration
	var memoryMiB int
	fs.DurationVar(&timeBudget, "time-budget", 5*time.Second, "")
	fs.IntVar(&memoryMiB, "max-memory", defaultMemoryMiB, "")
	positional, err := parseInterleaved(fs, args)
	if err != nil {
		fmt.Fprintf(stderr, "nodevms: %v\nrun 'nodevms --help' for usage\n", err)
		return exitUsage
	}
	if len(positional) != 1 || timeBudget <= 0 || memoryMiB <= 0 {
		fmt.Fprintf(stderr, "nodevms: usage: nodevms check DIR [--time-budget D] [--max-memory MIB]\n")
		return exitUsage
	}
	dir := positional[0]
	rep, err := server.Check(ctx, dir, sandbox.Limits{Time: timeBudget, Memory: uint64(memoryMiB) << 20})
	switch {
	case ctx.Err() != nil:
		code, msg := interruption(ctx)
		fmt.Fprintf(stderr, "nodevms: %s\n", msg)
		return code
	case errors.Is(err, core.ErrDamaged):
		fmt.Fprintf(stdout, "DAMAGED %s\n  %v\n  %s\n", dir, err, damageAdvice)
		return checkDamaged
	case err != nil:
		fmt.Fprintf(stderr, "nodevms: could not check %s: %v\n", dir, err)
		return checkCouldNot
	case rep.Verdict.Divergence != nil:
		d := rep.Verdict.Divergence
		fmt.Fprintf(stdout, "DAMAGED %s\n  call log entry %d (%s): %s differs\n    logged:   %s\n    replayed: %s\n  this looks like %s\n  %s\n",
			dir, d.Block, d.Method, d.Field, d.Logged, d.Replayed, d.Kind, damageAdvice)
		return checkDamaged
	}
	fmt.Fprintf(stdout, "GOOD %s: %s replayed; files at version %d, root %s\n", dir, rep.Verdict.Replayed(), rep.Verdict.FilesVersion, rep.Verdict.FilesRoot.Metadata)
	if rep.Redo > 0 || rep.Unreferenced > 0 {
		fmt.Fprintf(stdout, "  a crash left %d logged calls for the archive to redo and %d content blocks for it to take back: the next start does both\n", rep.Redo, rep.Unreferenced)
	}
	return checkGood
}

// damageAdvice is what an operator does with a damaged folder.
const damageAdvice = "nothing was changed. Restore the folder from a backup, or its archive and log from a replica (an auditor's nodevms -a ADDR --out DIR keeps one); do not serve it as it is."
