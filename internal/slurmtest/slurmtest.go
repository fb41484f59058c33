// Package slurmtest finds the local Slurm cluster of hack/slurm/cluster.sh
// for integration tests.
//
// Tests call Require, which returns the cluster's coordinates or skips the
// test when there is no usable cluster, unless SOPILOT_REQUIRE_SLURM=1, in
// which case the test fails instead (CI sets it, so that a broken cluster
// fails the build rather than silently skipping every integration test).
//
// The cluster is found either through the environment that
// `eval "$(hack/slurm/cluster.sh env)"` sets (SLURM_CONF,
// SOPILOT_SLURMRESTD_URL, SOPILOT_SLURM_TOKEN, ...), or, when SLURM_CONF is
// not set, through the default state directory
// (${SOPILOT_SLURM_DIR:-/tmp/sopilot-slurm}): then `cluster.sh status` must
// pass and `cluster.sh env` provides the values.
package slurmtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Env is where the local cluster is.
type Env struct {
	// SlurmConf is the slurm.conf path; Slurm tools need SLURM_CONF set to it.
	SlurmConf string
	// RESTURL is slurmrestd's base URL, e.g. http://127.0.0.1:6820.
	RESTURL string
	// JWT is a token slurmrestd accepts for JWTUser (X-SLURM-USER-NAME /
	// X-SLURM-USER-TOKEN); JWTKeyFile is the HS256 key slurmctld checks
	// tokens with, for minting fresh ones.
	JWT, JWTUser, JWTKeyFile string
	// WorkDir is a directory every job user may write (mode 1777) on the
	// cluster's nodes, for job working directories and output files.
	WorkDir string
}

// Environ returns the current process environment with SLURM_CONF set to
// the cluster's, for exec.Cmd.Env of Slurm tools run by tests.
func (e Env) Environ() []string {
	env := make([]string, 0, len(os.Environ())+1)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SLURM_CONF=") {
			env = append(env, kv)
		}
	}
	return append(env, "SLURM_CONF="+e.SlurmConf)
}

// RequireEnvVar is the variable that turns a missing cluster from a skip
// into a failure.
const RequireEnvVar = "SOPILOT_REQUIRE_SLURM"

var (
	once   sync.Once
	found  Env
	reason string // why there is no cluster; empty when found
)

// Require returns the local cluster, or ends the test: t.Skip when there is
// none, t.Fatal when SOPILOT_REQUIRE_SLURM=1. The lookup runs once per test
// binary.
func Require(t testing.TB) Env {
	t.Helper()
	once.Do(func() { found, reason = lookup() })
	if reason == "" {
		return found
	}
	msg := "no local Slurm cluster: " + reason +
		" (start one with `sudo hack/slurm/cluster.sh up` and `eval \"$(sudo hack/slurm/cluster.sh env)\"`)"
	if os.Getenv(RequireEnvVar) == "1" {
		t.Fatalf("%s; %s=1, so this is a failure", msg, RequireEnvVar)
	}
	t.Skip(msg)
	return Env{}
}

// lookup finds the cluster; it returns a reason when there is none.
func lookup() (Env, string) {
	if conf := os.Getenv("SLURM_CONF"); conf != "" {
		env := Env{
			SlurmConf:  conf,
			RESTURL:    os.Getenv("SOPILOT_SLURMRESTD_URL"),
			JWT:        os.Getenv("SOPILOT_SLURM_TOKEN"),
			JWTUser:    os.Getenv("SOPILOT_SLURM_USER"),
			JWTKeyFile: os.Getenv("SOPILOT_SLURM_JWT_KEY_FILE"),
			WorkDir:    os.Getenv("SOPILOT_SLURM_WORKDIR"),
		}
		if env.WorkDir == "" {
			env.WorkDir = filepath.Join(filepath.Dir(filepath.Dir(conf)), "work")
		}
		if _, err := os.Stat(conf); err != nil {
			return Env{}, fmt.Sprintf("SLURM_CONF=%s is set but unreadable: %v", conf, err)
		}
		if err := ping(conf); err != nil {
			return Env{}, fmt.Sprintf("SLURM_CONF=%s is set but slurmctld does not answer: %v", conf, err)
		}
		return env, ""
	}
	dir := os.Getenv("SOPILOT_SLURM_DIR")
	if dir == "" {
		dir = "/tmp/sopilot-slurm"
	}
	if _, err := os.Stat(filepath.Join(dir, "etc", "slurm.conf")); err != nil {
		return Env{}, fmt.Sprintf("SLURM_CONF is not set and %s has no cluster", dir)
	}
	script, err := clusterScript()
	if err != nil {
		return Env{}, err.Error()
	}
	if out, err := runScript(script, "status"); err != nil {
		return Env{}, fmt.Sprintf("%s status: %v: %s", script, err, strings.TrimSpace(out))
	}
	out, err := runScript(script, "env")
	if err != nil {
		return Env{}, fmt.Sprintf("%s env: %v: %s", script, err, strings.TrimSpace(out))
	}
	vars := parseExports(out)
	env := Env{
		SlurmConf:  vars["SLURM_CONF"],
		RESTURL:    vars["SOPILOT_SLURMRESTD_URL"],
		JWT:        vars["SOPILOT_SLURM_TOKEN"],
		JWTUser:    vars["SOPILOT_SLURM_USER"],
		JWTKeyFile: vars["SOPILOT_SLURM_JWT_KEY_FILE"],
		WorkDir:    vars["SOPILOT_SLURM_WORKDIR"],
	}
	if env.SlurmConf == "" {
		return Env{}, fmt.Sprintf("%s env printed no SLURM_CONF", script)
	}
	return env, ""
}

// ping runs scontrol ping against conf.
func ping(conf string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "scontrol", "ping")
	cmd.Env = Env{SlurmConf: conf}.Environ()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("scontrol ping: %w: %s", err, strings.TrimSpace(string(out)))
	}
	if !strings.Contains(string(out), " is UP") {
		return fmt.Errorf("scontrol ping: %s", strings.TrimSpace(string(out)))
	}
	return nil
}

// clusterScript finds hack/slurm/cluster.sh above the working directory.
func clusterScript() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		p := filepath.Join(dir, "hack", "slurm", "cluster.sh")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("hack/slurm/cluster.sh not found above the working directory")
		}
		dir = parent
	}
}

func runScript(script, arg string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", script, arg)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return stderr.String(), err
	}
	return string(out), nil
}

// parseExports reads `export K=V` lines as cluster.sh env prints them
// (values quoted by bash's printf %q, which leaves paths, URLs and JWTs bare).
func parseExports(s string) map[string]string {
	vars := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		line, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "export ")
		if !ok {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		vars[k] = unquote(v)
	}
	return vars
}

func unquote(v string) string {
	if len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\'' {
		return v[1 : len(v)-1]
	}
	if u, err := strconv.Unquote(v); err == nil && strings.HasPrefix(v, `"`) {
		return u
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] == '\\' && i+1 < len(v) {
			i++
		}
		b.WriteByte(v[i])
	}
	return b.String()
}

// ExclusiveEnvVar marks a test process that has the cluster to itself.
const ExclusiveEnvVar = "SOPILOT_SLURM_EXCLUSIVE"

// RequireExclusive is Require for tests that drain nodes: a drained node
// would stall every other test's jobs, so these run only when the cluster
// is theirs alone. hack/test.sh runs them after everything else, one
// package at a time, with SOPILOT_SLURM_EXCLUSIVE=1 and -run Exclusive; the
// test's name must contain "Exclusive" so that phase picks it up.
func RequireExclusive(t testing.TB) Env {
	t.Helper()
	env := Require(t)
	if os.Getenv(ExclusiveEnvVar) != "1" {
		t.Skipf("drains Slurm nodes, so it needs the cluster to itself: hack/test.sh runs it in its exclusive phase (%s=1 go test -p 1 -run Exclusive ./...)", ExclusiveEnvVar)
	}
	if !strings.Contains(t.Name(), "Exclusive") {
		t.Fatalf("%s uses RequireExclusive but its name lacks \"Exclusive\", so the exclusive phase would never run it", t.Name())
	}
	return env
}
