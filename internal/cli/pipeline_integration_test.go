package cli

// Integration test of run pipeline: the real controller on the local Slurm
// cluster, the CLI in-process.

import (
	"context"
	"encoding/json"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/sopilot/sopilot/internal/slurmtest"
	"github.com/sopilot/sopilot/pkg/apipb"
)

func TestRunPipelineAgainstController(t *testing.T) {
	env := slurmtest.Require(t)
	addr := startRealController(t, env)
	cliEnv := map[string]string{"SOPILOT_CONTROLLER": addr}
	file := `{"name": "pl-test", "steps": [
	  {"name": "b", "spec": {"job_name": "pl-b", "time_limit": "60s", "argv": ["true"]}, "after": ["a"]},
	  {"name": "a", "spec": {"job_name": "pl-a", "time_limit": "60s", "argv": ["true"]}},
	  {"name": "c", "spec": {"job_name": "pl-c", "time_limit": "60s", "script": "true\n", "labels": {"test": "pipeline"}}, "after": ["a"]}]}`
	reqID := "pl-" + newRequestID()[:8]

	r := sopilot(t, invocation{args: []string{"run", "pipeline", "-f", "-", "--request-id", reqID, "--watch"}, stdin: file, env: cliEnv})
	if r.code != ExitOK || !strings.Contains(r.stdout, "pipeline pl-test: all 3 steps COMPLETED") {
		t.Fatalf("run pipeline --watch: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	t.Logf("run pipeline --watch:\n%s", r.stdout)

	// Again with the same --request-id: the same runs, nothing new.
	r = sopilot(t, invocation{args: []string{"run", "pipeline", "-f", "-", "--request-id", reqID, "-o", "json"}, stdin: file, env: cliEnv})
	if r.code != ExitOK {
		t.Fatalf("rerun: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	var runs map[string]struct {
		ID    string `json:"id"`
		State string `json:"state"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &runs); err != nil || len(runs) != 3 {
		t.Fatalf("rerun -o json: %v\n%s", err, r.stdout)
	}
	for step, run := range runs {
		if !strings.Contains(r.stdout, run.ID) || run.State != "RUN_STATE_COMPLETED" {
			t.Errorf("step %s: %+v", step, run)
		}
	}

	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := apipb.NewRunServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	list, err := c.ListRuns(ctx, &apipb.ListRunsRequest{Labels: map[string]string{"pipeline": "pl-test"}})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(list.GetRuns()); n != 3 {
		t.Errorf("%d runs labelled pipeline=pl-test after two submissions, want 3", n)
	}
	wantDeps := map[string][]string{"a": nil, "b": {runs["a"].ID}, "c": {runs["a"].ID}}
	for step, want := range wantDeps {
		resp, err := c.GetRun(ctx, &apipb.GetRunRequest{RunId: runs[step].ID})
		if err != nil {
			t.Fatal(err)
		}
		spec := resp.GetRun().GetSpec()
		if !slices.Equal(spec.GetDependsOn(), want) {
			t.Errorf("step %s: depends_on %v, want %v", step, spec.GetDependsOn(), want)
		}
		if l := spec.GetLabels(); l["pipeline"] != "pl-test" || l["pipeline-step"] != step {
			t.Errorf("step %s: labels %v", step, l)
		}
		if resp.GetRun().GetState() != apipb.RunState_RUN_STATE_COMPLETED {
			t.Errorf("step %s: %s", step, resp.GetRun().GetState())
		}
	}
	if l := mustSpecLabels(t, c, runs["c"].ID); l["test"] != "pipeline" {
		t.Errorf("step c lost its own label: %v", l)
	}

	// A failing step: its dependents never start, --watch says so instead
	// of waiting for them, and the controller cancels them (they do not
	// wait PENDING in Slurm until someone does).
	failing := `{"name": "pl-fail", "steps": [
	  {"name": "a", "spec": {"job_name": "pl-fail-a", "time_limit": "60s", "argv": ["false"]}},
	  {"name": "b", "spec": {"job_name": "pl-fail-b", "time_limit": "60s", "argv": ["true"]}, "after": ["a"]}]}`
	r = sopilot(t, invocation{args: []string{"run", "pipeline", "-f", "-", "--watch"}, stdin: failing, env: cliEnv})
	if r.code != ExitError || !strings.Contains(r.stderr, "pipeline pl-fail did not complete") ||
		!strings.Contains(r.stderr, "step a: run r-") ||
		!(strings.Contains(r.stderr, "never starts: step a did not complete") || strings.Contains(r.stderr, "dependency failed")) {
		t.Errorf("failing pipeline --watch: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	list, err = c.ListRuns(ctx, &apipb.ListRunsRequest{Labels: map[string]string{"pipeline": "pl-fail", "pipeline-step": "b"}})
	if err != nil || len(list.GetRuns()) != 1 {
		t.Fatalf("list pl-fail b: %v %v", err, list)
	}
	b := list.GetRuns()[0]
	for deadline := time.Now().Add(20 * time.Second); b.GetState() != apipb.RunState_RUN_STATE_CANCELLED && time.Now().Before(deadline); {
		time.Sleep(200 * time.Millisecond)
		resp, err := c.GetRun(ctx, &apipb.GetRunRequest{RunId: b.GetId()})
		if err != nil {
			t.Fatal(err)
		}
		b = resp.GetRun()
	}
	if b.GetState() != apipb.RunState_RUN_STATE_CANCELLED || !strings.HasPrefix(b.GetReason(), "dependency failed: r-") {
		t.Errorf("step b after a failed: %s %q, want CANCELLED \"dependency failed: ...\"", b.GetState(), b.GetReason())
	}
	if js := squeueState(t, env, b.GetSlurmJobId()); js != "" && js != "CANCELLED" {
		t.Errorf("slurm job %s of step b is %s, want CANCELLED (or gone)", b.GetSlurmJobId(), js)
	}
	r = sopilot(t, invocation{args: []string{"run", "list", "--label", "pipeline=pl-fail", "-o", "wide"}, env: cliEnv})
	if r.code != ExitOK || !strings.Contains(r.stdout, "(dependency failed: r-") {
		t.Errorf("run list -o wide: exit %d, want the reason in NODELIST(REASON)\n%s%s", r.code, r.stdout, r.stderr)
	}
	t.Logf("run list -o wide:\n%s", r.stdout)
}

func mustSpecLabels(t *testing.T, c apipb.RunServiceClient, id string) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := c.GetRun(ctx, &apipb.GetRunRequest{RunId: id})
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetRun().GetSpec().GetLabels()
}

// squeueState is the job's state as squeue shows it, "" once squeue has
// forgotten it.
func squeueState(t *testing.T, env slurmtest.Env, id string) string {
	t.Helper()
	cmd := exec.Command("squeue", "-h", "-j", id, "-o", "%T")
	cmd.Env = env.Environ()
	out, err := cmd.Output()
	if err != nil {
		return "" // squeue refuses a job id it no longer knows
	}
	return strings.TrimSpace(string(out))
}
