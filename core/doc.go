// Package core is NodeVMS's deterministic VM: it runs a backend script's
// calls against its files archive, records each call and its outcome in the
// call log, and replays logs to check them.
//
// # The call log
//
// The log is a hypercore of JSON entries, whose format is package calllog's
// (its SCHEMA.md). Block 0 is the init entry: the script's code, the
// archive's keys, the deploy time and seed, and the outcome of the
// script's init export if it has one. Every other
// block is a call: who called what with which arguments, at what time and
// seed, which oracle values it drew, and what it gave: result or error, and
// the archive's version and tree hashes afterwards. Everything a call's
// outcome depends on is in its entry or in the entries before it.
//
// A backend's memory is kept (schema 1: the script's memory is what every
// call before left it) or starts afresh (Config.MemoryAfresh at deploy,
// schema 2): the log may then hold reload entries, where the script is
// loaded again from its code with the entry's clock and seed, its memory
// starting over and its files as they were. The host reloads instead of
// restoring memory after a stopped call, which costs a load (about 3 ms)
// on a log of any length, however many stops come in a row, and at a
// start when the archive holds what the log's last entry left, which then
// costs a check of the stores and a load rather than a replay of the log
// (a million calls: 4 to 5 s, about 50 MB). A backend that
// keeps its state in its files loses nothing by it; one that keeps state in
// memory (a counter in a variable) must be deployed with its memory kept.
//
// # The host
//
//	h, err := core.Deploy(ctx, core.Config{Archive: archive, Log: log}, code, title, nil)
//	resp, err := h.Call(ctx, core.Request{Method: "increment"})
//	err = h.Close()
//	h, err = core.Open(ctx, cfg) // after a restart
//
// Calls run one at a time, in arrival order, from a bounded queue (Submit
// queues one with a callback, Call waits for it). A server collects the
// calls it reads in a Batch and hands them over with SubmitBatch: if the
// host is idle and nothing is queued, they run at once on the server's
// goroutine, which saves handing them to the host's (on virtual machines
// a wake-up of another thread costs more than a small call); otherwise
// they are queued behind the others.
//
// The host works in two steps, like raft's Ready and Advance. Running a
// group's calls does no I/O: each runs against the archive with its
// writes staged in memory, and leaves its entry in a ready (driver.go).
// The driver's step then appends the ready's entries to the log in one
// batch and flushes it, commits the archive (writing the staged blocks),
// and answers. The walk of one call: rpc reads it, Host.SubmitBatch or
// Submit queues it, runGroup and runCall run it (machine.run, the
// sandbox), commitGroup makes it durable and answers it.
//
// A call's answer leaves
// only once its entry is durable; calls that arrive together share one log
// append and one flush (group commit), and the archive blocks they wrote
// are shown to peers only then; a call that runs long (sandbox.SlowAfter)
// does not hold up the answers of the calls before it in its group, whose
// entries are committed while it runs. With a log and an archive opened with
// DeferSignatures (as the command opens them), the host signs both every
// Config.SignEvery (5 ms) rather than every group, and peers see new
// entries and files when they are signed. A call that asks for a receipt
// (Request.Receipt) is answered at that signature instead, with its entry's
// proof and the signature (package receipt; receipts.go); while such
// answers wait, the host signs sooner, once 32 of them do or once it has
// no other call to run. A call that
// throws is logged with its error and its writes stay; a call the host
// stops (a sandbox budget) leaves no trace: its writes were staged in
// memory (hyperdrive.Archive.Begin) and are dropped, and
// the script, whose memory the stop left in an unknown state, is loaded
// again (memory afresh) or replaced by a standby runtime (memory kept). The
// standby follows the log in the host's idle time (so a busy host pays
// nothing for it), and takes over after replaying what it had not reached:
// a stop costs the standby's lag, not a replay of the whole log. A new
// standby then starts from the log's beginning, so stops that come faster
// than it catches up, or a host whose load never pauses, still cost up to
// a replay of the log each: goja cannot copy a runtime, which is why a
// backend that faces callers it does not trust is best deployed with its
// memory afresh. Following is a self-check
// too: a logged entry that the standby cannot reproduce is an error in the
// host's own log at once. The archive is
// flushed at most once a second: the log is the write-ahead record, and
// Open redoes from it what a crash kept from the archive.
//
// # Damage, crashes and full disks
//
// Open checks what the host is about to stand behind before it replays:
// the archive's feeds and the log's (hypercore.Feed.CheckStored) and the
// folder's files by size; a folder changed on disk is refused with
// ErrDamaged, naming the file, and nothing is signed over it. What a
// crash leaves is repaired, not refused: the archive takes back content
// no entry points at, and the log's calls the archive lacks are redone.
// CheckFolder checks a stopped backend the same way and more, offline. A
// write to the log or the archive that fails while serving (a full disk)
// makes calls fail with ErrUnavailable, and the host reopens both stores
// in place, as Open would, once they take writes again; a call is never
// acknowledged before its entry is durable. Deploy refuses a script whose
// init throws (ErrInitFailed).
//
// # Replay
//
// Replayer (and Replay, for a whole feed) runs a log through the same
// machine the host uses, into a private unsigned copy of the archive, and
// compares every entry. The Verdict either says how many calls verified
// and where the archive ended, or names the first Divergence: the entry,
// the field, the logged and the replayed values, and whether it looks like
// nondeterminism (the script's behaviour, files included, went another way)
// or tampering (one logged field disagrees with an otherwise identical
// replay). Open uses the same replay to rebuild a restarted host whose
// memory is kept, or one a crash left with an archive behind its log. A
// replay reads the log as it goes, a chunk of entries at a time
// (hypercore.Feed.Blocks), never all of it at once.
package core
