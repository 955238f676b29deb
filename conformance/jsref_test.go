package conformance

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// The live cross-checks run the pinned JavaScript reference with node. Where
// node or npm is missing they are skipped with a message, except in CI (the
// CI environment variable set), where a skip would hide a broken set-up and
// is a failure instead.

var (
	jsOnce sync.Once
	jsDir  string // holds node_modules with the reference
	jsErr  error
)

// jsReference returns a directory whose node_modules holds the pinned
// reference, installing it with `npm ci` from the committed lock file the
// first time. The install is cached by the lock file's hash in
// $NODEVMS_JS_CACHE, or else the user's cache directory.
func jsReference(t *testing.T) string {
	t.Helper()
	jsOnce.Do(func() { jsDir, jsErr = installReference() })
	if jsErr != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("JavaScript reference unavailable in CI: %v", jsErr)
		}
		t.Skipf("skipping the live check against %s: %v", Reference, jsErr)
	}
	return jsDir
}

func installReference() (string, error) {
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			return "", fmt.Errorf("%s is not installed", tool)
		}
	}
	lock, err := os.ReadFile(filepath.Join("js", "package-lock.json"))
	if err != nil {
		return "", err
	}
	// A checkout where `npm ci` already ran in js/ (a developer's tree).
	if installed, err := os.ReadFile(filepath.Join("js", "node_modules", ".package-lock.json")); err == nil && len(installed) > 0 {
		if _, err := os.Stat(filepath.Join("js", "node_modules", "hypercore", "package.json")); err == nil {
			return filepath.Abs("js")
		}
	}
	cache := os.Getenv("NODEVMS_JS_CACHE")
	if cache == "" {
		if cache, err = os.UserCacheDir(); err != nil {
			cache = os.TempDir()
		}
		cache = filepath.Join(cache, "nodevms")
	}
	sum := sha256.Sum256(lock)
	dir := filepath.Join(cache, "js-reference-"+hex.EncodeToString(sum[:8]))
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "hypercore", "package.json")); err == nil {
		return dir, nil
	}
	// Install into a fresh folder and rename it into place, so that a
	// concurrent or interrupted install never leaves a half-made cache.
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(cache, "install-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	for _, name := range []string{"package.json", "package-lock.json"} {
		b, err := os.ReadFile(filepath.Join("js", name))
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(tmp, name), b, 0o644); err != nil {
			return "", err
		}
	}
	cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error")
	cmd.Dir = tmp
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("npm ci: %v\n%s", err, out)
	}
	if err := os.Rename(tmp, dir); err != nil {
		if _, statErr := os.Stat(filepath.Join(dir, "node_modules")); statErr == nil {
			return dir, nil // another process won the race
		}
		return "", err
	}
	return dir, nil
}

// runNode runs one of the scripts in js/ with the reference on NODE_PATH and
// returns its standard output.
func runNode(t *testing.T, script string, args ...string) []byte {
	t.Helper()
	ref := jsReference(t)
	path, err := filepath.Abs(filepath.Join("js", script))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("node", append([]string{path}, args...)...)
	cmd.Env = append(os.Environ(), "NODE_PATH="+filepath.Join(ref, "node_modules"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			t.Fatalf("node %s %s: %v\n%s", script, strings.Join(args, " "), err, stderr.String())
		}
		t.Fatal(err)
	}
	return out
}
