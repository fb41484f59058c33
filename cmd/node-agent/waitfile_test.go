package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sopilot/sopilot/internal/agent/waitfile"
)

func TestWaitFile(t *testing.T) {
	dir := t.TempDir()
	ready := filepath.Join(dir, "toolkit-ready")
	if err := os.WriteFile(ready, []byte("true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing")
	tests := []struct {
		name     string
		args     []string
		env      map[string]string
		exit     int    // 0: success
		want     string // in the error
		wantTime bool   // errors.Is(err, waitfile.ErrTimeout)
	}{
		{"present", []string{ready}, nil, 0, "", false},
		{"flags before the path", []string{"--timeout", "1s", ready}, nil, 0, "", false},
		{"flags after the path", []string{ready, "--timeout=1s", "--poll-interval=10ms"}, nil, 0, "", false},
		{"times out", []string{"--timeout=30ms", "--poll-interval=10ms", missing}, nil, 1, missing, true},
		{"timeout from the environment", []string{"--poll-interval=10ms", missing}, map[string]string{"SOPILOT_TIMEOUT": "30ms"}, 1, "after 30ms", true},
		{"no path", []string{"--timeout=1s"}, nil, 2, "give the PATH to wait for", false},
		{"two paths", []string{ready, missing}, nil, 2, `unexpected argument "` + missing + `"`, false},
		{"unknown flag", []string{"--every=1s", ready}, nil, 2, "flag provided but not defined: -every", false},
		{"negative timeout", []string{"--timeout=-1s", ready}, nil, 2, "--timeout must not be negative", false},
		{"short poll interval", []string{"--poll-interval=1ms", ready}, nil, 2, "--poll-interval must be at least 10ms", false},
		{"bad environment", []string{ready}, map[string]string{"SOPILOT_TIMEOUT": "soon"}, 2, "SOPILOT_TIMEOUT", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), append([]string{"wait-file"}, tt.args...), func(k string) string { return tt.env[k] }, &stdout, &stderr)
			if tt.exit == 0 {
				if err != nil {
					t.Fatalf("wait-file %v: %v", tt.args, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("wait-file %v succeeded", tt.args)
			}
			if code := exitCode(err); code != tt.exit {
				t.Errorf("exit code %d for %v, want %d", code, err, tt.exit)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q lacks %q", err, tt.want)
			}
			if errors.Is(err, waitfile.ErrTimeout) != tt.wantTime {
				t.Errorf("errors.Is(%v, ErrTimeout) = %v, want %v", err, !tt.wantTime, tt.wantTime)
			}
			if tt.wantTime && !strings.Contains(stderr.String(), "waiting for file") {
				t.Errorf("no log of the wait on stderr: %q", stderr.String())
			}
		})
	}
}

func TestWaitFileHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"wait-file", "--help"}, func(string) string { return "" }, &stdout, &stderr); err != nil {
		t.Fatalf("wait-file --help: %v", err)
	}
	for _, w := range []string{"Usage: node-agent wait-file [flags] PATH", "--timeout  [SOPILOT_TIMEOUT] (default 0s)", "--poll-interval"} {
		if !strings.Contains(stderr.String(), w) {
			t.Errorf("usage lacks %q:\n%s", w, stderr.String())
		}
	}
}
