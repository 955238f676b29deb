// Package audit checks a NodeVMS host from outside, as anyone can: it
// downloads the backend's call log and files archive over the host's
// WebSocket replication path, replays every call through the same core
// the host runs, checks every signed call and every archive root the log
// names, and gives a typed verdict. The nodevms command's -a is flags and
// output over this package:
//
//	a, err := audit.Open(ctx, audit.Options{Addr: "localhost:5555"})
//	if err != nil { ... } // could not audit
//	defer a.Close()
//	res, err := a.Audit(ctx)
//	switch {
//	case err != nil: // could not audit (the network, a replay past its limits)
//	case res.Outcome == audit.Verified:
//	default: // audit.Diverged or audit.Forked: the host misbehaved
//	}
//
// The replay starts as the log arrives, beside the download (see
// core.AuditOptions.Arriving): it is an audit's longest part, and runs on
// one core. The verdict is the one an audit after the download gives.
//
// An audit's memory does not grow with the log: the replicas it downloads,
// and the replay's own copy of the files archive, are files (in a
// temporary folder that Close removes, unless Options.Out keeps the
// replicas), written through write-back buffers of a few megabytes.
//
// An auditor that keeps its replicas in a folder (Options.Out) downloads
// only what is new at its next audit, and records the head it verified, so
// that a host that later shows another history under the same key is
// reported as a fork. Follow then keeps the replicas live, checks each new
// entry as it arrives, and rehosts both feeds for other peers.
//
// A verdict of Diverged or Forked is about the host; an error is about the
// audit (the host unreachable, a download cut short, a replay that ran
// past this machine's limits, which are four times the host's). No
// verdict is given once ctx is done: a stopped download or replay could
// look like a fork or a divergence.
package audit
