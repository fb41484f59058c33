package slurmcli

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sopilot/sopilot/internal/scheduler"
)

func TestParseVersionsOfRealSlurm(t *testing.T) {
	for _, v := range []string{"22.05.8", "24.11.5", "26.05.5"} {
		dir := filepath.Join("testdata", "slurm-"+v[:5])
		tool, err := os.ReadFile(filepath.Join(dir, "sbatch-version.stdout"))
		if err != nil {
			t.Fatal(err)
		}
		conf, err := os.ReadFile(filepath.Join(dir, "scontrol-show-config.stdout"))
		if err != nil {
			t.Fatal(err)
		}
		if r, err := parseToolVersion(tool); err != nil || r.String() != v {
			t.Errorf("%s: sbatch --version = %v, %v", v, r, err)
		}
		if r, err := parseConfigVersion(conf); err != nil || r.String() != v {
			t.Errorf("%s: scontrol show config = %v, %v", v, r, err)
		}
	}
	if _, err := parseToolVersion([]byte("sbatch: error: x\n")); err == nil {
		t.Error("parseToolVersion accepted an error message")
	}
	if _, err := parseConfigVersion([]byte("ClusterName = x\n")); err == nil {
		t.Error("parseConfigVersion without SLURM_VERSION: no error")
	}
}

func TestCheckCompatible(t *testing.T) {
	for _, tc := range []struct {
		client, server string
		ok             bool
		oldest         string // the oldest client the error names
	}{
		{"24.11.5", "24.11.0", true, ""},
		{"24.05.7", "24.05.7", true, ""},
		{"23.02.1", "24.05.7", true, ""},       // two back: the window before 24.11
		{"22.05.8", "24.05.7", false, "23.02"}, // Debian bookworm against Soperator 1.20
		{"24.11.5", "24.05.7", false, "23.02"}, // newer than slurmctld
		{"23.02.1", "24.11.5", true, ""},       // three back from 24.11 on
		{"22.05.8", "24.11.5", false, "23.02"}, // four back
		{"24.11.5", "25.05.3", true, ""},       // Soperator 1.23 / 2.0
		{"24.11.5", "25.11.3", true, ""},       // Soperator 3.0-4.1
		{"24.11.5", "26.05.5", true, ""},       // Soperator 5.0
		{"24.05.1", "26.05.5", false, "24.11"}, // four back
		{"26.05.5", "25.11.3", false, "24.05"}, // newer
		{"22.05.8", "22.05.8", true, ""},       // the local 22.05 cluster
		{"21.08.1", "23.02.0", true, ""},       // 22.05 and 21.08 back
		{"24.11.5", "99.05.0", false, "97.11"}, // far future
		{"24.11.5", "24.12.0", true, ""},       // not a Slurm release: let Slurm judge
	} {
		client, err := ParseRelease(tc.client)
		if err != nil {
			t.Fatal(err)
		}
		server, err := ParseRelease(tc.server)
		if err != nil {
			t.Fatal(err)
		}
		err = CheckCompatible(client, server)
		if tc.ok != (err == nil) || (err != nil && !errors.Is(err, ErrIncompatibleClient)) {
			t.Errorf("CheckCompatible(%s, %s) = %v, want ok=%v", tc.client, tc.server, err, tc.ok)
			continue
		}
		if err != nil && !strings.Contains(err.Error(), "from "+tc.oldest+" to "+server.Major()) {
			t.Errorf("CheckCompatible(%s, %s) = %v, want the window %s..%s", tc.client, tc.server, err, tc.oldest, server.Major())
		}
	}
}

func TestParseRelease(t *testing.T) {
	for in, want := range map[string]string{"24.11.5": "24.11.5", " 25.05.0-0rc1\n": "25.05.0", "22.05.10": "22.05.10"} {
		if r, err := ParseRelease(in); err != nil || r.String() != want {
			t.Errorf("ParseRelease(%q) = %v, %v; want %s", in, r, err, want)
		}
	}
	for _, bad := range []string{"", "24.11", "24.x.1", "a.b.c", "24.13.0", "-1.05.0", "100.05.0"} {
		if _, err := ParseRelease(bad); err == nil {
			t.Errorf("ParseRelease(%q) accepted", bad)
		}
	}
}

// pingRunner answers scontrol ping UP, sbatch --version and scontrol show
// config with the given releases.
func pingRunner(client, server string) *fakeRunner {
	return &fakeRunner{reply: func(_ context.Context, c command) (result, error) {
		switch strings.Join(c.args, " ") {
		case "ping":
			return result{stdout: []byte("Slurmctld(primary) at vm is UP\n")}, nil
		case "--version":
			return result{stdout: []byte("slurm-wlm " + client + "\n")}, nil
		case "show config":
			return result{stdout: []byte("ClusterName             = soperator\nSLURM_VERSION           = " + server + "\n")}, nil
		}
		return result{exitCode: 1, stderr: []byte("unexpected command")}, nil
	}}
}

func TestPingChecksVersions(t *testing.T) {
	b := newTestBackend(Config{}, pingRunner("24.11.5", "25.11.3"))
	if err := b.Ping(context.Background()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if got := b.SlurmVersions(); got != "Slurm tools 24.11.5, slurmctld 25.11.3" {
		t.Errorf("SlurmVersions = %q", got)
	}
	// Checked at most every versionCheckEvery: the next Ping runs ping only.
	r := pingRunner("24.11.5", "25.11.3")
	b = newTestBackend(Config{}, r)
	_ = b.Ping(context.Background())
	_ = b.Ping(context.Background())
	if n := len(r.calls); n != 4 {
		t.Errorf("two Pings ran %d commands, want 4 (ping, sbatch --version, scontrol show config, ping)", n)
	}

	// Debian bookworm's tools against Soperator 1.20's slurmctld.
	b = newTestBackend(Config{}, pingRunner("22.05.8", "24.05.7"))
	err := b.Ping(context.Background())
	if !errors.Is(err, ErrIncompatibleClient) || errors.Is(err, scheduler.ErrUnavailable) {
		t.Fatalf("Ping = %v, want ErrIncompatibleClient (misconfigured, not unavailable)", err)
	}
	if b.SlurmVersions() != "" {
		t.Errorf("SlurmVersions after a failed check = %q", b.SlurmVersions())
	}
}

func FuzzParseConfigVersion(f *testing.F) {
	for _, v := range []string{"22.05", "24.11", "26.05"} {
		if b, err := os.ReadFile(filepath.Join("testdata", "slurm-"+v, "scontrol-show-config.stdout")); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("SLURM_VERSION = 1.2.3x\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := parseConfigVersion(data)
		if err == nil && (r.Month < 1 || r.Month > 12 || r.Year > 99 || r.Micro < 0) {
			t.Fatalf("parsed %+v from %q", r, data)
		}
		_, _ = parseToolVersion(data)
	})
}
