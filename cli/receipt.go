package main

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/nodevms/nodevms/audit"
	"github.com/nodevms/nodevms/calllog"
	"github.com/nodevms/nodevms/checkpoint"
	"github.com/nodevms/nodevms/receipt"
)

// Exit codes of receipt verify.
const (
	receiptValid   = 0
	receiptInvalid = 1
)

// runReceipt is `nodevms receipt verify FILE [--log dat://KEY]`: an
// offline check of a receipt.
func runReceipt(_ context.Context, args []string, stdout, stderr io.Writer) int {
	const usageLine = "nodevms: usage: nodevms receipt verify FILE [--log dat://KEY] [--monitor VKEY]... [--require K]\n"
	if len(args) == 0 || args[0] != "verify" {
		fmt.Fprint(stderr, usageLine)
		return exitUsage
	}
	fs := flag.NewFlagSet("receipt verify", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var logURL string
	var monitorKeys stringList
	require := -1
	fs.StringVar(&logURL, "log", "", "")
	fs.Var(&monitorKeys, "monitor", "")
	fs.IntVar(&require, "require", -1, "")
	pos, err := parseInterleaved(fs, args[1:])
	if err == nil && (require > len(monitorKeys) || require == 0 || require < -1) {
		err = fmt.Errorf("--require %d of the %d monitors named", require, len(monitorKeys))
	}
	if err != nil || len(pos) != 1 {
		if err != nil {
			fmt.Fprintf(stderr, "nodevms: %v\n", err)
		}
		fmt.Fprint(stderr, usageLine)
		return exitUsage
	}
	var pinned ed25519.PublicKey
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == "log" })
	if set {
		if pinned, err = audit.DatKey(logURL); err != nil {
			fmt.Fprintf(stderr, "nodevms: --log: %v\n", err)
			return exitUsage
		}
	}
	var verifiers []*checkpoint.Verifier
	for _, k := range monitorKeys {
		v, err := checkpoint.ParseVerifier(k)
		if err != nil {
			fmt.Fprintf(stderr, "nodevms: --monitor %s: %v\n", k, err)
			return exitUsage
		}
		verifiers = append(verifiers, v)
	}
	if require == -1 {
		require = len(verifiers) // every monitor named, unless told otherwise
	}
	data, err := readBounded(pos[0], receipt.MaxFile)
	if err != nil {
		fmt.Fprintf(stderr, "nodevms: %v\n", err)
		return exitUsage
	}
	r, err := receipt.Parse(data)
	if err != nil {
		fmt.Fprintf(stdout, "INVALID %s\n  %v\n", pos[0], err)
		return receiptInvalid
	}
	key := pinned
	if key == nil {
		key = r.Log
	}
	var cosigners []string
	if len(verifiers) > 0 {
		cosigners, err = r.VerifyCosigned(key, verifiers, require)
	} else {
		err = r.Verify(key)
	}
	if err != nil {
		fmt.Fprintf(stdout, "INVALID %s\n  %v\n", pos[0], err)
		return receiptInvalid
	}
	fmt.Fprintf(stdout, "VALID %s\n  entry %d of the call log dat://%x, signed at length %d\n  %s\n",
		pos[0], r.Index, []byte(r.Log), r.Length, describeEntry(r.Entry))
	if len(verifiers) > 0 {
		fmt.Fprintf(stdout, "  cosigned at that length by %d of the %d monitors named (%d required): %s\n",
			len(cosigners), len(verifiers), require, strings.Join(cosigners, ", "))
	}
	if pinned == nil {
		fmt.Fprintf(stdout, "  checked against the key the receipt names: compare it with the backend's call log URL, or pass --log\n")
	}
	return receiptValid
}

// describeEntry says in one line what a log entry records.
func describeEntry(b []byte) string {
	e, err := calllog.DecodeEntry(b)
	if err != nil {
		return fmt.Sprintf("an entry this build cannot read: %v", err)
	}
	switch {
	case e.Type == calllog.TypeInit:
		return "the backend's deploy (init)"
	case e.Type == calllog.TypeReload:
		return "a reload of the backend's memory"
	case e.Call == nil || e.Result == nil:
		return "an entry of type " + e.Type
	}
	who := "anonymous"
	if e.Call.UserID != nil {
		who = *e.Call.UserID
	}
	if e.Auth != nil {
		who = "key " + e.Auth.Key
	}
	outcome := "returned " + string(e.Result.Res)
	if e.Error != nil {
		outcome = "threw " + e.Error.Name + ": " + e.Error.Message
	}
	return fmt.Sprintf("%s%s by %s %s", e.Call.MethodName, e.Call.Args, who, outcome)
}

// readBounded reads a file of at most limit bytes.
func readBounded(path string, limit int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, int64(limit)+1))
	if err != nil {
		return nil, err
	}
	if len(data) > limit {
		return nil, fmt.Errorf("%s: more than %d bytes: not a receipt", path, limit)
	}
	return data, nil
}

// saveReceipt writes r into dir, named by the log and the entry, and
// returns the path. It replaces a receipt of the same entry saved before
// (any signed length that covers the entry proves as much), through a
// rename, so that a crash leaves the old file or the new one.
func saveReceipt(dir string, r *receipt.Receipt) (string, error) {
	data, err := r.Marshal()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(dir, fmt.Sprintf("receipt-%s-%d.json", hex.EncodeToString(r.Log[:4]), r.Index))
	if err := os.WriteFile(path+".tmp", data, 0o644); err != nil {
		return "", err
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		return "", errors.Join(err, os.Remove(path+".tmp"))
	}
	return path, nil
}

// stringList is a flag given any number of times.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }
