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

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sopilot/sopilot/internal/metrics"
	"github.com/sopilot/sopilot/internal/run"
	"github.com/sopilot/sopilot/internal/scheduler"
	"github.com/sopilot/sopilot/internal/store"
	"github.com/sopilot/sopilot/internal/testwait"
)

// down makes the fake answer the way squeue --json does with slurmctld
// down, on every Slurm version: success, and an empty list.
func (f *fakeSlurm) down(on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.emptyListings = on
}

// fakeProbe is a Prober whose answer the test sets.
type fakeProbe struct {
	mu    sync.Mutex
	err   error
	calls int
}

func (p *fakeProbe) Probe(context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls++
	return p.err
}

func (p *fakeProbe) set(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.err = err
}

// fakeUsage is a UsageSource that remembers what was asked.
type fakeUsage struct {
	mu     sync.Mutex
	finals map[string]int
}

func (u *fakeUsage) RunUsage(runID string, final bool) *run.Usage {
	u.mu.Lock()
	defer u.mu.Unlock()
	if final {
		u.finals[runID]++
	}
	return &run.Usage{GPUCount: 16, Samples: 10}
}

// metricValue reads one series from a registry: the gauge or counter
// named name whose labels include labels.
func metricValue(t *testing.T, g prometheus.Gatherer, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if have[labels[i]] != labels[i+1] {
					continue series
				}
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no series %s%v", name, labels)
	return 0
}

var errCtldDown = fmt.Errorf("scontrol ping: %w: Slurmctld(primary) at vm is DOWN", scheduler.ErrUnavailable)

// newOutageFixture is newFixture with readiness, metrics, a usage source,
// and a store check at the end.
func newOutageFixture(t *testing.T) (*fixture, *fakeProbe, *metrics.Controller, *fakeUsage) {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "runs.db"), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := st.Check(); err != nil {
			t.Errorf("store check: %v", err)
		}
		st.Close()
	})
	fx := &fixture{slurm: newFakeSlurm(), store: st, now: time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)}
	m := metrics.NewController()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	usage := &fakeUsage{finals: map[string]int{}}
	fx.svc = New(Config{PollInterval: 5 * time.Second, MinJobAge: 300 * time.Second, DefaultWorkDir: "/work", Now: fx.clock, Usage: usage},
		st, fx.slurm, logger, m)
	probe := &fakeProbe{}
	rd, err := NewReadiness(probe, ReadinessConfig{Now: fx.clock}, logger, m.Registry)
	if err != nil {
		t.Fatal(err)
	}
	fx.svc.SetReadiness(rd)
	rd.Probe(context.Background())
	return fx, probe, m, usage
}

// pollFor polls every 5 s of fake time for d.
func (fx *fixture) pollFor(t *testing.T, d time.Duration) {
	t.Helper()
	for end := fx.clock().Add(d); fx.clock().Before(end); {
		fx.advance(5 * time.Second)
		_ = fx.svc.Poll(context.Background())
	}
}

func (fx *fixture) startRunning(t *testing.T, keys ...string) []*run.Run {
	t.Helper()
	var out []*run.Run
	for _, k := range keys {
		r, err := fx.svc.Create(context.Background(), seedSpec(), k)
		if err != nil {
			t.Fatal(err)
		}
		fx.slurm.set(r.SlurmJobID, func(j *scheduler.JobStatus) { j.State, j.Nodes = "RUNNING", "worker-[0-1]" })
		out = append(out, r)
	}
	if err := fx.svc.Poll(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, r := range out {
		if got := fx.get(t, r.ID); got.State != run.StateRunning {
			t.Fatalf("run %s = %s, want RUNNING", r.ID, got.State)
		}
	}
	return out
}

// The scenario: slurmctld goes away, squeue keeps answering with an
// empty list and exit status 0, for longer than MinJobAge. No run changes;
// when slurmctld is back every run takes its true state.
func TestSlurmctldOutageWithEmptyListingsChangesNoRun(t *testing.T) {
	tests := []struct {
		name    string
		outage  time.Duration
		probing bool // whether the readiness probe sees the outage
	}{
		{name: "60 s outage, probe sees it", outage: time.Minute, probing: true},
		{name: "outage longer than MinJobAge, probe sees it", outage: 12 * time.Minute, probing: true},
		{name: "60 s outage, probe fooled too", outage: time.Minute, probing: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fx, probe, m, _ := newOutageFixture(t)
			runs := fx.startRunning(t, "a", "b", "c")
			fx.slurm.down(true)
			if tc.probing {
				probe.set(errCtldDown)
			}
			fx.pollFor(t, tc.outage)
			for _, r := range runs {
				if got := fx.get(t, r.ID); got.State != run.StateRunning {
					t.Fatalf("during the outage run %s became %s (%q)", r.ID, got.State, got.Reason)
				}
			}
			if n := metricValue(t, m.Registry, "sopilot_run_state_transitions_total", "state", "LOST"); n != 0 {
				t.Errorf("%v LOST transitions counted", n)
			}
			// slurmctld is back: a finished, a failed and a still running job.
			fx.slurm.down(false)
			probe.set(nil)
			fx.slurm.set(runs[0].SlurmJobID, func(j *scheduler.JobStatus) { j.State, j.ExitCode = "COMPLETED", 0 })
			fx.slurm.set(runs[1].SlurmJobID, func(j *scheduler.JobStatus) { j.State, j.ExitCode = "FAILED", 2 })
			fx.pollFor(t, 5*time.Second)
			want := []run.State{run.StateCompleted, run.StateFailed, run.StateRunning}
			for i, r := range runs {
				got := fx.get(t, r.ID)
				if got.State != want[i] {
					t.Errorf("after the outage run %d = %s, want %s", i, got.State, want[i])
				}
			}
			if got := fx.get(t, runs[1].ID); got.ExitCode != 2 {
				t.Errorf("failed run exit code %d, want 2", got.ExitCode)
			}
		})
	}
}

// LOST needs LostAfterPolls trusted listings in a row without the job, the
// last at least MinJobAge after the job was last listed, and slurmctld
// confirmed up.
func TestForgottenJobIsLostOnlyByTheRule(t *testing.T) {
	fx, probe, m, usage := newOutageFixture(t)
	runs := fx.startRunning(t, "kept", "forgotten")
	fx.slurm.forget(runs[1].SlurmJobID)

	// Other jobs are listed, so these listings are trusted, but the job was
	// listed less than MinJobAge ago: Slurm cannot have forgotten it yet.
	fx.pollFor(t, 295*time.Second)
	if got := fx.get(t, runs[1].ID); got.State != run.StateRunning {
		t.Fatalf("after 295 s without the job: %s, want RUNNING", got.State)
	}
	// Past MinJobAge, but slurmctld does not answer the probe: still not.
	probe.set(errCtldDown)
	fx.pollFor(t, 30*time.Second)
	if got := fx.get(t, runs[1].ID); got.State != run.StateRunning {
		t.Fatalf("with the probe failing: %s, want RUNNING", got.State)
	}
	// The probe succeeds again: the streak starts over (3 polls, 15 s).
	probe.set(nil)
	fx.svc.ready.Probe(context.Background())
	fx.pollFor(t, 10*time.Second)
	if got := fx.get(t, runs[1].ID); got.State != run.StateRunning {
		t.Fatalf("2 trusted polls after the probe recovered: %s, want RUNNING", got.State)
	}
	fx.pollFor(t, 5*time.Second)
	got := fx.get(t, runs[1].ID)
	if got.State != run.StateLost || !strings.Contains(got.Reason, "has not listed job "+runs[1].SlurmJobID) {
		t.Fatalf("after 3 trusted polls: %s %q, want LOST", got.State, got.Reason)
	}
	if kept := fx.get(t, runs[0].ID); kept.State != run.StateRunning {
		t.Errorf("the listed run became %s", kept.State)
	}
	if n := metricValue(t, m.Registry, "sopilot_run_state_transitions_total", "state", "LOST"); n != 1 {
		t.Errorf("LOST transitions = %v, want 1", n)
	}
	if usage.finals[runs[1].ID] != 0 {
		t.Errorf("usage of a LOST run finalised; it may come back")
	}
}

// A single tracked job that vanishes makes every listing lack every job:
// those listings are not believed until MinJobAge after it was last seen.
func TestListingLackingEveryRecentJobIsNotTrusted(t *testing.T) {
	fx, _, m, _ := newOutageFixture(t)
	runs := fx.startRunning(t, "only")
	fx.slurm.forget(runs[0].SlurmJobID)
	fx.pollFor(t, 295*time.Second)
	if got := fx.get(t, runs[0].ID); got.State != run.StateRunning {
		t.Fatalf("%s, want RUNNING", got.State)
	}
	if n := metricValue(t, m.Registry, "sopilot_tracker_untrusted_listings_total"); n < 50 {
		t.Errorf("untrusted listings counted: %v, want every poll (59)", n)
	}
	fx.pollFor(t, 20*time.Second)
	if got := fx.get(t, runs[0].ID); got.State != run.StateLost {
		t.Fatalf("%s, want LOST once MinJobAge passed and 3 trusted listings lacked the job", got.State)
	}
}

// A LOST run is looked for in the same batched query; when Slurm reports
// its job (with its comment) the run takes the true state, with every side
// effect of ending: usage, transitions metric, watchers.
func TestLostRunTakesItsTrueStateWhenSlurmListsTheJobAgain(t *testing.T) {
	fx, _, m, usage := newOutageFixture(t)
	ctx := context.Background()
	runs := fx.startRunning(t, "a", "b", "reused")
	for _, r := range runs {
		fx.slurm.forget(r.SlurmJobID)
	}
	fx.pollFor(t, 330*time.Second)
	for _, r := range runs {
		if got := fx.get(t, r.ID); got.State != run.StateLost {
			t.Fatalf("run %s = %s, want LOST", r.ID, got.State)
		}
	}
	watchCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	seen := make(chan *run.Run, 10)
	done := make(chan error, 1)
	go func() { done <- fx.svc.Watch(watchCtx, runs[0].ID, func(r *run.Run) error { seen <- r; return nil }) }()
	if first := <-seen; first.State != run.StateLost {
		t.Fatalf("watch began with %s", first.State)
	}

	put := func(r *run.Run, state, comment string, exit int) {
		fx.slurm.mu.Lock()
		fx.slurm.jobs[r.SlurmJobID] = &scheduler.JobStatus{JobID: r.SlurmJobID, State: state, Comment: comment, ExitCode: exit}
		fx.slurm.mu.Unlock()
	}
	put(runs[0], "COMPLETED", CommentPrefix+runs[0].ID, 0)
	put(runs[1], "RUNNING", CommentPrefix+runs[1].ID, 0)
	put(runs[2], "RUNNING", CommentPrefix+"r-someone-else", 0) // Slurm reused the id
	calls := fx.slurm.jobsCalls
	fx.pollFor(t, 5*time.Second)
	if fx.slurm.jobsCalls != calls+1 {
		t.Errorf("poll made %d Jobs calls, want 1", fx.slurm.jobsCalls-calls)
	}
	if got := fx.get(t, runs[0].ID); got.State != run.StateCompleted || got.ExitCode != 0 || got.Usage == nil {
		t.Errorf("run 0 = %s exit %d usage %v, want COMPLETED 0 with usage", got.State, got.ExitCode, got.Usage)
	}
	if usage.finals[runs[0].ID] != 1 {
		t.Errorf("usage finalised %d times for the completed run, want 1", usage.finals[runs[0].ID])
	}
	if got := fx.get(t, runs[1].ID); got.State != run.StateRunning {
		t.Errorf("run 1 = %s, want RUNNING again", got.State)
	}
	if got := fx.get(t, runs[2].ID); got.State != run.StateLost {
		t.Errorf("run with a reused job id = %s, want LOST", got.State)
	}
	select {
	case r := <-seen:
		if r.State != run.StateCompleted {
			t.Errorf("watcher got %s, want COMPLETED", r.State)
		}
	case <-watchCtx.Done():
		t.Error("watcher not told the lost run completed")
	}
	if err := <-done; err != nil {
		t.Errorf("watch: %v", err)
	}
	if n := metricValue(t, m.Registry, "sopilot_run_state_transitions_total", "state", "COMPLETED"); n != 1 {
		t.Errorf("COMPLETED transitions = %v, want 1", n)
	}
	active, _ := fx.store.ActiveRuns(ctx)
	if len(active) != 1 || active[0].ID != runs[1].ID {
		t.Errorf("active runs = %d, want only the revived running one", len(active))
	}
	// The revived running run is tracked normally again.
	fx.slurm.set(runs[1].SlurmJobID, func(j *scheduler.JobStatus) { j.State, j.ExitCode = "COMPLETED", 0 })
	fx.pollFor(t, 5*time.Second)
	if got := fx.get(t, runs[1].ID); got.State != run.StateCompleted {
		t.Errorf("revived run = %s, want COMPLETED", got.State)
	}
}

// A restarted controller keeps looking for runs lost within the window,
// and stops after it.
func TestLostRunsAreRecheckedAfterRestartWithinTheWindow(t *testing.T) {
	fx, _, _, _ := newOutageFixture(t)
	runs := fx.startRunning(t, "a")
	fx.slurm.forget(runs[0].SlurmJobID)
	fx.pollFor(t, 330*time.Second)
	if got := fx.get(t, runs[0].ID); got.State != run.StateLost {
		t.Fatalf("%s, want LOST", got.State)
	}
	restart := func() {
		fx.svc = New(Config{PollInterval: 5 * time.Second, MinJobAge: 300 * time.Second, LostRecheckWindow: time.Hour, DefaultWorkDir: "/work", Now: fx.clock},
			fx.store, fx.slurm, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	}
	restart()
	fx.pollFor(t, 5*time.Second)
	if got := fx.slurm.lastJobIDs; len(got) != 1 || got[0] != runs[0].SlurmJobID {
		t.Fatalf("restarted tracker asked for %v, want the lost job %s", got, runs[0].SlurmJobID)
	}
	fx.advance(2 * time.Hour)
	restart()
	calls := fx.slurm.jobsCalls
	fx.pollFor(t, 5*time.Second)
	if fx.slurm.jobsCalls != calls {
		t.Errorf("a run lost 2 h ago is still looked for with a 1 h window")
	}
}

// Adoption after a crash reads the same listing: on an empty answer from a
// slurmctld that is down it neither submits again nor marks LOST.
func TestAdoptionNeverActsOnAnUntrustedListing(t *testing.T) {
	fx, probe, _, _ := newOutageFixture(t)
	ctx := context.Background()
	// One run Slurm accepted before the crash, with its id recorded, and
	// one whose job id was not recorded.
	running := fx.startRunning(t, "running")[0]
	orphan := &run.Run{ID: "r-orphan", RequestID: "req-orphan", Spec: seedSpec(), State: run.StatePending,
		CreateTime: fx.clock(), UpdateTime: fx.clock(), OutputPath: "/work/x-%j.out"}
	orphan.Spec.Normalize()
	if _, _, err := fx.store.CreateRun(ctx, orphan); err != nil {
		t.Fatal(err)
	}
	orphanJob, _ := fx.slurm.Submit(ctx, scheduler.JobSpec{Name: "x", Comment: CommentPrefix + orphan.ID})
	submitted := len(fx.slurm.submitted)

	// slurmctld down, listings empty, probe failing: nothing happens.
	fx.slurm.down(true)
	probe.set(errCtldDown)
	fx.svc.ready.Probe(ctx)
	fx.pollFor(t, 2*time.Minute)
	if len(fx.slurm.submitted) != submitted {
		t.Fatalf("%d submissions during the outage", len(fx.slurm.submitted)-submitted)
	}
	if got := fx.get(t, orphan.ID); got.State != run.StatePending || got.Submitted() {
		t.Fatalf("orphan during the outage = %s job %q", got.State, got.SlurmJobID)
	}
	// Even with the probe fooled, an empty listing while a job was listed
	// recently is not believed.
	probe.set(nil)
	fx.svc.ready.Probe(ctx)
	fx.pollFor(t, 10*time.Second)
	if len(fx.slurm.submitted) != submitted || fx.get(t, orphan.ID).State != run.StatePending {
		t.Fatalf("acted on an empty listing while run %s was listed recently", running.ID)
	}
	// Back: the orphan's job is adopted, nothing is submitted twice.
	fx.slurm.down(false)
	fx.pollFor(t, 5*time.Second)
	if got := fx.get(t, orphan.ID); got.SlurmJobID != orphanJob {
		t.Errorf("orphan = job %q, want adopted %s", got.SlurmJobID, orphanJob)
	}
	if len(fx.slurm.submitted) != submitted {
		t.Errorf("%d extra submissions", len(fx.slurm.submitted)-submitted)
	}
}

// A young unconfirmed run is submitted again only on a trusted listing with
// slurmctld confirmed up.
func TestUnconfirmedRunResubmittedOnlyWhenSlurmctldIsConfirmed(t *testing.T) {
	fx, probe, _, _ := newOutageFixture(t)
	fx.slurm.submitErr = fmt.Errorf("sbatch: unable to contact slurm controller: %w", scheduler.ErrUnavailable)
	probe.set(errCtldDown)
	fx.svc.ready.Probe(context.Background())
	r, err := fx.svc.Create(context.Background(), seedSpec(), "during-outage")
	if err != nil {
		t.Fatalf("CreateRun with slurmctld unreachable: %v, want the run recorded and deferred", err)
	}
	fx.slurm.submitErr = nil
	fx.slurm.down(true)
	fx.pollFor(t, 60*time.Second)
	if n := len(fx.slurm.submitted); n != 0 {
		t.Fatalf("%d submissions while slurmctld was unreachable", n)
	}
	fx.slurm.down(false)
	probe.set(nil)
	fx.svc.ready.Probe(context.Background())
	fx.pollFor(t, 15*time.Second)
	got := fx.get(t, r.ID)
	if !got.Submitted() || len(fx.slurm.submitted) != 1 {
		t.Fatalf("after slurmctld came back: run %+v, %d submissions; want exactly 1", got, len(fx.slurm.submitted))
	}
}

func TestReadinessClassifiesProbes(t *testing.T) {
	misconfigured := errors.New("slurmrestd GET ping: HTTP 404")
	tests := []struct {
		name   string
		err    error
		want   BackendState
		reason string
		gauge  float64
	}{
		{name: "ok", err: nil, want: BackendReady, gauge: 1},
		{name: "slurmctld down", err: errCtldDown, want: BackendUnreachable, reason: "slurmctld unreachable: scontrol ping", gauge: 0},
		{name: "no answer in time is unreachable", err: fmt.Errorf("scontrol: %w", context.DeadlineExceeded), want: BackendUnreachable, reason: "slurmctld unreachable: scontrol: context deadline exceeded", gauge: 0},
		{name: "rejected means slurmctld answered", err: fmt.Errorf("x: %w", scheduler.ErrRejected), want: BackendReady, gauge: 1},
		{name: "anything else is misconfiguration", err: misconfigured, want: BackendMisconfigured, reason: "slurm backend misconfigured: slurmrestd GET ping: HTTP 404", gauge: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := metrics.NewController()
			probe := &fakeProbe{err: tc.err}
			rd, err := NewReadiness(probe, ReadinessConfig{}, slog.New(slog.NewTextHandler(io.Discard, nil)), m.Registry)
			if err != nil {
				t.Fatal(err)
			}
			var changes []BackendStatus
			rd.OnChange(func(s BackendStatus) { changes = append(changes, s) })
			got := rd.Probe(context.Background())
			if got.State != tc.want || !strings.HasPrefix(got.Reason, tc.reason) || (tc.reason == "" && got.Reason != "") {
				t.Errorf("status = %v %q, want %v %q...", got.State, got.Reason, tc.want, tc.reason)
			}
			if len(changes) != 2 || changes[0].State != BackendUnknown || changes[1].State != tc.want {
				t.Errorf("OnChange saw %+v", changes)
			}
			if v := metricValue(t, m.Registry, "sopilot_slurm_backend_ready"); v != tc.gauge {
				t.Errorf("sopilot_slurm_backend_ready = %v, want %v", v, tc.gauge)
			}
			if v := metricValue(t, m.Registry, "sopilot_slurm_backend_state", "state", tc.want.String()); v != 1 {
				t.Errorf("sopilot_slurm_backend_state{state=%q} = %v, want 1", tc.want, v)
			}
		})
	}
}

// A misconfigured backend: CreateRun answers FAILED_PRECONDITION and
// records nothing. Unreachable: the run is recorded and deferred, never
// FAILED. A submit error that is not a refusal never fails a run.
func TestCreateRunAndBackendReadiness(t *testing.T) {
	ctx := context.Background()
	t.Run("misconfigured", func(t *testing.T) {
		fx, probe, _, _ := newOutageFixture(t)
		probe.set(errors.New("slurmrest: HTTP 401: token refused"))
		fx.svc.ready.Probe(ctx)
		_, err := fx.svc.Create(ctx, seedSpec(), "k")
		if !errors.Is(err, ErrFailedPrecondition) || !errors.Is(err, ErrBackendMisconfigured) || !strings.Contains(err.Error(), "token refused") {
			t.Fatalf("err = %v, want FAILED_PRECONDITION naming the cause", err)
		}
		runs, _, _ := fx.store.ListRuns(ctx, store.ListQuery{})
		if len(runs) != 0 || len(fx.slurm.submitted) != 0 {
			t.Errorf("%d runs recorded, %d submitted", len(runs), len(fx.slurm.submitted))
		}
		probe.set(nil)
		fx.svc.ready.Probe(ctx)
		if _, err := fx.svc.Create(ctx, seedSpec(), "k"); err != nil {
			t.Errorf("after the fix: %v", err)
		}
	})
	for name, submitErr := range map[string]error{
		"unavailable": fmt.Errorf("sbatch: %w", scheduler.ErrUnavailable),
		"other error": errors.New("slurmrestd POST job/submit: HTTP 404"),
	} {
		t.Run("submit error "+name, func(t *testing.T) {
			fx, _, _, _ := newOutageFixture(t)
			fx.slurm.submitErr = submitErr
			r, err := fx.svc.Create(ctx, seedSpec(), "k")
			if err != nil {
				t.Fatalf("err = %v, want the run deferred", err)
			}
			if r.State != run.StatePending || strings.Contains(r.Reason, "refused") {
				t.Errorf("run = %s %q", r.State, r.Reason)
			}
		})
	}
}

// slurmctld killed before it saved its state forgets recent jobs and hands
// their ids out again: a listed job whose comment names another run is not
// this run's job, whatever its id.
func TestReusedJobIDIsNotTakenForTheRunsJob(t *testing.T) {
	fx, _, _, _ := newOutageFixture(t)
	runs := fx.startRunning(t, "mine", "other")
	fx.slurm.set(runs[0].SlurmJobID, func(j *scheduler.JobStatus) {
		j.State, j.ExitCode, j.Comment = "FAILED", 1, CommentPrefix+"r-a-newer-run"
	})
	fx.pollFor(t, 5*time.Second)
	if got := fx.get(t, runs[0].ID); got.State != run.StateRunning {
		t.Fatalf("run took the state of another job with its old id: %s", got.State)
	}
	fx.pollFor(t, 320*time.Second)
	if got := fx.get(t, runs[0].ID); got.State != run.StateLost {
		t.Errorf("run whose job id now names another job = %s, want LOST", got.State)
	}
	if got := fx.get(t, runs[1].ID); got.State != run.StateRunning {
		t.Errorf("other run = %s, want RUNNING", got.State)
	}
}

func TestReadinessNamesTheBackendOnceItAnswers(t *testing.T) {
	m := metrics.NewController()
	probe := &fakeProbe{}
	rd, err := NewReadiness(probe, ReadinessConfig{Describe: func() string { return "rest v0.0.45" }},
		slog.New(slog.NewTextHandler(io.Discard, nil)), m.Registry)
	if err != nil {
		t.Fatal(err)
	}
	got := rd.Probe(context.Background())
	if got.Backend != "rest v0.0.45" || got.String() != "slurm backend ready (rest v0.0.45)" {
		t.Errorf("status = %+v (%q), want backend rest v0.0.45", got, got.String())
	}
	if v := metricValue(t, m.Registry, "sopilot_slurm_backend_info", "backend", "rest v0.0.45"); v != 1 {
		t.Errorf("sopilot_slurm_backend_info{backend=\"rest v0.0.45\"} = %v, want 1", v)
	}
	probe.mu.Lock()
	probe.err = fmt.Errorf("slurmrestd: %w", scheduler.ErrUnavailable)
	probe.mu.Unlock()
	got = rd.Probe(context.Background())
	if got.Backend != "" || !strings.HasPrefix(got.String(), "slurm backend unreachable: slurmctld unreachable: ") {
		t.Errorf("after a failed probe: %+v (%q)", got, got.String())
	}
}

// While the tracker's own listings succeed, the periodic probe costs
// slurmctld nothing; once they stop, probing resumes.
func TestReadinessSkipsProbesWhileTheTrackerIsAnswered(t *testing.T) {
	probe := &fakeProbe{}
	rd, err := NewReadiness(probe, ReadinessConfig{Interval: 10 * time.Millisecond}, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rd.Run(ctx) }()
	defer func() { cancel(); <-done }()
	calls := func() int { probe.mu.Lock(); defer probe.mu.Unlock(); return probe.calls }
	testwait.Within(t, 5*time.Second, "first probe", func() bool { return rd.Status().Ready() })
	start := calls()
	for deadline := time.Now().Add(300 * time.Millisecond); time.Now().Before(deadline); {
		rd.Answered()
		time.Sleep(time.Millisecond)
	}
	if n := calls() - start; n > 1 {
		t.Errorf("%d probes while the tracker was answered, want at most 1", n)
	}
	start = calls()
	testwait.Within(t, 5*time.Second, "probes again", func() bool { return calls() >= start+3 })
}

func TestReadinessNamesTheSlurmVersions(t *testing.T) {
	versions := "Slurm tools 24.11.5, slurmctld 25.11.3"
	rd, err := NewReadiness(&fakeProbe{}, ReadinessConfig{
		Describe: func() string { return "cli" },
		Versions: func() string { return versions },
	}, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	got := rd.Probe(context.Background())
	if want := "slurm backend ready (cli; Slurm tools 24.11.5, slurmctld 25.11.3)"; got.String() != want {
		t.Errorf("status = %q, want %q", got.String(), want)
	}
	// slurmctld upgraded under the controller: the next probe says so.
	versions = "Slurm tools 24.11.5, slurmctld 26.05.1"
	if got = rd.Probe(context.Background()); got.Versions != versions {
		t.Errorf("after the upgrade Versions = %q, want %q", got.Versions, versions)
	}
}
