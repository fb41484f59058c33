package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// bootIDFile is a boot id file for runs that get past flag parsing.
func bootIDFile(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "boot_id")
	if err := os.WriteFile(p, []byte("3f1c2a8e-0d6b-4c1e-9a57-5e2b8f1d7c90\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// Bad settings are usage errors (exit code 2) that name the flag or the
// environment variable, and the agent never starts.
func TestUsageErrors(t *testing.T) {
	boot := bootIDFile(t)
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want []string
	}{
		{"bad nvml", []string{"--nvml", "fake"}, nil, []string{`--nvml must be "real" or "sim", got "fake"`}},
		{"sim fault without sim nvml", []string{"--sim-fault", "xid:79@gpu3"}, nil, []string{"--sim-fault needs --nvml=sim"}},
		{"bad fault syntax", []string{"--nvml", "sim", "--sim-fault", "xid79@gpu3"}, nil, []string{"--sim-fault: ", `kind: unknown kind "xid79"`}},
		{"fault without gpu", []string{"--nvml", "sim", "--sim-fault", "xid:79"}, nil, []string{"--sim-fault: ", "gpu: "}},
		{"fault code out of range", []string{"--nvml", "sim", "--sim-fault", "ecc:99999999@gpu0"}, nil, []string{"--sim-fault: ", "code: ecc count"}},
		{"fault gpu beyond sim-gpus", []string{"--nvml", "sim", "--sim-gpus", "4", "--sim-fault", "gpu_lost@gpu4"}, nil,
			[]string{`--sim-fault "gpu_lost@gpu4": gpu 4 out of range (--sim-gpus 4)`}},
		{"zero sim gpus", []string{"--nvml", "sim", "--sim-gpus", "0"}, nil, []string{"--sim-gpus must be 1..64, got 0"}},
		{"too many sim gpus", []string{"--nvml", "sim", "--sim-gpus", "65"}, nil, []string{"--sim-gpus must be 1..64, got 65"}},
		{"bad platform", []string{"--platform", "a100"}, nil, []string{"--platform: ", `"a100"`, "h100, h200"}},
		{"bad ib", []string{"--ib", "rdma"}, nil, []string{`--ib must be "sysfs", "sim" or "none", got "rdma"`}},
		{"bad nccl", []string{"--nccl", "fast"}, nil, []string{`--nccl must be "real" or "sim", got "fast"`}},
		{"short interval", []string{"--interval", "10ms"}, nil, []string{"--interval must be at least 100ms, got 10ms"}},
		{"bad node name", []string{"--node-name", "worker 0"}, nil, []string{`--node-name: "worker 0" is not a node name`}},
		{"bad log level", []string{"--log-level", "loud"}, nil, []string{"--log-level: "}},
		{"unknown flag", []string{"--gpus", "8"}, nil, []string{"flag provided but not defined: -gpus"}},
		{"stray argument", []string{"run"}, nil, []string{`unexpected argument "run"`}},
		{"bad env", nil, map[string]string{"SOPILOT_SIM_GPUS": "eight"}, []string{"SOPILOT_SIM_GPUS"}},
		{"env checked like flags", nil, map[string]string{"SOPILOT_NVML": "fake"}, []string{`--nvml must be "real" or "sim", got "fake"`}},
		{"neither TLS nor insecure", []string{"--insecure=false"}, nil, []string{"give --tls-ca-file and either --token-file (in Kubernetes, the pod's service account token) or --tls-cert-file and --tls-key-file (a client certificate), or --insecure"}},
		{"TLS half given", []string{"--insecure=false", "--tls-cert-file", "a.crt"}, nil, []string{"give --tls-ca-file and either --token-file"}},
		{"token without CA", []string{"--insecure=false", "--token-file", "token"}, nil, []string{"--token-file needs --tls-ca-file"}},
		{"token and certificate", []string{"--insecure=false", "--token-file", "token", "--tls-ca-file", "ca.crt", "--tls-key-file", "a.key"}, nil, []string{"give --token-file or a client certificate (--tls-cert-file, --tls-key-file), not both"}},
		{"insecure and token", []string{"--token-file", "token"}, nil, []string{"--insecure turns TLS off: drop it or the --tls-*/--token-file flags"}},
		{"token from the environment, unreadable", []string{"--insecure=false", "--tls-ca-file", "/nonexistent/ca.crt"}, map[string]string{"SOPILOT_TOKEN_FILE": "/nonexistent/token"}, []string{"TLS: "}},
		{"insecure and TLS", []string{"--tls-ca-file", "ca.crt"}, nil, []string{"--insecure turns TLS off"}},
		{"unreadable TLS files", []string{"--insecure=false", "--tls-cert-file", "/nonexistent/a.crt", "--tls-key-file", "/nonexistent/a.key", "--tls-ca-file", "/nonexistent/ca.crt"}, nil,
			[]string{"TLS: "}},
		{"every problem at once", []string{"--nvml", "fake", "--sim-gpus", "0", "--platform", "a100"}, nil,
			[]string{"--nvml must be", "--sim-gpus must be", "--platform: "}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"--boot-id-file", boot, "--admin-addr", "", "--controller", "127.0.0.1:1", "--insecure"}, tt.args...)
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), args, func(k string) string { return tt.env[k] }, &stdout, &stderr)
			if err == nil {
				t.Fatal("run succeeded")
			}
			if code := exitCode(err); code != 2 {
				t.Errorf("exit code %d for %v, want 2", code, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout = %q", stdout.String())
			}
		})
	}
}

func TestHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"--help"}, func(string) string { return "" }, &stdout, &stderr); err != nil {
		t.Fatalf("--help: %v", err)
	}
	for _, w := range []string{"node-agent - sopilot's agent", "--nvml  [SOPILOT_NVML] (default real)", "--sim-fault  [SOPILOT_SIM_FAULT]", "--admin-addr"} {
		if !strings.Contains(stderr.String(), w) {
			t.Errorf("usage lacks %q", w)
		}
	}
}

// Failures that are not about the settings exit 1.
func TestRuntimeErrorsExit1(t *testing.T) {
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"--boot-id-file", filepath.Join(t.TempDir(), "missing"), "--nvml", "sim", "--insecure"}, func(string) string { return "" }, &stdout, &stderr)
	if err == nil || exitCode(err) != 1 || !strings.Contains(err.Error(), "--boot-id-file") || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing boot id file: %v (exit %d)", err, exitCode(err))
	}
}

// Whatever the command line, parseFlags returns options that passed every
// check, --help, or a usage error; it never panics.
func FuzzParseFlags(f *testing.F) {
	for _, s := range []string{
		"--insecure --nvml sim --sim-gpus 8 --sim-fault xid:79@gpu3",
		"--tls-cert-file a --tls-key-file b --tls-ca-file c",
		"--insecure=false --token-file t --tls-ca-file c",
		"--nvml=fake --sim-gpus=0 --platform=a100",
		"--interval 50ms --ib rdma",
		"--node-name worker/0",
		"--help",
		"-- --nvml sim",
		"--sim-fault gpu_lost@gpu5 --sim-fault ecc:2@gpu0",
	} {
		f.Add(s, "")
		f.Add("", s)
	}
	f.Fuzz(func(t *testing.T, cmdline, envNVML string) {
		args := strings.Fields(cmdline)
		o, err := parseFlags(args, func(k string) string {
			if k == "SOPILOT_NVML" {
				return envNVML
			}
			return ""
		}, io.Discard)
		switch {
		case errors.Is(err, flag.ErrHelp):
		case err != nil:
			if exitCode(err) != 2 {
				t.Fatalf("parseFlags(%q): %v is not a usage error", args, err)
			}
		default:
			if o.nvmlMode != "real" && o.nvmlMode != "sim" || o.simGPUs < 1 || o.simGPUs > 64 || o.interval < 100*time.Millisecond ||
				len(o.simFaults) > 0 && o.nvmlMode != "sim" || !o.insecure && o.tlsCA == "" ||
				!o.insecure && o.tokenFile == "" && (o.tlsCert == "" || o.tlsKey == "") || o.tokenFile != "" && (o.insecure || o.tlsCert != "" || o.tlsKey != "") {
				t.Fatalf("parseFlags(%q) accepted %+v", args, *o)
			}
		}
	})
}

// TestVersion: --version prints the build and exits 0 before any other
// flag is checked (no settings, no boot id file needed).
func TestVersion(t *testing.T) {
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"--version", "--log-level", "loud"}, func(string) string { return "" }, &stdout, &stderr)
	if err != nil || !strings.HasPrefix(stdout.String(), "node-agent dev (commit ") || !strings.HasSuffix(stdout.String(), ")\n") || stderr.Len() != 0 {
		t.Fatalf("err %v, stdout %q, stderr %q", err, stdout.String(), stderr.String())
	}
}
