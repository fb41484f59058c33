package main

// End-to-end tests of the node agents with the controller: the real
// binaries (agents with simulated NVML and IB, labelled so) against the real
// local Slurm cluster.

import (
	"context"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/sopilot/sopilot/internal/slurmtest"
	"github.com/sopilot/sopilot/internal/testbin"
	"github.com/sopilot/sopilot/pkg/apipb"
)

func agentBinary(t testing.TB) string { return testbin.Build(t, "node-agent", raceBuild) }

var adminRE = regexp.MustCompile(`admin on (\S+)`)

// startAgent runs a simulated agent for machine (its --node-name) and
// returns its admin address. An agent for a Slurm node of the local cluster
// names that node's machine: env.Machine(node), as on Soperator.
func startAgent(t testing.TB, controller, machine string, extra ...string) string {
	t.Helper()
	args := append([]string{"--insecure", "--controller", controller, "--node-name", machine, "--nvml", "sim", "--ib", "sim", "--nccl", "sim",
		"--admin-addr", "127.0.0.1:0", "--state-dir", t.TempDir(), "--log-level", "debug"}, extra...)
	return testbin.Start(t, exec.Command(agentBinary(t), args...), &lockedBuffer{}, adminRE)[1]
}

func inject(t testing.TB, admin, body string) {
	t.Helper()
	method, path := http.MethodPost, "/sim/gpu/faults"
	if body == "" {
		method = http.MethodDelete
	}
	req, _ := http.NewRequest(method, "http://"+admin+path, strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s %s %q: %s", method, path, body, resp.Status)
	}
}

func waitNodes(t testing.TB, c apipb.NodeServiceClient, what string, within time.Duration, ok func([]*apipb.Node) bool) []*apipb.Node {
	t.Helper()
	deadline := time.Now().Add(within)
	var last []*apipb.Node
	for time.Now().Before(deadline) {
		resp, err := c.ListNodes(context.Background(), &apipb.ListNodesRequest{})
		if err == nil {
			last = resp.GetNodes()
			if ok(last) {
				return last
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s; last nodes: %v", what, last)
	return nil
}

func byName(ns []*apipb.Node) map[string]*apipb.Node {
	m := map[string]*apipb.Node{}
	for _, n := range ns {
		m[n.GetName()] = n
	}
	return m
}

// Two agents report 2 nodes × 8 simulated GPUs; a run's processes are
// attributed to its Slurm job, its progress reaches WatchRun, and its GPU
// usage is stored when it ends.
func TestAgentsReportNodesProgressAndUsage(t *testing.T) {
	env := slurmtest.Require(t)
	p := startController(t, env, filepath.Join(t.TempDir(), "c.db"), "--remediation", "dry-run")
	nodes := apipb.NewNodeServiceClient(p.conn)
	for _, n := range []string{"worker-0", "worker-1"} {
		startAgent(t, p.addr, env.Machine(n))
	}
	got := waitNodes(t, nodes, "2 nodes with 8 GPUs", time.Minute, func(ns []*apipb.Node) bool {
		m := byName(ns)
		for _, n := range []string{"worker-0", "worker-1"} {
			if !m[n].GetAgentConnected() || len(m[n].GetGpus()) != 8 || len(m[n].GetIbPorts()) != 8 || m[n].GetSlurmState() == "" {
				return false
			}
		}
		return true
	})
	for _, n := range got {
		if !n.GetSimulated() || n.GetVerdict() != apipb.HealthVerdict_HEALTH_VERDICT_HEALTHY || !strings.Contains(n.GetGpus()[0].GetModel(), "simulated") {
			t.Errorf("node %s: simulated=%v verdict=%v model=%q", n.GetName(), n.GetSimulated(), n.GetVerdict(), n.GetGpus()[0].GetModel())
		}
	}

	// A run on both nodes that reports progress.
	script := `for i in $(seq 1 24); do echo "{\"step\": $i, \"total_steps\": 24, \"loss\": 0.5, \"samples_per_second\": 100}" >> "$SOPILOT_PROGRESS_FILE"; sleep 0.5; done` + "\n"
	ctx := context.Background()
	resp, err := p.runs.CreateRun(ctx, &apipb.CreateRunRequest{Spec: &apipb.RunSpec{
		JobName: "agents-e2e", Nodes: 2, GpusPerNode: 8, TimeLimit: durationpb.New(5 * time.Minute), Script: script,
	}})
	if err != nil {
		t.Fatal(err)
	}
	id, job := resp.GetRun().GetId(), resp.GetRun().GetSlurmJobId()
	// Watch from the start, as a user would.
	watched := make(chan struct{})
	var steps []int64
	var final *apipb.Run
	go func() {
		defer close(watched)
		wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		stream, err := p.runs.WatchRun(wctx, &apipb.WatchRunRequest{RunId: id})
		if err != nil {
			t.Error(err)
			return
		}
		for {
			r, err := stream.Recv()
			if err != nil {
				return
			}
			if pr := r.GetRun().GetProgress(); pr != nil && (len(steps) == 0 || steps[len(steps)-1] != pr.GetStep()) {
				steps = append(steps, pr.GetStep())
			}
			final = r.GetRun()
		}
	}()
	waitNodes(t, nodes, "the job's GPUs attributed on both nodes", time.Minute, func(ns []*apipb.Node) bool {
		m := byName(ns)
		for _, n := range []string{"worker-0", "worker-1"} {
			busy := 0
			for _, g := range m[n].GetGpus() {
				if g.GetSlurmJobId() == job && g.GetUtilizationPercent() > 50 {
					busy++
				}
			}
			if busy != 8 || len(m[n].GetRunIds()) != 1 || m[n].GetRunIds()[0] != id {
				return false
			}
		}
		return true
	})
	<-watched
	if final.GetState() != apipb.RunState_RUN_STATE_COMPLETED {
		t.Fatalf("final state %v", final.GetState())
	}
	if len(steps) < 3 {
		t.Errorf("progress steps seen in WatchRun = %v, want several", steps)
	}
	for i := 1; i < len(steps); i++ {
		if steps[i] < steps[i-1] {
			t.Errorf("progress went backwards: %v", steps)
		}
	}
	// The last lines may land just after the end; they still count.
	var g *apipb.GetRunResponse
	for deadline := time.Now().Add(10 * time.Second); ; {
		if g, err = p.runs.GetRun(ctx, &apipb.GetRunRequest{RunId: id}); err != nil {
			t.Fatal(err)
		}
		if g.GetRun().GetProgress().GetStep() == 24 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if pr := g.GetRun().GetProgress(); pr.GetStep() != 24 || pr.GetTotalSteps() != 24 {
		t.Errorf("final progress = %v, want step 24 of 24", pr)
	}
	u := g.GetRun().GetUsage()
	if u.GetGpuCount() != 16 || !u.GetSimulated() || u.GetGpuUtilizationP95Percent() < 80 || u.GetEnergyJoules() <= 0 || u.GetGpuMemoryPeakBytes() <= 0 {
		t.Errorf("usage = %v, want 16 simulated GPUs, p95 ≥ 80 %%, energy and memory", u)
	}
}

// The acceptance scenario: an XID 79 on one node drains it in Slurm
// with sopilot's prefix and marks the running run, without touching a
// human's drain on the other node or killing the job; clearing the fault
// and passing the check undrains it; faults on both nodes trip the breaker.
func TestExclusiveAgentsDrainVerifyUndrain(t *testing.T) {
	env := slurmtest.RequireExclusive(t)
	p := startController(t, env, filepath.Join(t.TempDir(), "c.db"),
		"--slurm-conf", env.SlurmConf, "--health-event-window", "3s", "--undrain-after", "2s", "--node-poll-interval", "1s",
		"--max-drain-share", "0.5", "--max-drains-per-window", "2")
	nodes := apipb.NewNodeServiceClient(p.conn)
	admin := map[string]string{}
	for _, n := range []string{"worker-0", "worker-1"} {
		admin[n] = startAgent(t, p.addr, env.Machine(n))
	}
	scontrol := func(args ...string) {
		t.Helper()
		cmd := exec.Command("scontrol", args...)
		cmd.Env = env.Environ()
		if out, err := cmd.CombinedOutput(); err != nil && !strings.Contains(string(out), "Invalid node state") {
			t.Fatalf("scontrol %v: %v: %s", args, err, out)
		}
	}
	t.Cleanup(func() {
		scontrol("update", "NodeName=worker-0", "State=RESUME")
		scontrol("update", "NodeName=worker-1", "State=RESUME")
	})
	waitNodes(t, nodes, "both agents", time.Minute, func(ns []*apipb.Node) bool {
		m := byName(ns)
		return m["worker-0"].GetAgentConnected() && m["worker-1"].GetAgentConnected() && m["worker-0"].GetSlurmState() == "IDLE"
	})
	ctx := context.Background()
	resp, err := p.runs.CreateRun(ctx, &apipb.CreateRunRequest{Spec: &apipb.RunSpec{
		JobName: "drain-e2e", Nodes: 1, GpusPerNode: 8, TimeLimit: durationpb.New(5 * time.Minute), Script: "sleep 300\n",
	}})
	if err != nil {
		t.Fatal(err)
	}
	id := resp.GetRun().GetId()
	t.Cleanup(func() { _, _ = p.runs.CancelRun(context.Background(), &apipb.CancelRunRequest{RunId: id}) })
	var runNode string
	waitNodes(t, nodes, "the run on a node", time.Minute, func(ns []*apipb.Node) bool {
		for _, n := range ns {
			if len(n.GetRunIds()) == 1 && n.GetRunIds()[0] == id {
				runNode = n.GetName()
				return true
			}
		}
		return false
	})
	other := map[string]string{"worker-0": "worker-1", "worker-1": "worker-0"}[runNode]
	const humanReason = "maintenance by the test"
	scontrol("update", "NodeName="+other, "State=DRAIN", "Reason="+humanReason)

	injected := time.Now()
	inject(t, admin[runNode], `{"gpu":3,"kind":"xid","code":79}`)
	got := waitNodes(t, nodes, runNode+" drained by sopilot", 10*time.Second, func(ns []*apipb.Node) bool {
		n := byName(ns)[runNode]
		return strings.Contains(n.GetSlurmState(), "DRAIN") && strings.HasPrefix(n.GetSlurmReason(), "[sopilot] ")
	})
	t.Logf("fault → DRAIN seen through the API in %v", time.Since(injected).Round(time.Millisecond))
	m := byName(got)
	if r := m[runNode].GetSlurmReason(); !strings.Contains(r, "xid 79") || !strings.Contains(r, "incident=inc-") {
		t.Errorf("drain reason %q, want the XID and the incident", r)
	}
	if m[runNode].GetVerdict() != apipb.HealthVerdict_HEALTH_VERDICT_UNHEALTHY {
		t.Errorf("verdict = %v", m[runNode].GetVerdict())
	}
	if m[other].GetSlurmReason() != humanReason {
		t.Errorf("human drain on %s became %q", other, m[other].GetSlurmReason())
	}
	// The run keeps running and lists the incident.
	deadline := time.Now().Add(10 * time.Second)
	var run *apipb.Run
	for time.Now().Before(deadline) {
		g, err := p.runs.GetRun(ctx, &apipb.GetRunRequest{RunId: id})
		if err != nil {
			t.Fatal(err)
		}
		if run = g.GetRun(); len(run.GetIncidentIds()) > 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if run.GetState() != apipb.RunState_RUN_STATE_RUNNING || len(run.GetIncidentIds()) != 1 {
		t.Fatalf("run after the drain: state %v incidents %v; want RUNNING with the incident", run.GetState(), run.GetIncidentIds())
	}
	incs, err := nodes.ListIncidents(ctx, &apipb.ListIncidentsRequest{RunId: id})
	if err != nil || len(incs.GetIncidents()) != 1 || !strings.HasPrefix(incs.GetIncidents()[0].GetAction(), "drained") || incs.GetIncidents()[0].GetNode() != runNode {
		t.Fatalf("incidents of the run = %v, %v", incs.GetIncidents(), err)
	}
	// Manual operations on the human's drain are refused.
	if _, err := nodes.UndrainNode(ctx, &apipb.UndrainNodeRequest{Name: other}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("UndrainNode of a human drain: %v, want FailedPrecondition", err)
	}

	// Clear the fault, end the job: evidence clears, the NCCL check passes,
	// the node is resumed; the human's drain stays.
	inject(t, admin[runNode], "")
	if _, err := p.runs.CancelRun(ctx, &apipb.CancelRunRequest{RunId: id}); err != nil {
		t.Fatal(err)
	}
	waitNodes(t, nodes, runNode+" resumed after verification", time.Minute, func(ns []*apipb.Node) bool {
		return !strings.Contains(byName(ns)[runNode].GetSlurmState(), "DRAIN")
	})
	incs, err = nodes.ListIncidents(ctx, &apipb.ListIncidentsRequest{Node: runNode})
	if err != nil || len(incs.GetIncidents()) == 0 || !strings.Contains(incs.GetIncidents()[0].GetAction(), "resumed after verification") || incs.GetIncidents()[0].GetResolveTime() == nil {
		t.Errorf("incident after undrain = %v, %v", incs.GetIncidents(), err)
	}
	if n := byName(waitNodes(t, nodes, "listing", time.Second, func([]*apipb.Node) bool { return true }))[other]; n.GetSlurmReason() != humanReason {
		t.Errorf("human drain on %s became %q", other, n.GetSlurmReason())
	}

	// Faults on every node: the breaker (at most half the nodes) lets one
	// drain through and refuses the other.
	scontrol("update", "NodeName="+other, "State=RESUME")
	waitNodes(t, nodes, "both idle", 30*time.Second, func(ns []*apipb.Node) bool {
		m := byName(ns)
		return m["worker-0"].GetSlurmState() == "IDLE" && m["worker-1"].GetSlurmState() == "IDLE"
	})
	for _, n := range []string{"worker-0", "worker-1"} {
		inject(t, admin[n], `{"gpu":1,"kind":"gpu_lost"}`)
	}
	time.Sleep(3 * time.Second)
	m = byName(waitNodes(t, nodes, "both unhealthy", 10*time.Second, func(ns []*apipb.Node) bool {
		m := byName(ns)
		return m["worker-0"].GetVerdict() == apipb.HealthVerdict_HEALTH_VERDICT_UNHEALTHY && m["worker-1"].GetVerdict() == apipb.HealthVerdict_HEALTH_VERDICT_UNHEALTHY
	}))
	drained := 0
	for _, n := range m {
		if strings.Contains(n.GetSlurmState(), "DRAIN") {
			drained++
		}
	}
	if drained != 1 {
		t.Errorf("%d nodes drained with faults on both, want 1 (breaker)", drained)
	}
	all, err := nodes.ListIncidents(ctx, &apipb.ListIncidentsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	breaker := 0
	for _, inc := range all.GetIncidents() {
		if strings.Contains(inc.GetAction(), "breaker") {
			breaker++
		}
	}
	if breaker == 0 {
		t.Errorf("no incident records the breaker: %v", all.GetIncidents())
	}
	for _, n := range []string{"worker-0", "worker-1"} {
		inject(t, admin[n], "")
	}
}
