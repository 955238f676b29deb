package sandbox

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dop251/goja"
	"github.com/google/go-cmp/cmp"
)

// errAnyBudget, as a case's stopped, takes the time or the memory budget.
var errAnyBudget = errors.New("any budget")

// TestGuardsContainHostileCalls: each built-in that works in Go in
// proportion to a number the script chooses either refuses with a
// RangeError (a language limit: the same on every machine) or stops the
// call at its budget, within the budget plus a small grace, instead of
// crashing the process, running for minutes or taking gigabytes. Without
// the guards each of these crashes the process, hangs it, or passes the
// budget by seconds.
func TestGuardsContainHostileCalls(t *testing.T) {
	const budget = 2 * time.Second
	const grace = 1500 * time.Millisecond
	for _, tt := range []struct {
		name, body string
		thrown     string // a substring of the script error, or
		stopped    error  // the error that stops the call (either will do
		// when both are set; neither: the call must end with a result)
	}{
		{"huge ArrayBuffer", `return new ArrayBuffer(2**40).byteLength`, "RangeError: Array buffer allocation failed", nil},
		{"ArrayBuffer over the memory budget", `return new ArrayBuffer(2**29).byteLength`, "", ErrMemoryBudget},
		{"huge typed array", `return new Float64Array(2**28).length`, "RangeError", nil},
		{"typed array from a long array-like", `return new Uint8Array({length: 2**30}).length`, "RangeError: Invalid array length", nil},
		{"Array(1e9).fill", `new Array(1e9).fill(0); return 1`, "RangeError: Invalid array length", nil},
		{"repeat", `return 'x'.repeat(2**31).length`, "RangeError: Invalid string length", nil},
		{"repeat over the memory budget", `return 'x'.repeat(2**28).length`, "", ErrMemoryBudget},
		{"padStart", `return ''.padStart(2**30).length`, "RangeError: Invalid string length", nil},
		{"deep JSON.stringify", `var a = []; for (var i = 0; i < 100000; i++) a = [a]; return JSON.stringify(a).length`, "RangeError: JSON.stringify: value nested deeper", nil},
		{"deep JSON.stringify with a property list", `var a = {}; for (var i = 0; i < 100000; i++) a = {a: a}; return JSON.stringify(a, ['a']).length`, "RangeError: JSON.stringify: value nested deeper", nil},
		{"deep JSON.parse", `return JSON.parse('['.repeat(1e6) + ']'.repeat(1e6)).length`, "SyntaxError: JSON.parse: text nested deeper", nil},
		{"catastrophic regexp", `return /^(a+)+(?=$)/.test('a'.repeat(26) + 'b')`, "", ErrTimeBudget},
		{"catastrophic regexp through replace", `return 'a'.repeat(26).concat('b').replace(/^(a+)+(?=$)/, 'x')`, "", ErrTimeBudget},
		{"includes over a long array-like", `return Array.prototype.includes.call({length: 2**40}, 1)`, "RangeError: Invalid array length", nil},
		{"join of a sparse array", `var a = []; a.length = 2**32 - 1; return a.join('').length`, "RangeError: Invalid array length", nil},
		{"join of one long string many times", `var a = new Array(4000).fill('x'.repeat(1 << 20)); return a.join('').length`, "RangeError: Invalid string length", nil},
		{"apply with a long array-like", `return Array.apply(null, {length: 2**28}).length`, "RangeError: Too many arguments", nil},
		{"String.fromCharCode.apply", `return String.fromCharCode.apply(null, {length: 2**28}).length`, "RangeError: Too many arguments", nil},
		{"Array.from a long array-like", `return Array.from({length: 2**30}).length`, "RangeError: Invalid array length", nil},
		{"spread of a sparse array", `var a = []; a.length = 2**32 - 1; return [...a].length`, "RangeError: Invalid array length", nil},
		{"Map from a long iterator", `return new Map(new Array(2**24).entries()).size`, "RangeError: Invalid array length", nil},
		{"forEach over a sparse array", `var a = []; a.length = 2**32 - 1; a.forEach(function () {}); return 1`, "RangeError: Invalid array length", nil},
		// (On a busy machine the time budget may stop the quadratic ones
		// before the memory budget or the length checks do.)
		{"quadratic replacement", "return 'x'.repeat(1e5).replaceAll('x', '$`').length", "", errAnyBudget},
		{"flat of one array many times", `var a = new Array(3000).fill(0); var b = new Array(3000).fill(a); return b.flat().length`, "RangeError: Invalid array length", ErrTimeBudget},
		{"Object.keys of a large typed array", `return Object.keys(new Uint8Array(2**26)).length`, "RangeError: Invalid array length", nil},
		{"deep eval", `return eval('['.repeat(5000) + ']'.repeat(5000)).length`, "SyntaxError: code nested deeper", nil},
		{"long prefix chain in Function", `return new Function('return ' + '!'.repeat(1e4) + '1')()`, "SyntaxError: code nested deeper", nil},
		{"BigInt built at run time", `return eval('1n << 1099511627776n')`, "TypeError: sandbox: BigInt is not available", nil},
		{"deep RegExp", `return new RegExp('('.repeat(1e5) + ')'.repeat(1e5)).source.length`, "SyntaxError: pattern nested deeper", nil},
		// Each of these crashed the process, or ran for tens of seconds,
		// through the first version of the guards.
		{"sort whose comparator empties the array", `const a = []; for (let i = 0; i < 100; i++) a[i] = 100 - i; a.sort((x, y) => { a.length = 0; return x - y }); throw new Error('sorted ' + a.length)`, "Error: sorted 100", nil},
		{"replaceAll of the empty string", `const s = 'x'.repeat(1e5), r = 'y'.repeat(1e5); return s.replaceAll('', r).length`, "RangeError: Invalid string length", errAnyBudget},
		{"replace with a function giving long strings", `const s = 'x'.repeat(1e5), r = 'y'.repeat(1e5); return s.replace(/(?:)/g, () => r).length`, "RangeError: Invalid string length", errAnyBudget},
		{"String.raw of long parts", `const s = 'x'.repeat(1e7); return String.raw({raw: Array(1000).fill(s)}).length`, "RangeError: Invalid string length", nil},
		{"a length that grows after the check", `let c = 0; const o = {get length() { return c++ ? 1e15 : 0 }}; throw new Error(String(Array.prototype.includes.call(o, 1)))`, "Error: false", nil},
		{"a length that grows before fill", `let c = 0; const o = {get length() { return c++ ? 2**31 : 0 }}; Array.prototype.fill.call(o, 1); throw new Error('filled')`, "Error: filled", nil},
		{"a count that grows after the check", `let c = 0; throw new Error('abcdefgh'.repeat({valueOf() { return c++ ? 2**28 : 1 }}))`, "Error: abcdefgh", nil},
		{"a split limit that grows", `let c = 0; const s = 'x'.repeat(3e6); throw new Error(String(s.split('', {valueOf() { return c++ ? 2**32 - 1 : 0 }}).length))`, "Error: 0", nil},
		{"apply with a length that grows", `let c = 0; return Math.max.apply(null, {get length() { return c++ ? 2**31 : 0 }})`, "", nil},
		{"sort of a long typed array", `const a = new Uint8Array(3.3e7); a.sort(); return a[5]`, "RangeError: Invalid array length", nil},
		{"typed array set from a long array-like", `const a = new Uint8Array(2e8); a.set({length: 2e8}); return a.length`, "RangeError: Invalid array length", nil},
		{"quadratic operator chain in Function", `return typeof new Function('let a; return ' + 'a+'.repeat(1e5) + '1')`, "TypeError: code longer than", nil},
		{"quadratic arrow chain in Function", `return typeof new Function('return ' + 'x=>'.repeat(5e4) + '1')`, "TypeError: code longer than", nil},
		{"normalize of a long string", `return '\u00e9'.repeat(1.2e8).normalize('NFD').length`, "RangeError: normalize", ErrMemoryBudget},
		{"localeCompare of long strings", `const s = 'x'.repeat(5e6); return s.localeCompare(s + 'y')`, "RangeError: localeCompare", nil},
		// And these through the second version.
		{"repeat of a this whose toString changes", `let c = 0; const o = {toString() { return c++ ? 'x'.repeat(1000) : 'x' }}; return String.prototype.repeat.call(o, 1e8).length`, "", nil},
		{"console.log of many long strings", `const s = 'x'.repeat(1e6); const a = new Array(20000).fill(s); console.log(...a); throw new Error('logged')`, "Error: logged", nil},
		{"flat whose element answers twice", `let x = 0; for (let i = 0; i < 5; i++) x = new Array(64).fill(x); let c = 0; const b = [0]; Object.defineProperty(b, 0, {get() { return c++ ? x : 0 }}); throw new Error(String(b.flat(Infinity).length))`, "Error: 1", nil},
		{"deep pattern through search", `const p = '('.repeat(1e7) + ')'.repeat(1e7); return 'x'.search(p)`, "SyntaxError: pattern nested deeper", nil},
		{"deep pattern from an object", `const p = '('.repeat(1e7) + ')'.repeat(1e7); return new RegExp({toString() { return p }}).source.length`, "SyntaxError: pattern nested deeper", nil},
		{"RegExp.prototype.compile", `throw new Error(typeof /x/.compile)`, "Error: undefined", nil},
		{"setInterval of a built-in", `setInterval(Math.abs, 1); return new Promise(function () {})`, "", ErrTimeBudget},
		{"setInterval that sets timers", `setInterval(setTimeout, 1, Math.abs, 1e12); return new Promise(function () {})`, "more than 65536 timers", ErrTimeBudget},
		{"concat whose spreadable flag changes", `let c = 0; const o = {length: 2**32 - 2, get [Symbol.isConcatSpreadable]() { return c++ > 0 }}; throw new Error(String([].concat(o).length))`, "Error: 1", nil},
		{"Promise.all over a long string", `const s = 'x'.repeat(3e7); Promise.all(s); return 1`, "", errAnyBudget},
		{"new Set of a long string", `const s = 'x'.repeat(1e8); return new Set(s).size`, "", errAnyBudget},
		{"typed array of a String object", `const s = '1'.repeat(6e7); return new Float64Array(new String(s)).length`, "RangeError", ErrTimeBudget},
		{"normalize of a this whose toString changes", `const s = '\u00e9'.repeat(6e7); let c = 0; const o = {toString() { return c++ ? s : '' }}; return String.prototype.normalize.call(o, 'NFD').length`, "", nil},
		{"Object.keys of a String object", `const s = 'x'.repeat(3e7); return Object.keys(new String(s)).length`, "RangeError: Invalid array length", nil},
		{"encodeURIComponent of a long string", `const s = '\u0800'.repeat(1.2e8); return encodeURIComponent(s).length`, "RangeError: Invalid string length", ErrMemoryBudget},
		{"JSON.stringify of a string of escapes", `const s = '\x01'.repeat(1.2e8); return JSON.stringify(s).length`, "RangeError: Invalid string length", ErrMemoryBudget},
		{"TextEncoder of lone surrogates", `const s = '\ud800'.repeat(1.2e8); return new TextEncoder().encode(s).length`, "", ErrMemoryBudget},
		{"sort under a setter on Object.prototype", `Object.defineProperty(Object.prototype, '0', {set(v) {}, configurable: true}); const a = [3, 1, 2]; a.sort(); delete Object.prototype[0]; throw new Error(a.join())`, "Error: 1,2,3", nil},
		{"flat under a setter on Object.prototype", `Object.defineProperty(Object.prototype, '1', {set(v) {}, configurable: true}); let x = 0; for (let i = 0; i < 5; i++) x = new Array(64).fill(x); return [x].flat(Infinity).length`, "RangeError: Invalid array length", ErrTimeBudget},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Load("exports.f = function () { "+tt.body+" }", Options{Limits: Limits{Time: budget}})
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			r, err := s.Call(context.Background(), Call{Method: "f"})
			if took := time.Since(start); took > budget+grace {
				t.Errorf("took %v, more than the budget %v and %v of grace", took, budget, grace)
			}
			switch {
			case tt.stopped != nil && errors.Is(err, tt.stopped):
			case tt.stopped == errAnyBudget && (errors.Is(err, ErrTimeBudget) || errors.Is(err, ErrMemoryBudget)):
			case tt.thrown != "" && err == nil && r.Error != nil && strings.Contains(r.Error.Error(), tt.thrown):
			case tt.thrown == "" && tt.stopped == nil && err == nil:
				// It only had to end, and it did.
			default:
				t.Errorf("got result %s, script error %v, error %v; want a script error containing %q or the call stopped with %v",
					r.Value, r.Error, err, tt.thrown, tt.stopped)
			}
		})
	}
}

// TestBigIntRefused: BigInt's operators allocate inside the runtime
// without bound (1n << 2n**40n ends the process), so a script that uses
// it is refused at load, and the built-ins that make BigInts are gone.
func TestBigIntRefused(t *testing.T) {
	if _, err := Load("exports.f = () => 1n", Options{}); !errors.Is(err, ErrBigInt) {
		t.Errorf("a BigInt literal: got %v, want ErrBigInt", err)
	}
	s := load(t, `exports.f = () => [typeof BigInt, typeof BigInt64Array, typeof BigUint64Array, typeof new DataView(new ArrayBuffer(8)).getBigInt64]`)
	if got := call(t, s, Call{Method: "f"}); got != `["undefined","undefined","undefined","undefined"]` {
		t.Errorf("got %s", got)
	}
}

// TestGuardsKeepSemantics: the guarded built-ins give what goja's own
// give for the ordinary uses of them, compared in a runtime without the
// guards.
func TestGuardsKeepSemantics(t *testing.T) {
	long := "'" + strings.Repeat("ab", 1500) + "'"
	for _, expr := range []string{
		`[1, null, undefined, 'x', {toString() { return 'o' }}].join()`,
		`[1, [2, [3]]].join('-') + String([1, [2]])`,
		`Array.prototype.join.call({length: 3, 0: 'a', 2: 'c'}, '+')`,
		`[1.5, new Date(0)].toLocaleString().length > 0`,
		`JSON.stringify({b: 1, a: [1, {c: 'x'}], d: undefined, f() {}})`,
		`JSON.stringify({b: 1, a: [1, {c: 'x'}]}, null, 2)`,
		`JSON.stringify({b: 1, a: 2, c: {a: 3, z: 4}}, ['a', 'c'])`,
		`JSON.stringify({a: 1, b: 'two'}, (k, v) => typeof v === 'number' ? v * 2 : v)`,
		`JSON.stringify({toJSON() { return {x: 1} }})`,
		`JSON.stringify(new Date(0))`,
		`JSON.parse('{"a":[1,2,{"b":null}]}', (k, v) => v === null ? 'n' : v)`,
		`'abc'.replace('b', '[$&$$$\x60$\x27]')`,
		`'a-b-c'.replace(/(\w)-(?<n>\w)/g, '$2$1$<n>')`,
		long + `.replace(/(a)(b)/g, '$2$1$\x60').length`,
		long + `.replaceAll('ab', '<$&$\x27>').length`,
		long + `.replace(/(?<x>a)b/g, '$<x>$<y>$0$1$01$10$$').slice(0, 60)`,
		`'aaa'.replace(/a/g, (m, i) => i)`,
		`'x'.repeat(3) + 'y'.padStart(3, '-') + 'z'.padEnd(3, '.') + 'a'.concat(1, null)`,
		`[1, 2, 3].map(x => x * 2).filter(x => x > 2).concat([7], 8, [[9]])`,
		`[[1, [2, [3, [4]]]], 5].flat(2)`,
		`[[1, [2, [3, [4]]]], 5].flat(Infinity)`,
		`[1, 2].flatMap(x => [x, [x]])`,
		`new Array(3).length + Array(2, 3).length + Array.of(1).length + Array.from('abc').length`,
		`[3, 1, 2].sort() + '|' + [1, 2, 3].slice(1) + '|' + [1, 2, 3].indexOf(2)`,
		`[...[1, 2, 3]].length + [...new Set([1, 1, 2])].length`,
		`Math.max.apply(null, [1, 5, 3]) + Reflect.apply(Math.min, null, [4, 2])`,
		`new Uint8Array([1, 2, 3]).join('-') + new Float64Array(2).length + new Uint8Array(new ArrayBuffer(4)).length`,
		`new Uint8Array(4) instanceof Uint8Array && new ArrayBuffer(2) instanceof ArrayBuffer && [] instanceof Array`,
		`(class extends Array {}).from([1, 2]).length + new (class X extends Uint8Array {})(3).length`,
		`[].constructor === Array && new Uint8Array(1).constructor === Uint8Array && Array.name + Array.length`,
		`Object.keys({a: 1, b: 2}) + Object.values(new Uint8Array(2))`,
		`/a(b)/.exec('xab')[1] + /x/.test('x') + 'a1b2'.split(/\d/) + 'abc'.match(/b/).index + 'abab'.search(/b/)`,
		`[...'a1b2'.matchAll(/\d/g)].map(m => m[0]).join()`,
		`eval('1 + 2') + new Function('a', 'return a * 2')(4)`,
		`new RegExp('a+', 'g').flags + String(/x/)`,
		`typeof Function.prototype.apply + typeof [].join + [].join.name + [].join.length`,
	} {
		t.Run(expr, func(t *testing.T) {
			want := plainGoja(t, expr)
			s := load(t, "exports.f = () => JSON.stringify("+expr+")")
			got := call(t, s, Call{Method: "f"})
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("guarded and plain differ (-plain +guarded):\n%s", diff)
			}
		})
	}
}

// plainGoja is what a runtime without the sandbox's guards gives for
// JSON.stringify(expr), as the sandbox reports a call's result.
func plainGoja(t *testing.T, expr string) string {
	t.Helper()
	v, err := goja.New().RunString("JSON.stringify(JSON.stringify(" + expr + "))")
	if err != nil {
		t.Fatalf("plain goja: %v", err)
	}
	return v.String()
}

// TestRetainedMemoryCapped: a backend that keeps more than its cap
// between calls has the call that went over stopped, and what that call
// kept is dropped with it: the cap bounds what a script holds, not only
// what one call allocates.
func TestRetainedMemoryCapped(t *testing.T) {
	s, err := Load(`var kept = []
exports.keep = function (mib) { var a = new Uint8Array(mib * 1024 * 1024); a.fill(7); kept.push(a); return kept.length }`,
		Options{Limits: Limits{Memory: 96 << 20, Retained: 160 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	var stopped error
	for i := 1; i <= 4 && stopped == nil; i++ {
		_, stopped = s.Call(context.Background(), Call{Method: "keep", Args: []byte("[64]")})
	}
	if !errors.Is(stopped, ErrMemoryBudget) || !strings.Contains(stopped.Error(), "keeps") {
		t.Fatalf("got %v, want the call that went over the cap stopped", stopped)
	}
}
