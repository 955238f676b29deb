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
	r, entries, err := replayLogEntries(ctx, log, log.Length(), opts.ReplayOptions, true)
	if err != nil {
		var d *Divergence
		if errors.As(err, &d) { // the init entry itself
			return Verdict{Divergence: d}, nil
		}
		return Verdict{}, err
	}
	v := r.Verdict()
	r.Close()
	checks := []*Divergence{CheckArchive(entries, archive), CheckCallers(entries, log.PublicKey(), opts.Signed), CheckCurrentFiles(archive, uint64(len(entries)))}
	for _, d := range checks {
		if d != nil && (v.Divergence == nil || d.Block < v.Divergence.Block) {
			v.Divergence = d
		}
	}
	return v, nil
}
