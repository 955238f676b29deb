// Package sandbox runs NodeVMS backend scripts in goja, deterministically:
// a call's outcome is a function of its recorded environment, so that
// anyone replaying a call log gets what the host got.
//
// A backend script is a CommonJS module. Load runs its top-level code once;
// its exported functions are the methods (a module that exports a function
// has the one method "default"). Call runs one method with a Call: the JSON
// arguments, the caller, the call's time and random seed, the files archive
// and the oracle values. Async methods are awaited.
//
// # What a script sees
//
//   - System.files: the DatArchive API (getInfo, stat, readFile, readdir,
//     writeFile, mkdir, unlink, rmdir, history) over hyperdrive.Files,
//     returning promises; writes carry the call's time. Errors have
//     Beaker's names (NotFoundError, ...). writeFile stores strings in an
//     encoding, byte arrays as they are, and anything else as JSON.
//   - System.caller.id and env.callerId: the caller, or null.
//   - System.oracle(fn): fn runs on the host with the real clock and real
//     randomness, its JSON result is recorded (Record), and a replay gets
//     the recorded value without running fn (Replay).
//   - Date and Math.random read the call's recorded time and seed.
//     setTimeout, setInterval and setImmediate run in virtual time: the
//     clock jumps to each timer as the call waits for it, so nothing
//     depends on how fast the host is. Timers still pending when the call
//     settles are dropped.
//   - console (to the host's log), TextEncoder, TextDecoder,
//     queueMicrotask, and require() of "assert" and "path" (POSIX, relative
//     paths resolving from "/"). Nothing else: no network, files, processes
//     or environment; WeakRef and FinalizationRegistry are removed, since
//     they would expose the garbage collector.
//
// # Limits
//
// Each call has a time budget, a budget for the growth of the heap and a
// stack depth (Limits). A call that exceeds one, or whose context ends, is
// stopped and Call returns ErrTimeBudget, ErrMemoryBudget, ErrStackDepth
// or ErrCanceled. Its work is then half done, so the Script is broken
// (ErrBroken) and must be loaded again; the host rebuilds it by replaying
// the log (package core). A script's own exceptions are ordinary results
// (Result.Error), recorded like values.
//
// # Hostile scripts
//
// A script may replace or delete any global, and make its exports, its
// results and what it throws out of getters, Proxies and toString methods
// that throw or loop. None of that reaches the sandbox's own code: the
// built-ins it uses are taken before the script runs, and script values are
// read from Go only under guard and within the call's budgets, so the
// worst a script can do is fail its own call (or, looping, break itself).
package sandbox
