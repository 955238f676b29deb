package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/nodevms/nodevms"
)

func TestRun(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string // substring; empty means stdout must be empty
		wantStderr string // substring; empty means stderr must be empty
	}{
		{name: "help", args: []string{"--help"}, wantCode: exitOK, wantStdout: "Usage:"},
		{name: "short help", args: []string{"-h"}, wantCode: exitOK, wantStdout: "Usage:"},
		{name: "version", args: []string{"--version"}, wantCode: exitOK, wantStdout: "nodevms v" + nodevms.Version + "\n"},
		{name: "short version", args: []string{"-v"}, wantCode: exitOK, wantStdout: "nodevms v" + nodevms.Version + "\n"},
		{name: "no args", args: nil, wantCode: exitUsage, wantStderr: "Usage:"},
		{name: "unknown flag", args: []string{"--bogus"}, wantCode: exitUsage, wantStderr: "flag provided but not defined: --bogus"},
		{name: "unknown command", args: []string{"serve"}, wantCode: exitUsage, wantStderr: `unknown command "serve"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tt.args, strings.NewReader(""), &stdout, &stderr)
			if code != tt.wantCode {
				t.Errorf("exit code = %d, want %d", code, tt.wantCode)
			}
			check := func(stream, got, want string) {
				if want == "" && got != "" {
					t.Errorf("%s = %q, want empty", stream, got)
				}
				if !strings.Contains(got, want) {
					t.Errorf("%s = %q, want it to contain %q", stream, got, want)
				}
			}
			check("stdout", stdout.String(), tt.wantStdout)
			check("stderr", stderr.String(), tt.wantStderr)
		})
	}
}
