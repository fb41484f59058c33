package config

import (
	"bytes"
	"flag"
	"io"
	"strings"
	"testing"
	"time"
)

func TestParsePrecedence(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		env      map[string]string
		wantAddr string
		wantPoll time.Duration
		wantErr  string
	}{
		{name: "defaults", wantAddr: "127.0.0.1:50051", wantPoll: 5 * time.Second},
		{name: "env fills", env: map[string]string{"SOPILOT_GRPC_ADDR": ":1", "SOPILOT_POLL_INTERVAL": "2s"}, wantAddr: ":1", wantPoll: 2 * time.Second},
		{name: "flag beats env", args: []string{"--grpc-addr=:2"}, env: map[string]string{"SOPILOT_GRPC_ADDR": ":1"}, wantAddr: ":2", wantPoll: 5 * time.Second},
		{name: "bad env names the variable", env: map[string]string{"SOPILOT_POLL_INTERVAL": "soon"}, wantErr: "SOPILOT_POLL_INTERVAL"},
		{name: "stray argument", args: []string{"serve"}, wantErr: `unexpected argument "serve"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := flag.NewFlagSet("x", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			addr := fs.String("grpc-addr", "127.0.0.1:50051", "")
			poll := fs.Duration("poll-interval", 5*time.Second, "")
			err := Parse(fs, tt.args, func(k string) string { return tt.env[k] })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if *addr != tt.wantAddr || *poll != tt.wantPoll {
				t.Errorf("got addr=%q poll=%v, want %q %v", *addr, *poll, tt.wantAddr, tt.wantPoll)
			}
		})
	}
}

func TestUsageNamesEnv(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.String("slurm-jwt-key-file", "", "key file")
	var b bytes.Buffer
	Usage(fs, &b, "Summary line.")()
	for _, want := range []string{"Summary line.", "--slurm-jwt-key-file", "[SOPILOT_SLURM_JWT_KEY_FILE]", "key file"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("usage lacks %q:\n%s", want, b.String())
		}
	}
}
