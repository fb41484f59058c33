package main

// Live tests of retries (docs/resilience.md) on the local Slurm cluster: the
// real controller binary, simulated agents, a job script that reports
// progress and a checkpoint and reads SOPILOT_ATTEMPT/SOPILOT_RESUME_FROM.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/sopilot/sopilot/internal/controller"
	"github.com/sopilot/sopilot/internal/slurmtest"
	"github.com/sopilot/sopilot/internal/testbin"
	"github.com/sopilot/sopilot/pkg/apipb"
)

// retryScript is the job: attempt 1 reports steps 10 and 20, a checkpoint
// at 20 (the file written first) and step 25, then runs until it is ended;
// a later attempt checks that it resumes from that checkpoint, reports
// steps 30 and 40 and completes.
func retryScript(ckpt string) string {
	return fmt.Sprintf(`set -e
echo "attempt=$SOPILOT_ATTEMPT resume=${SOPILOT_RESUME_FROM:-} node=$SLURMD_NODENAME"
p="$SOPILOT_PROGRESS_FILE"
if [ "$SOPILOT_ATTEMPT" = 1 ]; then
  echo '{"step": 10, "total_steps": 40}' >> "$p"
  echo "state after 20 steps" > %[1]s
  echo '{"step": 20, "total_steps": 40, "checkpoint": "%[1]s"}' >> "$p"
  sleep 1
  echo '{"step": 25, "total_steps": 40}' >> "$p"
  sleep 300
fi
test "$SOPILOT_RESUME_FROM" = %[1]s
grep -q "state after 20 steps" "$SOPILOT_RESUME_FROM"
echo '{"step": 30, "total_steps": 40}' >> "$p"
sleep 2
echo '{"step": 40, "total_steps": 40}' >> "$p"
`, ckpt)
}

func retrySpec(name, ckpt string) *apipb.RunSpec {
	return &apipb.RunSpec{
		JobName: name, Nodes: 1, GpusPerNode: 8, TimeLimit: durationpb.New(5 * time.Minute), Script: retryScript(ckpt),
		Retry: &apipb.RetryPolicy{MaxAttempts: 2, Causes: []apipb.RetryCause{apipb.RetryCause_RETRY_CAUSE_HARDWARE}},
	}
}

// retryCluster starts the agents of both nodes for p and waits until they
// are connected and idle; the nodes are resumed at the end.
func retryCluster(t testing.TB, env slurmtest.Env, p *proc) map[string]string {
	t.Helper()
	admin := map[string]string{}
	for _, n := range []string{"worker-0", "worker-1"} {
		admin[n] = startAgent(t, p.addr, env.Machine(n))
	}
	t.Cleanup(func() {
		for _, n := range []string{"worker-0", "worker-1"} {
			cmd := exec.Command("scontrol", "update", "NodeName="+n, "State=RESUME")
			cmd.Env = env.Environ()
			_ = cmd.Run() // "Invalid node state" when it is not drained
		}
	})
	waitNodes(t, apipb.NewNodeServiceClient(p.conn), "both agents", time.Minute, func(ns []*apipb.Node) bool {
		m := byName(ns)
		return m["worker-0"].GetAgentConnected() && m["worker-1"].GetAgentConnected() &&
			m["worker-0"].GetSlurmState() == "IDLE" && m["worker-1"].GetSlurmState() == "IDLE"
	})
	return admin
}

func waitRun(t testing.TB, c apipb.RunServiceClient, id, what string, within time.Duration, ok func(*apipb.Run) bool) *apipb.Run {
	t.Helper()
	deadline := time.Now().Add(within)
	var last *apipb.Run
	for time.Now().Before(deadline) {
		g, err := c.GetRun(context.Background(), &apipb.GetRunRequest{RunId: id})
		if err == nil {
			if last = g.GetRun(); ok(last) {
				return last
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s; last run: %v", what, last)
	return nil
}

// An XID 79 on the node of a run with a retry policy: the node is drained,
// attempt 2 runs on the other node from the last checkpoint, and the run
// completes with both attempts recorded.
func TestExclusiveRetryResumesFromCheckpointAwayFromTheFaultyNode(t *testing.T) {
	env := slurmtest.RequireExclusive(t)
	p := startController(t, env, filepath.Join(t.TempDir(), "c.db"), "--slurm-conf", env.SlurmConf,
		"--health-event-window", "3s", "--node-poll-interval", "1s", "--remediation", "on")
	admin := retryCluster(t, env, p)
	ctx := context.Background()
	ckpt := filepath.Join(t.TempDir(), "step-20.ckpt")
	resp, err := p.runs.CreateRun(ctx, &apipb.CreateRunRequest{Spec: retrySpec("retry-e2e", ckpt)})
	if err != nil {
		t.Fatal(err)
	}
	id, job1 := resp.GetRun().GetId(), resp.GetRun().GetSlurmJobId()
	t.Cleanup(func() { _, _ = p.runs.CancelRun(context.Background(), &apipb.CancelRunRequest{RunId: id}) })

	r := waitRun(t, p.runs, id, "the checkpoint of attempt 1", time.Minute, func(r *apipb.Run) bool {
		return r.GetProgress().GetStep() >= 25 && len(r.GetNodes()) == 1
	})
	faulty := r.GetNodes()[0]
	if a := r.GetAttempts(); len(a) != 1 || a[0].GetCheckpointStep() != 20 || a[0].GetCheckpointPath() != ckpt {
		t.Fatalf("attempts before the fault: %v; want the current one with the checkpoint at step 20", a)
	}

	injected := time.Now()
	inject(t, admin[faulty], `{"gpu":3,"kind":"xid","code":79}`)
	var resumedAt time.Time
	r = waitRun(t, p.runs, id, "attempt 2's first progress line", 2*time.Minute, func(r *apipb.Run) bool {
		if len(r.GetAttempts()) == 2 && r.GetProgress().GetStep() >= 30 && resumedAt.IsZero() {
			resumedAt = time.Now()
		}
		return !resumedAt.IsZero()
	})
	t.Logf("fault → resumed job's first progress line seen through the API: %v (attempt 2 submitted %v after the fault; Slurm's start time, in whole seconds, %v after it)",
		resumedAt.Sub(injected).Round(time.Millisecond),
		r.GetAttempts()[1].GetSubmitTime().AsTime().Sub(injected).Round(time.Millisecond),
		r.GetAttempts()[1].GetStartTime().AsTime().Sub(injected).Round(time.Millisecond))

	final := waitTerminal(t, p.runs, id, 2*time.Minute)
	if final.GetState() != apipb.RunState_RUN_STATE_COMPLETED || final.GetExitCode() != 0 {
		t.Fatalf("final run: %v", final)
	}
	as := final.GetAttempts()
	if len(as) != 2 {
		t.Fatalf("attempts: %v", as)
	}
	a1, a2 := as[0], as[1]
	if a1.GetSlurmJobId() != job1 || a1.GetNodeList() != faulty || a1.GetCause() != apipb.RetryCause_RETRY_CAUSE_HARDWARE ||
		!strings.HasPrefix(a1.GetIncidentId(), "inc-") || strings.Join(a1.GetFaultyNodes(), ",") != faulty ||
		a1.GetCheckpointStep() != 20 || a1.GetCheckpointPath() != ckpt {
		t.Errorf("attempt 1: %v", a1)
	}
	if a2.GetNumber() != 2 || a2.GetSlurmJobId() == "" || a2.GetSlurmJobId() == job1 || a2.GetNodeList() == faulty || a2.GetNodeList() == "" {
		t.Errorf("attempt 2: %v (attempt 1 on %s)", a2, faulty)
	}
	// The job's last line can arrive just after Slurm reported it ended
	// (run.LateProgressWindow).
	waitRun(t, p.runs, id, "the last progress line (step 40)", 15*time.Second, func(r *apipb.Run) bool { return r.GetProgress().GetStep() == 40 })
	out, err := os.ReadFile(final.GetOutputPath())
	if err != nil {
		t.Fatal(err)
	}
	if want := "attempt=2 resume=" + ckpt + " node=" + a2.GetNodeList(); !strings.Contains(string(out), want) {
		t.Errorf("output of attempt 2 lacks %q:\n%s", want, out)
	}
	if g := final.GetGoodput(); g == nil || g.GetGpuHoursUsed() <= 0 {
		t.Errorf("goodput %v", g)
	}
}

// kill -9 of the controller right after Slurm accepted attempt 2's job
// (the failpoint) leaves exactly one job for attempt 2, and the restarted
// controller adopts it.
func TestExclusiveKill9DuringResubmitLeavesOneJob(t *testing.T) {
	env := slurmtest.RequireExclusive(t)
	db := filepath.Join(t.TempDir(), "c.db")
	flags := []string{"--db", db, "--grpc-addr", "127.0.0.1:0", "--metrics-addr", "", "--poll-interval", "1s",
		"--default-workdir", t.TempDir(), "--log-level", "debug", "--insecure", "--slurm-conf", env.SlurmConf,
		"--health-event-window", "3s", "--node-poll-interval", "1s", "--remediation", "on"}
	cmd := exec.Command(controllerBinary(t), flags...)
	cmd.Env = append(env.Environ(), FailpointEnv+"="+controller.FailpointRetrySubmitted)
	p := &proc{cmd: cmd, stderr: &lockedBuffer{}}
	p.addr = testbin.Start(t, cmd, p.stderr, listenRE)[1]
	var err error
	if p.conn, err = grpc.NewClient(p.addr, grpc.WithTransportCredentials(insecure.NewCredentials())); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.conn.Close() })
	p.runs = apipb.NewRunServiceClient(p.conn)
	admin := retryCluster(t, env, p)

	ctx := context.Background()
	ckpt := filepath.Join(t.TempDir(), "step-20.ckpt")
	resp, err := p.runs.CreateRun(ctx, &apipb.CreateRunRequest{Spec: retrySpec("retry-kill9-e2e", ckpt)})
	if err != nil {
		t.Fatal(err)
	}
	id := resp.GetRun().GetId()
	r := waitRun(t, p.runs, id, "the checkpoint of attempt 1", time.Minute, func(r *apipb.Run) bool {
		return r.GetProgress().GetStep() >= 25 && len(r.GetNodes()) == 1
	})
	inject(t, admin[r.GetNodes()[0]], `{"gpu":3,"kind":"xid","code":79}`)

	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		if !strings.Contains(fmt.Sprint(err), "killed") {
			t.Fatalf("controller exited with %v, want killed by the failpoint", err)
		}
	case <-time.After(time.Minute):
		_ = cmd.Process.Kill()
		<-exited
		t.Fatal("the controller did not reach the failpoint within a minute")
	}
	comment2 := controller.CommentPrefix + id + ";attempt=2"
	if n := countSlurmJobsWithComment(t, env, comment2); n != 1 {
		t.Fatalf("%d Slurm jobs for attempt 2 right after the kill, want 1", n)
	}

	p2 := startController(t, env, db, "--slurm-conf", env.SlurmConf, "--remediation", "on")
	t.Cleanup(func() { _, _ = p2.runs.CancelRun(context.Background(), &apipb.CancelRunRequest{RunId: id}) })
	final := waitTerminal(t, p2.runs, id, 2*time.Minute)
	if n := countSlurmJobsWithComment(t, env, comment2); n != 1 {
		t.Errorf("%d Slurm jobs for attempt 2 after the restart, want 1", n)
	}
	as := final.GetAttempts()
	if final.GetState() != apipb.RunState_RUN_STATE_COMPLETED || len(as) != 2 || as[1].GetSlurmJobId() == "" ||
		as[1].GetSlurmJobId() == as[0].GetSlurmJobId() {
		t.Fatalf("final run %v; want COMPLETED by the adopted attempt-2 job", final)
	}
}
