package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

// TestMain lets the test binary be the nodevms command in scripts.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){"nodevms": func() { os.Exit(runMain()) }})
}

// TestScripts runs testdata/script/*.txtar: the command's behaviour, each
// script a story in commands and expected output. Besides exec nodevms,
// scripts have serve (nodevms -e in this process, until sigint; it sets
// $ADDR) and sigint.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 filepath.Join("testdata", "script"),
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			// The REPL keeps its signing key in the user's config folder.
			home := filepath.Join(env.WorkDir, ".home")
			env.Setenv("HOME", home)
			env.Setenv("XDG_CONFIG_HOME", filepath.Join(home, ".config"))
			env.Values[servedKey{}] = &scriptServer{}
			env.Defer(func() { env.Values[servedKey{}].(*scriptServer).stop() })
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"serve":  cmdServe,
			"sigint": cmdSigint,
		},
	})
}

type servedKey struct{}

// scriptServer is a script's backend, served by run in this process.
type scriptServer struct {
	cancel         context.CancelFunc
	done           chan int
	stdout, stderr *syncBuffer
}

func (s *scriptServer) stop() int {
	if s.cancel == nil {
		return 0
	}
	s.cancel()
	code := <-s.done
	s.cancel = nil
	return code
}

// cmdServe is "serve SCRIPT [DIR] [flags]": nodevms -e in this process,
// with --port 0 --dat-port 0 added, until it prints where it serves.
func cmdServe(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("unsupported: ! serve")
	}
	s := ts.Value(servedKey{}).(*scriptServer)
	if s.cancel != nil {
		ts.Fatalf("a backend is served already")
	}
	// The script and the folder are the work folder's (run does not
	// change directory); flags and their values stay as they are.
	for i, a := range args {
		if i < 2 && !strings.HasPrefix(a, "-") {
			args[i] = ts.MkAbs(a)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel, s.done = cancel, make(chan int, 1)
	s.stdout, s.stderr = &syncBuffer{}, &syncBuffer{}
	argv := append([]string{"-e"}, append(args, "--port", "0", "--dat-port", "0")...)
	go func() { s.done <- run(ctx, argv, strings.NewReader(""), s.stdout, s.stderr) }()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) {
		for _, line := range strings.Split(s.stdout.String(), "\n") {
			if addr, ok := strings.CutPrefix(line, "Serving at "); ok {
				ts.Setenv("ADDR", addr)
				return
			}
		}
		select {
		case code := <-s.done:
			s.cancel = nil
			ts.Fatalf("nodevms -e exited %d:\n%s%s", code, s.stdout.String(), s.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			ts.Fatalf("nodevms -e did not serve within a minute:\n%s%s", s.stdout.String(), s.stderr.String())
		}
	}
}

// cmdSigint is "sigint": Ctrl+C for the served backend, which must exit 0 (or
// not, with !); what it printed is sigint's stdout and stderr.
func cmdSigint(ts *testscript.TestScript, neg bool, args []string) {
	s := ts.Value(servedKey{}).(*scriptServer)
	if s.cancel == nil {
		ts.Fatalf("no backend is served")
	}
	code := s.stop()
	ts.Logf("nodevms -e exited %d", code)
	ts.Stdout().Write([]byte(s.stdout.String()))
	ts.Stderr().Write([]byte(s.stderr.String()))
	if (code != 0) != neg {
		ts.Fatalf("nodevms -e exited %d\n%s", code, s.stderr.String())
	}
}
