package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nodevms/nodevms/hyperdrive"
)

func load(t *testing.T, code string) *Script {
	t.Helper()
	s, err := Load(code, Options{Limits: Limits{Time: 2 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// call runs method and returns its JSON result or "error: name: message".
func call(t *testing.T, s *Script, c Call) string {
	t.Helper()
	r, err := s.Call(context.Background(), c)
	if err != nil {
		t.Fatalf("%s: %v", c.Method, err)
	}
	if r.Error != nil {
		return "error: " + r.Error.Error()
	}
	return string(r.Value)
}

func TestModuleShapes(t *testing.T) {
	for _, tt := range []struct {
		code    string
		methods []string
		method  string
		want    string
	}{
		{`var i = 0; exports.increment = function () { i++; return i }`, []string{"increment"}, "increment", "1"},
		{`module.exports = { add: (a, b) => a + b, name: 'not a method' }`, []string{"add"}, "add", "5"},
		{`module.exports = async function () { return 'hi' }`, []string{"default"}, "default", `"hi"`},
		{`exports.obj = () => ({ a: [1, 'two', null], b: undefined, c: new Date(0) })`, []string{"obj"}, "obj", `{"a":[1,"two",null],"c":"1970-01-01T00:00:00.000Z"}`},
		{`exports.nothing = () => {}`, []string{"nothing"}, "nothing", "null"},
	} {
		s := load(t, tt.code)
		if diff := cmp.Diff(tt.methods, s.Methods()); diff != "" {
			t.Errorf("%s: methods (-want +got):\n%s", tt.code, diff)
		}
		if got := call(t, s, Call{Method: tt.method, Args: json.RawMessage(`[2, 3]`)}); got != tt.want {
			t.Errorf("%s: got %s, want %s", tt.code, got, tt.want)
		}
	}
	if _, err := load(t, `exports.a = 1`).Call(context.Background(), Call{Method: "b"}); !errors.Is(err, ErrNoMethod) {
		t.Errorf("unknown method: %v", err)
	}
}

// TestArguments: the argument array as JSON.parse makes it, whatever its
// shape, and a clear error for anything that is not one.
func TestArguments(t *testing.T) {
	s := load(t, `exports.echo = (...args) => [args.length, ...args]`)
	for _, tt := range []struct{ args, want string }{
		{``, `[0]`},
		{`[]`, `[0]`},
		{" [ \n\t ] ", `[0]`},
		{`[1]`, `[1,1]`},
		{` [null, "two", {"a": [3]}, -0.5, true] `, `[5,null,"two",{"a":[3]},-0.5,true]`},
		{`[[], {}]`, `[2,[],{}]`},
	} {
		if got := call(t, s, Call{Method: "echo", Args: json.RawMessage(tt.args)}); got != tt.want {
			t.Errorf("arguments %q: got %s, want %s", tt.args, got, tt.want)
		}
	}
	for _, args := range []string{`{}`, `1`, `"[]"`, `[`, `[1,]`, `null`} {
		_, err := s.Call(context.Background(), Call{Method: "echo", Args: json.RawMessage(args)})
		if err == nil || !strings.Contains(err.Error(), "arguments") {
			t.Errorf("arguments %q: got error %v, want one about the arguments", args, err)
		}
	}
}

// TestResultIsStringified: integers take a shortcut past JSON.stringify;
// every result must read as JSON.stringify writes it, also when the script
// gives numbers a toJSON (which JSON.stringify ignores for primitives).
func TestResultIsStringified(t *testing.T) {
	for _, prelude := range []string{"", "Number.prototype.toJSON = function () { return 'n' + this }\n", "Object.prototype.toJSON = () => 'o'\n"} {
		resultIsStringified(t, prelude)
	}
}

func resultIsStringified(t *testing.T, prelude string) {
	t.Helper()
	for _, expr := range []string{
		"0", "-0", "1", "-1", "2147483648", "-2147483649", "2**53", "2**53 + 1", "2**62", "-(2**63)", "2**64",
		"1.5", "1e21", "1/3", "NaN", "Infinity", "'text'", "true", "null", "undefined",
		"[1, 2]", "({a: 1})", "new Date(5)", "Symbol('x')", "() => 1",
	} {
		s := load(t, prelude+"exports.f = () => "+expr+"\nexports.g = () => JSON.stringify("+expr+")")
		got, stringified := call(t, s, Call{Method: "f"}), call(t, s, Call{Method: "g"})
		want := "null" // JSON.stringify gave undefined
		switch {
		case strings.HasPrefix(stringified, "error: "):
			if !strings.HasPrefix(got, "error: ") {
				t.Errorf("%s: got %s, want an error as JSON.stringify's: %s", expr, got, stringified)
			}
			continue
		case stringified != "null":
			if err := json.Unmarshal([]byte(stringified), &want); err != nil {
				t.Fatal(err)
			}
		}
		if got != want {
			t.Errorf("%s%s: got %s, want %s", prelude, expr, got, want)
		}
	}
}

// TestHostileScripts: a script that replaces or deletes the globals the
// sandbox uses, or whose exports throw or loop when read, gets a load error
// or a script error, and never panics the process or hangs it.
func TestHostileScripts(t *testing.T) {
	for _, tt := range []struct{ code, want string }{
		{"System = null; exports.f = () => typeof System", `"object"`},
		{"delete globalThis.System; delete globalThis.env; exports.f = () => typeof System", `"undefined"`},
		{"System.caller = undefined; env = 5; exports.f = () => 1", "1"},
		{"Object.freeze(System.caller); exports.f = () => System.caller.id", "null"},
		{"Promise = null; exports.f = async () => 1", "1"},
		{"Promise = function () { throw new Error('no') }; exports.f = () => ({ then(r) { r(2) } })", "2"},
		{"Uint8Array = null; exports.f = () => new TextEncoder().encode('x')[0]", "120"},
		{"Date = null; exports.f = async () => typeof (await System.files.stat('/')).mtime", `"object"`},
		{"JSON = null; Object.keys = null; TypeError = null; exports.f = (a) => a", "1"},
		{"let n = 0; module.exports = { get f() { if (n++) throw new RangeError('later'); return () => 1 } }", "error: RangeError: later"},
		{"exports.f = () => { exports.f = 5; return 1 }; exports.g = () => 1", "1"},
		{"exports.default = () => 'd'; exports.f = () => exports.default()", `"d"`},
		{"module.exports = { get f() { throw new Error('read') } }", "load: sandbox: the script threw while its exports were read: Error: read"},
		{"module.exports = new Proxy({}, { ownKeys() { throw new Error('keys') } })", "load: sandbox: the script threw while its exports were read: Error: keys"},
		{"Object.defineProperty(module, 'exports', { get() { throw new Error('module') } })", "load: sandbox: the script threw while its exports were read: Error: module"},
		{"module.exports = { get f() { for (;;) {} } }", "load: " + ErrTimeBudget.Error() + " (200ms)"},
		// What a call gives, read by the sandbox: a then getter, a thrown
		// value's name, message and toString, toJSON, Proxy traps.
		{"exports.f = () => ({ get then() { throw new Error('t') } })", "error: Error: t"},
		{"exports.f = () => { throw { get name() { throw 1 } } }", "error: Error: the thrown value could not be read"},
		{"exports.f = () => { throw { toString() { throw 1 } } }", "error: Error: the thrown value could not be read"},
		{"exports.f = async () => { throw new Proxy({}, { get() { throw 1 } }) }", "error: Error: the thrown value could not be read"},
		{"exports.f = () => new Proxy({}, { get() { throw 2 } })", "error: 2"},
		{"exports.f = () => ({ toJSON() { throw { toString() { throw 1 } } } })", "error: TypeError: the result is not JSON: a value that cannot be converted to a string"},
		{"exports.f = () => { const p = Proxy.revocable({}, {}); p.revoke(); return p.proxy }", "error: TypeError: Proxy already revoked"},
		{"exports.f = () => { const o = { toJSON() { return o.toJSON() } }; return o }", "error: TypeError: the result is not JSON:  at toJSON (backend.js:1:120(3))"},
	} {
		t.Run(tt.code, func(t *testing.T) {
			t.Parallel()
			s, err := Load(tt.code, Options{Limits: Limits{Time: 200 * time.Millisecond}})
			if err != nil {
				if got := "load: " + err.Error(); got != tt.want {
					t.Errorf("got %s, want %s", got, tt.want)
				}
				return
			}
			a, err := hyperdrive.Open(hyperdrive.Options{Storage: hyperdrive.MemoryStorage(), Create: true})
			if err != nil {
				t.Fatal(err)
			}
			c := Call{Method: "f", Args: json.RawMessage("[1]"), Files: a.Files()}
			if got := call(t, s, c); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
			if got := call(t, s, c); strings.HasPrefix(tt.code, "exports.f = () => { exports.f = 5") && got != "error: TypeError: exports.f is not a function" {
				t.Errorf("a replaced method: got %s", got)
			}
		})
	}
	// Script code that loops while the sandbox reads a call's method or
	// result: the budget stops it, as it stops a method that loops.
	for _, code := range []string{
		"let n = 0; module.exports = { get f() { if (n++) for (;;) {} return () => 1 } }",
		"exports.f = () => ({ toJSON() { for (;;) {} } })",
		"exports.f = () => Promise.reject({ get message() { for (;;) {} } })",
		"exports.f = () => { throw { toString() { for (;;) {} } } }",
	} {
		s, err := Load(code, Options{Limits: Limits{Time: 200 * time.Millisecond}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Call(context.Background(), Call{Method: "f"}); !errors.Is(err, ErrTimeBudget) {
			t.Errorf("%s: %v, want %v", code, err, ErrTimeBudget)
		}
	}
	s, err := Load("let n = 0; module.exports = { get f() { return n++ ? this.f : () => 1 } }", Options{Limits: Limits{Time: 2 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Call(context.Background(), Call{Method: "f"}); !errors.Is(err, ErrStackDepth) {
		t.Errorf("a getter that recurses: %v, want %v", err, ErrStackDepth)
	}
}

// TestDefaultMethod: "default" is a module that exports a function, or else
// an exported method of that name.
func TestDefaultMethod(t *testing.T) {
	for code, want := range map[string]string{
		"exports.default = () => 'prop'": `"prop"`,
		"module.exports = function () { return 'fn' }; module.exports.default = () => 'prop'": `"fn"`,
	} {
		if got := call(t, load(t, code), Call{Method: "default"}); got != want {
			t.Errorf("%s: got %s, want %s", code, got, want)
		}
	}
}

func TestErrors(t *testing.T) {
	s := load(t, `
		exports.throws = () => { throw new Error('You are not my owner!') }
		exports.typed = () => { null.x }
		exports.rejects = async () => { throw new RangeError('too far') }
		exports.str = () => { throw 'just a string' }
		exports.never = () => new Promise(() => {})
		exports.named = () => { const e = new Error('m'); e.name = 'CustomError'; throw e }`)
	for method, want := range map[string]string{
		"throws":  "error: Error: You are not my owner!",
		"typed":   "error: TypeError: Cannot read property 'x' of undefined",
		"rejects": "error: RangeError: too far",
		"str":     "error: just a string",
		"never":   "error: Error: the call's promise never settled: nothing was left to wait for",
		"named":   "error: CustomError: m",
	} {
		if got := call(t, s, Call{Method: method}); got != want {
			t.Errorf("%s: %s, want %s", method, got, want)
		}
	}
}

func TestDeterministicClockRandomAndTimers(t *testing.T) {
	code := `
		exports.run = async () => {
			const out = [Date.now(), Math.random()]
			await new Promise((resolve) => setTimeout(resolve, 1500))
			out.push(Date.now())
			const order = []
			setTimeout(() => order.push('t10'), 10)
			setImmediate(() => order.push('imm'))
			setTimeout(() => order.push('t0'), 0)
			let ticks = 0
			await new Promise((resolve) => {
				const id = setInterval(() => { if (++ticks === 3) { clearInterval(id); resolve() } }, 100)
			})
			out.push(order, Date.now(), new Date().toISOString())
			return out
		}`
	a, b := load(t, code), load(t, code)
	c := Call{Method: "run", Time: 1_700_000_000_000, Seed: 42}
	got, again := call(t, a, c), call(t, b, c)
	if got != again {
		t.Fatalf("two runs of the same call differ:\n%s\n%s", got, again)
	}
	var out []any
	if err := json.Unmarshal([]byte(got), &out); err != nil {
		t.Fatal(err)
	}
	if out[0].(float64) != 1_700_000_000_000 || out[2].(float64) != 1_700_000_001_500 || out[4].(float64) != 1_700_000_001_800 {
		t.Errorf("virtual clock: %s", got)
	}
	if diff := cmp.Diff([]any{"imm", "t0", "t10"}, out[3]); diff != "" {
		t.Errorf("timer order (-want +got):\n%s", diff)
	}
	c.Seed = 43
	if other := call(t, load(t, code), c); other == got {
		t.Error("another seed gave the same Math.random")
	}
}

func TestCallerAndOracle(t *testing.T) {
	s := load(t, `
		exports.who = () => [System.caller.id, env.callerId]
		exports.roll = async () => {
			const v = await System.oracle((scale) => Math.floor(Math.random() * scale), 1e9)
			const w = await System.oracle(() => ({ at: Date.now() }))
			return [v, typeof w.at, w.at > 1.7e12]
		}
		exports.bad = async () => System.oracle(() => { throw new Error('sensor offline') })`)
	bob := "bob"
	if got := call(t, s, Call{Method: "who", CallerID: &bob}); got != `["bob","bob"]` {
		t.Errorf("caller: %s", got)
	}
	if got := call(t, s, Call{Method: "who"}); got != `[null,null]` {
		t.Errorf("anonymous caller: %s", got)
	}
	rec := &Record{}
	got := call(t, s, Call{Method: "roll", Oracles: rec})
	if len(rec.Values) != 2 {
		t.Fatalf("recorded %d oracle values", len(rec.Values))
	}
	// A replay returns the recorded values and does not run the function.
	replayed := call(t, s, Call{Method: "roll", Oracles: &Replay{Values: rec.Values}})
	var a, b []any
	json.Unmarshal([]byte(got), &a)
	json.Unmarshal([]byte(replayed), &b)
	if a[0] != b[0] || a[2] != true {
		t.Errorf("replay: %s after %s; want the same value, and the real clock on the host", replayed, got)
	}
	if _, err := s.Call(context.Background(), Call{Method: "roll", Oracles: &Replay{Values: rec.Values[:1]}}); !errors.Is(err, ErrOracleMismatch) {
		t.Errorf("replay with too few values: %v", err)
	}
	rec = &Record{}
	if got := call(t, load(t, `exports.bad = async () => System.oracle(() => { throw new Error('sensor offline') })`), Call{Method: "bad", Oracles: rec}); got != "error: Error: sensor offline" || rec.Values[0].Error == nil {
		t.Errorf("throwing oracle: %s, %+v", got, rec.Values)
	}
}

// TestOracleIsolated: an oracle function runs in a runtime of its own,
// so it cannot change the script's state, which no replay (which never
// runs it) would reproduce: before, one that set a global made the audit
// report tampering, and the host could not rebuild after a stopped call.
// It sees its code, its JSON arguments, the real clock and randomness.
func TestOracleIsolated(t *testing.T) {
	s := load(t, `
		globalThis.leak = 'untouched'
		let counter = 0
		exports.f = async () => {
			const set = await System.oracle(() => { globalThis.leak = Math.random(); return typeof System.files })
			let closure
			try { await System.oracle(() => ++counter) } catch (e) { closure = e.name }
			const args = await System.oracle((a, b) => a.x + b, {x: 40}, 2)
			const method = await System.oracle({ twice (n) { return 2 * n } }.twice, 21)
			return [set, leak, counter, closure, args, method]
		}
		exports.spin = async () => System.oracle(() => { for (;;) {} })`)
	rec := &Record{}
	if got := call(t, s, Call{Method: "f", Oracles: rec}); got != `["object","untouched",0,"ReferenceError",42,42]` {
		t.Errorf("got %s", got)
	}
	if len(rec.Values) != 4 {
		t.Errorf("recorded %d values, want 4", len(rec.Values))
	}
	s2, err := Load(`exports.spin = async () => System.oracle(() => { for (;;) {} })`, Options{Limits: Limits{Time: 200 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Call(context.Background(), Call{Method: "spin", Oracles: &Record{}}); !errors.Is(err, ErrTimeBudget) {
		t.Errorf("an oracle past the budget: %v, want the call stopped", err)
	}
}

func TestRequireAndGlobals(t *testing.T) {
	s := load(t, `
		const path = require('path'), assert = require('node:assert')
		exports.paths = () => [path.join('/a', '../b', 'c.txt'), path.resolve('x', 'y'), path.dirname('/a/b/c'), path.basename('/a/b.js', '.js'), path.extname('f.tar.gz'), path.relative('/a/b', '/a/c/d')]
		exports.asserts = () => { assert.deepStrictEqual({ a: [1] }, { a: [1] }); assert.throws(() => assert.strictEqual(1, 2), assert.AssertionError); return 'ok' }
		exports.fails = () => assert.strictEqual(1, 2, 'one is not two')
		exports.fs = () => require('fs')
		exports.globals = () => [typeof process, typeof fetch, typeof WeakRef, typeof FinalizationRegistry, typeof Buffer === 'undefined' || typeof Buffer]
		exports.text = () => { const b = new TextEncoder().encode('héllo'); return [b.length, new TextDecoder().decode(b)] }`)
	for method, want := range map[string]string{
		"paths":   `["/b/c.txt","/x/y","/a/b","b",".gz","../c/d"]`,
		"asserts": `"ok"`,
		"fails":   "error: AssertionError: one is not two",
		"fs":      `error: Error: require("fs") is not available in a NodeVMS backend; only assert and path are`,
		"globals": `["undefined","undefined","undefined","undefined",true]`,
		"text":    `[6,"héllo"]`,
	} {
		if got := call(t, s, Call{Method: method}); got != want {
			t.Errorf("%s: %s, want %s", method, got, want)
		}
	}
}

func TestLimits(t *testing.T) {
	for _, tt := range []struct {
		name, code string
		limits     Limits
		want       error
	}{
		{"infinite loop", `exports.f = () => { for (;;) {} }`, Limits{Time: 100 * time.Millisecond}, ErrTimeBudget},
		{"endless timers", `exports.f = () => new Promise(() => { setInterval(() => {}, 1) })`, Limits{Time: 100 * time.Millisecond}, ErrTimeBudget},
		{"memory", `exports.f = () => { const a = []; for (;;) a.push(new Array(1000).fill('x' + a.length)) }`, Limits{Memory: 64 << 20, Time: 20 * time.Second}, ErrMemoryBudget},
		{"stack", `function f (n) { return f(n + 1) + 1 }; exports.f = () => f(0)`, Limits{StackDepth: 500}, ErrStackDepth},
		{"oracle loop", `exports.f = () => System.oracle(() => { for (;;) {} })`, Limits{Time: 100 * time.Millisecond}, ErrTimeBudget},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Load(tt.code, Options{Limits: tt.limits})
			if err != nil {
				t.Fatal(err)
			}
			_, err = s.Call(context.Background(), Call{Method: "f", Oracles: &Record{}})
			if !errors.Is(err, tt.want) {
				t.Fatalf("error %v, want %v", err, tt.want)
			}
			if _, err := s.Call(context.Background(), Call{Method: "f"}); !errors.Is(err, ErrBroken) {
				t.Errorf("after an abort: %v, want ErrBroken", err)
			}
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := load(t, `exports.f = () => { for (;;) {} }`).Call(ctx, Call{Method: "f"}); !errors.Is(err, ErrCanceled) {
		t.Errorf("canceled: %v", err)
	}
}

func TestSystemFiles(t *testing.T) {
	a, err := hyperdrive.Open(hyperdrive.Options{Storage: hyperdrive.MemoryStorage(), Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	s := load(t, `
		const fs = System.files
		exports.counter = async () => {
			let i = 0
			try { i = await fs.readFile('/counter', 'json') } catch (e) { if (e.name !== 'NotFoundError') throw e }
			i++
			await fs.writeFile('/counter', i)
			return i
		}
		exports.tour = async () => {
			await fs.mkdir('/photos')
			await fs.writeFile('/photos/a.txt', 'aGk=', 'base64')
			await fs.writeFile('/photos/b.bin', new Uint8Array([1, 2, 3]))
			const st = await fs.stat('/photos/b.bin')
			const list = await fs.readdir('/photos', { stat: true })
			let err
			try { await fs.writeFile('/nope/x', 'x') } catch (e) { err = e.name }
			await fs.unlink('/photos/a.txt')
			return [await fs.readFile('/photos/b.bin', 'hex'), st.isFile(), st.size, st.mtime.getTime(), list.map((e) => e.name),
				await fs.readdir('/'), err, (await fs.history()).length, (await fs.getInfo()).isOwner]
		}`)
	files := a.Files()
	for i := 1; i <= 3; i++ {
		if got := call(t, s, Call{Method: "counter", Files: files, Time: 1000}); got != strings.Repeat("", 0)+string(rune('0'+i)) {
			t.Fatalf("counter call %d: %s", i, got)
		}
	}
	got := call(t, s, Call{Method: "tour", Files: files, Time: 5000})
	want := `["010203",true,3,5000,["a.txt","b.bin"],["counter","photos"],"ParentFolderDoesntExistError",7,true]`
	if got != want {
		t.Errorf("tour:\n got %s\nwant %s", got, want)
	}
	if got := call(t, s, Call{Method: "counter"}); got != "error: Error: System.files is not available here" {
		t.Errorf("without an archive: %s", got)
	}
}

// TestWatchdogAcrossCalls: one timer watches every call. Quick calls are
// never interrupted by it, it rests while no call runs, and a call that
// begins long after the last check still gets its whole time budget, and
// no more than a check interval past it.
func TestWatchdogAcrossCalls(t *testing.T) {
	s, err := Load(`exports.quick = () => 1; exports.spin = () => { for (;;) {} }`, Options{Limits: Limits{Time: 100 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2000 {
		if _, err := s.Call(context.Background(), Call{Method: "quick"}); err != nil {
			t.Fatalf("quick call %d: %v", i, err)
		}
	}
	time.Sleep(3 * memoryCheckEvery)
	s.watchdog.mu.Lock()
	armed := s.watchdog.armed
	s.watchdog.mu.Unlock()
	if armed {
		t.Error("the watchdog's timer is still armed with no call running")
	}
	start := time.Now()
	_, err = s.Call(context.Background(), Call{Method: "spin"})
	took := time.Since(start)
	if !errors.Is(err, ErrTimeBudget) {
		t.Fatalf("spin: %v, want ErrTimeBudget", err)
	}
	if took < 100*time.Millisecond || took > time.Second {
		t.Errorf("spin was stopped after %v, want just past its 100ms budget", took)
	}
}
