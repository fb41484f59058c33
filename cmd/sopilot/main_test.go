package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/sopilot/sopilot/internal/cli"
)

func TestRun(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		env    map[string]string
		code   int
		stdout string
		stderr string
	}{
		{"help", []string{"--help"}, nil, cli.ExitOK, "Exit codes:", ""},
		{"version", []string{"--version"}, map[string]string{"SOPILOT_VERSION": "x"}, cli.ExitOK, "sopilot dev (commit ", ""},
		{"cluster help", []string{"cluster", "--help"}, nil, cli.ExitOK, "sopilot cluster preflight", ""},
		{"unknown command", []string{"nodez"}, nil, cli.ExitUsage, "", `unknown command "nodez"`},
		{"nodes help", []string{"nodes", "--help"}, nil, cli.ExitOK, "TELEMETRY", ""},
		{"node drain needs a reason", []string{"node", "drain", "worker-0"}, nil, cli.ExitUsage, "", "--reason is required"},
		{"bad value in the environment", []string{"cluster", "preflight", "--dir", "."}, map[string]string{"SOPILOT_OUTPUT": "xml"}, cli.ExitUsage, "", "--output"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), tt.args, func(k string) string { return tt.env[k] }, &stdout, &stderr)
			if got := cli.ExitCode(err); got != tt.code {
				t.Fatalf("exit %d (%v), want %d", got, err, tt.code)
			}
			if !strings.Contains(stdout.String(), tt.stdout) || !strings.Contains(stderr.String(), tt.stderr) {
				t.Fatalf("stdout %q\nstderr %q", stdout.String(), stderr.String())
			}
		})
	}
}
