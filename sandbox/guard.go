package sandbox

import (
	_ "embed"
	"errors"
	"fmt"
	"math/big"
	"reflect"
	"strconv"
	"sync"
	"time"

	"github.com/dlclark/regexp2/v2"
	"github.com/dop251/goja"
	"github.com/dop251/goja/ast"
	"github.com/dop251/goja/parser"
)

// The sandbox's language limits: a built-in asked for more throws a
// RangeError. They are constants, not settings, because a script sees
// them: every replay must refuse exactly what the host refused.
const (
	// MaxStringLength is the longest string a built-in builds (V8's).
	MaxStringLength = 1<<29 - 24
	// MaxListLength is the longest list a built-in walks or builds:
	// Array(n), the generic Array methods, Array.from, typed arrays from
	// array-likes.
	MaxListLength = 1 << 22
	// MaxArguments is the longest argument list apply and Reflect take
	// (JavaScriptCore's limit).
	MaxArguments = 1 << 16
	// MaxBufferBytes is the largest ArrayBuffer.
	MaxBufferBytes = 1 << 30
	// MaxNesting bounds how deep JSON.stringify and JSON.parse nest, and
	// how deep code compiled at run time (eval, Function, RegExp) may
	// nest its brackets: each of them recurses in Go.
	MaxNesting = 1000
	// MaxTimers is the most timers a call may have pending.
	MaxTimers = 1 << 16
	// MaxCodeLength is the longest source eval and Function compile. The
	// parser and compiler take time quadratic in some chains of operators
	// (a+a+a..., x=>x=>...): at this length, a quarter of a second.
	MaxCodeLength = 1 << 14
)

// RegexpTimeLimit is how long one match of a pattern that needs the
// backtracking matcher may take. The matcher checks no budget: past this
// it gives up and reports no match, so the call that asked is stopped
// (ErrTimeBudget) rather than given a wrong answer.
const RegexpTimeLimit = time.Second

// The backtracking matcher reads its limit from a variable of its package
// when a pattern is compiled; it is set once, before any script runs.
var setRegexpTimeout = sync.OnceFunc(func() { regexp2.DefaultMatchTimeout = RegexpTimeLimit })

// ErrBigInt refuses a script that uses BigInt.
var ErrBigInt = errors.New("sandbox: BigInt is not available")

//go:embed lib/guard.js
var guardJS string

// installGuards replaces the built-ins that work in Go in proportion to a
// number the script chooses with checked ones (lib/guard.js), and removes
// BigInt, whose operators allocate without bound inside the runtime
// (1n << 2n**40n) where nothing can check them.
func (s *Script) installGuards() error {
	setRegexpTimeout()
	rt := s.rt
	global := rt.GlobalObject()
	for _, name := range []string{"BigInt", "BigInt64Array", "BigUint64Array"} {
		global.Delete(name)
	}
	if dv, ok := rt.Get("DataView").(*goja.Object); ok {
		if proto, ok := dv.Get("prototype").(*goja.Object); ok {
			for _, name := range []string{"getBigInt64", "getBigUint64", "setBigInt64", "setBigUint64"} {
				proto.Delete(name)
			}
		}
	}
	host := rt.NewObject()
	for name, v := range map[string]any{
		"maxString": MaxStringLength,
		"maxList":   MaxListLength,
		"maxArgs":   MaxArguments,
		"maxBytes":  MaxBufferBytes,
		"maxDepth":  MaxNesting,
		"charge":    s.charge,
		"timed":     s.timed,
		"jsonDepth": func(text string) int { return jsonDepth(text, MaxNesting) },
		// An Array's length is a data property: no getter, no Proxy trap.
		"plainArray": func(v goja.Value) bool {
			o, ok := v.(*goja.Object)
			return ok && o.ClassName() == "Array"
		},
		"isArrayBuffer": func(v goja.Value) bool {
			o, ok := v.(*goja.Object)
			return ok && o.ExportType() == arrayBufferType
		},
		"isRegExp": func(v goja.Value) bool {
			o, ok := v.(*goja.Object)
			return ok && o.ClassName() == "RegExp"
		},
		"isStringObject": func(v goja.Value) bool {
			o, ok := v.(*goja.Object)
			return ok && o.ClassName() == "String"
		},
		"patternDepth": func(pattern string) int { return sourceDepth(pattern, MaxNesting) },
		"sourceDepth": func(code string) int {
			if len(code) > MaxCodeLength {
				panic(rt.NewTypeError(fmt.Sprintf("code longer than %d bytes", MaxCodeLength)))
			}
			if err := refuseBigInt(code); err != nil {
				panic(rt.NewTypeError(err.Error()))
			}
			return sourceDepth(code, MaxNesting)
		},
	} {
		if err := host.Set(name, v); err != nil {
			return fmt.Errorf("sandbox: %w", err)
		}
	}
	fn, err := rt.RunScript("guard.js", guardJS)
	if err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	install, ok := goja.AssertFunction(fn)
	if !ok {
		return errors.New("sandbox: guard.js is not a function")
	}
	if _, err := install(goja.Undefined(), global, host); err != nil {
		return fmt.Errorf("sandbox: installing the guards: %w", err)
	}
	return nil
}

// charge stops the running call if an allocation of n bytes would take it
// past its memory budget: the budget is then a cap on what a built-in may
// allocate, not only a sample of the heap taken every few milliseconds.
func (s *Script) charge(n float64) {
	if err := s.watchdog.charge(n); err != nil {
		s.stopCall(err)
	}
}

// stopCall stops the running call for err: the watchdog's interrupt takes
// effect at the runtime's next instruction, and the exception thrown here
// keeps the built-in that asked from going on until then.
func (s *Script) stopCall(err error) {
	s.watchdog.stop(err)
	panic(s.rt.NewGoError(err))
}

// timed(fn, this, args) runs one of RegExp's entry points and stops the
// call if it ran as long as the backtracking matcher's limit: the match
// may then have been cut short.
func (s *Script) timed(call goja.FunctionCall) goja.Value {
	fn, ok := goja.AssertFunction(call.Argument(0))
	if !ok {
		panic(s.rt.NewTypeError("timed: not a function"))
	}
	list := call.Argument(2).ToObject(s.rt)
	args := make([]goja.Value, list.Get("length").ToInteger())
	for i := range args {
		args[i] = list.Get(strconv.Itoa(i))
	}
	start := time.Now()
	v, err := fn(call.Argument(1), args...)
	if time.Since(start) >= RegexpTimeLimit {
		s.stopCall(fmt.Errorf("%w: a regular expression ran for %v", ErrTimeBudget, RegexpTimeLimit))
	}
	if err != nil {
		panic(err)
	}
	return v
}

// jsonDepth is how deep text's arrays and objects nest, outside strings,
// counting no further than limit+1.
func jsonDepth(text string, limit int) int {
	depth, deepest := 0, 0
	inString, escaped := false, false
	for i := 0; i < len(text); i++ {
		c := text[i]
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '[' || c == '{':
			depth++
			if depth > deepest {
				deepest = depth
				if deepest > limit {
					return deepest
				}
			}
		case c == ']' || c == '}':
			if depth > 0 {
				depth--
			}
		}
	}
	return deepest
}

// sourceDepth is how deep code's brackets nest, and how long its longest
// run of prefix operators is, counting no further than limit+1. It
// ignores strings and comments, so it may overcount: code it refuses
// could have compiled, never the other way round.
func sourceDepth(code string, limit int) int {
	depth, deepest, run := 0, 0, 0
	for i := 0; i < len(code); i++ {
		switch c := code[i]; c {
		case '(', '[', '{':
			depth++
			run = 0
		case ')', ']', '}':
			if depth > 0 {
				depth--
			}
			run = 0
		case '!', '~', '-', '+', '?':
			run++
		case ' ', '\t', '\n', '\r':
		default:
			run = 0
		}
		if d := max(depth, run); d > deepest {
			deepest = d
			if deepest > limit {
				return deepest
			}
		}
	}
	return deepest
}

// refuseBigInt returns ErrBigInt if code has a BigInt literal. Code that
// does not parse is left to the compiler, which says why.
func refuseBigInt(code string) error {
	prog, err := parser.ParseFile(nil, "", code, 0)
	if err != nil {
		return nil
	}
	if hasBigInt(reflect.ValueOf(prog)) {
		return fmt.Errorf("%w (a literal such as 1n)", ErrBigInt)
	}
	return nil
}

var bigIntType = reflect.TypeFor[*big.Int]()
var arrayBufferType = reflect.TypeFor[goja.ArrayBuffer]()
var numberLiteralType = reflect.TypeFor[*ast.NumberLiteral]()

// hasBigInt walks a parsed program for a number literal whose value is a
// *big.Int. The AST is a tree, so no node is visited twice.
func hasBigInt(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return false
		}
		if v.Type() == numberLiteralType {
			lit := v.Interface().(*ast.NumberLiteral)
			return lit.Value != nil && reflect.TypeOf(lit.Value) == bigIntType
		}
		return hasBigInt(v.Elem())
	case reflect.Interface:
		return !v.IsNil() && hasBigInt(v.Elem())
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() && hasBigInt(v.Field(i)) {
				return true
			}
		}
	case reflect.Slice, reflect.Array:
		for i := 0; i < v.Len(); i++ {
			if hasBigInt(v.Index(i)) {
				return true
			}
		}
	}
	return false
}
