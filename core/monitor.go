package core

import (
	"context"

	"github.com/nodevms/nodevms/calllog"
	"github.com/nodevms/nodevms/hypercore"
	"github.com/nodevms/nodevms/hyperdrive"
)

// Monitor audits a host's log and archive as they grow, as a Certificate
// Transparency monitor watches a log: it replays each new entry once, keeps
// the replay's state between checks, and holds the archive to each entry's
// roots. The replicas are fed by replication elsewhere. It keeps no
// entries: following a host for years costs no more memory than a day.
type Monitor struct {
	log     *hypercore.Feed
	archive *hyperdrive.Archive
	opts    AuditOptions

	r        *Replayer
	init     *calllog.Entry
	verified uint64 // entries checked: [0, verified)
	callers  *calllog.Callers
}

// NewMonitor starts monitoring with the log's init entry.
func NewMonitor(ctx context.Context, log *hypercore.Feed, archive *hyperdrive.Archive, opts AuditOptions) (*Monitor, error) {
	init, err := readEntry(log, 0)
	if err != nil {
		return nil, err
	}
	r, err := NewReplayer(ctx, init, opts.ReplayOptions)
	if err != nil {
		return nil, err
	}
	return &Monitor{log: log, archive: archive, opts: opts, r: r, init: init, verified: 1, callers: calllog.NewCallers(log.PublicKey(), opts.Signed)}, nil
}

// Verified is how far the monitor has checked: entries [0, Verified()).
func (m *Monitor) Verified() uint64 { return m.verified }

// waiting reports whether the next entry's archive data has not arrived
// yet (its roots name blocks the replica does not have).
func (m *Monitor) waiting() bool {
	n := m.Verified()
	if n >= m.log.Length() || !m.log.Has(n) {
		return true
	}
	e, err := readEntry(m.log, n)
	if err != nil || e.FilesRoot == nil {
		return false
	}
	c := m.archive.Content()
	return m.archive.Metadata().Length() < entryVersion(e)+1 || c == nil || c.Length() < e.FilesRoot.ContentLength
}

// Advance checks the entries that arrived since the last call, up to the
// first whose archive data has not arrived, and returns the verdict so far.
// Once it names a divergence, further calls return the same.
func (m *Monitor) Advance(ctx context.Context) (Verdict, error) {
	if d := m.r.verdict.Divergence; d != nil {
		return m.r.verdict, nil
	}
	if m.verified == 1 && m.r.verdict.Calls == 0 {
		if d, lacksNodes := checkArchiveEntry(0, m.init, m.archive); d != nil && !lacksNodes {
			m.r.verdict.Divergence = d
			return m.r.verdict, nil
		}
	}
	for !m.waiting() {
		i := m.Verified()
		e, err := readEntry(m.log, i)
		if err != nil {
			if d, ok := err.(*calllog.Divergence); ok {
				m.r.verdict.Divergence = d
				return m.r.verdict, nil
			}
			return Verdict{}, err
		}
		if err := m.r.Apply(ctx, i, e); err != nil {
			return Verdict{}, err
		}
		m.verified++
		if d := m.r.verdict.Divergence; d != nil {
			return m.r.verdict, nil
		}
		if d, lacksNodes := checkArchiveEntry(i, e, m.archive); d != nil && !lacksNodes {
			m.r.verdict.Divergence = d
			return m.r.verdict, nil
		}
		if d := m.callers.Check(i, e); d != nil {
			m.r.verdict.Divergence = d
			return m.r.verdict, nil
		}
	}
	return m.r.verdict, nil
}

// Close releases the monitor's replay.
func (m *Monitor) Close() error { return m.r.Close() }
