package core

import (
	"context"
	"errors"

	"github.com/nodevms/nodevms/hypercore"
	"github.com/nodevms/nodevms/hyperdrive"
)

// AuditOptions configure Audit.
type AuditOptions struct {
	ReplayOptions
	// Signed says the host takes signed calls only for named callers (not
	// in debug mode): a call that names a caller without a signature fails.
	Signed bool
}

// Audit checks a host's published call log and files archive (replicas
// whose blocks their feeds verified against the writers' signatures): it
// replays the log through the core, checks every signed call, and holds the
// archive to the roots the log names. The verdict names the earliest
// divergence any of these finds.
func Audit(ctx context.Context, log *hypercore.Feed, archive *hyperdrive.Archive, opts AuditOptions) (Verdict, error) {
	var entries []*Entry
	var invalid *Divergence
	for i := range log.Length() {
		e, err := readEntry(log, i)
		if err != nil {
			if errors.As(err, &invalid) {
				break
			}
			return Verdict{}, err
		}
		entries = append(entries, e)
	}
	v, err := Replay(ctx, log, opts.ReplayOptions)
	if err != nil {
		return Verdict{}, err
	}
	checks := []*Divergence{invalid, CheckArchive(entries, archive), CheckCallers(entries, log.PublicKey(), opts.Signed), CheckCurrentFiles(archive, uint64(len(entries)))}
	for _, d := range checks {
		if d != nil && (v.Divergence == nil || d.Block < v.Divergence.Block) {
			v.Divergence = d
		}
	}
	return v, nil
}
