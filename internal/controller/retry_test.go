package controller

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sopilot/sopilot/internal/run"
	"github.com/sopilot/sopilot/internal/scheduler"
)

// createRetrying creates a seed run with retry policy p.
func (fx *fixture) createRetrying(t *testing.T, p *run.RetryPolicy) *run.Run {
	t.Helper()
	spec := seedSpec()
	spec.Retry = p
	r, err := fx.svc.Create(context.Background(), spec, "")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// startJob makes the fake job of run r run on nodes and polls.
func (fx *fixture) startJob(t *testing.T, jobID, nodes string) {
	t.Helper()
	fx.slurm.set(jobID, func(j *scheduler.JobStatus) {
		j.State, j.Nodes, j.StartTime = "RUNNING", nodes, fx.clock()
	})
	fx.poll(t)
}

func (fx *fixture) poll(t *testing.T) {
	t.Helper()
	if err := fx.svc.Poll(context.Background()); err != nil {
		t.Fatalf("Poll: %v", err)
	}
}

func (fx *fixture) get(t *testing.T, id string) *run.Run {
	t.Helper()
	r, err := fx.svc.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (fx *fixture) lastSubmitted() scheduler.JobSpec {
	fx.slurm.mu.Lock()
	defer fx.slurm.mu.Unlock()
	return fx.slurm.submitted[len(fx.slurm.submitted)-1]
}

// cancelledJobs returns the jobs cancelled in the fake Slurm so far.
func (fx *fixture) cancelledJobs() []string {
	fx.slurm.mu.Lock()
	defer fx.slurm.mu.Unlock()
	return slices.Clone(fx.slurm.cancelled)
}

func (fx *fixture) submittedCount() int {
	fx.slurm.mu.Lock()
	defer fx.slurm.mu.Unlock()
	return len(fx.slurm.submitted)
}

func TestNodeFailStartsTheNextAttemptAwayFromTheNodes(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	r := fx.createRetrying(t, &run.RetryPolicy{MaxAttempts: 2})
	fx.startJob(t, r.SlurmJobID, "worker-[0-1]")
	// The job reports a checkpoint, then its node fails.
	fx.advance(10 * time.Minute)
	ck := &run.Checkpoint{Step: 500, Path: "/ckpt/step-500.pt", Time: fx.clock()}
	if err := fx.svc.ApplyProgress(ctx, map[string]run.Progress{r.ID: {Step: 500, UpdateTime: fx.clock(), Checkpoint: ck}}); err != nil {
		t.Fatal(err)
	}
	fx.advance(5 * time.Minute)
	fx.slurm.set(r.SlurmJobID, func(j *scheduler.JobStatus) { j.State, j.EndTime, j.ExitCode = "NODE_FAIL", fx.clock(), 0 })
	fx.poll(t)

	got := fx.get(t, r.ID)
	if got.Attempt() != 2 || got.State != run.StatePending || !got.Submitted() || got.SlurmJobID == r.SlurmJobID {
		t.Fatalf("after NODE_FAIL: attempt %d state %s job %q (first %q)", got.Attempt(), got.State, got.SlurmJobID, r.SlurmJobID)
	}
	a := got.Attempts[0]
	if a.Cause != run.CauseNodeFail || a.State != run.StateNodeFail || a.SlurmJobID != r.SlurmJobID || !slices.Equal(a.FaultyNodes, []string{"worker-0", "worker-1"}) {
		t.Fatalf("attempt 1 record %+v", a)
	}
	job := fx.lastSubmitted()
	if job.Comment != CommentPrefix+r.ID+";attempt=2" || !slices.Equal(job.Exclude, []string{"worker-0", "worker-1"}) ||
		job.Environment[AttemptEnv] != "2" || job.Environment[ResumeEnv] != "/ckpt/step-500.pt" {
		t.Fatalf("attempt 2 job: comment %q exclude %v env %v", job.Comment, job.Exclude, job.Environment)
	}
	// Goodput: 15 min × 16 GPUs used by attempt 1, 10 min of it kept.
	if g := got.Goodput; g == nil || !near(g.GPUHoursUsed, 4) || !near(g.GPUHoursKept, 16*10.0/60) || !near(g.LostByCause["NODE_FAIL"], 16*5.0/60) {
		t.Fatalf("goodput %+v", got.Goodput)
	}
	// The last attempt fails the same way: the run ends, saying why.
	fx.startJob(t, got.SlurmJobID, "worker-2")
	fx.slurm.set(got.SlurmJobID, func(j *scheduler.JobStatus) { j.State, j.EndTime = "NODE_FAIL", fx.clock() })
	fx.poll(t)
	got = fx.get(t, r.ID)
	if got.State != run.StateNodeFail || got.Attempt() != 2 || !strings.Contains(got.Reason, "all 2 attempts used") {
		t.Fatalf("after the last attempt: %s attempt %d reason %q", got.State, got.Attempt(), got.Reason)
	}
}

func TestOwnFailureIsNeverRetriedAsHardware(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	r := fx.createRetrying(t, &run.RetryPolicy{MaxAttempts: 3})
	fx.startJob(t, r.SlurmJobID, "worker-0")
	fx.slurm.set(r.SlurmJobID, func(j *scheduler.JobStatus) { j.State, j.ExitCode, j.EndTime = "FAILED", 1, fx.clock() })
	fx.poll(t)
	got := fx.get(t, r.ID)
	if got.State != run.StateFailed || got.Attempt() != 1 || fx.submittedCount() != 1 || !strings.Contains(got.Reason, "does not retry EXIT_CODE") {
		t.Fatalf("own failure: %s attempt %d, %d jobs, reason %q", got.State, got.Attempt(), fx.submittedCount(), got.Reason)
	}

	// The same exit with an incident on its node while it ran is the
	// hardware's doing.
	r2 := fx.createRetrying(t, &run.RetryPolicy{MaxAttempts: 3})
	fx.startJob(t, r2.SlurmJobID, "worker-1")
	if err := fx.svc.AttachIncident(ctx, []string{r2.ID}, "inc-xid79"); err != nil {
		t.Fatal(err)
	}
	fx.slurm.set(r2.SlurmJobID, func(j *scheduler.JobStatus) { j.State, j.ExitCode, j.EndTime = "FAILED", 1, fx.clock() })
	fx.poll(t)
	got = fx.get(t, r2.ID)
	if got.Attempt() != 2 || got.Attempts[0].Cause != run.CauseHardware || got.Attempts[0].IncidentID != "inc-xid79" || got.State.Terminal() {
		t.Fatalf("failure with hardware evidence: %s attempt %d %+v", got.State, got.Attempt(), got.Attempts)
	}

	// Asked for, the job's own failure is retried as what it is.
	r3 := fx.createRetrying(t, &run.RetryPolicy{MaxAttempts: 2, Causes: []run.Cause{run.CauseExitCode}})
	fx.startJob(t, r3.SlurmJobID, "worker-0")
	fx.slurm.set(r3.SlurmJobID, func(j *scheduler.JobStatus) { j.State, j.ExitCode, j.EndTime = "FAILED", 2, fx.clock() })
	fx.poll(t)
	if got = fx.get(t, r3.ID); got.Attempt() != 2 || got.Attempts[0].Cause != run.CauseExitCode || len(got.ExcludedNodes()) != 0 {
		t.Fatalf("exit code retry: attempt %d %+v", got.Attempt(), got.Attempts)
	}
}

func TestNodeFaultCancelsAndResubmitsExcludingTheNode(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	with := fx.createRetrying(t, &run.RetryPolicy{MaxAttempts: 2, Backoff: 30 * time.Second})
	without, err := fx.svc.Create(ctx, seedSpec(), "")
	if err != nil {
		t.Fatal(err)
	}
	fx.startJob(t, with.SlurmJobID, "worker-[0-1]")
	fx.startJob(t, without.SlurmJobID, "worker-[1-2]")
	if err := fx.svc.NodeFault(ctx, "worker-1", "inc-1"); err != nil {
		t.Fatal(err)
	}
	got := fx.get(t, with.ID)
	if got.Attempt() != 2 || got.Attempts[0].Cause != run.CauseHardware || got.Attempts[0].IncidentID != "inc-1" || got.Attempts[0].CancelPending {
		t.Fatalf("after the fault: attempt %d %+v", got.Attempt(), got.Attempts)
	}
	cancelled := fx.cancelledJobs()
	if !slices.Equal(cancelled, []string{with.SlurmJobID}) {
		t.Fatalf("cancelled %v, want only %s (the run without a policy runs on)", cancelled, with.SlurmJobID)
	}
	// The back-off holds the submission.
	if got.Submitted() || fx.submittedCount() != 2 {
		t.Fatalf("submitted during the back-off: job %q, %d jobs", got.SlurmJobID, fx.submittedCount())
	}
	fx.advance(31 * time.Second)
	fx.poll(t)
	got = fx.get(t, with.ID)
	if !got.Submitted() || fx.submittedCount() != 3 || !slices.Equal(fx.lastSubmitted().Exclude, []string{"worker-1"}) {
		t.Fatalf("after the back-off: job %q, %d jobs, exclude %v", got.SlurmJobID, fx.submittedCount(), fx.lastSubmitted().Exclude)
	}
	if w := fx.get(t, without.ID); w.State != run.StateRunning || w.Attempt() != 1 {
		t.Fatalf("run without a policy: %s attempt %d", w.State, w.Attempt())
	}
}

func TestRetryBreakerStopsMassRetries(t *testing.T) {
	fx := newFixture(t)
	fx.svc.cfg.RetryBreaker = RetryBreakerConfig{MaxRetries: 1, Window: time.Hour}
	ctx := context.Background()
	var runs []*run.Run
	for i := range 2 {
		r := fx.createRetrying(t, &run.RetryPolicy{MaxAttempts: 3})
		fx.startJob(t, r.SlurmJobID, []string{"worker-0", "worker-1"}[i])
		runs = append(runs, r)
	}
	for _, r := range runs {
		fx.slurm.set(r.SlurmJobID, func(j *scheduler.JobStatus) { j.State, j.EndTime = "NODE_FAIL", fx.clock() })
	}
	fx.poll(t)
	var retried, refused int
	for _, r := range runs {
		got := fx.get(t, r.ID)
		switch {
		case got.Attempt() == 2:
			retried++
		case got.State == run.StateNodeFail && strings.Contains(got.Reason, "retry breaker is open"):
			refused++
		}
	}
	if retried != 1 || refused != 1 {
		t.Fatalf("retried %d, refused by the breaker %d; want 1 and 1", retried, refused)
	}
	// The gate of the remediation breaker refuses too.
	fx.svc.cfg.RetryBreaker.MaxRetries = 100
	fx.svc.SetRetryGate(pausedGate{})
	r := fx.createRetrying(t, &run.RetryPolicy{MaxAttempts: 3})
	fx.startJob(t, r.SlurmJobID, "worker-3")
	if err := fx.svc.NodeFault(ctx, "worker-3", "inc-9"); err != nil {
		t.Fatal(err)
	}
	if got := fx.get(t, r.ID); got.Attempt() != 1 || got.State != run.StateRunning {
		t.Fatalf("retried while the remediation breaker is open: %s attempt %d", got.State, got.Attempt())
	}
}

type pausedGate struct{}

func (pausedGate) RetriesPaused() (bool, string) { return true, "5 drains in 10m" }

// A controller that dies after Slurm accepted the next attempt's job but
// before it stored the id adopts that job on restart: one job per attempt.
func TestRetryCrashAfterSubmitAdoptsOneJob(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	r := fx.createRetrying(t, &run.RetryPolicy{MaxAttempts: 2})
	fx.startJob(t, r.SlurmJobID, "worker-0")
	type crash struct{}
	fx.svc.cfg.Failpoint = func(name string) {
		if name == FailpointRetrySubmitted {
			panic(crash{})
		}
	}
	fx.slurm.set(r.SlurmJobID, func(j *scheduler.JobStatus) { j.State, j.EndTime = "NODE_FAIL", fx.clock() })
	func() {
		defer func() {
			if p := recover(); p != nil && p != (crash{}) {
				panic(p)
			}
		}()
		_ = fx.svc.Poll(ctx)
		t.Fatal("the failpoint did not fire")
	}()
	if n := fx.submittedCount(); n != 2 {
		t.Fatalf("%d jobs after the crash, want 2", n)
	}
	crashed := fx.get(t, r.ID)
	if crashed.Submitted() || crashed.SubmitBegan.IsZero() || crashed.Attempt() != 2 {
		t.Fatalf("stored at the crash: job %q submit began %v attempt %d", crashed.SlurmJobID, crashed.SubmitBegan, crashed.Attempt())
	}
	// A new controller process over the same store and Slurm.
	restarted := New(Config{PollInterval: time.Second, MinJobAge: 300 * time.Second, DefaultWorkDir: "/work", Now: fx.clock},
		fx.store, fx.slurm, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	for range 3 {
		if err := restarted.Poll(ctx); err != nil {
			t.Fatal(err)
		}
		fx.advance(time.Second)
	}
	got := fx.get(t, r.ID)
	if n := fx.submittedCount(); n != 2 || got.SlurmJobID != fx.lastSubmittedID() {
		t.Fatalf("after the restart: %d jobs (want 2), run's job %q, last submitted %q", n, got.SlurmJobID, fx.lastSubmittedID())
	}
}

func (fx *fixture) lastSubmittedID() string {
	fx.slurm.mu.Lock()
	defer fx.slurm.mu.Unlock()
	return fmt.Sprint(fx.slurm.next) // as the fake Slurm numbers its jobs
}

func TestDependantsWaitForTheNextAttempt(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	a := fx.createRetrying(t, &run.RetryPolicy{MaxAttempts: 2})
	spec := seedSpec()
	spec.DependsOn = []string{a.ID}
	b, err := fx.svc.Create(ctx, spec, "")
	if err != nil {
		t.Fatal(err)
	}
	if deps := fx.lastSubmitted().Dependencies; !slices.Equal(deps, []string{a.SlurmJobID}) {
		t.Fatalf("b waits on %v", deps)
	}
	fx.startJob(t, a.SlurmJobID, "worker-0")
	if err := fx.svc.NodeFault(ctx, "worker-0", "inc-1"); err != nil {
		t.Fatal(err)
	}
	a2, b2 := fx.get(t, a.ID), fx.get(t, b.ID)
	if a2.Attempt() != 2 || !a2.Submitted() {
		t.Fatalf("a: attempt %d job %q", a2.Attempt(), a2.SlurmJobID)
	}
	if b2.Attempt() != 2 || b2.Attempts[0].Cause != run.CauseDependency || !b2.Submitted() || b2.SlurmJobID == b.SlurmJobID {
		t.Fatalf("b: attempt %d job %q attempts %+v", b2.Attempt(), b2.SlurmJobID, b2.Attempts)
	}
	if deps := fx.lastSubmitted().Dependencies; !slices.Equal(deps, []string{a2.SlurmJobID}) {
		t.Fatalf("b's new job waits on %v, want a's new job %s", deps, a2.SlurmJobID)
	}
	cancelled := fx.cancelledJobs()
	if !slices.Contains(cancelled, b.SlurmJobID) {
		t.Fatalf("b's old job %s not cancelled (%v)", b.SlurmJobID, cancelled)
	}
	// A dependency replacement does not use up b's attempts.
	if b2.CountedAttempts() != 1 {
		t.Fatalf("b counted attempts %d", b2.CountedAttempts())
	}
}

func near(a, b float64) bool { d := a - b; return d < 1e-9 && d > -1e-9 }

// A run keeps the newest checkpoint: an update carrying an older one (or
// one written before the current attempt began) does not replace it.
func TestCheckpointNeverGoesBack(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	r := fx.createRetrying(t, &run.RetryPolicy{MaxAttempts: 2})
	fx.startJob(t, r.SlurmJobID, "worker-0")
	apply := func(step int64, ck *run.Checkpoint) {
		t.Helper()
		fx.advance(time.Second)
		if err := fx.svc.ApplyProgress(ctx, map[string]run.Progress{r.ID: {Step: step, UpdateTime: fx.clock(), Checkpoint: ck}}); err != nil {
			t.Fatal(err)
		}
	}
	ck200 := &run.Checkpoint{Step: 200, Path: "/ckpt/step-200.pt", Time: fx.clock()}
	apply(210, ck200)
	apply(220, &run.Checkpoint{Step: 100, Path: "/ckpt/step-100.pt", Time: fx.clock()})
	apply(230, nil)
	got := fx.get(t, r.ID)
	if got.Checkpoint == nil || *got.Checkpoint != *ck200 || got.Progress.Step != 230 || got.Progress.Checkpoint != nil {
		t.Fatalf("checkpoint %+v progress %+v, want step 200 kept, progress 230 without its own copy", got.Checkpoint, got.Progress)
	}
}
