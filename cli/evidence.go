package main

import (
	"context"
	"crypto/ed25519"
	"flag"
	"fmt"
	"io"

	"github.com/nodevms/nodevms/audit"
	"github.com/nodevms/nodevms/evidence"
)

// runEvidence is `nodevms evidence verify FILE [--log dat://KEY]`: an
// offline check of fork evidence (a monitor writes it when it finds one).
// Exit 0: the evidence proves that the log's key signed two histories; 1:
// it does not; 2: it could not be read.
func runEvidence(_ context.Context, args []string, stdout, stderr io.Writer) int {
	const usageLine = "nodevms: usage: nodevms evidence verify FILE [--log dat://KEY]\n"
	if len(args) == 0 || args[0] != "verify" {
		fmt.Fprint(stderr, usageLine)
		return exitUsage
	}
	fs := flag.NewFlagSet("evidence verify", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var logURL string
	fs.StringVar(&logURL, "log", "", "")
	pos, err := parseInterleaved(fs, args[1:])
	if err != nil || len(pos) != 1 {
		if err != nil {
			fmt.Fprintf(stderr, "nodevms: %v\n", err)
		}
		fmt.Fprint(stderr, usageLine)
		return exitUsage
	}
	var pinned ed25519.PublicKey
	if logURL != "" {
		if pinned, err = audit.DatKey(logURL); err != nil {
			fmt.Fprintf(stderr, "nodevms: --log: %v\n", err)
			return exitUsage
		}
	}
	data, err := readBounded(pos[0], evidence.MaxFile)
	if err != nil {
		fmt.Fprintf(stderr, "nodevms: %v\n", err)
		return exitUsage
	}
	e, err := evidence.Parse(data)
	if err == nil && pinned != nil && !pinned.Equal(e.Log) {
		err = fmt.Errorf("the evidence is about the call log dat://%x, not %s", []byte(e.Log), logURL)
	}
	var how string
	if err == nil {
		how, err = e.Verify()
	}
	if err != nil {
		fmt.Fprintf(stdout, "INVALID %s\n  %v\n", pos[0], err)
		return receiptInvalid
	}
	fmt.Fprintf(stdout, "VALID %s\n  the call log dat://%x signed two histories that cannot both be true: %s\n", pos[0], []byte(e.Log), how)
	return receiptValid
}
