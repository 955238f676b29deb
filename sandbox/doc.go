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
//   - System.oracle(fn, ...args): fn runs on the host with the real clock
//     and real randomness, its JSON result is recorded (Record), and a
//     replay gets the recorded value without running fn (Replay). Since a
//     replay never runs fn, fn must not change the script's state: it runs
//     in a runtime of its own, compiled from its source, and sees only its
//     code and its JSON arguments (a variable of the script's is a
//     ReferenceError, recorded like any error it throws).
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
// What a script keeps between calls is capped too (Limits.Retained): a call
// that leaves the process's live heap above it is stopped, and what it
// kept goes with it. A call stopped for any reason leaves no trace; core
// rebuilds the script.
//
// # Built-ins that work in Go
//
// The watchdog interrupts the runtime between instructions, never inside
// a built-in: goja runs Array.prototype.fill, String.prototype.repeat,
// JSON.stringify, a backtracking regular expression and the like in Go,
// so new ArrayBuffer(2**40) ended the process, new Array(1e9).fill(0)
// could not be stopped, and a deep JSON.stringify ran for a minute. Three
// remedies were weighed: patching goja to check its budgets in every
// native loop (a fork of a large, fast-moving dependency, in a build that
// has no way to host one), running scripts in a worker process with
// resource limits (robust, but every call and every System.files call
// would cross a process boundary, several times the cost of a call
// today), and checking at the boundary. The sandbox checks at the
// boundary: lib/guard.js replaces, before the script runs, every built-in
// that loops or allocates in Go in proportion to a number the script
// chooses with one that checks that number first:
//
//   - Language limits, the same on every machine, throw a RangeError (or a
//     SyntaxError for code): strings up to MaxStringLength, lists that a
//     built-in walks or builds up to MaxListLength, argument lists up to
//     MaxArguments, buffers up to MaxBufferBytes, nesting (JSON, code
//     given to eval, Function and RegExp) up to MaxNesting. A join, a
//     replacement with $-patterns or a flat is measured before it is
//     built, since a short array may hold one long string many times.
//   - An allocation that would take the call past its memory budget stops
//     the call (ErrMemoryBudget): the budget is a cap on what a built-in
//     may allocate, not only a sample of the heap.
//   - A backtracking match runs at most RegexpTimeLimit; a match that ran
//     that long stops the call (ErrTimeBudget) rather than answering "no
//     match".
//   - What a built-in reads from the script is read once, by the guard,
//     and handed on in a form that cannot change: this as a string for
//     String methods, numbers as numbers, an array-like through a view
//     whose length is fixed, a pattern as a checked string. A getter,
//     valueOf or toString could otherwise answer the guard small and the
//     built-in huge. Where goja would read elements again (concat, flat,
//     flatMap, join, sort), the guard builds the result itself; sort
//     sorts a copy, as the language defines it.
//   - The iterators of arrays, strings, Maps, Sets and matchAll step
//     through a JavaScript function, and the timer loop asks the watchdog
//     itself, so that a built-in draining an iterator in Go (spread, new
//     Set, Promise.all) or a built-in used as a timer's callback can be
//     stopped. A call may have MaxTimers timers pending.
//   - BigInt is not available (ErrBigInt at load, and for code given to
//     eval and Function): its operators allocate inside the runtime
//     without bound, where nothing can check them.
//   - A panic that escapes the runtime (goja indexed past a slice when a
//     sort comparator shortened the array) stops the call
//     (ErrRuntimeFault), not the process.
//
// The guard's own arrays and Proxy handlers have no prototype, so that
// setters a script puts on Object.prototype never see them. The wrappers
// cost a call from JavaScript into the original; ordinary calls that use
// none of them cost nothing more: serving the tutorial's counters, the
// build with the guards made 0.96 to 1.03 times the calls of the build
// before them, in the same run. Their results are the originals' (a
// differential test and a fuzz target compare them with a plain
// runtime); eval is always indirect (global scope). Two rounds of attack
// on the guards found 29 ways through, each now a test
// (TestGuardsContainHostileCalls); a boundary check cannot prove it has
// found every native loop in goja, and a worker process is the remedy if
// a third round finds the approach wanting. What the guards cannot reach
// is growth through the runtime's own operators (string +, object
// literals), which the sampled budget stops within a few milliseconds: a
// call may briefly hold about twice its memory budget.
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
