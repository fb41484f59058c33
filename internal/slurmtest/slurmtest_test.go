package slurmtest

import "testing"

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
