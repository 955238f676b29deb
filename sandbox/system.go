package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"reflect"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/nodevms/nodevms/calllog"

	"github.com/dop251/goja"

	"github.com/nodevms/nodevms/hyperdrive"
)

// ErrOracleMismatch: a replayed call asked System.oracle for more values
// than the log recorded for it.
var ErrOracleMismatch = errors.New("sandbox: the call asked for an oracle value the log does not have")

// OracleValue is one recorded System.oracle outcome: a JSON value or the
// error the function threw.
type OracleValue = calllog.OracleValue

// Oracles gives a call's System.oracle values.
type Oracles interface {
	// Next returns the call's next oracle value; run computes one (on the
	// host: it runs the script's function).
	Next(run func() OracleValue) (OracleValue, error)
}

// Record runs every oracle function and keeps what it gave, in order.
type Record struct{ Values []OracleValue }

// Next implements Oracles.
func (r *Record) Next(run func() OracleValue) (OracleValue, error) {
	v := run()
	r.Values = append(r.Values, v)
	return v, nil
}

// Replay gives back recorded values in order, never running a function.
type Replay struct {
	Values []OracleValue
	Used   int
}

// Next implements Oracles.
func (r *Replay) Next(func() OracleValue) (OracleValue, error) {
	if r.Used >= len(r.Values) {
		return OracleValue{}, fmt.Errorf("%w (it has %d)", ErrOracleMismatch, len(r.Values))
	}
	r.Used++
	return r.Values[r.Used-1], nil
}

// isHostFault reports whether a files operation failed for a reason of the
// host's (its disk, or its folder changed behind the archive's back),
// rather than with one of Beaker's errors, which are the script's
// outcomes.
func isHostFault(err error) bool {
	if err == nil {
		return false // before the targets below, which escape to the heap
	}
	var pathErr *fs.PathError
	var linkErr *os.LinkError
	var sysErr *os.SyscallError
	var errno syscall.Errno
	return errors.Is(err, hyperdrive.ErrModified) || errors.As(err, &pathErr) || errors.As(err, &linkErr) ||
		errors.As(err, &sysErr) || errors.As(err, &errno)
}

// installGlobals gives scripts what they may use: System, env, console,
// timers in virtual time, TextEncoder and TextDecoder, queueMicrotask, and
// require() of the built-in modules.
func (s *Script) installGlobals() error {
	rt := s.rt
	system := rt.NewObject()
	caller := rt.NewObject()
	caller.Set("id", goja.Null())
	system.Set("caller", caller)
	s.callerObj = caller
	system.Set("files", s.filesObject())
	system.Set("oracle", s.oracle)
	rt.Set("System", system)
	env := rt.NewObject()
	env.Set("callerId", goja.Null())
	rt.Set("env", env)
	s.envObj = env

	console := rt.NewObject()
	for _, level := range []string{"log", "info", "warn", "error", "debug"} {
		level := level
		console.Set(level, func(call goja.FunctionCall) goja.Value {
			// A line of the host's log, not a place to copy a script's
			// memory to: at most maxConsoleLine bytes of it.
			var line strings.Builder
			for i, a := range call.Arguments {
				if i > 0 {
					line.WriteByte(' ')
				}
				if line.Len() >= maxConsoleLine {
					break
				}
				part := s.display(a)
				line.WriteString(part[:min(len(part), maxConsoleLine-line.Len())])
			}
			text := line.String()
			if line.Len() >= maxConsoleLine {
				text += "…"
			}
			s.log.Info(text, "console", level)
			return goja.Undefined()
		})
	}
	rt.Set("console", console)

	rt.Set("setTimeout", func(c goja.FunctionCall) goja.Value { return s.setTimer(c, false, false) })
	rt.Set("setInterval", func(c goja.FunctionCall) goja.Value { return s.setTimer(c, true, false) })
	rt.Set("setImmediate", func(c goja.FunctionCall) goja.Value { return s.setTimer(c, false, true) })
	for _, name := range []string{"clearTimeout", "clearInterval", "clearImmediate"} {
		rt.Set(name, s.clearTimer)
	}
	rt.Set("TextEncoder", func(c goja.ConstructorCall) *goja.Object {
		c.This.Set("encoding", "utf-8")
		c.This.Set("encode", func(v goja.Value) goja.Value {
			if v == nil || goja.IsUndefined(v) {
				return s.bytesValue(nil)
			}
			// Up to three bytes a character, and a copy on the way.
			n := 0
			if str, ok := v.ToString().(goja.String); ok {
				n = str.Length()
			}
			s.charge(float64(n) * 6)
			return s.bytesValue([]byte(v.String()))
		})
		return nil
	})
	rt.Set("TextDecoder", func(c goja.ConstructorCall) *goja.Object {
		c.This.Set("encoding", "utf-8")
		c.This.Set("decode", func(v goja.Value) string {
			b, _ := s.bytesOf(v)
			// A byte may become a replacement character: three bytes
			// here, two in the runtime, and copies on the way.
			s.charge(float64(len(b)) * 12)
			return strings.ToValidUTF8(string(b), "\uFFFD")
		})
		return nil
	})
	modules := map[string]goja.Value{}
	rt.Set("require", func(name string) goja.Value {
		name = strings.TrimPrefix(name, "node:")
		if m, ok := modules[name]; ok {
			return m
		}
		src, ok := builtins[name]
		if !ok {
			panic(s.newError("Error", fmt.Sprintf("require(%q) is not available in a NodeVMS backend; only assert and path are", name)))
		}
		fn, err := rt.RunString("(function (exports, require, module) {" + src + "\n})")
		if err != nil {
			panic(err)
		}
		wrapper, _ := goja.AssertFunction(fn)
		module := rt.NewObject()
		module.Set("exports", rt.NewObject())
		if _, err := wrapper(goja.Undefined(), module.Get("exports"), rt.Get("require"), module); err != nil {
			panic(err)
		}
		modules[name] = module.Get("exports")
		return modules[name]
	})
	_, err := rt.RunString(`globalThis.queueMicrotask = function queueMicrotask (fn) { Promise.resolve().then(fn) }`)
	return err
}

// setCaller sets System.caller.id and env.callerId for a call, on the
// objects installed there: a script that replaced them (or froze them)
// only changes what it sees itself, the same way in every replay.
func (s *Script) setCaller(id *string) {
	v := goja.Null()
	if id != nil {
		v = s.rt.ToValue(*id)
	}
	s.callerObj.Set("id", v)
	s.envObj.Set("callerId", v)
}

// maxConsoleLine is the most of a console call the host's log keeps.
const maxConsoleLine = 64 << 10

var stringType = reflect.TypeFor[string]()

// display is how console shows a value.
func (s *Script) display(v goja.Value) string {
	if v == nil || goja.IsUndefined(v) {
		return "undefined"
	}
	if v.ExportType() == stringType {
		return v.String()
	}
	if raw, err := s.toJSON(v); err == nil && string(raw) != "null" {
		return string(raw)
	}
	return v.String()
}

// bytesValue is b as a Uint8Array. It runs in the script's native calls,
// where a panic with a JavaScript value throws it.
func (s *Script) bytesValue(b []byte) goja.Value {
	u8, err := s.rt.New(s.uint8ArrayCtor, s.rt.ToValue(s.rt.NewArrayBuffer(b)))
	if err != nil {
		panic(s.rt.NewGoError(err))
	}
	return u8
}

// bytesOf returns the bytes of a Uint8Array (or other typed array) or an
// ArrayBuffer.
func (s *Script) bytesOf(v goja.Value) ([]byte, bool) {
	if v == nil {
		return nil, false
	}
	switch x := v.Export().(type) {
	case []byte:
		return x, true
	case goja.ArrayBuffer:
		return x.Bytes(), true
	}
	return nil, false
}

// oracle is System.oracle(fn): fn runs on the host with real time and
// randomness, and its JSON result is recorded; a replay returns the
// recorded value without running fn. It returns a promise of the value.
func (s *Script) oracle(call goja.FunctionCall) goja.Value {
	promise, resolve, reject := s.rt.NewPromise()
	st := s.call
	_, ok := goja.AssertFunction(call.Argument(0))
	switch {
	case !ok:
		reject(s.rt.NewTypeError("System.oracle needs a function"))
		return s.rt.ToValue(promise)
	case st == nil || st.oracles == nil:
		reject(s.newError("Error", "System.oracle is not available here"))
		return s.rt.ToValue(promise)
	}
	// What the isolated function is given: its source and its arguments,
	// read here, under the call's budgets.
	var source string
	var args json.RawMessage
	var prepErr *ScriptError
	if err := s.guard(func() { source = call.Argument(0).String() }); err != nil {
		prepErr = &ScriptError{Name: "TypeError", Message: "System.oracle's function cannot be read"}
	} else if raw, err := s.toJSON(s.rt.NewArray(anySlice(call.Arguments[1:])...)); err != nil {
		var interrupted *goja.InterruptedError
		if errors.As(err, &interrupted) {
			panic(err)
		}
		prepErr = &ScriptError{Name: "TypeError", Message: "System.oracle's arguments are not JSON"}
	} else {
		args = raw
	}
	v, err := st.oracles.Next(func() OracleValue {
		if prepErr != nil {
			return OracleValue{Error: prepErr}
		}
		return s.runOracle(source, args)
	})
	if err != nil {
		// A replay that cannot go on: stop the call (see run).
		st.fatal = err
		s.rt.Interrupt(err)
		reject(s.newError("Error", err.Error()))
		return s.rt.ToValue(promise)
	}
	if v.Error != nil {
		reject(s.newError(v.Error.Name, v.Error.Message))
	} else {
		parsed, err := s.parseJSON(string(v.Value))
		if err != nil {
			reject(s.newError("Error", "recorded oracle value is not JSON"))
		} else {
			resolve(parsed)
		}
	}
	return s.rt.ToValue(promise)
}

func anySlice(vs []goja.Value) []any {
	out := make([]any, len(vs))
	for i, v := range vs {
		out[i] = v
	}
	return out
}

// runOracle runs an oracle function on the host, in a runtime of its own:
// it sees its own code, the JSON arguments given after it, the real clock
// and real randomness, and nothing of the script. An oracle's value is
// logged and a replay never runs the function, so anything it did to the
// script's state would be missing from every replay: the log would no
// longer say what the host did. Isolated, it cannot do any. It runs under
// what is left of the call's time and its memory budget; past them, the
// call is stopped.
func (s *Script) runOracle(source string, args json.RawMessage) OracleValue {
	limits := s.limits
	if left := s.watchdog.timeLeft(); left > 0 {
		limits.Time = left
	} else {
		limits.Time = time.Millisecond
	}
	// Compiled as an expression first (an arrow function, a function
	// expression), then as the body of an object (a method). goja gives
	// the source of an arrow function whose body is in parentheses
	// without the closing one (() => ({a: 1}) reads "() => ({a: 1}"):
	// last, the source with it.
	var o *Script
	var err error
	for _, code := range []string{
		"module.exports = (" + source + "\n)",
		"const o = {" + source + "\n}; module.exports = o[Object.keys(o)[0]]",
		"module.exports = (" + source + ")\n)",
	} {
		o, err = Load(code, Options{Filename: "oracle.js", Limits: limits, Logger: s.log, live: true})
		if err == nil || !strings.Contains(err.Error(), "SyntaxError") {
			break
		}
	}
	if err != nil || !o.HasMethod("default") {
		msg := "System.oracle's function must be written in JavaScript"
		if err != nil && !strings.Contains(err.Error(), "SyntaxError") {
			msg = "System.oracle's function could not be loaded: " + strings.TrimPrefix(err.Error(), "sandbox: ")
		}
		return OracleValue{Error: &ScriptError{Name: "TypeError", Message: msg}}
	}
	r, err := o.Call(context.Background(), Call{Method: "default", Args: args})
	switch {
	case err != nil:
		// A budget: the call that asked is stopped too.
		s.stopCall(err)
	case r.Error != nil:
		return OracleValue{Error: r.Error}
	}
	return OracleValue{Value: r.Value}
}

// filesObject is System.files: the DatArchive API, each method returning a
// promise. Writes carry the call's time.
func (s *Script) filesObject() *goja.Object {
	rt := s.rt
	obj := rt.NewObject()
	method := func(name string, fn func(f *hyperdrive.Files, call goja.FunctionCall) (goja.Value, error)) {
		obj.Set(name, func(call goja.FunctionCall) goja.Value {
			promise, resolve, reject := rt.NewPromise()
			st := s.call
			if st == nil || st.files == nil {
				reject(s.newError("Error", "System.files is not available here"))
				return rt.ToValue(promise)
			}
			v, err := fn(st.files, call)
			switch {
			case errors.Is(err, hyperdrive.ErrQuotaExceeded):
				// Not the script's to catch: a quota is the host's
				// setting, and a replay under another one must not
				// reach another outcome.
				s.stopCall(fmt.Errorf("%w: %w", ErrQuota, err))
			case isHostFault(err):
				// A disk that failed or filled, or a folder changed
				// behind the archive's back, is the host's trouble: no
				// replay could reproduce it, so it is never an outcome.
				// The operator's log has the details (paths of the host
				// machine); the caller does not.
				s.log.Error("System.files failed on the host; the call is stopped", "method", name, "error", err)
				s.stopCall(ErrHostFault)
			}
			if err != nil {
				name, msg := errorsName(err)
				reject(s.newError(name, msg))
			} else {
				resolve(v)
			}
			return rt.ToValue(promise)
		})
	}
	path := func(call goja.FunctionCall) string { return call.Argument(0).String() }

	method("getInfo", func(f *hyperdrive.Files, _ goja.FunctionCall) (goja.Value, error) {
		info, err := f.GetInfo()
		if err != nil {
			return nil, err
		}
		return s.jsonValue(info)
	})
	method("stat", func(f *hyperdrive.Files, call goja.FunctionCall) (goja.Value, error) {
		st, err := f.Stat(path(call))
		if err != nil {
			return nil, err
		}
		return s.statObject(st), nil
	})
	method("readFile", func(f *hyperdrive.Files, call goja.FunctionCall) (goja.Value, error) {
		b, err := f.ReadFile(path(call))
		if err != nil {
			return nil, err
		}
		enc := s.option(call.Argument(1), "encoding")
		if enc == "binary" || enc == "buffer" {
			return s.bytesValue(b), nil
		}
		if enc == "json" {
			if !utf8.Valid(b) || !json.Valid(b) {
				return nil, &hyperdrive.Error{Name: "InvalidEncodingError", Message: "the file is not JSON"}
			}
			return s.parseJSON(string(b))
		}
		v, err := hyperdrive.DecodeContent(b, enc)
		if err != nil {
			return nil, err
		}
		return rt.ToValue(v), nil
	})
	method("writeFile", func(f *hyperdrive.Files, call goja.FunctionCall) (goja.Value, error) {
		data := call.Argument(1)
		var b []byte
		if raw, ok := s.bytesOf(data); ok {
			b = append([]byte(nil), raw...)
		} else if str, ok := data.Export().(string); ok {
			var err error
			if b, err = hyperdrive.EncodeContent(str, s.option(call.Argument(2), "encoding")); err != nil {
				return nil, err
			}
		} else {
			// Numbers, objects and the like are stored as JSON, so that
			// readFile(path, 'json') gives them back.
			raw, err := s.toJSON(data)
			if err != nil {
				return nil, err
			}
			b = raw
		}
		when := s.now()
		return goja.Undefined(), f.WriteFile(path(call), b, hyperdrive.WriteOptions{Mtime: when, Ctime: when})
	})
	method("mkdir", func(f *hyperdrive.Files, call goja.FunctionCall) (goja.Value, error) {
		when := s.now()
		return goja.Undefined(), f.Mkdir(path(call), hyperdrive.WriteOptions{Mtime: when, Ctime: when})
	})
	method("readdir", func(f *hyperdrive.Files, call goja.FunctionCall) (goja.Value, error) {
		recursive := s.flag(call.Argument(1), "recursive")
		names, err := f.Readdir(path(call), recursive)
		if err != nil {
			return nil, err
		}
		if !s.flag(call.Argument(1), "stat") {
			return rt.ToValue(names), nil
		}
		out := make([]any, 0, len(names))
		dir := hyperdrive.Normalize(path(call))
		for _, n := range names {
			st, err := f.Stat(dir + "/" + n)
			if err != nil {
				return nil, err
			}
			item := rt.NewObject()
			item.Set("name", n)
			item.Set("stat", s.statObject(st))
			out = append(out, item)
		}
		return rt.ToValue(out), nil
	})
	method("unlink", func(f *hyperdrive.Files, call goja.FunctionCall) (goja.Value, error) {
		return goja.Undefined(), f.Unlink(path(call))
	})
	method("rmdir", func(f *hyperdrive.Files, call goja.FunctionCall) (goja.Value, error) {
		return goja.Undefined(), f.Rmdir(path(call), s.flag(call.Argument(1), "recursive"))
	})
	method("history", func(f *hyperdrive.Files, call goja.FunctionCall) (goja.Value, error) {
		opts := call.Argument(0)
		start, end := s.number(opts, "start"), s.number(opts, "end")
		h, err := f.History(uint64(max(start, 0)), uint64(max(end, 0)), s.flag(opts, "reverse"))
		if err != nil {
			return nil, err
		}
		// As JSON, then as objects: a few hundred bytes a change.
		s.charge(float64(len(h)) * 512)
		return s.jsonValue(h)
	})
	return obj
}

func (s *Script) jsonValue(v any) (goja.Value, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return s.parseJSON(string(raw))
}

func (s *Script) statObject(st hyperdrive.FileStat) *goja.Object {
	rt := s.rt
	obj := rt.NewObject()
	obj.Set("mode", st.Mode)
	obj.Set("size", st.Size)
	obj.Set("blocks", st.Blocks)
	obj.Set("downloaded", st.Blocks)
	mtime, err := rt.New(s.dateCtor, rt.ToValue(st.Mtime.UnixMilli()))
	if err != nil {
		panic(rt.NewGoError(err)) // thrown: this runs in the script's native calls
	}
	ctime, err := rt.New(s.dateCtor, rt.ToValue(st.Ctime.UnixMilli()))
	if err != nil {
		panic(rt.NewGoError(err))
	}
	obj.Set("mtime", mtime)
	obj.Set("ctime", ctime)
	isFile, isDir := st.IsFile(), st.IsDirectory()
	obj.Set("isFile", func() bool { return isFile })
	obj.Set("isDirectory", func() bool { return isDir })
	return obj
}

// option reads an options argument given either as a string or as an
// object with the named field.
func (s *Script) option(v goja.Value, field string) string {
	if v == nil || goja.IsUndefined(v) || goja.IsNull(v) {
		return ""
	}
	if str, ok := v.Export().(string); ok {
		return str
	}
	if obj, ok := v.(*goja.Object); ok {
		if f := obj.Get(field); f != nil && !goja.IsUndefined(f) && !goja.IsNull(f) {
			return f.String()
		}
	}
	return ""
}

func (s *Script) flag(v goja.Value, field string) bool {
	if obj, ok := v.(*goja.Object); ok {
		if f := obj.Get(field); f != nil {
			return f.ToBoolean()
		}
	}
	return false
}

func (s *Script) number(v goja.Value, field string) int64 {
	if obj, ok := v.(*goja.Object); ok {
		if f := obj.Get(field); f != nil && !goja.IsUndefined(f) {
			return f.ToInteger()
		}
	}
	return 0
}
