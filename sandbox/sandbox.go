package sandbox

import (
	"bytes"
	"context"
	crand "crypto/rand"
	_ "embed"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/nodevms/nodevms/calllog"

	"github.com/dop251/goja"

	"github.com/nodevms/nodevms/hyperdrive"
)

// Errors that end a call without a result. A call that ends with one of
// them has left the script's runtime in an unknown state: the Script is
// then broken (ErrBroken) and must be rebuilt (core does so by replay).
var (
	ErrTimeBudget   = errors.New("sandbox: the call ran past its time budget")
	ErrMemoryBudget = errors.New("sandbox: the call used more than its memory budget")
	ErrStackDepth   = errors.New("sandbox: the call nested deeper than the stack limit")
	ErrCanceled     = errors.New("sandbox: the call was canceled")
	ErrBroken       = errors.New("sandbox: the script was interrupted and must be reloaded")
	// ErrQuota stops a call that would write past the archive's quota
	// (hyperdrive.Quota); it wraps the archive's QuotaExceededError.
	ErrQuota = errors.New("sandbox: the call was stopped at its disk quota")
	// ErrRuntimeFault stops a call during which the runtime itself failed
	// (a panic in goja): the script is broken, the host is not.
	ErrRuntimeFault = errors.New("sandbox: the script runtime failed")
	// ErrHostFault stops a call whose System.files operation failed for a
	// reason of the host's: its disk failed or filled, or its folder was
	// changed behind the archive's back. It names no path of the host.
	ErrHostFault = errors.New("sandbox: the host could not complete the call's file operation (see the host's log)")
)

// ErrNoMethod is returned by Call for a method the script does not export
// (or that cannot be called remotely, such as init when remote is set).
var ErrNoMethod = errors.New("sandbox: no such method")

// Limits bound what one call may use. Zero values take the defaults.
type Limits struct {
	Time       time.Duration // wall-clock time of the call; 5 s
	Memory     uint64        // growth of the Go heap during the call, bytes; 256 MiB
	StackDepth int           // nested JavaScript calls; 2000
	// Retained caps what the script keeps between calls: the process's
	// live heap after a call, bytes; 512 MiB. A call that leaves more is
	// stopped (ErrMemoryBudget), so what it kept is dropped with it.
	Retained uint64
}

// ForReplay is the limits for replaying calls that a host already ran
// under l: four times the time and memory, the same stack depth (which
// the runtime counts exactly). A replay on a slower or busier machine
// than the host's must reproduce what the host did, not stop where the
// host did not; its limits are there for safety against a log that no
// honest host wrote.
func (l Limits) ForReplay() Limits {
	l = l.WithDefaults()
	l.Time *= 4
	l.Memory *= 4
	l.Retained *= 4
	return l
}

// SetLimits changes the limits of the calls to come: a script rebuilt
// by a replay (under ForReplay) serves under the host's.
func (s *Script) SetLimits(l Limits) {
	l = l.WithDefaults()
	s.limits = l
	if s.broken == nil {
		s.rt.SetMaxCallStackSize(l.StackDepth)
	}
	s.watchdog.setLimits(l)
}

// SetLogger changes where console output goes (nil discards it): a
// script rebuilt by a replay, which was silent, logs as it serves.
func (s *Script) SetLogger(l *slog.Logger) {
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	s.log = l
}

// WithDefaults is l with its zero fields set to the defaults.
func (l Limits) WithDefaults() Limits {
	if l.Time == 0 {
		l.Time = 5 * time.Second
	}
	if l.Memory == 0 {
		l.Memory = 256 << 20
	}
	if l.StackDepth == 0 {
		l.StackDepth = 2000
	}
	if l.Retained == 0 {
		l.Retained = 512 << 20
	}
	return l
}

// Options configure Load.
type Options struct {
	// Filename names the script in stack traces.
	Filename string
	// Time and Seed are the clock and the random seed of the module's
	// top-level code (recorded in the log's init entry, so that replays
	// load the same way).
	Time int64 // ms since the epoch
	Seed uint64
	// Limits bound the module's top-level code and every call.
	Limits Limits
	// Logger receives console output; nil discards it.
	Logger *slog.Logger

	// live makes the clock and Math.random real: an oracle's runtime.
	live bool
}

// Script is a loaded backend script. Calls run one at a time; a Script is
// not safe for concurrent use.
type Script struct {
	rt      *goja.Runtime
	exports goja.Value
	methods []string
	limits  Limits
	log     *slog.Logger

	// The built-ins the sandbox itself uses, taken before the script runs:
	// a script may replace or delete the globals, and must not break (or
	// crash) the sandbox by doing so.
	stringify, parse, promiseResolve goja.Callable
	errorCtor, promiseCtor           goja.Value
	uint8ArrayCtor, dateCtor         goja.Value
	callerObj, envObj                *goja.Object // System.caller and env as installed
	// listExports reads the script's exports in JavaScript, so that a
	// getter (or a Proxy) that throws or loops is the script's own error
	// under its budgets, never a panic of the sandbox.
	listExports goja.Callable

	call     *callState // the call in progress, or nil
	live     bool       // real time and randomness (an oracle's runtime)
	watchdog *watchdog
	broken   error

	// heapSeen is the heap's objects when checkRetained last measured
	// them, at heapSeenAt.
	heapSeen   uint64
	heapSeenAt time.Time
}

//go:embed lib/path.js
var pathJS string

//go:embed lib/assert.js
var assertJS string

// builtins are the modules require() gives.
var builtins = map[string]string{"path": pathJS, "assert": assertJS}

// Load compiles and runs a CommonJS module: its top-level code runs once,
// and what it exports (exports.fn, module.exports = {...}, or
// module.exports = function, callable as "default") becomes the methods.
func Load(code string, opts Options) (*Script, error) {
	s := &Script{rt: goja.New(), limits: opts.Limits.WithDefaults(), log: opts.Logger, live: opts.live}
	s.watchdog = &watchdog{rt: s.rt, limits: s.limits}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if opts.Filename == "" {
		opts.Filename = "backend.js"
	}
	rt := s.rt
	rt.SetMaxCallStackSize(s.limits.StackDepth)
	rt.SetFieldNameMapper(goja.UncapFieldNameMapper())
	// Time and randomness come from the call being run (see callState):
	// the recorded time and seed, so that a replay sees the same.
	rt.SetTimeSource(func() time.Time { return s.now() })
	rt.SetRandSource(func() float64 { return s.random() })
	for _, name := range []string{"WeakRef", "FinalizationRegistry"} {
		rt.GlobalObject().Delete(name) // they would expose the garbage collector's timing
	}
	if err := refuseBigInt(code); err != nil {
		return nil, err
	}
	// JSON.parse as it is, for the sandbox's own parsing: parseJSON checks
	// the text's depth in Go first, which costs less than the guard.
	s.parse, _ = goja.AssertFunction(rt.Get("JSON").ToObject(rt).Get("parse"))
	// Guards next: what the sandbox captures below is the guarded
	// built-ins (a result's JSON.stringify is limited like the script's).
	if err := s.installGuards(); err != nil {
		return nil, err
	}
	s.stringify, _ = goja.AssertFunction(rt.Get("JSON").ToObject(rt).Get("stringify"))
	s.promiseResolve, _ = goja.AssertFunction(rt.Get("Promise").ToObject(rt).Get("resolve"))
	s.errorCtor = rt.Get("Error")
	s.promiseCtor = rt.Get("Promise")
	s.uint8ArrayCtor = rt.Get("Uint8Array")
	s.dateCtor = rt.Get("Date")
	if err := s.installGlobals(); err != nil {
		return nil, err
	}
	if err := s.compileHelpers(); err != nil {
		return nil, err
	}

	prog, err := goja.Compile(opts.Filename, "(function (exports, require, module, __filename, __dirname) {"+code+"\n})", false)
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	module := rt.NewObject()
	exports := rt.NewObject()
	module.Set("exports", exports)
	var result Result
	err = s.run(context.Background(), &callState{time: opts.Time, rng: newRand(opts.Seed)}, func() (goja.Value, error) {
		fn, err := rt.RunProgram(prog)
		if err != nil {
			return nil, err
		}
		wrapper, _ := goja.AssertFunction(fn)
		return wrapper(goja.Undefined(), exports, rt.Get("require"), module, rt.ToValue("/"+opts.Filename), rt.ToValue("/"))
	}, &result)
	if err != nil {
		return nil, err
	}
	if result.Error != nil {
		return nil, fmt.Errorf("sandbox: the script threw while loading: %s", result.Error)
	}
	var listed goja.Value
	err = s.run(context.Background(), &callState{time: opts.Time, rng: newRand(opts.Seed)}, func() (goja.Value, error) {
		v, err := s.listExports(goja.Undefined(), module)
		listed = v
		return goja.Undefined(), err
	}, &result)
	if err != nil {
		return nil, err
	}
	if result.Error != nil {
		return nil, fmt.Errorf("sandbox: the script threw while its exports were read: %s", result.Error)
	}
	// listed is the helper's own array: [exports, [method names]].
	pair := listed.ToObject(rt)
	s.exports = pair.Get("0")
	names, _ := pair.Get("1").Export().([]any)
	for _, name := range names {
		if name, ok := name.(string); ok {
			s.methods = append(s.methods, name)
		}
	}
	sort.Strings(s.methods)
	return s, nil
}

// compileHelpers makes listExports, before the script runs: it holds on
// to the built-ins it uses, which the script may replace.
func (s *Script) compileHelpers() error {
	v, err := s.rt.RunString(`(function (keys) {
	return function (module) {
		const e = module.exports
		const names = typeof e === 'function' ? ['default'] : []
		if (e !== null && (typeof e === 'object' || typeof e === 'function')) {
			const ks = keys(e)
			for (let i = 0; i < ks.length; i++) {
				if (typeof e[ks[i]] === 'function') names[names.length] = ks[i]
			}
		}
		return [e, names]
	}
})(Object.keys)`)
	if err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	s.listExports, _ = goja.AssertFunction(v)
	return nil
}

// method looks up an exported method at call time, as libvms did (a script
// may replace its methods). A getter or a Proxy on the exports runs here:
// what it throws is the call's error, and a budget that stops it stops the
// call; neither panics.
func (s *Script) method(name string) (goja.Callable, error) {
	fv := s.exports
	if _, isFunc := goja.AssertFunction(s.exports); name != "default" || !isFunc {
		// (A module that exports a function is "default"; an object may
		// have a method named default too.)
		obj, ok := s.exports.(*goja.Object)
		if !ok {
			return nil, s.typeError("exports is not an object")
		}
		if err := s.guard(func() { fv = obj.Get(name) }); err != nil {
			return nil, err
		}
	}
	fn, ok := goja.AssertFunction(fv)
	if !ok {
		return nil, s.typeError("exports." + name + " is not a function")
	}
	return fn, nil
}

// guard runs f, which reads script values from Go (a property, a
// conversion to string), and may so run the script's getters, Proxy traps
// and toString: what they throw comes back as a *goja.Exception, and a
// budget's interrupt or a stack overflow as its error, instead of a panic
// through the sandbox. Call it while the call's budgets hold.
func (s *Script) guard(f func()) (err error) {
	defer func() {
		// Try has unwound the runtime to its frame before an uncatchable
		// error goes on as a panic.
		switch x := recover().(type) {
		case nil:
		case *goja.InterruptedError:
			err = x
		case *goja.StackOverflowError:
			err = x
		default:
			panic(x)
		}
	}()
	if ex := s.rt.Try(f); ex != nil {
		return ex
	}
	return nil
}

// errorText is err.Error(), which for an exception converts the thrown
// value to a string, so runs script code: under guard.
func (s *Script) errorText(err error) string {
	var text string
	if s.guard(func() { text = err.Error() }) != nil {
		return "a value that cannot be converted to a string"
	}
	return text
}

// typeError is a TypeError thrown by the sandbox on the script's behalf.
func (s *Script) typeError(msg string) error {
	return s.rt.Try(func() { panic(s.rt.NewTypeError(msg)) })
}

// release lets go of a broken script's runtime, which may hold up to its
// memory caps: the script that replaces it (core replays the log for one)
// would otherwise be built beside it. A broken script only answers
// ErrBroken.
func (s *Script) release() {
	s.rt, s.exports, s.listExports = nil, nil, nil
	s.stringify, s.parse, s.promiseResolve = nil, nil, nil
	s.errorCtor, s.promiseCtor, s.uint8ArrayCtor, s.dateCtor = nil, nil, nil, nil
	s.callerObj, s.envObj = nil, nil
	s.watchdog.release()
}

// Methods lists the exported functions, sorted ("default" for a module
// that exports a function).
func (s *Script) Methods() []string { return append([]string(nil), s.methods...) }

// HasMethod reports whether the script exports method.
func (s *Script) HasMethod(method string) bool {
	for _, m := range s.methods {
		if m == method {
			return true
		}
	}
	return false
}

// Call is one call's environment: everything that may influence it.
type Call struct {
	Method string
	// Args is the JSON array of arguments; nil for none.
	Args json.RawMessage
	// CallerID is System.caller.id and env.callerId; nil for an anonymous
	// caller (null).
	CallerID *string
	// Time is the call's clock, ms since the epoch: Date.now() and new
	// Date() read it (advanced by virtual timers), and writes carry it.
	Time int64
	// Seed seeds Math.random for the call.
	Seed uint64
	// Files backs System.files; nil if the script has no archive.
	Files *hyperdrive.Files
	// Oracles gives System.oracle's values: Record on the host, Replay
	// when replaying a log.
	Oracles Oracles
	// UnrecordedRandom, if set, replaces the seeded Math.random with a
	// source the log does not record. It exists only so that tests can
	// make a host nondeterministic and check that an audit says so.
	UnrecordedRandom func() float64
	// Slow, if set, is called once if the call is still running SlowAfter
	// after it began (within a few milliseconds more), on another
	// goroutine: a host can answer calls that ran before it meanwhile. It
	// must not block.
	Slow func()
}

// SlowAfter is how long a call runs before Call.Slow is called.
const SlowAfter = 5 * time.Millisecond

// Result is what a call produced.
type Result struct {
	// Value is the JSON of what the call returned (its promise's value for
	// an async call): JSON.stringify's output, or null for undefined.
	Value json.RawMessage
	// Error is set when the call threw (or its promise rejected).
	Error *ScriptError
}

// ScriptError is an error a script threw, as the call log records it.
type ScriptError = calllog.ScriptError

// Call runs one exported method. A script's own failure (it throws) is in
// Result.Error; err is for calls that could not run or were stopped
// (ErrNoMethod, a budget, ctx), after which the Script is broken.
func (s *Script) Call(ctx context.Context, c Call) (Result, error) {
	if s.broken != nil {
		return Result{}, fmt.Errorf("%w: %w", ErrBroken, s.broken)
	}
	if !s.HasMethod(c.Method) {
		return Result{}, fmt.Errorf("%w: %q", ErrNoMethod, c.Method)
	}
	args, err := s.arguments(c.Args)
	if err != nil {
		return Result{}, err
	}
	if c.Files != nil {
		// A recursive files operation is one native call: it asks the
		// watchdog between entries.
		c.Files.SetStop(s.watchdog.stopped)
	}
	st := &callState{
		time:       c.Time,
		rng:        newRand(c.Seed),
		callerID:   c.CallerID,
		files:      c.Files,
		oracles:    c.Oracles,
		unrecorded: c.UnrecordedRandom,
		slow:       c.Slow,
	}
	s.setCaller(c.CallerID)
	var result Result
	err = s.run(ctx, st, func() (goja.Value, error) {
		// Looked up at each call, as libvms did: a script may replace its
		// methods (one that is no longer a function throws a TypeError).
		fn, err := s.method(c.Method)
		if err != nil {
			return nil, err
		}
		return fn(s.exports, args...)
	}, &result)
	return result, err
}

// arguments parses a call's JSON array of arguments into JavaScript
// values, as JSON.parse makes them.
func (s *Script) arguments(raw []byte) ([]goja.Value, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || isEmptyArray(raw) {
		return nil, nil // most calls: no parse, no array to build and take apart
	}
	if err := CheckArguments(raw); err != nil {
		return nil, err // (which checked the depth too)
	}
	parsed, err := s.parse(goja.Undefined(), s.rt.ToValue(string(raw)))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrArguments, err)
	}
	arr, ok := parsed.(*goja.Object)
	if !ok || arr.ClassName() != "Array" {
		return nil, fmt.Errorf("%w: not a JSON array", ErrArguments)
	}
	n := arr.Get("length").ToInteger()
	args := make([]goja.Value, n)
	for i := range args {
		args[i] = arr.Get(strconv.Itoa(i))
	}
	return args, nil
}

// parseJSON is JSON.parse(text), refused past MaxNesting, as the guarded
// JSON.parse refuses it.
func (s *Script) parseJSON(text string) (goja.Value, error) {
	if v, ok := s.jsonScalar(text); ok {
		return v, nil
	}
	if jsonDepth(text, MaxNesting) > MaxNesting {
		return nil, fmt.Errorf("JSON nested deeper than %d", MaxNesting)
	}
	return s.parse(goja.Undefined(), s.rt.ToValue(text))
}

// jsonScalar is JSON.parse(text) for the texts that need no decoder: a
// number, a string of up to 16 printable ASCII characters without
// escapes, true, false or null, with nothing around it. A file holding a
// counter or a name is read on every call, and JSON.parse's decoder
// allocates a kilobyte or more for each. The values are the ones
// JSON.parse makes (its numbers go through strconv.ParseFloat and goja's
// ToValue of a float64, as here). ok is false for any other text, which
// JSON.parse then parses; so is it for a number ParseFloat refuses (out
// of range), which JSON.parse refuses too, with its own error.
func (s *Script) jsonScalar(text string) (v goja.Value, ok bool) {
	switch {
	case text == "true":
		return s.rt.ToValue(true), true
	case text == "false":
		return s.rt.ToValue(false), true
	case text == "null":
		return goja.Null(), true
	case len(text) >= 2 && len(text) <= 18 && text[0] == '"' && text[len(text)-1] == '"':
		// Up to 16 characters: ToValue makes a longer string a lazily
		// converted one, where JSON.parse makes a plain one.
		str := text[1 : len(text)-1]
		for i := 0; i < len(str); i++ {
			if c := str[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
				return nil, false
			}
		}
		return s.rt.ToValue(str), true
	case isJSONNumber(text):
		f, err := strconv.ParseFloat(text, 64)
		if err != nil {
			return nil, false
		}
		return s.rt.ToValue(f), true
	}
	return nil, false
}

// isJSONNumber reports whether text is a JSON number, as RFC 8259 writes
// it: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func isJSONNumber(text string) bool {
	i, n := 0, len(text)
	digits := func() int {
		start := i
		for i < n && text[i] >= '0' && text[i] <= '9' {
			i++
		}
		return i - start
	}
	if i < n && text[i] == '-' {
		i++
	}
	switch {
	case i < n && text[i] == '0':
		i++
	case digits() == 0:
		return false
	}
	if i < n && text[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < n && (text[i] == 'e' || text[i] == 'E') {
		i++
		if i < n && (text[i] == '+' || text[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == n
}

// isEmptyArray reports whether b, trimmed, is [] with only white space
// inside.
func isEmptyArray(b []byte) bool {
	return len(b) >= 2 && b[0] == '[' && b[len(b)-1] == ']' && len(bytes.TrimSpace(b[1:len(b)-1])) == 0
}

// run runs start in the call's environment, then its virtual event loop
// until the returned value (or promise) settles, under the budgets.
func (s *Script) run(ctx context.Context, st *callState, start func() (goja.Value, error), result *Result) error {
	s.call = st
	defer func() {
		s.call = nil
		if s.broken != nil {
			s.release()
		}
	}()
	stop := s.watchdog.begin(ctx, st.slow)
	var v goja.Value
	var err error
	// Reading what the call gave runs script code too (toJSON, the getters
	// and toString of a thrown value): before the budgets end.
	var raw json.RawMessage
	var thrown, notJSON *ScriptError
	if perr := protect(func() {
		v, err = start()
		if err == nil {
			v, err = s.settle(st, v)
		}
		var exc *goja.Exception
		switch {
		case err == nil:
			var jerr error
			var interrupted *goja.InterruptedError
			if raw, jerr = s.toJSON(v); errors.As(jerr, &interrupted) {
				err = jerr // a budget
			} else if jerr != nil {
				notJSON = &ScriptError{Name: "TypeError", Message: "the result is not JSON: " + s.errorText(jerr)}
			}
		case errors.As(err, &exc):
			thrown = s.scriptError(exc.Value())
		}
	}); perr != nil {
		err, thrown, notJSON = perr, nil, nil
	}
	if werr := stop(); werr != nil {
		s.broken = werr
		return werr
	}
	if rerr := s.checkRetained(); rerr != nil {
		s.broken = rerr
		return rerr
	}
	if st.fatal != nil {
		s.broken = st.fatal
		return st.fatal
	}
	if err != nil {
		var interrupted *goja.InterruptedError
		var overflow *goja.StackOverflowError
		switch {
		case errors.As(err, &interrupted):
			s.broken = err
			return err
		case errors.As(err, &overflow):
			s.broken = ErrStackDepth
			return ErrStackDepth
		case thrown != nil:
			result.Error = thrown
			result.Value = json.RawMessage("null")
			return nil
		case errors.Is(err, errRejected):
			result.Error = st.rejection
			result.Value = json.RawMessage("null")
			return nil
		}
		s.broken = err
		return err
	}
	if notJSON != nil {
		result.Error = notJSON
		result.Value = json.RawMessage("null")
		return nil
	}
	result.Value = raw
	return nil
}

// protect runs f, turning a panic that escapes the runtime into
// ErrRuntimeFault: a script that finds a bug in goja (one crashed the
// process from a sort comparator) stops its own call, never the host.
// The runtime is then in an unknown state, so the caller breaks the
// script.
func protect(f func()) (err error) {
	defer func() {
		if x := recover(); x != nil {
			err = fmt.Errorf("%w: %v", ErrRuntimeFault, x)
		}
	}()
	f()
	return nil
}

var int64Type = reflect.TypeFor[int64]()

// toJSON is JSON.stringify(v), with undefined (and functions) as null.
func (s *Script) toJSON(v goja.Value) (json.RawMessage, error) {
	if _, obj := v.(*goja.Object); !obj && v != nil && v.ExportType() == int64Type {
		// An integer (a counter's answer): what JSON.stringify would
		// write, without calling into the runtime for it.
		return strconv.AppendInt(nil, v.ToInteger(), 10), nil
	}
	out, err := s.stringify(goja.Undefined(), v)
	if err != nil {
		return nil, err
	}
	if goja.IsUndefined(out) {
		return json.RawMessage("null"), nil
	}
	return json.RawMessage(out.String()), nil
}

// scriptError describes a thrown value. Its getters and toString are the
// script's: run it while the call's budgets hold.
func (s *Script) scriptError(v goja.Value) *ScriptError {
	var e *ScriptError
	if s.guard(func() { e = s.describe(v) }) != nil {
		return &ScriptError{Name: "Error", Message: "the thrown value could not be read"}
	}
	return e
}

func (s *Script) describe(v goja.Value) *ScriptError {
	if obj, ok := v.(*goja.Object); ok {
		name, msg := obj.Get("name"), obj.Get("message")
		if name != nil && !goja.IsUndefined(name) || msg != nil && !goja.IsUndefined(msg) {
			e := &ScriptError{}
			if name != nil && !goja.IsUndefined(name) {
				e.Name = name.String()
			}
			if msg != nil && !goja.IsUndefined(msg) {
				e.Message = msg.String()
			}
			return e
		}
	}
	if v == nil {
		return &ScriptError{Message: "undefined"}
	}
	return &ScriptError{Message: v.String()}
}

// callState is the environment of the call in progress.
type callState struct {
	time     int64 // virtual ms
	rng      *rand.Rand
	callerID *string
	files    *hyperdrive.Files
	oracles  Oracles

	unrecorded func() float64
	slow       func() // Call.Slow
	timers     timerQueue
	nextTimer  int64
	rejection  *ScriptError
	fatal      error // stops the call: a replay's oracle values ran out
}

func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, seed^0x6e6f6465766d73)) }

func (s *Script) now() time.Time {
	st := s.call
	switch {
	case st == nil:
		return time.UnixMilli(0)
	case s.live:
		return time.Now()
	}
	return time.UnixMilli(st.time)
}

func (s *Script) random() float64 {
	st := s.call
	switch {
	case st == nil:
		return 0
	case s.live:
		var b [8]byte
		crand.Read(b[:])
		return float64(binary.LittleEndian.Uint64(b[:])>>11) / (1 << 53)
	case st.unrecorded != nil:
		return st.unrecorded()
	}
	return st.rng.Float64()
}

// newError makes a JavaScript Error with a name.
func (s *Script) newError(name, message string) *goja.Object {
	obj, _ := s.rt.New(s.errorCtor, s.rt.ToValue(message))
	if name != "" && name != "Error" {
		obj.Set("name", name)
	}
	return obj
}

// errorsName gives the name of a Go error for scripts.
func errorsName(err error) (name, message string) {
	var e *hyperdrive.Error
	if errors.As(err, &e) {
		return e.Name, e.Message
	}
	return "Error", strings.TrimPrefix(err.Error(), "hyperdrive: ")
}
