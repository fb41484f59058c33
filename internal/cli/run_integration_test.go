package cli

// Integration test: the real controller binary on the local Slurm cluster,
// driven through the cobra root in-process, like a user would.

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/sopilot/sopilot/internal/slurmtest"
	"github.com/sopilot/sopilot/internal/testbin"
	"github.com/sopilot/sopilot/pkg/apipb"
)

type lockedLog = testbin.Buffer

var listeningRE = regexp.MustCompile(`controller listening on (\S+)`)

// startRealController starts cmd/controller on a free port
// against the local cluster, with extra flags; it returns the gRPC address.
// Remediation is a dry run unless extra says otherwise: the cluster is
// shared, and a simulated fault must not drain a real Slurm node.
func startRealController(t *testing.T, env slurmtest.Env, extra ...string) string {
	t.Helper()
	args := append([]string{"--db", filepath.Join(t.TempDir(), "controller.db"), "--grpc-addr", "127.0.0.1:0",
		"--metrics-addr", "", "--poll-interval", "1s", "--default-workdir", env.WorkDir, "--log-level", "debug",
		"--remediation", "dry-run", "--insecure"}, extra...)
	cmd := exec.Command(testbin.Build(t, "controller", false), args...)
	cmd.Env = env.Environ()
	return testbin.Start(t, cmd, &lockedLog{}, listeningRE)[1]
}

// reportResults sends per-sample "correct" values: sample i is correct when
// (i*7919)%100 < percent, as in docs/api.md.
func reportResults(t *testing.T, c apipb.RunServiceClient, runID string, percent int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stream, err := c.ReportRunResults(ctx)
	if err != nil {
		t.Fatal(err)
	}
	req := &apipb.ReportRunResultsRequest{RunId: runID}
	for i := range 200 {
		v := 0.0
		if (i*7919)%100 < percent {
			v = 1
		}
		req.Records = append(req.Records, &apipb.ResultRecord{SampleId: fmt.Sprintf("digit-%d", i), Values: map[string]float64{"correct": v}})
	}
	if err := stream.Send(req); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		t.Fatalf("report results of %s: %v", runID, err)
	}
	if resp.GetSampleCount() != 200 {
		t.Fatalf("stored %d samples, want 200", resp.GetSampleCount())
	}
}

func TestRunCommandsAgainstController(t *testing.T) {
	env := slurmtest.Require(t)
	addr := startRealController(t, env)
	cliEnv := map[string]string{"SOPILOT_CONTROLLER": addr}
	run := func(stdin string, args ...string) result {
		t.Helper()
		return sopilot(t, invocation{args: args, env: cliEnv, stdin: stdin})
	}

	// The seed's shape, with --watch: exit 0 once COMPLETED.
	script := "srun bash -c 'echo rank=$SLURM_PROCID gpus=$CUDA_VISIBLE_DEVICES host=$SLURMD_NODENAME'\n"
	r := run(script, "run", "submit", "--job-name", "cli-seed", "--nodes", "2", "--ntasks-per-node", "8",
		"--gpus-per-node", "8", "--time", "00:05:00", "--label", "test=cli", "--script", "-", "--watch")
	if r.code != ExitOK || !strings.Contains(r.stdout, "COMPLETED") {
		t.Fatalf("submit --watch: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	m := regexp.MustCompile(`submitted (r-\S+)`).FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("no run id in:\n%s", r.stdout)
	}
	seed := m[1]

	r = run("", "run", "list", "-o", "json", "--label", "test=cli")
	if r.code != ExitOK || !strings.Contains(r.stdout, `"id": "`+seed+`"`) || !strings.Contains(r.stdout, "RUN_STATE_COMPLETED") {
		t.Errorf("run list -o json: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = run("", "run", "list", "--state", "completed")
	if r.code != ExitOK || !strings.HasPrefix(r.stdout, "ID ") || !strings.Contains(r.stdout, seed) {
		t.Errorf("run list: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = run("", "run", "get", seed)
	if r.code != ExitOK || !strings.Contains(r.stdout, "COMPLETED (slurm COMPLETED)") || !strings.Contains(r.stdout, "Nodes:       worker-[0-1]") {
		t.Errorf("run get: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// The seed's tail -f training-<id>.out, by run id.
	r = run("", "run", "logs", "-f", seed)
	if r.code != ExitOK || strings.Count(r.stdout, "rank=") != 16 {
		t.Errorf("run logs -f: exit %d, %d rank lines, want 16\n%s%s", r.code, strings.Count(r.stdout, "rank="), r.stdout, r.stderr)
	}
	whole := r.stdout
	r = run("", "run", "logs", "--tail", "3", seed)
	if lines := strings.SplitAfter(strings.TrimSuffix(whole, "\n"), "\n"); r.code != ExitOK || len(lines) < 3 || r.stdout != strings.Join(lines[len(lines)-3:], "")+"\n" {
		t.Errorf("run logs --tail 3: exit %d, want the last 3 lines of\n%s\ngot\n%s%s", r.code, whole, r.stdout, r.stderr)
	}
	r = run("", "run", "logs", "--tail", "-1", seed)
	if r.code != ExitUsage || !strings.Contains(r.stderr, "--tail must not be negative") {
		t.Errorf("run logs --tail -1: exit %d, stderr %q", r.code, r.stderr)
	}

	r = run("", "run", "get", "r-00000000000000000000000000")
	if r.code != ExitError || !strings.Contains(r.stderr, "sopilot: run \"r-00000000000000000000000000\" not found\n") {
		t.Errorf("run get unknown: exit %d, stderr %q", r.code, r.stderr)
	}

	r = run("", "run", "submit", "--job-name", "bad name", "--time", "1m", "--", "true")
	if r.code != ExitError || !strings.Contains(r.stderr, "the controller refused the request:\n  spec.job_name: ") {
		t.Errorf("submit bad name: exit %d, stderr %q", r.code, r.stderr)
	}

	// A second run, cancelled, then compared against the first.
	r = run("", "run", "submit", "--job-name", "cli-sleeper", "--time", "5m", "-o", "json", "--", "sleep", "300")
	m = regexp.MustCompile(`"id": "(r-[^"]+)"`).FindStringSubmatch(r.stdout)
	if r.code != ExitOK || m == nil {
		t.Fatalf("submit sleeper: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	sleeper := m[1]
	r = run("", "run", "cancel", sleeper)
	if r.code != ExitOK || !strings.Contains(r.stdout, sleeper) {
		t.Errorf("run cancel: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = run("", "run", "watch", sleeper)
	if r.code != ExitError || !strings.Contains(r.stderr, "ended CANCELLED") {
		t.Errorf("run watch cancelled: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	runs := apipb.NewRunServiceClient(conn)
	reportResults(t, runs, seed, 60)
	reportResults(t, runs, sleeper, 90)

	r = run("", "compare", seed, sleeper, "--metric", "correct:higher", "--seed", "1")
	if r.code != ExitOK || !strings.HasPrefix(r.stdout, "verdict: IMPROVED (on correct, higher is better)\n") ||
		!strings.Contains(r.stdout, "60/140/0") || !strings.Contains(r.stdout, "\nbaseline "+seed+", candidate "+sleeper+"\n") {
		t.Errorf("compare: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = run("", "compare", seed, sleeper, "--metric", "correct:higher", "--seed", "1", "-o", "json")
	if r.code != ExitOK || !strings.Contains(r.stdout, `"verdict": "VERDICT_IMPROVED"`) || !strings.Contains(r.stdout, `"reportJson": "{`) {
		t.Errorf("compare -o json: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	t.Logf("compare:\n%s", run("", "compare", seed, sleeper, "--metric", "correct:higher", "--seed", "1").stdout)
}
