package cli

// Integration test: the real sopilot binary against the real controller on
// the local Slurm cluster, with two node agents on simulated GPUs and IB.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sopilot/sopilot/internal/slurmtest"
	"github.com/sopilot/sopilot/internal/testbin"
)

// buildBinaries builds the named commands of cmd/ once per test into a
// temporary directory.
func buildBinaries(t *testing.T, names ...string) map[string]string {
	t.Helper()
	dir := t.TempDir()
	out := map[string]string{}
	var pkgs []string
	for _, n := range names {
		out[n] = filepath.Join(dir, n)
		pkgs = append(pkgs, "../../cmd/"+n)
	}
	args := append([]string{"build", "-o", dir + "/"}, pkgs...)
	if b, err := exec.Command("go", args...).CombinedOutput(); err != nil {
		t.Fatalf("go build %v: %v\n%s", names, err, b)
	}
	return out
}

// startSimAgent starts a node agent for node with simulated GPUs, IB and
// NCCL, reporting to addr; extra are more flags.
func startSimAgent(t *testing.T, bin, addr, node string, extra ...string) {
	t.Helper()
	args := append([]string{"--insecure", "--controller", addr, "--node-name", node, "--nvml", "sim", "--ib", "sim", "--nccl", "sim",
		"--admin-addr", "", "--state-dir", t.TempDir()}, extra...)
	cmd := exec.Command(bin, args...)
	logs := &lockedLog{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("agent %s log:\n%s", node, logs.String())
		}
	})
}

type binResult struct {
	stdout, stderr string
	code           int
}

// sopilotBin runs the sopilot binary with args and the environment env
// (added to ours).
func sopilotBin(t *testing.T, bin string, env []string, args ...string) binResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(append(cmd.Environ(), "SOPILOT_INSECURE=true"), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("sopilot %v: %v", args, err)
	}
	return binResult{stdout.String(), stderr.String(), code}
}

// normalizeNodeTable splits the table into cells and replaces what moves
// from second to second (ages, utilization, temperature, power, busy GPUs,
// Slurm's state, which other jobs on the shared cluster change) by
// placeholders; rows are joined with " | ".
func normalizeNodeTable(t *testing.T, table string) string {
	t.Helper()
	volatile := []struct {
		col int
		re  *regexp.Regexp
		to  string
	}{
		{1, regexp.MustCompile(`^[A-Z]+(\+[A-Z]+)*$`), "<slurm>"},
		{3, regexp.MustCompile(`^up \d+s$`), "up <age>"},
		{4, regexp.MustCompile(`^\d/8$`), "<busy>/8"},
		{5, regexp.MustCompile(`^\d{1,3}%$`), "<util>"},
		{6, regexp.MustCompile(`^\d{2,3}C$`), "<temp>"},
		{7, regexp.MustCompile(`^\d{2,4}W$`), "<power>"},
	}
	var out []string
	for i, line := range strings.Split(strings.TrimSuffix(table, "\n"), "\n") {
		cells := regexp.MustCompile(`\s{2,}`).Split(strings.TrimSpace(line), -1)
		if i > 0 {
			for _, v := range volatile {
				if v.col >= len(cells) {
					t.Fatalf("row %q has %d cells", line, len(cells))
				}
				if !v.re.MatchString(cells[v.col]) {
					t.Errorf("row %q: column %s = %q, want %s", line, nodeHeader[v.col], cells[v.col], v.re)
					continue
				}
				cells[v.col] = v.to
			}
		}
		out = append(out, strings.Join(cells, " | "))
	}
	return strings.Join(out, "\n") + "\n"
}

func TestNodesCommandsAgainstController(t *testing.T) {
	env := slurmtest.Require(t)
	bins := buildBinaries(t, "sopilot", "node-agent")
	addr := startRealController(t, env)
	startSimAgent(t, bins["node-agent"], addr, "worker-0")
	// GPU 5 falls off the bus: worker-1 is unhealthy.
	startSimAgent(t, bins["node-agent"], addr, "worker-1", "--sim-fault", "gpu_lost@gpu5")
	cliEnv := []string{"SOPILOT_CONTROLLER=" + addr}
	run := func(args ...string) binResult {
		t.Helper()
		return sopilotBin(t, bins["sopilot"], cliEnv, args...)
	}

	// Wait until both agents have reported and worker-1's verdict is in.
	want := "NODE | SLURM | HEALTH | AGENT | GPUS | UTIL | TEMP | POWER | IB | RUNS | TELEMETRY\n" +
		"worker-0 | <slurm> | HEALTHY | up <age> | <busy>/8 | <util> | <temp> | <power> | 8/8 up | - | simulated\n" +
		"worker-1 | <slurm> | UNHEALTHY | up <age> | <busy>/8 | <util> | <temp> | <power> | 8/8 up | - | simulated\n"
	var r binResult
	deadline := time.Now().Add(30 * time.Second)
	for {
		r = run("nodes")
		if r.code == ExitOK && strings.Contains(r.stdout, "UNHEALTHY") && strings.Count(r.stdout, "up ") == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nodes never showed both agents and worker-1 unhealthy: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if got := normalizeNodeTable(t, r.stdout); got != want {
		t.Errorf("sopilot nodes, normalized:\n%s\nwant\n%s\nraw:\n%s", got, want, r.stdout)
	}
	if alias := run("node", "list"); alias.code != ExitOK || !strings.HasPrefix(alias.stdout, "NODE ") || !strings.Contains(alias.stdout, "worker-1") {
		t.Errorf("node list: exit %d\n%s%s", alias.code, alias.stdout, alias.stderr)
	}

	// -o json: the API's ListNodesResponse.
	r = run("nodes", "-o", "json")
	var list struct {
		Nodes []struct {
			Name           string   `json:"name"`
			Verdict        string   `json:"verdict"`
			VerdictReasons []string `json:"verdictReasons"`
			AgentConnected bool     `json:"agentConnected"`
			Simulated      bool     `json:"simulated"`
			Gpus           []struct {
				Index   int  `json:"index"`
				Present bool `json:"present"`
			} `json:"gpus"`
			IbPorts []struct {
				Name  string `json:"name"`
				State string `json:"state"`
			} `json:"ibPorts"`
		} `json:"nodes"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || r.code != ExitOK {
		t.Fatalf("nodes -o json: exit %d, %v\n%s%s", r.code, err, r.stdout, r.stderr)
	}
	if len(list.Nodes) != 2 || list.Nodes[0].Name != "worker-0" || list.Nodes[1].Name != "worker-1" {
		t.Fatalf("nodes -o json: %+v", list.Nodes)
	}
	for _, n := range list.Nodes {
		if !n.AgentConnected || !n.Simulated || len(n.Gpus) != 8 || len(n.IbPorts) != 8 || n.IbPorts[0].State != "ACTIVE" {
			t.Errorf("node %s: %+v", n.Name, n)
		}
	}
	if w1 := list.Nodes[1]; w1.Verdict != "HEALTH_VERDICT_UNHEALTHY" || w1.Gpus[5].Present || !w1.Gpus[4].Present || len(w1.VerdictReasons) == 0 {
		t.Errorf("worker-1 with GPU 5 lost: verdict %s, reasons %q, gpus %+v", w1.Verdict, w1.VerdictReasons, w1.Gpus)
	}
	if w0 := list.Nodes[0]; w0.Verdict != "HEALTH_VERDICT_HEALTHY" {
		t.Errorf("worker-0: verdict %s, reasons %q", w0.Verdict, w0.VerdictReasons)
	}

	// -o yaml: the same document, same field names.
	r = run("nodes", "-o", "yaml")
	if r.code != ExitOK || !strings.HasPrefix(r.stdout, "nodes:\n  - name: worker-0\n") || !strings.Contains(r.stdout, "    verdict: HEALTH_VERDICT_UNHEALTHY\n") ||
		!strings.Contains(r.stdout, "agentConnected: true") {
		t.Errorf("nodes -o yaml: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// node get: the detail view, the lost GPU and the reasons.
	r = run("node", "get", "worker-1")
	for _, re := range []string{`(?m)^Name: +worker-1$`, `(?m)^Health: +UNHEALTHY$`, `(?m)^Reasons: +gpu5: `, `(?m)^Agent: +connected, last report \d+s ago`,
		`(?m)^Telemetry: +simulated \(not real NVML\)$`, `(?m)^GPU +MODEL +UTIL +MEMORY +TEMP +POWER +JOB +STATUS$`,
		`(?m)^4 +NVIDIA H200 \(simulated\) +\d+% +\d+\.\d/\d+\.\d GiB +\d+C +\d+/700W +- +ok$`,
		`(?m)^5 +NVIDIA H200 \(simulated\) +- +- +- +- +- +lost \(no telemetry; off the bus\?\)$`,
		`(?m)^IB PORT +STATE +PHYS +RATE`, `(?m)^mlx5_0/1 +ACTIVE +LinkUp +400 Gb/s +0 +0 +0$`} {
		if !regexp.MustCompile(re).MatchString(r.stdout) {
			t.Errorf("node get worker-1 does not match %s: exit %d\n%s%s", re, r.code, r.stdout, r.stderr)
		}
	}
	r = run("node", "get", "worker-9")
	if r.code != ExitError || r.stdout != "" || r.stderr != "sopilot: node \"worker-9\" not found: no agent has reported it and Slurm does not list it\n" {
		t.Errorf("node get worker-9: exit %d\nstdout %q\nstderr %q", r.code, r.stdout, r.stderr)
	}
	r = run("node", "get", "bad name!")
	if r.code != ExitError || !strings.Contains(r.stderr, "the controller refused the request:\n  name: ") {
		t.Errorf("node get 'bad name!': exit %d, stderr %q", r.code, r.stderr)
	}

	// drain without --reason: a usage error; nothing is sent.
	r = run("node", "drain", "worker-0")
	if r.code != ExitUsage || !strings.Contains(r.stderr, "--reason is required") {
		t.Errorf("node drain without --reason: exit %d, stderr %q", r.code, r.stderr)
	}
	r = run("node", "drain", "--reason", "x")
	if r.code != ExitUsage || !strings.Contains(r.stderr, "wants NAME") {
		t.Errorf("node drain without a name: exit %d, stderr %q", r.code, r.stderr)
	}

	// No controller there.
	r = sopilotBin(t, bins["sopilot"], nil, "nodes", "--controller", "127.0.0.1:1")
	if r.code != ExitUnreachable || !strings.HasPrefix(r.stderr, "sopilot: list nodes: cannot reach the controller at 127.0.0.1:1: is it running? (--controller / SOPILOT_CONTROLLER)") {
		t.Errorf("unreachable controller: exit %d, stderr %q", r.code, r.stderr)
	}

	// --watch, not on a terminal: a header, then a row per node; Ctrl-C
	// ends it with 130.
	watch := exec.Command(bins["sopilot"], "nodes", "--watch")
	watch.Env = append(append(watch.Environ(), "SOPILOT_INSECURE=true"), cliEnv...)
	var wout syncBuffer
	var werr bytes.Buffer
	watch.Stdout, watch.Stderr = &wout, &werr
	if err := watch.Start(); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(20 * time.Second)
	for strings.Count(wout.String(), "\n") < 3 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	_ = watch.Process.Signal(syscall.SIGINT)
	err := watch.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != ExitInterrupted {
		t.Errorf("nodes --watch after SIGINT: %v, want exit %d; stderr %q", err, ExitInterrupted, werr.String())
	}
	lines := strings.Split(wout.String(), "\n")
	if len(lines) < 3 || !strings.HasPrefix(lines[0], "NODE          SLURM") ||
		!strings.HasPrefix(lines[1], "worker-") || !strings.HasPrefix(lines[2], "worker-") || strings.Contains(wout.String(), "\033") {
		t.Errorf("nodes --watch:\n%s", wout.String())
	}
}

type syncBuffer = testbin.Buffer
