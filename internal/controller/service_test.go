package controller

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sopilot/sopilot/internal/auth"
	"github.com/sopilot/sopilot/internal/run"
	"github.com/sopilot/sopilot/internal/scheduler"
	"github.com/sopilot/sopilot/internal/store"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeSlurm is a hand-written scheduler.Backend for the controller's logic;
// the real backends are tested against the real cluster in their packages
// and end to end in cmd/controller.
type fakeSlurm struct {
	mu         sync.Mutex
	next       int
	jobs       map[string]*scheduler.JobStatus
	submitted  []scheduler.JobSpec
	submitErr  error
	jobsCalls  int
	findCalls  int
	cancelled  []string
	jobsErr    error
	lastJobIDs []string
	// emptyListings: Jobs and FindByComment succeed with nothing, as
	// squeue --json does with slurmctld down.
	emptyListings bool
}

func newFakeSlurm() *fakeSlurm { return &fakeSlurm{next: 100, jobs: map[string]*scheduler.JobStatus{}} }

func (f *fakeSlurm) Name() string { return "fake" }

func (f *fakeSlurm) Submit(_ context.Context, job scheduler.JobSpec) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.submitErr != nil {
		return "", f.submitErr
	}
	f.next++
	id := fmt.Sprint(f.next)
	f.jobs[id] = &scheduler.JobStatus{JobID: id, Name: job.Name, State: "PENDING", Reason: "Priority", Comment: job.Comment, ExitCode: -1}
	f.submitted = append(f.submitted, job)
	return id, nil
}

func (f *fakeSlurm) Jobs(_ context.Context, ids []string) ([]scheduler.JobStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.jobsCalls++
	f.lastJobIDs = append([]string(nil), ids...)
	if f.jobsErr != nil {
		return nil, f.jobsErr
	}
	if f.emptyListings {
		return nil, nil
	}
	var out []scheduler.JobStatus
	for _, id := range ids {
		if j, ok := f.jobs[id]; ok {
			out = append(out, *j)
		}
	}
	return out, nil
}

func (f *fakeSlurm) FindByComment(_ context.Context, prefix string) ([]scheduler.JobStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.findCalls++
	if f.emptyListings {
		return nil, nil
	}
	var out []scheduler.JobStatus
	for _, j := range f.jobs {
		if strings.HasPrefix(j.Comment, prefix) {
			out = append(out, *j)
		}
	}
	return out, nil
}

func (f *fakeSlurm) Cancel(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cancelled = append(f.cancelled, id)
	if j, ok := f.jobs[id]; ok {
		j.State = "CANCELLED"
	}
	return nil
}

func (f *fakeSlurm) set(id string, fn func(*scheduler.JobStatus)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f.jobs[id])
}

func (f *fakeSlurm) forget(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.jobs, id)
}

type fixture struct {
	svc   *Service
	slurm *fakeSlurm
	store *store.Store
	now   time.Time
	mu    sync.Mutex
}

func (fx *fixture) clock() time.Time {
	fx.mu.Lock()
	defer fx.mu.Unlock()
	return fx.now
}

func (fx *fixture) advance(d time.Duration) {
	fx.mu.Lock()
	defer fx.mu.Unlock()
	fx.now = fx.now.Add(d)
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "runs.db"), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	fx := &fixture{slurm: newFakeSlurm(), store: st, now: time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)}
	fx.svc = New(Config{PollInterval: time.Second, MinJobAge: 300 * time.Second, DefaultWorkDir: "/work", Now: fx.clock},
		st, fx.slurm, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	return fx
}

func seedSpec() run.Spec {
	return run.Spec{
		JobName: "training-with-original", Nodes: 2, TasksPerNode: 8, GPUsPerNode: 8,
		TimeLimit: 6 * time.Hour, Argv: []string{"python3", "train.py"},
		Labels: map[string]string{"experiment": "seed"},
	}
}

func TestCreateSubmitsOnceAndRecordsJob(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	r, err := fx.svc.Create(ctx, seedSpec(), "req-1")
	if err != nil {
		t.Fatal(err)
	}
	if r.SlurmJobID != "101" || r.State != run.StatePending || r.RequestID != "req-1" {
		t.Fatalf("run = %+v", r)
	}
	if want := "/work/training-with-original-101.out"; r.OutputPath != want {
		t.Errorf("output path = %q, want %q", r.OutputPath, want)
	}
	if len(fx.slurm.submitted) != 1 {
		t.Fatalf("submitted %d jobs", len(fx.slurm.submitted))
	}
	job := fx.slurm.submitted[0]
	if job.Comment != CommentPrefix+r.ID || job.Nodes != 2 || job.TasksPerNode != 8 || job.GPUsPerNode != 8 || job.WorkDir != "/work" {
		t.Errorf("job = %+v", job)
	}
	if job.Environment["SOPILOT_RUN_ID"] != r.ID {
		t.Errorf("job env lacks SOPILOT_RUN_ID: %v", job.Environment)
	}
	if !strings.Contains(job.Script, "'python3' 'train.py'") {
		t.Errorf("script does not run the quoted argv:\n%s", job.Script)
	}

	again, err := fx.svc.Create(ctx, seedSpec(), "req-1")
	if err != nil {
		t.Fatal(err)
	}
	if again.ID != r.ID || len(fx.slurm.submitted) != 1 {
		t.Errorf("retry created run %s (first %s), jobs submitted %d", again.ID, r.ID, len(fx.slurm.submitted))
	}

	// The same spec with empty (not nil) lists and maps is the same spec.
	same := seedSpec()
	same.Environment, same.DependsOn = map[string]string{}, []string{}
	if again, err := fx.svc.Create(ctx, same, "req-1"); err != nil || again.ID != r.ID {
		t.Errorf("retry with empty maps: run %v, err %v", again, err)
	}

	other := seedSpec()
	other.Nodes = 1
	if _, err := fx.svc.Create(ctx, other, "req-1"); !errors.Is(err, ErrRequestIDReused) {
		t.Errorf("reuse with another spec: err = %v, want ErrRequestIDReused", err)
	}
}

func TestCreateConcurrentRetriesMakeOneJob(t *testing.T) {
	fx := newFixture(t)
	var wg sync.WaitGroup
	ids := make([]string, 8)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := fx.svc.Create(context.Background(), seedSpec(), "same-key")
			if err != nil {
				t.Error(err)
				return
			}
			ids[i] = r.ID
		}()
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("different runs for one request_id: %v", ids)
		}
	}
	if n := len(fx.slurm.submitted); n != 1 {
		t.Errorf("%d Slurm jobs for one request_id, want 1", n)
	}
}

func TestCreateRejectsBadSpecAndSubmitsNothing(t *testing.T) {
	fx := newFixture(t)
	bad := seedSpec()
	bad.Nodes = 0
	bad.Environment = map[string]string{"1BAD": "x"}
	_, err := fx.svc.Create(context.Background(), bad, "req-bad")
	var verr *run.ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("err = %v, want a ValidationError", err)
	}
	fields := map[string]bool{}
	for _, v := range verr.Violations {
		fields[v.Field] = true
	}
	if !fields["spec.nodes"] || !fields[`spec.environment["1BAD"]`] {
		t.Errorf("violations = %+v, want spec.nodes and the env key", verr.Violations)
	}
	runs, _, err := fx.store.ListRuns(context.Background(), store.ListQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 0 || len(fx.slurm.submitted) != 0 {
		t.Errorf("bad input left %d runs and %d jobs", len(runs), len(fx.slurm.submitted))
	}
}

func TestRejectedSubmissionFailsRunAndFreesRequestID(t *testing.T) {
	fx := newFixture(t)
	fx.slurm.submitErr = fmt.Errorf("sbatch: invalid partition name specified: %w", scheduler.ErrRejected)
	_, err := fx.svc.Create(context.Background(), seedSpec(), "req-2")
	if !errors.Is(err, ErrFailedPrecondition) || !errors.Is(err, scheduler.ErrRejected) {
		t.Fatalf("err = %v", err)
	}
	runs, _, _ := fx.store.ListRuns(context.Background(), store.ListQuery{})
	if len(runs) != 1 || runs[0].State != run.StateFailed || !strings.Contains(runs[0].Reason, "invalid partition") {
		t.Fatalf("history = %+v", runs)
	}
	fx.slurm.submitErr = nil
	r, err := fx.svc.Create(context.Background(), seedSpec(), "req-2")
	if err != nil || r.ID == runs[0].ID || r.SlurmJobID == "" {
		t.Fatalf("retry after fix: run %+v err %v", r, err)
	}
}

func TestPollTracksStatesForwardOnlyWithOneQuery(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	a, _ := fx.svc.Create(ctx, seedSpec(), "a")
	b, _ := fx.svc.Create(ctx, seedSpec(), "b")
	start := fx.now.Add(time.Minute)
	fx.slurm.set(a.SlurmJobID, func(j *scheduler.JobStatus) {
		j.State, j.Reason, j.Nodes, j.StartTime = "RUNNING", "None", "worker-[0-1]", start
	})
	if err := fx.svc.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if fx.slurm.jobsCalls != 1 || len(fx.slurm.lastJobIDs) != 2 || fx.slurm.findCalls != 0 {
		t.Errorf("poll made %d Jobs calls for %v and %d FindByComment calls, want one call for both", fx.slurm.jobsCalls, fx.slurm.lastJobIDs, fx.slurm.findCalls)
	}
	got, _ := fx.svc.Get(ctx, a.ID)
	if got.State != run.StateRunning || got.NodeList != "worker-[0-1]" || !got.StartTime.Equal(start) || got.Reason != "" {
		t.Errorf("a = %+v", got)
	}

	// A requeue shows the job PENDING again: the run does not go back.
	fx.slurm.set(a.SlurmJobID, func(j *scheduler.JobStatus) { j.State = "PENDING"; j.Reason = "BeginTime" })
	_ = fx.svc.Poll(ctx)
	got, _ = fx.svc.Get(ctx, a.ID)
	if got.State != run.StateRunning || got.SlurmState != "PENDING" {
		t.Errorf("after requeue a = %s (slurm %s), want RUNNING (slurm PENDING)", got.State, got.SlurmState)
	}

	end := start.Add(time.Hour)
	fx.slurm.set(a.SlurmJobID, func(j *scheduler.JobStatus) { j.State, j.ExitCode, j.EndTime = "FAILED", 3, end })
	fx.slurm.set(b.SlurmJobID, func(j *scheduler.JobStatus) { j.State, j.ExitCode = "COMPLETED", 0 })
	_ = fx.svc.Poll(ctx)
	got, _ = fx.svc.Get(ctx, a.ID)
	if got.State != run.StateFailed || got.ExitCode != 3 || !got.EndTime.Equal(end) {
		t.Errorf("a = %s exit %d end %v", got.State, got.ExitCode, got.EndTime)
	}
	// Terminal is final, whatever Slurm says later.
	fx.slurm.set(a.SlurmJobID, func(j *scheduler.JobStatus) { j.State = "RUNNING" })
	_ = fx.svc.Poll(ctx)
	if got, _ = fx.svc.Get(ctx, a.ID); got.State != run.StateFailed {
		t.Errorf("terminal run moved to %s", got.State)
	}
	active, _ := fx.store.ActiveRuns(ctx)
	if len(active) != 0 {
		t.Errorf("%d runs still active", len(active))
	}
	calls := fx.slurm.jobsCalls
	_ = fx.svc.Poll(ctx)
	if fx.slurm.jobsCalls != calls {
		t.Errorf("poll with no active runs queried Slurm")
	}
}

// A job Slurm forgot (slurmctld restarted without its state, say) makes
// its run LOST, but only once MinJobAge has passed since it was last listed
// (see TestForgottenJobIsLostOnlyByTheRule for the whole rule).
func TestPollMarksForgottenJobLost(t *testing.T) {
	fx := newFixture(t)
	r, _ := fx.svc.Create(context.Background(), seedSpec(), "x")
	_ = fx.svc.Poll(context.Background())
	fx.slurm.forget(r.SlurmJobID)
	for range 3 {
		_ = fx.svc.Poll(context.Background())
	}
	if got, _ := fx.svc.Get(context.Background(), r.ID); got.State != run.StatePending {
		t.Fatalf("lost right after it was listed: %s", got.State)
	}
	for range 6 {
		fx.advance(100 * time.Second)
		_ = fx.svc.Poll(context.Background())
	}
	got, _ := fx.svc.Get(context.Background(), r.ID)
	if got.State != run.StateLost || !strings.Contains(got.Reason, "has not listed job "+r.SlurmJobID) {
		t.Errorf("run = %s %q", got.State, got.Reason)
	}
}

// A crash after the run was recorded but before its job id was: the next
// poll adopts the job by its comment, submits again while that is safe, and
// gives up (LOST) when a job could have come and gone unseen.
func TestPollReconcilesUnconfirmedSubmissions(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	record := func(id string, created time.Time) {
		t.Helper()
		r := &run.Run{ID: id, RequestID: "req-" + id, Spec: seedSpec(), State: run.StatePending, CreateTime: created, UpdateTime: created,
			OutputPath: "/work/x-%j.out"}
		r.Spec.Normalize()
		if _, _, err := fx.store.CreateRun(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	record("r-adopt", fx.now)
	record("r-young", fx.now)
	record("r-old", fx.now.Add(-10*time.Minute))
	// Slurm accepted the first one before the "crash".
	jobID, err := fx.slurm.Submit(ctx, scheduler.JobSpec{Name: "x", Comment: CommentPrefix + "r-adopt"})
	if err != nil {
		t.Fatal(err)
	}
	if err := fx.svc.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	adopted, _ := fx.svc.Get(ctx, "r-adopt")
	young, _ := fx.svc.Get(ctx, "r-young")
	old, _ := fx.svc.Get(ctx, "r-old")
	if adopted.SlurmJobID != jobID || adopted.OutputPath != "/work/x-"+jobID+".out" {
		t.Errorf("adopted = %+v, want job %s", adopted, jobID)
	}
	if young.SlurmJobID == "" || young.SlurmJobID == jobID {
		t.Errorf("young unconfirmed run not resubmitted: %+v", young)
	}
	if old.State != run.StateLost || old.SlurmJobID != "" {
		t.Errorf("old unconfirmed run = %s job %q, want LOST without a job", old.State, old.SlurmJobID)
	}
	if n := len(fx.slurm.submitted); n != 2 {
		t.Errorf("%d submissions, want 2 (the pre-crash one and the young resubmission)", n)
	}
}

func TestUnavailableSlurmDefersSubmission(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	fx.slurm.submitErr = fmt.Errorf("sbatch: unable to contact slurm controller: %w", scheduler.ErrUnavailable)
	r, err := fx.svc.Create(ctx, seedSpec(), "later")
	if err != nil {
		t.Fatal(err)
	}
	if r.Submitted() || r.State != run.StatePending || !strings.Contains(r.Reason, "waiting to submit") {
		t.Fatalf("run = %+v", r)
	}
	fx.slurm.submitErr = nil
	_ = fx.svc.Poll(ctx)
	got, _ := fx.svc.Get(ctx, r.ID)
	if !got.Submitted() || got.Reason != "" {
		t.Errorf("after Slurm came back run = %+v", got)
	}
}

func TestCancel(t *testing.T) {
	fx := newFixture(t)
	ctx := auth.NewContext(context.Background(), auth.Identity{Name: "olga", Kind: auth.KindUser, Role: auth.RoleOperator})
	r, _ := fx.svc.Create(ctx, seedSpec(), "c")
	got, err := fx.svc.Cancel(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != run.StateCancelled || len(fx.slurm.cancelled) != 1 || fx.slurm.cancelled[0] != r.SlurmJobID {
		t.Errorf("cancel: run %s, scancel calls %v", got.State, fx.slurm.cancelled)
	}
	if _, err := fx.svc.Cancel(ctx, r.ID); err != nil || len(fx.slurm.cancelled) != 1 {
		t.Errorf("cancel of a cancelled run: err %v, scancel calls %v", err, fx.slurm.cancelled)
	}
	if _, err := fx.svc.Cancel(ctx, "r-nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("cancel unknown: %v", err)
	}
}

func TestDependencies(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	first, _ := fx.svc.Create(ctx, seedSpec(), "first")
	spec := seedSpec()
	spec.DependsOn = []string{first.ID}
	second, err := fx.svc.Create(ctx, spec, "second")
	if err != nil {
		t.Fatal(err)
	}
	if deps := fx.slurm.submitted[1].Dependencies; len(deps) != 1 || deps[0] != first.SlurmJobID {
		t.Errorf("dependencies = %v, want [%s]", deps, first.SlurmJobID)
	}
	_ = second

	fx.slurm.set(first.SlurmJobID, func(j *scheduler.JobStatus) { j.State = "FAILED" })
	_ = fx.svc.Poll(ctx)
	if _, err := fx.svc.Create(ctx, spec, "third"); !errors.Is(err, ErrFailedPrecondition) {
		t.Errorf("depending on a failed run: err = %v", err)
	}
	spec.DependsOn = []string{"r-doesnotexist"}
	var verr *run.ValidationError
	if _, err := fx.svc.Create(ctx, spec, "fourth"); !errors.As(err, &verr) || verr.Violations[0].Field != "spec.depends_on[0]" {
		t.Errorf("unknown dependency: err = %v", err)
	}
}

func TestWatchSendsCurrentThenChangesUntilTerminal(t *testing.T) {
	fx := newFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, _ := fx.svc.Create(ctx, seedSpec(), "w")
	got := make(chan *run.Run, 10)
	done := make(chan error, 1)
	go func() {
		done <- fx.svc.Watch(ctx, r.ID, func(x *run.Run) error { got <- x; return nil })
	}()
	if first := <-got; first.State != run.StatePending {
		t.Fatalf("first = %s", first.State)
	}
	for _, st := range []string{"RUNNING", "COMPLETED"} {
		fx.advance(time.Second)
		fx.slurm.set(r.SlurmJobID, func(j *scheduler.JobStatus) { j.State = st })
		if err := fx.svc.Poll(ctx); err != nil {
			t.Fatal(err)
		}
		want, _ := run.FromSlurm(st)
		select {
		case x := <-got:
			if x.State != want {
				t.Fatalf("watch got %s, want %s", x.State, want)
			}
		case <-ctx.Done():
			t.Fatalf("no update for %s", st)
		}
	}
	if err := <-done; err != nil {
		t.Errorf("watch ended with %v, want nil after the terminal state", err)
	}
}

// A controller that stops ends its watches at once (Unavailable for the
// API; the CLI watches again), instead of holding the gRPC server's
// graceful stop for its whole grace.
func TestWatchEndsWhenTheControllerStops(t *testing.T) {
	fx := newFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, _ := fx.svc.Create(ctx, seedSpec(), "w-stop")
	runCtx, stop := context.WithCancel(ctx)
	stopped := make(chan error, 1)
	go func() { stopped <- fx.svc.Run(runCtx) }()
	got := make(chan *run.Run, 10)
	done := make(chan error, 1)
	go func() {
		done <- fx.svc.Watch(ctx, r.ID, func(x *run.Run) error { got <- x; return nil })
	}()
	<-got
	stop()
	select {
	case err := <-done:
		if !errors.Is(err, ErrShuttingDown) {
			t.Errorf("watch ended with %v, want ErrShuttingDown", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("watch still open 5 s after the controller stopped")
	}
	if err := <-stopped; err != nil {
		t.Errorf("Run = %v", err)
	}
	// A watch that starts after the stop ends the same way.
	err := fx.svc.Watch(ctx, r.ID, func(*run.Run) error { return nil })
	if !errors.Is(err, ErrShuttingDown) {
		t.Errorf("watch after the stop ended with %v, want ErrShuttingDown", err)
	}
}

// Runs record the user who created them. The insecure identity is nobody:
// its runs have no owner. Who may then write which run is the
// authorizer's business (internal/auth), not the controller's.
func TestRunsRecordTheirOwner(t *testing.T) {
	fx := newFixture(t)
	as := func(id auth.Identity) context.Context { return auth.NewContext(context.Background(), id) }
	tests := []struct {
		name   string
		caller context.Context
		want   string
	}{
		{"submitter", as(auth.Identity{Name: "ann", Kind: auth.KindUser, Role: auth.RoleSubmitter}), "ann"},
		{"admin", as(auth.Identity{Name: "ada", Kind: auth.KindUser, Role: auth.RoleAdmin}), "ada"},
		{"insecure", as(auth.Identity{Name: "insecure", Kind: auth.KindInsecure, Role: auth.RoleAdmin}), ""},
		{"no identity", context.Background(), ""},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := fx.svc.Create(tt.caller, seedSpec(), fmt.Sprintf("owned-%d", i))
			if err != nil {
				t.Fatal(err)
			}
			if r.Owner != tt.want {
				t.Errorf("owner = %q, want %q", r.Owner, tt.want)
			}
			got, err := fx.svc.Get(context.Background(), r.ID)
			if err != nil || got.Owner != tt.want {
				t.Errorf("stored owner = %q (%v), want %q", got.Owner, err, tt.want)
			}
		})
	}
}
