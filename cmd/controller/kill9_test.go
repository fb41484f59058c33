package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/sopilot/sopilot/internal/slurmtest"
	"github.com/sopilot/sopilot/internal/store"
	"github.com/sopilot/sopilot/pkg/apipb"
)

// The controller is killed with SIGKILL at random points of many
// concurrent CreateRuns, several times over, and restarted on the same
// store; callers whose call failed retry with the same request id against
// the next process. At the end every acknowledged run exists exactly once,
// with the Slurm job its acknowledgement named (CreateRun answers before
// the job id is written: the restarted tracker must adopt that very job),
// and every Slurm job of the test belongs to exactly one run. Once with
// each backend: cli overlaps the commit with sbatch's start-up (the
// script reaches sbatch only after it), rest commits before its POST.
func TestKill9AtRandomPointsOfConcurrentCreates(t *testing.T) {
	env := slurmtest.Require(t)
	t.Run("cli", func(t *testing.T) { kill9Creates(t, env) })
	t.Run("rest", func(t *testing.T) { kill9Creates(t, env, restArgs(t, env)...) })
}

func kill9Creates(t *testing.T, env slurmtest.Env, extra ...string) {
	db := filepath.Join(t.TempDir(), "c.db")
	jobName := fmt.Sprintf("e2e-k9r-%d", time.Now().UnixNano()%1_000_000_000)
	label := jobName
	seed := uint64(time.Now().UnixNano())
	t.Logf("kill points from seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 18))
	t.Cleanup(func() { scancelByName(t, env, jobName) })

	type ack struct{ runID, jobID string }
	var (
		mu      sync.Mutex
		acked   = map[string]ack{} // by request id
		retries []string           // request ids whose call failed
		next    int
	)
	spec := &apipb.RunSpec{JobName: jobName, Nodes: 1, TimeLimit: durationpb.New(time.Minute), Argv: []string{"true"},
		Labels: map[string]string{"test": label}, WorkingDirectory: env.WorkDir, OutputDirectory: env.WorkDir}
	withJob := func() int {
		n := 0
		for _, a := range acked {
			if a.jobID != "" {
				n++
			}
		}
		return n
	}
	adoptedAfterKill := map[string]bool{} // run ids
	const rounds, workers = 4, 8
	for round := range rounds {
		p := startController(t, env, db, extra...)
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for ctx.Err() == nil {
					mu.Lock()
					var key string
					if len(retries) > 0 {
						key, retries = retries[0], retries[1:]
					} else {
						key = fmt.Sprintf("%s-%d", jobName, next)
						next++
					}
					mu.Unlock()
					resp, err := p.runs.CreateRun(ctx, &apipb.CreateRunRequest{RequestId: key, Spec: spec})
					mu.Lock()
					if err != nil {
						retries = append(retries, key) // not acknowledged: the caller retries later
						if ctx.Err() == nil && !strings.Contains(err.Error(), "Unavailable") {
							t.Logf("CreateRun %s: %v", key, err)
						}
					} else {
						a := ack{runID: resp.GetRun().GetId(), jobID: resp.GetRun().GetSlurmJobId()}
						if prev, ok := acked[key]; ok && (prev.runID != a.runID || prev.jobID != "" && prev.jobID != a.jobID) {
							t.Errorf("request %s acknowledged as %v, then as %v", key, prev, a)
						}
						if a.jobID != "" || acked[key].jobID == "" {
							acked[key] = a
						}
					}
					mu.Unlock()
				}
			})
		}
		// Let some calls through (5 acknowledged in this round, or 20 s
		// on a slow cluster), then kill at a random moment: before,
		// during or after a commit, an sbatch or a flush of job ids.
		mu.Lock()
		before := len(acked)
		mu.Unlock()
		for wait := time.Now().Add(20 * time.Second); time.Now().Before(wait); time.Sleep(10 * time.Millisecond) {
			mu.Lock()
			n := len(acked)
			mu.Unlock()
			if n >= before+5 {
				break
			}
		}
		time.Sleep(time.Duration(rng.IntN(1300)) * time.Millisecond)
		p.kill9(t)
		cancel()
		wg.Wait()
		// How many acknowledged job ids the kill caught in memory only:
		// the restarted tracker has to adopt those jobs by their comment.
		st, err := store.Open(db, store.Options{Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Check(); err != nil {
			t.Fatalf("bbolt check after kill -9: %v", err)
		}
		unwritten := 0
		for _, a := range acked {
			r, err := st.GetRun(context.Background(), a.runID)
			if err != nil {
				t.Errorf("acknowledged run %s lost: %v", a.runID, err)
				continue
			}
			if a.jobID != "" && r.SlurmJobID == "" {
				unwritten++
				adoptedAfterKill[a.runID] = true
			}
		}
		st.Close()
		t.Logf("round %d: %d acknowledged so far, %d calls to retry, %d acknowledged job ids not yet written at the kill", round, len(acked), len(retries), unwritten)
	}

	p := startController(t, env, db, extra...)
	ctx := context.Background()
	for _, key := range retries { // the callers' last retries
		resp, err := p.runs.CreateRun(ctx, &apipb.CreateRunRequest{RequestId: key, Spec: spec})
		if err != nil {
			t.Fatalf("retry of %s: %v", key, err)
		}
		if prev, ok := acked[key]; !ok || prev.jobID == "" {
			acked[key] = ack{runID: resp.GetRun().GetId(), jobID: resp.GetRun().GetSlurmJobId()}
		}
	}
	if len(acked) < 20 {
		t.Fatalf("only %d runs acknowledged; the test did not exercise enough calls", len(acked))
	}

	var runs []*apipb.Run
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		list, err := p.runs.ListRuns(ctx, &apipb.ListRunsRequest{Labels: map[string]string{"test": label}, PageSize: 1000})
		if err != nil {
			t.Fatal(err)
		}
		runs = list.GetRuns()
		waiting := 0
		for _, r := range runs {
			if r.GetSlurmJobId() == "" && r.GetState() != apipb.RunState_RUN_STATE_LOST {
				waiting++
			}
		}
		if waiting == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d runs never got a Slurm job after the restart", waiting)
		}
	}

	byRequest := map[string][]*apipb.Run{}
	byID := map[string]*apipb.Run{}
	for _, r := range runs {
		byRequest[r.GetRequestId()] = append(byRequest[r.GetRequestId()], r)
		byID[r.GetId()] = r
	}
	for key, a := range acked {
		rs := byRequest[key]
		if len(rs) != 1 {
			t.Errorf("request %s: %d runs, want exactly 1", key, len(rs))
			continue
		}
		// A retry may be answered with the run before its job was
		// adopted (no job id yet); an answer that named a job must name
		// the one the run has.
		if rs[0].GetId() != a.runID || a.jobID != "" && rs[0].GetSlurmJobId() != a.jobID {
			t.Errorf("request %s acknowledged as run %s job %s; history has run %s job %s", key, a.runID, a.jobID, rs[0].GetId(), rs[0].GetSlurmJobId())
		}
	}
	for key, rs := range byRequest {
		if len(rs) > 1 {
			t.Errorf("request %s has %d runs", key, len(rs))
		}
	}

	// Every job of the test, by comment: each names a run of the history,
	// and no run has two.
	cmd := exec.Command("squeue", "--all", "--noheader", "--states=all", "--name="+jobName, "--format=%i %k")
	cmd.Env = env.Environ()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("squeue: %v", err)
	}
	jobsOf := map[string][]string{}
	jobs := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		jobID, comment, ok := strings.Cut(strings.TrimSpace(line), " ")
		if !ok {
			continue
		}
		jobs++
		id := strings.TrimPrefix(comment, "sopilot:run=")
		r := byID[id]
		if r == nil {
			t.Errorf("Slurm job %s (comment %q) belongs to no run", jobID, comment)
			continue
		}
		if r.GetSlurmJobId() != jobID {
			t.Errorf("Slurm job %s carries run %s's comment, but the run has job %q", jobID, id, r.GetSlurmJobId())
		}
		jobsOf[id] = append(jobsOf[id], jobID)
	}
	for id, js := range jobsOf {
		if len(js) > 1 {
			t.Errorf("run %s has %d Slurm jobs: %v", id, len(js), js)
		}
	}
	lost := 0
	for _, r := range runs {
		if r.GetState() == apipb.RunState_RUN_STATE_LOST {
			lost++
		}
	}
	if len(adoptedAfterKill) == 0 {
		t.Logf("no kill caught an acknowledged job id before it was written; the adoption path was not exercised this time")
	}
	t.Logf("%d kills (%d distinct acknowledged job ids found unwritten after one); %d runs acknowledged (%d of them with a job id), %d in history (%d LOST), %d Slurm jobs: every acknowledged run once, with its job; every job one run's",
		rounds, len(adoptedAfterKill), len(acked), withJob(), len(runs), lost, jobs)
}
