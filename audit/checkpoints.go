package audit

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nodevms/nodevms/calllog"
	"github.com/nodevms/nodevms/checkpoint"
	"github.com/nodevms/nodevms/core"
	"github.com/nodevms/nodevms/hypercore"
	"github.com/nodevms/nodevms/receipt"
)

// A monitor (an auditor with Options.Out and Options.Monitor) cosigns a
// checkpoint of every head it verified by replay: the longest length
// within the verified entries that the log signed. It keeps each note in
// Out/checkpoints/LENGTH.note, the latest in Out/checkpoint.note, and
// CheckpointHandler serves them, with receipts at the latest one's length
// that carry it.

// latestFile is the latest cosigned checkpoint in a monitor's folder.
func latestFile(out string) string { return filepath.Join(out, "checkpoint.note") }

func historyFile(out string, length uint64) string {
	return filepath.Join(out, "checkpoints", strconv.FormatUint(length, 10)+".note")
}

// maxSignatureSearch bounds how far back from the verified length a
// monitor looks for a signed length: a live replica stores the signature
// of nearly every length it was shown.
const maxSignatureSearch = 4096

// cosign cosigns the longest signed length of the log within its first
// verified entries, if it is past the last one cosigned, and records it.
// It returns the note, or nil if there was nothing new to cosign.
func (a *Auditor) cosign(verified uint64) (*checkpoint.Note, error) {
	if a.opts.Monitor == nil || a.opts.Out == "" || verified <= a.cosigned {
		return nil, nil
	}
	length := verified
	for ; length > a.cosigned && verified-length < maxSignatureSearch; length-- {
		if _, err := a.log.SignatureAt(length - 1); err == nil {
			break
		} else if !errors.Is(err, hypercore.ErrNotFound) {
			return nil, err
		}
	}
	if length <= a.cosigned || verified-length >= maxSignatureSearch {
		return nil, nil // no signed length since the last: next time
	}
	c, err := checkpointOf(a.log, length)
	if err != nil {
		return nil, err
	}
	if err := c.CheckLogSignature(); err != nil {
		return nil, fmt.Errorf("the log's signature of length %d: %w", length, err)
	}
	n := &checkpoint.Note{Checkpoint: *c, Cosignatures: []checkpoint.Cosignature{a.opts.Monitor.Cosign(c, time.Now())}}
	text := n.Marshal()
	if err := os.MkdirAll(filepath.Dir(historyFile(a.opts.Out, length)), 0o755); err != nil {
		return nil, err
	}
	for _, path := range []string{historyFile(a.opts.Out, length), latestFile(a.opts.Out)} {
		if err := writeAtomically(path, text); err != nil {
			return nil, err
		}
	}
	a.cosigned = length
	return n, nil
}

// checkpointOf reads the checkpoint of log's first length entries: the
// tree hash and signature of that length, and the archive's version and
// root that the entry at length-1 names.
func checkpointOf(log *hypercore.Feed, length uint64) (*checkpoint.Checkpoint, error) {
	th, err := log.TreeHash(length)
	if err != nil {
		return nil, err
	}
	sig, err := log.SignatureAt(length - 1)
	if err != nil {
		return nil, err
	}
	blk, err := log.Get(length - 1)
	if err != nil {
		return nil, err
	}
	e, err := calllog.DecodeEntry(blk)
	if err != nil {
		return nil, fmt.Errorf("entry %d: %w", length-1, err)
	}
	if e.FilesRoot == nil {
		return nil, fmt.Errorf("entry %d names no files root", length-1)
	}
	root, err := hex.DecodeString(e.FilesRoot.Metadata)
	if err != nil || len(root) != 32 {
		return nil, fmt.Errorf("entry %d: files root %q", length-1, e.FilesRoot.Metadata)
	}
	c := &checkpoint.Checkpoint{Log: log.PublicKey(), Length: length, TreeHash: th, LogSignature: sig, FilesVersion: core.ArchiveVersion(e)}
	copy(c.FilesRoot[:], root)
	return c, nil
}

// writeAtomically replaces path with data through a rename, so that a
// reader sees the old file or the new one.
func writeAtomically(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// CheckpointHandler serves a monitor's checkpoints over HTTP, from its
// folder (Options.Out), while it follows:
//
//	GET /checkpoint          the latest cosigned checkpoint note
//	GET /checkpoint/LENGTH   the one cosigned at LENGTH, if any
//	GET /receipt/INDEX       the receipt of entry INDEX at the latest
//	                         checkpoint's length, carrying that checkpoint
//	GET /monitor             the monitor's verifier key
//
// It is valid once Audit has verified the log.
func (a *Auditor) CheckpointHandler() http.Handler {
	var mu sync.Mutex // one receipt at a time: each reads the replica
	mux := http.NewServeMux()
	text := func(w http.ResponseWriter, data []byte) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write(data)
	}
	mux.HandleFunc("GET /monitor", func(w http.ResponseWriter, r *http.Request) {
		if a.opts.Monitor == nil {
			http.Error(w, "this auditor cosigns nothing", http.StatusNotFound)
			return
		}
		text(w, []byte(a.opts.Monitor.VerifierKey()+"\n"))
	})
	mux.HandleFunc("GET /checkpoint", func(w http.ResponseWriter, r *http.Request) {
		data, err := os.ReadFile(latestFile(a.opts.Out))
		if err != nil {
			http.Error(w, "no checkpoint cosigned yet", http.StatusNotFound)
			return
		}
		text(w, data)
	})
	mux.HandleFunc("GET /checkpoint/{length}", func(w http.ResponseWriter, r *http.Request) {
		length, err := strconv.ParseUint(r.PathValue("length"), 10, 64)
		if err != nil {
			http.Error(w, "not a length", http.StatusBadRequest)
			return
		}
		data, err := os.ReadFile(historyFile(a.opts.Out, length))
		if err != nil {
			http.Error(w, "no checkpoint cosigned at that length", http.StatusNotFound)
			return
		}
		text(w, data)
	})
	mux.HandleFunc("GET /receipt/{index}", func(w http.ResponseWriter, r *http.Request) {
		index, err := strconv.ParseUint(r.PathValue("index"), 10, 64)
		if err != nil {
			http.Error(w, "not an entry index", http.StatusBadRequest)
			return
		}
		data, err := os.ReadFile(latestFile(a.opts.Out))
		if err != nil {
			http.Error(w, "no checkpoint cosigned yet", http.StatusNotFound)
			return
		}
		n, err := checkpoint.ParseNote(data)
		if err != nil {
			http.Error(w, "the latest checkpoint: "+err.Error(), http.StatusInternalServerError)
			return
		}
		if index >= n.Length {
			http.Error(w, fmt.Sprintf("entry %d is not below the latest checkpoint's length, %d", index, n.Length), http.StatusNotFound)
			return
		}
		mu.Lock()
		rec, err := receipt.MakeAt(a.log, index, n.Length)
		mu.Unlock()
		if err != nil {
			http.Error(w, strings.TrimPrefix(err.Error(), "receipt: "), http.StatusInternalServerError)
			return
		}
		rec.Checkpoint = data
		out, err := rec.Marshal()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(out)
	})
	return mux
}
