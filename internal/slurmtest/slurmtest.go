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
// not set, through the state directory of the Slurm version that
// SOPILOT_SLURM_VERSION names (22.05 by default: /tmp/sopilot-slurm;
// SOPILOT_SLURM_DIR overrides it): then `cluster.sh status` must pass and
// `cluster.sh env` provides the values.
//
// Versions other than 22.05 run in a chroot, and the host reaches their
// tools through wrapper scripts in the state directory's bin/. Require puts
// that directory first on the test process's PATH, so that tests (and the
// programs they start) run the cluster's own sbatch, squeue, scontrol, ...
// by their bare names.
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

	"github.com/sopilot/sopilot/internal/testwait"
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
	// Version is the cluster's Slurm release as major.minor ("22.05",
	// "24.11", "26.05"), for reports and for tests whose expectations
	// differ between releases (see AtLeast).
	Version string
	// BinDir holds the wrappers that run a chroot cluster's tools; empty
	// when the tools are the host's own.
	BinDir string
	// Instances is the machine each Slurm node's slurmd runs on, as
	// cluster.sh starts them (--instance-id, as Soperator does with the
	// Kubernetes node's name): worker-0 → gpu-node-0, worker-1 →
	// gpu-node-1. Empty on Slurm without instance ids (22.05). From
	// SOPILOT_SLURM_INSTANCES ("worker-0=gpu-node-0,worker-1=gpu-node-1").
	Instances map[string]string
}

// InstancesEnvVar names the node → machine mapping cluster.sh env prints.
const InstancesEnvVar = "SOPILOT_SLURM_INSTANCES"

// Machine is the machine a node agent for the Slurm node reports as its
// own (its --node-name): the node's instance id where slurmd has one, else
// the node's own name, as on a plain Slurm host.
func (e Env) Machine(node string) string {
	if m := e.Instances[node]; m != "" {
		return m
	}
	return node
}

// parseInstances reads SOPILOT_SLURM_INSTANCES: NODE=INSTANCE pairs,
// comma separated; "" is none.
func parseInstances(spec string) (map[string]string, error) {
	out := map[string]string{}
	if spec == "" {
		return out, nil
	}
	for _, pair := range strings.Split(spec, ",") {
		node, inst, ok := strings.Cut(pair, "=")
		if !ok || node == "" || inst == "" {
			return nil, fmt.Errorf("%s=%q: %q is not NODE=INSTANCE", InstancesEnvVar, spec, pair)
		}
		out[node] = inst
	}
	return out, nil
}

// AtLeast reports whether the cluster's Slurm is version (major.minor) or
// newer. An unknown version is older than every version.
func (e Env) AtLeast(version string) bool {
	have, ok1 := parseVersion(e.Version)
	want, ok2 := parseVersion(version)
	if !ok1 || !ok2 {
		return false
	}
	return have[0] > want[0] || have[0] == want[0] && have[1] >= want[1]
}

// parseVersion reads "24.11" or "24.11.5" (and "slurm-wlm 24.11.5", as
// `scontrol --version` prints it) as [24 11].
func parseVersion(s string) ([2]int, bool) {
	fields := strings.Fields(s)
	if len(fields) == 0 {
		return [2]int{}, false
	}
	parts := strings.Split(fields[len(fields)-1], ".")
	if len(parts) < 2 {
		return [2]int{}, false
	}
	var v [2]int
	for i := range v {
		n, err := strconv.Atoi(parts[i])
		if err != nil || n < 0 {
			return [2]int{}, false
		}
		v[i] = n
	}
	return v, true
}

// DefaultVersion is the Slurm version of a cluster started without
// SOPILOT_SLURM_VERSION.
const DefaultVersion = "22.05"

// VersionEnvVar names the Slurm version hack/slurm/cluster.sh runs.
const VersionEnvVar = "SOPILOT_SLURM_VERSION"

// StateDir is where hack/slurm/cluster.sh keeps the cluster of a Slurm
// version ("" means DefaultVersion) when SOPILOT_SLURM_DIR is not set.
func StateDir(version string) string {
	if version == "" || version == DefaultVersion {
		return "/tmp/sopilot-slurm"
	}
	return "/tmp/sopilot-slurm-" + version
}

// Environ returns the current process environment with SLURM_CONF set to
// the cluster's, for exec.Cmd.Env of Slurm tools run by tests.
// With a BinDir, PATH starts with it.
func (e Env) Environ() []string {
	env := make([]string, 0, len(os.Environ())+1)
	for _, kv := range os.Environ() {
		switch {
		case strings.HasPrefix(kv, "SLURM_CONF="):
		case e.BinDir != "" && strings.HasPrefix(kv, "PATH="):
			env = append(env, "PATH="+withBinDir(e.BinDir, strings.TrimPrefix(kv, "PATH=")))
		default:
			env = append(env, kv)
		}
	}
	return append(env, "SLURM_CONF="+e.SlurmConf)
}

// withBinDir returns path with dir first (moved there if already present).
func withBinDir(dir, path string) string {
	parts := []string{dir}
	for _, p := range filepath.SplitList(path) {
		if p != dir {
			parts = append(parts, p)
		}
	}
	return strings.Join(parts, string(filepath.ListSeparator))
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
		" (start one with `sudo hack/slurm/cluster.sh up` and `eval \"$(sudo hack/slurm/cluster.sh env)\"`;" +
		" --slurm 24.11 or 26.05, or " + VersionEnvVar + ", for a newer Slurm)"
	if os.Getenv(RequireEnvVar) == "1" {
		t.Fatalf("%s; %s=1, so this is a failure", msg, RequireEnvVar)
	}
	t.Skip(msg)
	return Env{}
}

// Unavailable ends a test whose Slurm-facing setup cannot go ahead here (a
// node in use, a port taken): t.Skip, or t.Fatal when SOPILOT_REQUIRE_SLURM=1,
// as Require does for a missing cluster.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv(RequireEnvVar) == "1" {
		t.Fatalf("%s; %s=1, so this is a failure", msg, RequireEnvVar)
		return
	}
	t.Skip(msg)
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
			Version:    os.Getenv(VersionEnvVar),
			BinDir:     binDir(conf),
		}
		var err error
		if env.Instances, err = parseInstances(os.Getenv(InstancesEnvVar)); err != nil {
			return Env{}, err.Error()
		}
		if env.WorkDir == "" {
			env.WorkDir = filepath.Join(filepath.Dir(filepath.Dir(conf)), "work")
		}
		if _, err := os.Stat(conf); err != nil {
			return Env{}, fmt.Sprintf("SLURM_CONF=%s is set but unreadable: %v", conf, err)
		}
		return finish(env)
	}
	version := os.Getenv(VersionEnvVar)
	dir := os.Getenv("SOPILOT_SLURM_DIR")
	if dir == "" {
		dir = StateDir(version)
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
		Version:    vars[VersionEnvVar],
	}
	if env.SlurmConf == "" {
		return Env{}, fmt.Sprintf("%s env printed no SLURM_CONF", script)
	}
	if env.Instances, err = parseInstances(vars[InstancesEnvVar]); err != nil {
		return Env{}, err.Error()
	}
	env.BinDir = binDir(env.SlurmConf)
	return finish(env)
}

// binDir is the wrapper directory of the cluster whose slurm.conf is conf
// (<state dir>/bin), or "" when it has none.
func binDir(conf string) string {
	dir := filepath.Join(filepath.Dir(filepath.Dir(conf)), "bin")
	if st, err := os.Stat(dir); err == nil && st.IsDir() {
		return dir
	}
	return ""
}

// finish puts env.BinDir first on this process's PATH (tests and the
// programs they start find the tools by name), checks that slurmctld
// answers and fills in a version the environment did not name.
func finish(env Env) (Env, string) {
	if env.BinDir != "" {
		if err := os.Setenv("PATH", withBinDir(env.BinDir, os.Getenv("PATH"))); err != nil {
			return Env{}, fmt.Sprintf("put %s on PATH: %v", env.BinDir, err)
		}
	}
	if err := ping(env.SlurmConf); err != nil {
		return Env{}, fmt.Sprintf("SLURM_CONF=%s: slurmctld does not answer: %v", env.SlurmConf, err)
	}
	if env.Version == "" {
		v, err := toolVersion(env.SlurmConf)
		if err != nil {
			return Env{}, err.Error()
		}
		env.Version = v
	}
	return env, ""
}

// toolVersion asks scontrol which Slurm it is, as major.minor.
func toolVersion(conf string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "scontrol", "--version")
	cmd.Env = Env{SlurmConf: conf}.Environ()
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("scontrol --version: %w", err)
	}
	v, ok := parseVersion(string(out))
	if !ok {
		return "", fmt.Errorf("scontrol --version printed %q, not a Slurm version", strings.TrimSpace(string(out)))
	}
	return fmt.Sprintf("%d.%02d", v[0], v[1]), nil
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

// ReplaceNode moves the Slurm node to another machine as Soperator's
// replacement of a Kubernetes node does: `cluster.sh replace-node` restarts
// the node's slurmd with --instance-id instance and waits until slurmctld
// reports it. It changes the cluster for every test, so only tests that
// have it to themselves (RequireExclusive) call it, and they move the node
// back when they end.
func (e Env) ReplaceNode(ctx context.Context, node, instance string) error {
	if len(e.Instances) == 0 {
		return fmt.Errorf("replace %s: Slurm %s runs no instance ids", node, e.Version)
	}
	script, err := clusterScript()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", script, "--slurm", e.Version, "replace-node", node, instance)
	// The state directory of the cluster found, whichever way it was.
	cmd.Env = append(e.Environ(), "SOPILOT_SLURM_DIR="+filepath.Dir(filepath.Dir(e.SlurmConf)))
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("replace %s with %s: %w: %s", node, instance, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// WaitForOutput waits until the job output file at path contains want,
// failing the test after d. Slurm reports a job RUNNING before its batch
// script runs; a test that needs the script itself running (to cancel it
// mid-flight, say) has the script print a mark and waits for it.
func WaitForOutput(t testing.TB, path, want string, d time.Duration) {
	t.Helper()
	testwait.Within(t, d, fmt.Sprintf("%q in %s", want, path), func() bool {
		b, err := os.ReadFile(path)
		return err == nil && strings.Contains(string(b), want)
	})
}
