package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
)

func TestRunFlags(t *testing.T) {
	tests := []struct {
		name      string
		args      []string
		env       map[string]string
		wantErr   string // "" = no error
		wantUsage bool   // exit status 2
		wantOut   []string
	}{
		{name: "help teaches flags and variables", args: []string{"--help"},
			wantOut: []string{"grpcurl -plaintext", "--scheduler", "[SOPILOT_SCHEDULER]", "--slurm-jwt-key-file", "(default 5s)"}},
		{name: "unknown scheduler", args: []string{"--scheduler", "pbs"}, wantErr: `--scheduler must be "cli" or "rest", got "pbs"`, wantUsage: true},
		{name: "unknown query mode", args: []string{"--slurm-query", "xml"}, wantErr: `--slurm-query must be "auto", "json" or "format"`, wantUsage: true},
		{name: "rest needs a url", args: []string{"--scheduler", "rest"}, wantErr: "needs --slurmrestd-url", wantUsage: true},
		{name: "poll slower than MinJobAge allows", args: []string{"--poll-interval", "2m"}, wantErr: "at most a quarter of --min-job-age", wantUsage: true},
		{name: "bad env var is named", env: map[string]string{"SOPILOT_POLL_INTERVAL": "often"}, wantErr: "SOPILOT_POLL_INTERVAL", wantUsage: true},
		{name: "relative workdir", args: []string{"--default-workdir", "jobs"}, wantErr: "--default-workdir must be an absolute path", wantUsage: true},
		{name: "bad log level", args: []string{"--insecure", "--log-level", "loud"}, wantErr: "--log-level", wantUsage: true},
		{name: "no TLS and not --insecure", args: nil, wantErr: "give --tls-cert-file and --tls-key-file", wantUsage: true},
		{name: "TLS without authentication", args: []string{"--tls-cert-file", "c", "--tls-key-file", "k"}, wantErr: "give --token-file and/or --tokenreview-audience", wantUsage: true},
		{name: "insecure with TLS flags", args: []string{"--insecure", "--tls-cert-file", "c"}, wantErr: "--insecure turns TLS and authentication off", wantUsage: true},
		{name: "bad tokenreview role", args: []string{"--tokenreview-role", "alice=root"}, wantErr: "tokenreview-role", wantUsage: true},
		{name: "agent service account without audience", args: []string{"--tls-cert-file", "c", "--tls-key-file", "k", "--token-file", "t", "--agent-service-account", "soperator/sopilot-agent"},
			wantErr: "--agent-service-account need --tokenreview-audience", wantUsage: true},
		{name: "agent service account not NAMESPACE/NAME", args: []string{"--agent-service-account", "sopilot-agent"}, wantErr: "want <namespace>/<name>", wantUsage: true},
		{name: "agent service account from the environment with --insecure", args: []string{"--insecure"}, env: map[string]string{"SOPILOT_AGENT_SERVICE_ACCOUNT": "soperator/sopilot-agent"},
			wantErr: "--insecure turns TLS and authentication off", wantUsage: true},
		{name: "help names the agent flags", args: []string{"--help"}, wantOut: []string{"--agent-service-account  [SOPILOT_AGENT_SERVICE_ACCOUNT]", "--tokenreview-ca-file", "--tokenreview-token-file"}},
		{name: "rest with token and key", args: []string{"--insecure", "--scheduler", "rest", "--slurmrestd-url", "http://127.0.0.1:1", "--slurm-user", "root", "--slurm-jwt", "x", "--slurm-jwt-key-file", "/k"},
			wantErr: "slurmrestd settings", wantUsage: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), tt.args, func(k string) string { return tt.env[k] }, &stdout, &stderr)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("err = %v", err)
				}
			} else {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want containing %q", err, tt.wantErr)
				}
				var u usageError
				if got := errors.As(err, &u); got != tt.wantUsage {
					t.Errorf("usage error = %v, want %v", got, tt.wantUsage)
				}
			}
			for _, want := range tt.wantOut {
				if !strings.Contains(stderr.String(), want) {
					t.Errorf("output lacks %q:\n%s", want, stderr.String())
				}
			}
		})
	}
}

// TestVersion: --version prints the build and exits 0 before any other
// flag is checked (no settings, no boot id file needed).
func TestVersion(t *testing.T) {
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"--version", "--log-level", "loud"}, func(string) string { return "" }, &stdout, &stderr)
	if err != nil || !strings.HasPrefix(stdout.String(), "controller dev (commit ") || !strings.HasSuffix(stdout.String(), ")\n") || stderr.Len() != 0 {
		t.Fatalf("err %v, stdout %q, stderr %q", err, stdout.String(), stderr.String())
	}
}
