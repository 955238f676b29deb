package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/chzyer/readline"
	"github.com/dop251/goja"

	"github.com/nodevms/nodevms/audit"
	"github.com/nodevms/nodevms/rpc"
)

func runREPL(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("repl", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var user, keyFile, command, receipts string
	fs.StringVar(&user, "user", "", "")
	fs.StringVar(&user, "u", "", "")
	fs.StringVar(&keyFile, "key", "", "")
	fs.StringVar(&command, "exec", "", "")
	fs.StringVar(&command, "e", "", "")
	fs.StringVar(&receipts, "receipts", "", "")
	pos, err := parseInterleaved(fs, args)
	if err != nil || len(pos) != 1 {
		if err == nil {
			err = errors.New("repl needs the backend's address")
		}
		fmt.Fprintf(stderr, "nodevms: %v\nrun 'nodevms --help' for usage\n", err)
		return exitUsage
	}
	opts := rpc.ClientOptions{User: user}
	if user == "" {
		// Sign calls unless a user is named (debug mode).
		if keyFile == "" {
			if keyFile, err = rpc.DefaultKeyFile(); err != nil {
				fmt.Fprintf(stderr, "nodevms: %v\n", err)
				return exitError
			}
		}
		if opts.Key, err = rpc.LoadOrCreateKey(keyFile); err != nil {
			fmt.Fprintf(stderr, "nodevms: %v\n", err)
			return exitError
		}
	}
	if command == "" {
		fmt.Fprintln(stdout, "Connecting...")
	}
	client, err := rpc.Dial(ctx, pos[0], opts)
	if err != nil {
		fmt.Fprintf(stderr, "nodevms: %v\n", err)
		return exitError
	}
	defer client.Close()
	r := newREPL(ctx, client, receipts, stdout)
	if command != "" {
		out, err := r.eval(command)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return exitError
		}
		fmt.Fprintln(stdout, out)
		return exitOK
	}
	fmt.Fprintln(stdout, "Connected.")
	fmt.Fprintln(stdout, "You can use 'client' object to access the backend.")
	if id := opts.Key; id != nil {
		fmt.Fprintf(stdout, "Calls are signed as %x.\n", id.Public().(ed25519.PublicKey))
	}
	return r.loop(stdin, stdout, stderr)
}

// repl evaluates JavaScript with client in scope: client.method(...args)
// calls the backend and gives a promise of the result, which the REPL
// awaits before printing. With a receipts folder, every call asks for its
// receipt, which the REPL checks against the call log's key and saves.
type repl struct {
	ctx      context.Context
	vm       *goja.Runtime
	client   *rpc.Client
	receipts string    // the folder receipts are saved in; "" for none
	notes    io.Writer // where saved receipts are reported
}

func newREPL(ctx context.Context, c *rpc.Client, receipts string, notes io.Writer) *repl {
	r := &repl{ctx: ctx, vm: goja.New(), client: c, receipts: receipts, notes: notes}
	obj := r.vm.NewObject()
	for _, m := range c.Handshake().Methods {
		method := m
		obj.Set(method, func(call goja.FunctionCall) goja.Value {
			args := make([]any, len(call.Arguments))
			for i, a := range call.Arguments {
				args[i] = a.Export()
			}
			promise, resolve, reject := r.vm.NewPromise()
			res, err := r.call(method, args)
			if err != nil {
				e := r.vm.NewGoError(err)
				var ce *rpc.CallError
				if errors.As(err, &ce) {
					e.Set("message", ce.Message)
					if ce.Name != "" {
						e.Set("name", ce.Name)
					}
				}
				reject(e)
			} else {
				var v any
				json.Unmarshal(res, &v)
				resolve(r.vm.ToValue(v))
			}
			return r.vm.ToValue(promise)
		})
	}
	r.vm.Set("client", obj)
	return r
}

// call calls the backend; with a receipts folder, it asks for the call's
// receipt, checks it against the call log's key and saves it. A receipt
// that is missing or does not check is reported, and the call's answer
// still given: the call happened.
func (r *repl) call(method string, args []any) (json.RawMessage, error) {
	if r.receipts == "" {
		return r.client.Call(r.ctx, method, args...)
	}
	res, rec, err := r.client.CallWithReceipt(r.ctx, method, args...)
	var ce *rpc.CallError
	if err != nil && !errors.As(err, &ce) {
		if rec == nil && res != nil {
			fmt.Fprintf(r.notes, "no receipt: %v\n", err)
			return res, nil
		}
		return nil, err
	}
	key, kerr := audit.DatKey(r.client.Handshake().CallLogURL)
	switch {
	case kerr != nil:
		fmt.Fprintf(r.notes, "no receipt saved: the server names no call log: %v\n", kerr)
	case rec.Verify(key) != nil:
		fmt.Fprintf(r.notes, "no receipt saved: the server's receipt does not check: %v\n", rec.Verify(key))
	default:
		if path, serr := saveReceipt(r.receipts, rec); serr != nil {
			fmt.Fprintf(r.notes, "no receipt saved: %v\n", serr)
		} else {
			fmt.Fprintf(r.notes, "receipt of entry %d saved: %s\n", rec.Index, path)
		}
	}
	return res, err
}

// eval runs one line and describes its result (awaited, if a promise).
func (r *repl) eval(line string) (string, error) {
	v, err := r.vm.RunString(line)
	if err != nil && strings.Contains(line, "await") {
		// Top-level await: run the line in an async function.
		v, err = r.vm.RunString("(async () => (" + line + "))()")
	}
	if err != nil {
		var exc *goja.Exception
		if errors.As(err, &exc) {
			return "", errors.New(describeError(exc.Value()))
		}
		return "", err
	}
	if obj, ok := v.(*goja.Object); ok {
		if p, ok := obj.Export().(*goja.Promise); ok {
			switch p.State() {
			case goja.PromiseStateRejected:
				return "", errors.New(describeError(p.Result()))
			case goja.PromiseStateFulfilled:
				v = p.Result()
			default:
				return "Promise { <pending> }", nil
			}
		}
	}
	return r.show(v), nil
}

func describeError(v goja.Value) string {
	if obj, ok := v.(*goja.Object); ok {
		name, msg := obj.Get("name"), obj.Get("message")
		if msg != nil && !goja.IsUndefined(msg) {
			n := "Error"
			if name != nil && !goja.IsUndefined(name) {
				n = name.String()
			}
			return n + ": " + msg.String()
		}
	}
	return "Uncaught " + v.String()
}

// show prints a value as JSON where it can (strings in quotes), as the
// Node REPL would show it otherwise.
func (r *repl) show(v goja.Value) string {
	if v == nil || goja.IsUndefined(v) {
		return "undefined"
	}
	b, err := json.MarshalIndent(v.Export(), "", "  ")
	if err != nil {
		return v.String()
	}
	return string(b)
}

func (r *repl) loop(stdin io.Reader, stdout, stderr io.Writer) int {
	history := ""
	if dir, err := os.UserConfigDir(); err == nil {
		history = filepath.Join(dir, "nodevms", "repl_history")
		os.MkdirAll(filepath.Dir(history), 0o700)
	}
	file, isFile := stdin.(*os.File)
	if !isFile || !readline.IsTerminal(int(file.Fd())) {
		// Not a terminal: read lines plainly (pipes, tests).
		scanner := bufio.NewScanner(stdin)
		fmt.Fprint(stdout, "> ")
		for scanner.Scan() {
			r.print(scanner.Text(), stdout, stderr)
			fmt.Fprint(stdout, "> ")
		}
		fmt.Fprintln(stdout)
		return exitOK
	}
	rl, err := readline.NewEx(&readline.Config{Prompt: "> ", HistoryFile: history, Stdin: file, Stdout: stdout, Stderr: stderr})
	if err != nil {
		fmt.Fprintf(stderr, "nodevms: %v\n", err)
		return exitError
	}
	defer rl.Close()
	for {
		line, err := rl.Readline()
		if errors.Is(err, readline.ErrInterrupt) {
			continue
		}
		if err != nil { // io.EOF: Ctrl+D
			return exitOK
		}
		r.print(line, rl.Stdout(), rl.Stderr())
	}
}

func (r *repl) print(line string, stdout, stderr io.Writer) {
	if strings.TrimSpace(line) == "" {
		return
	}
	out, err := r.eval(line)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return
	}
	fmt.Fprintln(stdout, out)
}
