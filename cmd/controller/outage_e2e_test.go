package main

// The Slurm outage test: slurmctld killed under two controllers (one per
// backend) with runs in flight, and a CreateRun while it is down.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/sopilot/sopilot/internal/slurmtest"
	"github.com/sopilot/sopilot/pkg/apipb"
)

// outageLength is how long slurmctld stays down in each outage.
const outageLength = 60 * time.Second

// outageRun is one run of the test and the end it must reach.
type outageRun struct {
	ctl      *proc
	ctlName  string
	name     string
	script   string
	want     apipb.RunState
	exitCode int32
	id       string
}

// Every run ends in its true state with exactly one Slurm job, whatever
// happens to slurmctld: killed with SIGKILL in one outage and SIGTERM in
// another, for a minute each, while runs are RUNNING and while a run is
// being created, under a controller per backend.
func TestSlurmctldOutageExclusive(t *testing.T) {
	env := slurmtest.RequireExclusive(t)
	if env.RESTURL == "" || env.JWTKeyFile == "" {
		t.Fatal("the local cluster gave no slurmrestd URL or JWT key (hack/slurm/cluster.sh env)")
	}
	stateDir := filepath.Dir(filepath.Dir(env.SlurmConf))
	common := []string{"--min-job-age", "300s", "--slurm-timeout", "15s"}
	ctls := map[string]*proc{
		"cli": startController(t, env, filepath.Join(t.TempDir(), "cli.db"), common...),
		"rest": startController(t, env, filepath.Join(t.TempDir(), "rest.db"), append(common,
			"--scheduler", "rest", "--slurmrestd-url", env.RESTURL, "--slurmrestd-api-version", "auto",
			"--slurm-user", env.JWTUser, "--slurm-jwt-key-file", env.JWTKeyFile)...),
	}
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			outage(t, env, stateDir, ctls, sig)
		})
	}
}

func outage(t *testing.T, env slurmtest.Env, stateDir string, ctls map[string]*proc, sig syscall.Signal) {
	ctx := context.Background()
	tag := fmt.Sprintf("outage-%d", time.Now().UnixNano())
	// The jobs wait for a file the test writes once slurmctld is gone, so
	// that "ends in the outage" holds however slowly the runs started and
	// slurmctld saved its state (on a loaded machine a job that slept a
	// fixed 20 s could end before the kill). They give up waiting after
	// 5 minutes, and end then as they would have.
	goDir, err := os.MkdirTemp(env.WorkDir, "outage-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(goDir) })
	if err := os.Chmod(goDir, 0o777); err != nil {
		t.Fatal(err)
	}
	goFile := filepath.Join(goDir, "go")
	t.Cleanup(func() {
		// However the test ended, no job of it is left to hold a node
		// for the next test (cleanups run last first: before goDir goes).
		_ = os.WriteFile(goFile, nil, 0o644)
		scancelByName(t, env, "e2e-ends-in-outage", "e2e-fails-in-outage", "e2e-outlives-outage",
			"e2e-created-in-outage", "e2e-outage-save")
	})
	afterKill := fmt.Sprintf("i=0\nwhile [ ! -e %s ] && [ $i -lt 1500 ]; do sleep 0.2; i=$((i+1)); done\n", goFile)
	var runs []*outageRun
	for name, p := range ctls {
		runs = append(runs,
			&outageRun{ctl: p, ctlName: name, name: "ends-in-outage", script: afterKill + "sleep 5\n", want: apipb.RunState_RUN_STATE_COMPLETED},
			&outageRun{ctl: p, ctlName: name, name: "fails-in-outage", script: afterKill + "sleep 5\nexit 3\n", want: apipb.RunState_RUN_STATE_FAILED, exitCode: 3},
			&outageRun{ctl: p, ctlName: name, name: "outlives-outage", script: afterKill + "sleep 75\n", want: apipb.RunState_RUN_STATE_COMPLETED},
		)
	}
	for _, r := range runs {
		r.id = createRun(t, r, tag, "")
	}
	for _, r := range runs {
		waitRunning(t, r)
	}
	// An outage, not a loss of Slurm's state: a slurmctld killed before it
	// saved its state forgets the jobs submitted since and hands their ids
	// out again (and drains the nodes that still run the old ones). With
	// every job running and waiting, nothing changes that would make
	// slurmctld save, so a held job is submitted to make it (it saves
	// within milliseconds of a submission).
	saveFrom := time.Now()
	submitHeld(t, env, "e2e-outage-save")
	waitStateSaved(t, stateDir, saveFrom)

	for _, r := range runs { // still RUNNING: their jobs wait for goFile
		got, err := r.ctl.runs.GetRun(ctx, &apipb.GetRunRequest{RunId: r.id})
		if err != nil {
			t.Fatal(err)
		}
		if st := got.GetRun().GetState(); st != apipb.RunState_RUN_STATE_RUNNING {
			t.Fatalf("%s/%s before the outage: %v (%s), want RUNNING", r.ctlName, r.name, st, got.GetRun().GetReason())
		}
	}
	killed := time.Now()
	killSlurmctld(t, stateDir, sig)
	if err := os.WriteFile(goFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("slurmctld killed with %s; %d runs RUNNING", sig, len(runs))

	// A run created during the outage, on each controller: recorded and
	// submitted when Slurm is back, or refused (UNAVAILABLE or
	// FAILED_PRECONDITION) and then retried with the same request_id.
	var (
		wg      sync.WaitGroup
		created []*outageRun
	)
	for name, p := range ctls {
		r := &outageRun{ctl: p, ctlName: name, name: "created-in-outage", script: "sleep 2\n", want: apipb.RunState_RUN_STATE_COMPLETED}
		created = append(created, r)
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.id = createRun(t, r, tag, fmt.Sprintf("%s-%s-%s", tag, name, r.name))
		}()
	}
	for name, p := range ctls {
		waitHealth(t, p, name, healthpb.HealthCheckResponse_NOT_SERVING, 45*time.Second)
	}
	time.Sleep(time.Until(killed.Add(outageLength - 5*time.Second)))
	// Nothing was declared lost while slurmctld was away.
	for _, r := range runs {
		got, err := r.ctl.runs.GetRun(ctx, &apipb.GetRunRequest{RunId: r.id})
		if err != nil {
			t.Fatal(err)
		}
		if st := got.GetRun().GetState(); st != apipb.RunState_RUN_STATE_RUNNING {
			t.Errorf("%s/%s during the outage: %v (%s), want RUNNING", r.ctlName, r.name, st, got.GetRun().GetReason())
		}
	}
	time.Sleep(time.Until(killed.Add(outageLength)))
	clusterUp(t, stateDir)
	t.Logf("slurmctld back after %s", time.Since(killed).Round(time.Second))
	wg.Wait()
	for name, p := range ctls {
		waitHealth(t, p, name, healthpb.HealthCheckResponse_SERVING, 45*time.Second)
	}

	for _, r := range append(runs, created...) {
		if r.id == "" {
			continue // createRun failed the test already
		}
		// A job whose launch the outage interrupted is requeued by Slurm
		// itself and is eligible again only after its credential lifetime
		// (about 2 minutes, Restarts=1, Reason=BeginTime): allow for it.
		final := waitTerminal(t, r.ctl.runs, r.id, 7*time.Minute)
		if final.GetState() != r.want || final.GetExitCode() != r.exitCode {
			t.Errorf("%s/%s ended %v exit %d (%s), want %v exit %d", r.ctlName, r.name,
				final.GetState(), final.GetExitCode(), final.GetReason(), r.want, r.exitCode)
		}
		if n := countSlurmJobsWithComment(t, env, "sopilot:run="+r.id); n != 1 {
			t.Errorf("%s/%s has %d Slurm jobs, want exactly 1", r.ctlName, r.name, n)
		}
	}
}

// createRun creates r and returns its id; a refusal that says Slurm is
// unavailable or misconfigured is retried with the same request_id.
func createRun(t *testing.T, r *outageRun, tag, key string) string {
	if key == "" {
		key = fmt.Sprintf("%s-%s-%s", tag, r.ctlName, r.name)
	}
	spec := &apipb.RunSpec{
		JobName: "e2e-" + r.name, Nodes: 1, TimeLimit: durationpb.New(5 * time.Minute),
		Script: r.script, Labels: map[string]string{"test": tag},
	}
	deadline := time.Now().Add(3 * time.Minute)
	for {
		resp, err := r.ctl.runs.CreateRun(context.Background(), &apipb.CreateRunRequest{Spec: spec, RequestId: key})
		if err == nil {
			return resp.GetRun().GetId()
		}
		code := status.Code(err)
		if (code != codes.Unavailable && code != codes.FailedPrecondition) || time.Now().After(deadline) {
			t.Errorf("%s: CreateRun %s: %v", r.ctlName, r.name, err)
			return ""
		}
		time.Sleep(2 * time.Second)
	}
}

func waitRunning(t *testing.T, r *outageRun) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		got, err := r.ctl.runs.GetRun(context.Background(), &apipb.GetRunRequest{RunId: r.id})
		if err != nil {
			t.Fatal(err)
		}
		if got.GetRun().GetState() == apipb.RunState_RUN_STATE_RUNNING {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s/%s never started: %v", r.ctlName, r.name, got.GetRun())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitHealth waits until the run service's health is want.
func waitHealth(t *testing.T, p *proc, name string, want healthpb.HealthCheckResponse_ServingStatus, within time.Duration) {
	t.Helper()
	hc := healthpb.NewHealthClient(p.conn)
	deadline := time.Now().Add(within)
	for {
		resp, err := hc.Check(context.Background(), &healthpb.HealthCheckRequest{Service: apipb.RunService_ServiceDesc.ServiceName})
		if err == nil && resp.GetStatus() == want {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("%s: run service health %v (%v), want %v within %s", name, resp.GetStatus(), err, want, within)
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
	// The process itself stays SERVING: a Slurm outage is no reason to
	// restart the controller or cut the node agents off.
	resp, err := hc.Check(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("%s: overall health %v (%v), want SERVING", name, resp.GetStatus(), err)
	}
}

// submitHeld submits a job that stays held (scancelByName removes it).
func submitHeld(t *testing.T, env slurmtest.Env, name string) {
	t.Helper()
	cmd := exec.Command("sbatch", "--parsable", "--hold", "--job-name="+name, "--time=1",
		"--chdir="+env.WorkDir, "--output=/dev/null", "--wrap", "true")
	cmd.Env = env.Environ()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sbatch --hold: %v: %s", err, out)
	}
}

// waitStateSaved waits until slurmctld has written its job state file after
// since.
func waitStateSaved(t *testing.T, stateDir string, since time.Time) {
	t.Helper()
	file := filepath.Join(stateDir, "state", "job_state")
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		if fi, err := os.Stat(file); err == nil && fi.ModTime().After(since) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("slurmctld did not save its job state (%s) within a minute", file)
		}
	}
}

// killSlurmctld sends sig to the cluster's slurmctld and waits until it is
// gone.
func killSlurmctld(t *testing.T, stateDir string, sig syscall.Signal) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(stateDir, "run", "slurmctld.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 1 {
		t.Fatalf("slurmctld pid file holds %q", data)
	}
	if comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); err != nil || strings.TrimSpace(string(comm)) != "slurmctld" {
		t.Fatalf("pid %d is not slurmctld (%q, %v)", pid, comm, err)
	}
	if err := syscall.Kill(pid, sig); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil || strings.Contains(string(stat), ") Z ") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("slurmctld (pid %d) still there 30 s after %s", pid, sig)
		}
	}
}

// clusterUp restarts the cluster's dead daemons with hack/slurm/cluster.sh,
// in this test's environment (which says which cluster and version).
func clusterUp(t *testing.T, stateDir string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", filepath.Join("..", "..", "hack", "slurm", "cluster.sh"), "up")
	cmd.Env = append(os.Environ(), "SOPILOT_SLURM_DIR="+stateDir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cluster.sh up: %v\n%s", err, out)
	}
}
