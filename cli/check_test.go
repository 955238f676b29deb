package main

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestCheck: nodevms check says GOOD of a folder a host left, DAMAGED (exit
// 1) of one changed on disk, naming what, and changes nothing either way;
// a start refuses the damaged folders, changing nothing; check cannot
// check (exit 2) a folder without a backend or one being served.
func TestCheck(t *testing.T) {
	script := exampleFile(t, "persistent-counter.js")
	base := filepath.Join(t.TempDir(), "counter")
	s := startServer(t, script, base)
	for range 5 {
		rpcCall(t, s.addr, "increment")
	}
	s.stop(t)

	flip := func(name string, at func(b []byte) int) func(t *testing.T, dir string) {
		return func(t *testing.T, dir string) {
			path := filepath.Join(dir, name)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			b[at(b)] ^= 1
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	middle := func(b []byte) int { return len(b) / 2 }
	seedDigit := func(b []byte) int { return bytes.Index(b, []byte(`"seed":"`)) + 10 }
	for _, c := range []struct {
		name   string
		change func(t *testing.T, dir string)
		code   int
		says   string
	}{
		{"as the host left it", nil, 0, "GOOD"},
		{"a digit of the seed", flip(".dat/call-log.data", seedDigit), 1, "not what was signed"},
		{"the counter file truncated", func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, "counter"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}, 1, "/counter"},
		// Same size: a start serves, and the file fails the call that reads
		// it (see TestAdversarialMatrix); check reads every file.
		{"the counter file's digit", flip("counter", middle), 1, "/counter"},
		{"a byte of the metadata", flip(".dat/metadata.data", middle), 1, "metadata"},
		{"a byte of the metadata's tree", flip(".dat/metadata.tree", func(b []byte) int { return 32 + 40 + 5 }), 1, "metadata"},
		{"a byte of the content's bitfield", flip(".dat/content.bitfield", func(b []byte) int { return 32 + 900 }), 1, "content"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "counter")
			if err := os.CopyFS(dir, os.DirFS(base)); err != nil {
				t.Fatal(err)
			}
			if c.change != nil {
				c.change(t, dir)
			}
			before := folderFiles(t, dir)
			stdout, stderr, err := runNodevms(t, "check", dir)
			if code := checkExit(err); code != c.code || !strings.Contains(stdout, c.says) {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit %d saying %q", code, stdout, stderr, c.code, c.says)
			}
			if diff := cmp.Diff(before, folderFiles(t, dir)); diff != "" {
				t.Errorf("check changed the folder (-before +after):\n%s", diff)
			}
			if c.code == 0 || c.name == "the counter file's digit" {
				return
			}
			// A start refuses the damaged folder the same way, and changes
			// nothing in it either (but the lock, which says who tried).
			_, stderr, err = runNodevms(t, "-e", script, dir, "--port", "0", "--dat-port", "0")
			if checkExit(err) != exitError || !strings.Contains(stderr, "nodevms check") {
				t.Errorf("starting: exit %d, %q; want a refusal that points to nodevms check", checkExit(err), stderr)
			}
			after := folderFiles(t, dir)
			delete(before, filepath.Join(".dat", "lock"))
			delete(after, filepath.Join(".dat", "lock"))
			if diff := cmp.Diff(before, after); diff != "" {
				t.Errorf("the refused start changed the folder (-before +after):\n%s", diff)
			}
		})
	}

	t.Run("no backend", func(t *testing.T) {
		_, stderr, err := runNodevms(t, "check", t.TempDir())
		if checkExit(err) != 2 || !strings.Contains(stderr, "no deployed backend") {
			t.Errorf("exit %d, %q", checkExit(err), stderr)
		}
	})
	t.Run("being served", func(t *testing.T) {
		s := startServer(t, script, base)
		defer s.stop(t)
		_, stderr, err := runNodevms(t, "check", base)
		if checkExit(err) != 2 || !strings.Contains(stderr, "serving") {
			t.Errorf("exit %d, %q", checkExit(err), stderr)
		}
	})
}

func checkExit(err error) int {
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// folderFiles maps each file under dir to its bytes.
func folderFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		rel, _ := filepath.Rel(dir, path)
		out[rel] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
