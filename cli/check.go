package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/nodevms/nodevms/core"
	"github.com/nodevms/nodevms/hypercore"
	"github.com/nodevms/nodevms/hyperdrive"
	"github.com/nodevms/nodevms/internal/folderlock"
	"github.com/nodevms/nodevms/sandbox"
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
	rep, err := checkFolder(ctx, dir, sandbox.Limits{Time: timeBudget, Memory: uint64(memoryMiB) << 20})
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

// checkFolder opens dir's stores without writing to it and checks them.
// The call log is checked on a private copy of its files, which Open may
// bring up to its data file as a start would (a crash leaves the tree and
// bitfield behind the data).
func checkFolder(ctx context.Context, dir string, limits sandbox.Limits) (core.FolderReport, error) {
	datDir := filepath.Join(dir, hyperdrive.DatDir)
	if _, err := os.Stat(filepath.Join(datDir, "call-log.key")); err != nil {
		return core.FolderReport{}, fmt.Errorf("%s holds no deployed backend (no %s)", dir, filepath.Join(hyperdrive.DatDir, "call-log.key"))
	}
	lock, err := folderlock.Probe(filepath.Join(datDir, "lock"))
	if err != nil {
		var held *folderlock.HeldError
		if errors.As(err, &held) {
			return core.FolderReport{}, fmt.Errorf("a nodevms is serving %s; audit it with nodevms -a, or stop it first", dir)
		}
		return core.FolderReport{}, err
	}
	defer lock.Release()

	logDir, err := os.MkdirTemp("", "nodevms-check-")
	if err != nil {
		return core.FolderReport{}, err
	}
	defer os.RemoveAll(logDir)
	for _, part := range []string{"key", "secret_key", "data", "tree", "signatures", "bitfield"} {
		if err := copyFile(filepath.Join(datDir, "call-log."+part), filepath.Join(logDir, "call-log."+part)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return core.FolderReport{}, err
		}
	}
	log, err := hypercore.Open(hypercore.Config{Storage: hypercore.DirStorage{Dir: logDir, Prefix: "call-log."}, LineLog: true})
	if err != nil {
		return core.FolderReport{}, damaged("the call log", err)
	}
	defer log.Close()
	archive, err := hyperdrive.Open(hyperdrive.Options{Storage: hyperdrive.DatStorage(dir, filepath.Join(datDir, "secret_keys")), ReadOnly: true})
	if err != nil {
		return core.FolderReport{}, damaged("the files archive", err)
	}
	defer archive.Close()
	return core.CheckFolder(ctx, log, archive, core.ReplayOptions{Limits: limits})
}

// damaged reports a store that does not open: damage if its files are
// inconsistent, else an error of the check.
func damaged(what string, err error) error {
	if errors.Is(err, hypercore.ErrCorrupt) || errors.Is(err, hypercore.ErrDataChanged) || errors.Is(err, hyperdrive.ErrCorrupt) {
		return fmt.Errorf("%w: %s: %w", core.ErrDamaged, what, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// copyFile copies the file at from to a new file at to.
func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
