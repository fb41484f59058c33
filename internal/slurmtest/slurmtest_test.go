package slurmtest

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

func TestParseExports(t *testing.T) {
	out := "export SLURM_CONF=/tmp/sopilot-slurm/etc/slurm.conf\n" +
		"export SOPILOT_SLURMRESTD_URL=http://127.0.0.1:6820\n" +
		"export SOPILOT_SLURM_TOKEN=eyJhbGciOiJIUzI1NiJ9.eyJzdW4iOiJyb290In0.sig-_x\n" +
		"export SOPILOT_SLURM_WORKDIR=/tmp/with\\ space\n" +
		"export QUOTED='a b'\n" +
		"not an export\n"
	got := parseExports(out)
	want := map[string]string{
		"SLURM_CONF":             "/tmp/sopilot-slurm/etc/slurm.conf",
		"SOPILOT_SLURMRESTD_URL": "http://127.0.0.1:6820",
		"SOPILOT_SLURM_TOKEN":    "eyJhbGciOiJIUzI1NiJ9.eyJzdW4iOiJyb290In0.sig-_x",
		"SOPILOT_SLURM_WORKDIR":  "/tmp/with space",
		"QUOTED":                 "a b",
	}
	if len(got) != len(want) {
		t.Errorf("got %d variables, want %d: %q", len(got), len(want), got)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
}

func TestRequireFindsOrSkips(t *testing.T) {
	env := Require(t) // skips here when there is no cluster
	if env.SlurmConf == "" || env.WorkDir == "" {
		t.Errorf("Require returned %+v", env)
	}
}

// endRecorder notes how a test was ended instead of ending it.
type endRecorder struct {
	testing.TB
	skipped, failed string
}

func (r *endRecorder) Helper()                        {}
func (r *endRecorder) Skip(args ...any)               { r.skipped = fmt.Sprint(args...) }
func (r *endRecorder) Fatalf(format string, a ...any) { r.failed = fmt.Sprintf(format, a...) }

func TestUnavailableFailsWhenSlurmIsRequired(t *testing.T) {
	for _, tt := range []struct {
		name, require       string
		wantSkip, wantFatal bool
	}{
		{"not required", "", true, false},
		{"required", "1", false, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(RequireEnvVar, tt.require)
			r := &endRecorder{}
			Unavailable(r, "%s is in use", "worker-1")
			if (r.skipped != "") != tt.wantSkip || (r.failed != "") != tt.wantFatal {
				t.Fatalf("skipped %q, failed %q; want skip %v, fatal %v", r.skipped, r.failed, tt.wantSkip, tt.wantFatal)
			}
			if got := r.skipped + r.failed; !strings.HasPrefix(got, "worker-1 is in use") {
				t.Errorf("message %q does not start with the reason", got)
			}
		})
	}
}

func TestRequireReportsVersion(t *testing.T) {
	env := Require(t)
	if _, ok := parseVersion(env.Version); !ok {
		t.Fatalf("Version = %q, want major.minor", env.Version)
	}
	if want := os.Getenv(VersionEnvVar); want != "" && env.Version != want {
		t.Errorf("Version = %q, but %s=%s", env.Version, VersionEnvVar, want)
	}
	t.Logf("Slurm %s (tools from %q)", env.Version, env.BinDir)
}

func TestAtLeast(t *testing.T) {
	tests := []struct {
		name, have, want string
		ok               bool
	}{
		{"same", "24.11", "24.11", true},
		{"newer year", "26.05", "24.11", true},
		{"newer month", "24.11", "24.05", true},
		{"older", "22.05", "24.11", false},
		{"patch level ignored", "24.11.5", "24.11", true},
		{"unknown have", "", "22.05", false},
		{"garbage want", "24.11", "x", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := (Env{Version: tt.have}).AtLeast(tt.want); got != tt.ok {
				t.Errorf("Env{Version: %q}.AtLeast(%q) = %v, want %v", tt.have, tt.want, got, tt.ok)
			}
		})
	}
}

func TestParseVersion(t *testing.T) {
	tests := []struct {
		in   string
		want [2]int
		ok   bool
	}{
		{"slurm 22.05.8\n", [2]int{22, 5}, true},
		{"slurm-wlm 24.11.5", [2]int{24, 11}, true},
		{"26.05", [2]int{26, 5}, true},
		{"26", [2]int{}, false},
		{"slurm -1.2", [2]int{}, false},
		{"", [2]int{}, false},
	}
	for _, tt := range tests {
		got, ok := parseVersion(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("parseVersion(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func FuzzParseVersion(f *testing.F) {
	for _, s := range []string{"slurm 22.05.8", "slurm-wlm 24.11.5", "26.05", "", "a.b.c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, ok := parseVersion(s)
		if !ok {
			return
		}
		if v[0] < 0 || v[1] < 0 {
			t.Fatalf("parseVersion(%q) = %v", s, v)
		}
		if w, ok := parseVersion(fmt.Sprintf("%d.%02d", v[0], v[1])); !ok || w != v {
			t.Fatalf("%v does not round-trip: %v, %v", v, w, ok)
		}
	})
}

func TestStateDir(t *testing.T) {
	for in, want := range map[string]string{
		"":      "/tmp/sopilot-slurm",
		"22.05": "/tmp/sopilot-slurm",
		"24.11": "/tmp/sopilot-slurm-24.11",
		"26.05": "/tmp/sopilot-slurm-26.05",
	} {
		if got := StateDir(in); got != want {
			t.Errorf("StateDir(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestWithBinDir(t *testing.T) {
	tests := []struct{ name, path, want string }{
		{"prepended", "/usr/bin:/bin", "/s/bin:/usr/bin:/bin"},
		{"moved to the front", "/usr/bin:/s/bin", "/s/bin:/usr/bin"},
		{"already first", "/s/bin:/bin", "/s/bin:/bin"},
		{"empty", "", "/s/bin"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := withBinDir("/s/bin", tt.path); got != tt.want {
				t.Errorf("withBinDir(%q) = %q, want %q", tt.path, got, tt.want)
			}
		})
	}
}

func TestParseInstances(t *testing.T) {
	for _, tt := range []struct {
		name, spec string
		want       map[string]string
		wantErr    bool
	}{
		{"none (22.05)", "", map[string]string{}, false},
		{"two nodes", "worker-0=gpu-node-0,worker-1=gpu-node-1", map[string]string{"worker-0": "gpu-node-0", "worker-1": "gpu-node-1"}, false},
		{"no instance", "worker-0=", nil, true},
		{"no separator", "worker-0", nil, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseInstances(tt.spec)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("%s = %q, want %q", k, got[k], v)
				}
			}
		})
	}
	env := Env{Instances: map[string]string{"worker-0": "gpu-node-0"}}
	if env.Machine("worker-0") != "gpu-node-0" || env.Machine("worker-1") != "worker-1" {
		t.Errorf("Machine: worker-0 → %q, worker-1 → %q; want gpu-node-0 and worker-1 (no instance: its own name)", env.Machine("worker-0"), env.Machine("worker-1"))
	}
}
