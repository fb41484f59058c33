package main

// End-to-end tests: the real controller binary, killed with SIGKILL and
// restarted, against the real local Slurm cluster, driven over real gRPC.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/sopilot/sopilot/internal/slurmtest"
	"github.com/sopilot/sopilot/internal/store"
	"github.com/sopilot/sopilot/pkg/apipb"
)

func seedShape(name string) *apipb.RunSpec {
	return &apipb.RunSpec{
		JobName: name, Nodes: 2, TasksPerNode: 8, GpusPerNode: 8,
		TimeLimit: durationpb.New(5 * time.Minute),
		Script:    "srun bash -c 'echo rank=$SLURM_PROCID gpus=$CUDA_VISIBLE_DEVICES host=$SLURMD_NODENAME'\n",
		Labels:    map[string]string{"test": "e2e"},
	}
}

// waitState watches the run until it reaches a terminal state.
func waitTerminal(t testing.TB, c apipb.RunServiceClient, id string, within time.Duration) *apipb.Run {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	stream, err := c.WatchRun(ctx, &apipb.WatchRunRequest{RunId: id})
	if err != nil {
		t.Fatal(err)
	}
	var last *apipb.Run
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return last
		}
		if err != nil {
			t.Fatalf("watch %s: %v (last state %v)", id, err, last.GetState())
		}
		last = resp.GetRun()
	}
}

func TestSeedJobCompletesAndSurvivesKill9(t *testing.T) {
	env := slurmtest.Require(t)
	db := filepath.Join(t.TempDir(), "controller.db")
	p := startController(t, env, db)
	ctx := context.Background()

	resp, err := p.runs.CreateRun(ctx, &apipb.CreateRunRequest{Spec: seedShape("e2e-seed"), RequestId: "e2e-seed-" + fmt.Sprint(time.Now().UnixNano())})
	if err != nil {
		t.Fatal(err)
	}
	id := resp.GetRun().GetId()
	if resp.GetRun().GetSlurmJobId() == "" || resp.GetRun().GetState() != apipb.RunState_RUN_STATE_PENDING {
		t.Fatalf("created run = %v", resp.GetRun())
	}
	final := waitTerminal(t, p.runs, id, 3*time.Minute)
	if final.GetState() != apipb.RunState_RUN_STATE_COMPLETED || final.GetExitCode() != 0 {
		t.Fatalf("final = %v", final)
	}
	if got := strings.Join(final.GetNodes(), ","); got != "worker-0,worker-1" {
		t.Errorf("nodes = %q, want worker-0,worker-1", got)
	}
	// GetRunLogs, followed, ends once the run has ended and the file has
	// stopped growing (output of the tasks on worker-1 can land a moment
	// after Slurm reports the job COMPLETED).
	logs, err := p.runs.GetRunLogs(ctx, &apipb.GetRunLogsRequest{RunId: id, Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	var streamed []byte
	for {
		chunk, err := logs.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("GetRunLogs: %v", err)
		}
		streamed = append(streamed, chunk.GetData()...)
	}
	out, err := os.ReadFile(final.GetOutputPath())
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(out), "rank="); n != 16 {
		t.Errorf("output has %d rank lines, want 16 (2 nodes x 8 tasks):\n%s", n, out)
	}
	if string(streamed) != string(out) {
		t.Errorf("GetRunLogs gave %q, the file has %q", streamed, out)
	}

	p.kill9(t)
	p2 := startController(t, env, db)
	got, err := p2.runs.GetRun(ctx, &apipb.GetRunRequest{RunId: id})
	if err != nil {
		t.Fatal(err)
	}
	if got.GetRun().GetState() != apipb.RunState_RUN_STATE_COMPLETED || got.GetRun().GetSlurmJobId() != final.GetSlurmJobId() {
		t.Errorf("after kill -9: %v", got.GetRun())
	}
	list, err := p2.runs.ListRuns(ctx, &apipb.ListRunsRequest{Labels: map[string]string{"test": "e2e"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.GetRuns()) != 1 || list.GetRuns()[0].GetId() != id {
		t.Errorf("history after restart = %v", list.GetRuns())
	}
	hc, err := healthpb.NewHealthClient(p2.conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || hc.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health = %v, %v", hc, err)
	}
}

func TestRetriedCreateRunMakesOneSlurmJob(t *testing.T) {
	env := slurmtest.Require(t)
	p := startController(t, env, filepath.Join(t.TempDir(), "c.db"))
	ctx := context.Background()
	spec := &apipb.RunSpec{JobName: "e2e-idem", Nodes: 1, TimeLimit: durationpb.New(time.Minute), Argv: []string{"true"}}
	key := fmt.Sprintf("idem-%d", time.Now().UnixNano())
	var ids []string
	for range 3 {
		resp, err := p.runs.CreateRun(ctx, &apipb.CreateRunRequest{Spec: spec, RequestId: key})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, resp.GetRun().GetId()+"/"+resp.GetRun().GetSlurmJobId())
	}
	if ids[0] != ids[1] || ids[1] != ids[2] {
		t.Fatalf("retries returned different runs/jobs: %v", ids)
	}
	runID := strings.SplitN(ids[0], "/", 2)[0]
	if n := countSlurmJobsWithComment(t, env, "sopilot:run="+runID); n != 1 {
		t.Errorf("%d Slurm jobs carry run %s, want 1", n, runID)
	}
	waitTerminal(t, p.runs, runID, 2*time.Minute)
}

func countSlurmJobsWithComment(t testing.TB, env slurmtest.Env, comment string) int {
	t.Helper()
	cmd := exec.Command("squeue", "--all", "--noheader", "--states=all", "--format=%k")
	cmd.Env = append(os.Environ(), "SLURM_CONF="+env.SlurmConf)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("squeue: %v", err)
	}
	n := 0
	for _, line := range strings.Split(string(out), "\n") {
		if strings.TrimSpace(line) == comment {
			n++
		}
	}
	return n
}

func TestBadInputIsRejectedWithFieldViolationsAndSubmitsNothing(t *testing.T) {
	env := slurmtest.Require(t)
	p := startController(t, env, filepath.Join(t.TempDir(), "c.db"))
	ctx := context.Background()
	bad := &apipb.RunSpec{
		JobName: "bad name; rm -rf /", Nodes: 0, TimeLimit: durationpb.New(time.Minute),
		Argv: []string{"true"}, Environment: map[string]string{"SLURM_JOB_ID": "1"},
	}
	_, err := p.runs.CreateRun(ctx, &apipb.CreateRunRequest{Spec: bad, RequestId: "bad-1"})
	st := status.Convert(err)
	if st.Code() != codes.InvalidArgument {
		t.Fatalf("code = %v (%v), want InvalidArgument", st.Code(), err)
	}
	fields := map[string]bool{}
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				fields[v.GetField()] = true
			}
		}
	}
	for _, f := range []string{"spec.job_name", "spec.nodes", `spec.environment["SLURM_JOB_ID"]`} {
		if !fields[f] {
			t.Errorf("no field violation for %s; got %v", f, fields)
		}
	}
	list, err := p.runs.ListRuns(ctx, &apipb.ListRunsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.GetRuns()) != 0 {
		t.Errorf("bad input stored %d runs", len(list.GetRuns()))
	}
	if _, err := p.runs.GetRun(ctx, &apipb.GetRunRequest{}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("GetRun without id: %v", err)
	}
	if _, err := p.runs.GetRun(ctx, &apipb.GetRunRequest{RunId: "r-unknown"}); status.Code(err) != codes.NotFound {
		t.Errorf("GetRun unknown: %v", err)
	}
	if _, err := p.runs.ListRuns(ctx, &apipb.ListRunsRequest{PageToken: "garbage"}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("ListRuns with a bad token: %v", err)
	}
	if _, err := apipb.NewNodeServiceClient(p.conn).GetNode(ctx, &apipb.GetNodeRequest{Name: "bad name"}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("GetNode with a bad name: %v, want InvalidArgument", err)
	}
}

func TestCancelRunningRun(t *testing.T) {
	env := slurmtest.Require(t)
	p := startController(t, env, filepath.Join(t.TempDir(), "c.db"))
	ctx := context.Background()
	resp, err := p.runs.CreateRun(ctx, &apipb.CreateRunRequest{Spec: &apipb.RunSpec{
		JobName: "e2e-cancel", Nodes: 1, TimeLimit: durationpb.New(5 * time.Minute), Argv: []string{"sleep", "300"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	id := resp.GetRun().GetId()
	deadline := time.Now().Add(time.Minute)
	for {
		g, err := p.runs.GetRun(ctx, &apipb.GetRunRequest{RunId: id})
		if err != nil {
			t.Fatal(err)
		}
		if g.GetRun().GetState() == apipb.RunState_RUN_STATE_RUNNING {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("run never started: %v", g.GetRun())
		}
		time.Sleep(500 * time.Millisecond)
	}
	if _, err := p.runs.CancelRun(ctx, &apipb.CancelRunRequest{RunId: id}); err != nil {
		t.Fatal(err)
	}
	final := waitTerminal(t, p.runs, id, time.Minute)
	if final.GetState() != apipb.RunState_RUN_STATE_CANCELLED {
		t.Errorf("final = %v", final.GetState())
	}
}

// Runs acknowledged to a client survive a SIGKILL in the middle of a burst
// of CreateRun calls, the bbolt file passes its consistency check, and the
// restarted controller gives every acknowledged run exactly one Slurm job.
func TestKill9DuringCreatesLosesNoAcknowledgedRun(t *testing.T) {
	env := slurmtest.Require(t)
	db := filepath.Join(t.TempDir(), "c.db")
	p := startController(t, env, db)

	var (
		mu    sync.Mutex
		acked = map[string]string{} // run id → request id
		wg    sync.WaitGroup
	)
	label := fmt.Sprintf("kill9-%d", time.Now().UnixNano())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				key := fmt.Sprintf("kill9-%d-%d-%d", time.Now().UnixNano(), w, i)
				resp, err := p.runs.CreateRun(ctx, &apipb.CreateRunRequest{RequestId: key, Spec: &apipb.RunSpec{
					JobName: "e2e-kill9", Nodes: 1, TimeLimit: durationpb.New(time.Minute), Argv: []string{"true"},
					Labels: map[string]string{"test": label},
				}})
				if err != nil {
					return // the controller died mid-call: not acknowledged
				}
				mu.Lock()
				acked[resp.GetRun().GetId()] = key
				mu.Unlock()
			}
		}()
	}
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 12 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.kill9(t)
	cancel()
	wg.Wait()

	st, err := store.Open(db, store.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Check(); err != nil {
		t.Fatalf("bbolt check after kill -9: %v", err)
	}
	for id, key := range acked {
		r, err := st.GetRun(context.Background(), id)
		if err != nil {
			t.Errorf("acknowledged run %s lost: %v", id, err)
			continue
		}
		if r.RequestID != key {
			t.Errorf("run %s has request id %q, want %q", id, r.RequestID, key)
		}
	}
	st.Close()

	p2 := startController(t, env, db)
	// Every run in the history, acknowledged or caught mid-call, ends up with
	// exactly one Slurm job (adopted or submitted after the restart), or is
	// LOST without one; none has two.
	deadline := time.Now().Add(time.Minute)
	for {
		list, err := p2.runs.ListRuns(context.Background(), &apipb.ListRunsRequest{Labels: map[string]string{"test": label}, PageSize: 1000})
		if err != nil {
			t.Fatal(err)
		}
		var waiting []string
		for _, r := range list.GetRuns() {
			if r.GetSlurmJobId() == "" && r.GetState() != apipb.RunState_RUN_STATE_LOST {
				waiting = append(waiting, r.GetId())
			}
		}
		if len(waiting) == 0 {
			if len(list.GetRuns()) < len(acked) {
				t.Fatalf("history has %d runs, fewer than the %d acknowledged", len(list.GetRuns()), len(acked))
			}
			for _, r := range list.GetRuns() {
				want := 1
				if r.GetState() == apipb.RunState_RUN_STATE_LOST && r.GetSlurmJobId() == "" {
					want = 0
				}
				if n := countSlurmJobsWithComment(t, env, "sopilot:run="+r.GetId()); n != want {
					t.Errorf("run %s (%v) has %d Slurm jobs, want %d", r.GetId(), r.GetState(), n, want)
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("runs %v never got a Slurm job after the restart", waiting)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("%d runs acknowledged before SIGKILL; all present, each with one Slurm job", len(acked))
}

// The same seed-shaped run through slurmrestd, with tokens the controller
// mints itself from Slurm's JWT key.
func TestSeedJobThroughSlurmrestd(t *testing.T) {
	env := slurmtest.Require(t)
	if env.RESTURL == "" || env.JWTKeyFile == "" {
		t.Fatal("the local cluster gave no slurmrestd URL or JWT key (hack/slurm/cluster.sh env)")
	}
	p := startController(t, env, filepath.Join(t.TempDir(), "rest.db"),
		"--scheduler", "rest", "--slurmrestd-url", env.RESTURL,
		"--slurm-user", env.JWTUser, "--slurm-jwt-key-file", env.JWTKeyFile)
	ctx := context.Background()
	resp, err := p.runs.CreateRun(ctx, &apipb.CreateRunRequest{Spec: seedShape("e2e-rest"), RequestId: fmt.Sprintf("rest-%d", time.Now().UnixNano())})
	if err != nil {
		t.Fatal(err)
	}
	final := waitTerminal(t, p.runs, resp.GetRun().GetId(), 3*time.Minute)
	if final.GetState() != apipb.RunState_RUN_STATE_COMPLETED || final.GetExitCode() != 0 || final.GetNodeList() != "worker-[0-1]" {
		t.Fatalf("final = %v", final)
	}
	// Output of the tasks on worker-1 can land a moment after COMPLETED.
	var out []byte
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		var err error
		if out, err = os.ReadFile(final.GetOutputPath()); err != nil {
			t.Fatal(err)
		}
		if strings.Count(string(out), "rank=") == 16 || time.Now().After(deadline) {
			break
		}
	}
	if n := strings.Count(string(out), "rank="); n != 16 {
		t.Errorf("output has %d rank lines, want 16:\n%s", n, out)
	}
}
