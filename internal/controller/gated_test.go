package controller

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sopilot/sopilot/internal/metrics"
	"github.com/sopilot/sopilot/internal/run"
	"github.com/sopilot/sopilot/internal/scheduler"
	"github.com/sopilot/sopilot/internal/store"
)

// gatedSlurm is fakeSlurm with a gated submission that behaves as the CLI
// backend's: sbatch starts before the gate is called, and a job comes to
// exist only if the gate returned nil.
type gatedSlurm struct {
	*fakeSlurm
	gmu       sync.Mutex
	started   int // SubmitGated calls: sbatch started
	withdrawn int // of those, refused by their gate
}

func (g *gatedSlurm) SubmitGated(ctx context.Context, job scheduler.JobSpec, gate func() error) (string, error) {
	g.gmu.Lock()
	g.started++
	g.gmu.Unlock()
	if err := gate(); err != nil {
		g.gmu.Lock()
		g.withdrawn++
		g.gmu.Unlock()
		return "", fmt.Errorf("fake sbatch: withdrawn: %w", err)
	}
	return g.Submit(ctx, job)
}

func (g *gatedSlurm) counts() (started, withdrawn int) {
	g.gmu.Lock()
	defer g.gmu.Unlock()
	return g.started, g.withdrawn
}

// failingCreates fails the recording commit while fail is set.
type failingCreates struct {
	*store.Store
	fail error
}

func (f *failingCreates) CreateRun(ctx context.Context, r *run.Run) (*run.Run, bool, error) {
	if f.fail != nil {
		return nil, false, f.fail
	}
	return f.Store.CreateRun(ctx, r)
}

// gatedService is the fixture's service rebuilt on st and backend, with
// metrics when withMetrics.
func gatedService(fx *fixture, st Store, backend scheduler.Backend, withMetrics bool) *metrics.Controller {
	var m *metrics.Controller
	if withMetrics {
		m = metrics.NewController()
	}
	fx.svc = New(Config{PollInterval: time.Second, MinJobAge: 300 * time.Second, DefaultWorkDir: "/work", Now: fx.clock},
		st, backend, slog.New(slog.NewTextHandler(io.Discard, nil)), m)
	return m
}

func TestCreateRecordFailureSubmitsNothing(t *testing.T) {
	for _, tt := range []struct {
		name           string
		gated, metrics bool
	}{
		{"plain backend", false, false},
		{"gated backend", true, false},
		// With metrics the backend is wrapped (instrumented): the wrapper
		// must still offer the gated submission.
		{"gated backend, instrumented", true, true},
		{"plain backend, instrumented", false, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fx := newFixture(t)
			gs := &gatedSlurm{fakeSlurm: fx.slurm}
			var backend scheduler.Backend = fx.slurm
			if tt.gated {
				backend = gs
			}
			diskFull := errors.New("write runs.db: no space left on device")
			st := &failingCreates{Store: fx.store, fail: diskFull}
			m := gatedService(fx, st, backend, tt.metrics)
			ctx := context.Background()

			r, err := fx.svc.Create(ctx, seedSpec(), "req-full")
			if !errors.Is(err, diskFull) || !strings.HasPrefix(err.Error(), "record run: ") || r != nil {
				t.Fatalf("Create = %v, %v; want no run and the store's error", r, err)
			}
			if n := len(fx.slurm.submitted); n != 0 {
				t.Errorf("%d jobs submitted although the run was not recorded", n)
			}
			if runs, _, _ := fx.store.ListRuns(ctx, store.ListQuery{}); len(runs) != 0 {
				t.Errorf("%d runs stored", len(runs))
			}
			started, withdrawn := gs.counts()
			if want := map[bool]int{true: 1, false: 0}[tt.gated]; started != want || withdrawn != want {
				t.Errorf("gated submissions: %d started, %d withdrawn; want %d and %d", started, withdrawn, want, want)
			}
			if m != nil {
				if got := metricValue(t, m.Registry, "sopilot_runs_created_total", "result", "created"); got != 0 {
					t.Errorf("runs created %v, want 0", got)
				}
			}

			// The store recovers; the client's retry makes the run and its one job.
			st.fail = nil
			r, err = fx.svc.Create(ctx, seedSpec(), "req-full")
			if err != nil || r.SlurmJobID != "101" || len(fx.slurm.submitted) != 1 {
				t.Fatalf("retry: run %+v, err %v, %d jobs; want job 101, the only one", r, err, len(fx.slurm.submitted))
			}
			if got := fx.slurm.submitted[0].Comment; got != CommentPrefix+r.ID {
				t.Errorf("job comment %q, want the recorded run's %q", got, CommentPrefix+r.ID)
			}
			if started, _ := gs.counts(); tt.gated && started != 2 {
				t.Errorf("%d gated submissions started, want 2", started)
			}
			if m != nil {
				if got := metricValue(t, m.Registry, "sopilot_scheduler_requests_total", "backend", "fake", "op", "submit", "result", "ok"); got != 1 {
					t.Errorf("submit requests observed %v, want 1", got)
				}
			}
		})
	}
}

func TestCreateDuplicateWithdrawsTheSubmission(t *testing.T) {
	fx := newFixture(t)
	gs := &gatedSlurm{fakeSlurm: fx.slurm}
	m := gatedService(fx, fx.store, gs, true)
	ctx := context.Background()

	first, err := fx.svc.Create(ctx, seedSpec(), "req-dup")
	if err != nil || first.SlurmJobID != "101" {
		t.Fatalf("first Create = %+v, %v", first, err)
	}
	again, err := fx.svc.Create(ctx, seedSpec(), "req-dup")
	if err != nil || again.ID != first.ID || again.SlurmJobID != "101" {
		t.Fatalf("retry = %+v, %v; want run %s with job 101", again, err, first.ID)
	}
	other := seedSpec()
	other.Nodes = 1
	if _, err := fx.svc.Create(ctx, other, "req-dup"); !errors.Is(err, ErrRequestIDReused) {
		t.Errorf("reuse with another spec: err = %v, want ErrRequestIDReused", err)
	}
	if n := len(fx.slurm.submitted); n != 1 {
		t.Errorf("%d jobs for one request_id, want 1", n)
	}
	if started, withdrawn := gs.counts(); started != 3 || withdrawn != 2 {
		t.Errorf("gated submissions: %d started, %d withdrawn; want 3 and 2", started, withdrawn)
	}
	for result, want := range map[string]float64{"created": 1, "deduplicated": 1, "rejected": 1} {
		if got := metricValue(t, m.Registry, "sopilot_runs_created_total", "result", result); got != want {
			t.Errorf("runs %s: %v, want %v", result, got, want)
		}
	}
	// Only the one real submission is a Slurm request.
	if got := metricValue(t, m.Registry, "sopilot_scheduler_requests_total", "backend", "fake", "op", "submit", "result", "ok"); got != 1 {
		t.Errorf("submit requests observed %v, want 1", got)
	}
	if runs, _, _ := fx.store.ListRuns(ctx, store.ListQuery{}); len(runs) != 1 {
		t.Errorf("%d runs stored, want 1", len(runs))
	}
}

// Slurm's answers after an opened gate are handled as before.
func TestCreateGatedSlurmOutcomes(t *testing.T) {
	fx := newFixture(t)
	gs := &gatedSlurm{fakeSlurm: fx.slurm}
	gatedService(fx, fx.store, gs, false)
	ctx := context.Background()

	fx.slurm.submitErr = fmt.Errorf("sbatch: invalid partition name specified: %w", scheduler.ErrRejected)
	if _, err := fx.svc.Create(ctx, seedSpec(), "req-refused"); !errors.Is(err, ErrFailedPrecondition) {
		t.Fatalf("refused: err = %v, want ErrFailedPrecondition", err)
	}
	fx.slurm.submitErr = fmt.Errorf("sbatch: %w: connection refused", scheduler.ErrUnavailable)
	r, err := fx.svc.Create(ctx, seedSpec(), "req-down")
	if err != nil || r.State != run.StatePending || r.Submitted() || !strings.HasPrefix(r.Reason, "waiting to submit: ") {
		t.Fatalf("unavailable: run %+v, err %v; want a pending run waiting to submit", r, err)
	}
	runs, _, _ := fx.store.ListRuns(ctx, store.ListQuery{})
	states := map[string]run.State{}
	for _, x := range runs {
		states[x.RequestID] = x.State
	}
	if len(runs) != 2 || states["req-down"] != run.StatePending {
		t.Errorf("history %v, want the refused run and the pending one", states)
	}
	// The refused run freed its request_id, kept its FAILED record.
	for _, x := range runs {
		if x.ID != r.ID && x.State != run.StateFailed {
			t.Errorf("refused run %s is %s, want FAILED", x.ID, x.State)
		}
	}
}
