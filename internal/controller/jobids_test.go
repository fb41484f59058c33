package controller

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/sopilot/sopilot/internal/run"
	"github.com/sopilot/sopilot/internal/scheduler"
	"github.com/sopilot/sopilot/internal/store"
)

// CreateRun answers with the job id before it is written; every read shows
// it, and flush writes it.
func TestCreateAnswersBeforeTheJobIDIsWritten(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	r, err := fx.svc.Create(ctx, seedSpec(), "req-1")
	if err != nil {
		t.Fatal(err)
	}
	if r.SlurmJobID != "101" {
		t.Fatalf("answer has job %q, want 101", r.SlurmJobID)
	}
	stored, err := fx.store.GetRun(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if stored.Submitted() {
		t.Fatalf("job id already in the store (%q): CreateRun paid for a second commit", stored.SlurmJobID)
	}
	for name, read := range map[string]func() (*run.Run, error){
		"get": func() (*run.Run, error) { return fx.svc.Get(ctx, r.ID) },
		"list": func() (*run.Run, error) {
			rs, _, err := fx.svc.List(ctx, store.ListQuery{PageSize: 10})
			if err != nil || len(rs) != 1 {
				t.Fatalf("list: %v, %d runs", err, len(rs))
			}
			return rs[0], nil
		},
		"retry": func() (*run.Run, error) { return fx.svc.Create(ctx, seedSpec(), "req-1") },
	} {
		got, err := read()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got.SlurmJobID != "101" || got.OutputPath != r.OutputPath || !got.SubmitTime.Equal(r.SubmitTime) {
			t.Errorf("%s: job %q output %q submit %v, want the answer's %q %q %v", name, got.SlurmJobID, got.OutputPath, got.SubmitTime, r.SlurmJobID, r.OutputPath, r.SubmitTime)
		}
	}
	if err := fx.svc.jobs.flush(ctx); err != nil {
		t.Fatal(err)
	}
	if stored, err = fx.store.GetRun(ctx, r.ID); err != nil || stored.SlurmJobID != "101" || stored.OutputPath != r.OutputPath {
		t.Fatalf("after flush the store has %+v (%v)", stored, err)
	}
	if n := fx.svc.jobs.pendingCount(); n != 0 {
		t.Errorf("%d job ids still pending after flush", n)
	}
	if len(fx.slurm.submitted) != 1 {
		t.Errorf("%d jobs submitted, want 1", len(fx.slurm.submitted))
	}
}

// Any update of a run whose job id is pending writes the id with it: the
// tracker's batched update, or a cancel.
func TestUpdatesCarryThePendingJobID(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	a, err := fx.svc.Create(ctx, seedSpec(), "req-a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := fx.svc.Create(ctx, seedSpec(), "req-b")
	if err != nil {
		t.Fatal(err)
	}
	fx.slurm.set(a.SlurmJobID, func(j *scheduler.JobStatus) { j.State = "RUNNING" })
	if err := fx.svc.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := fx.store.GetRun(ctx, a.ID); got.SlurmJobID != a.SlurmJobID || got.State != run.StateRunning {
		t.Errorf("after a poll the store has job %q state %v, want %q RUNNING", got.SlurmJobID, got.State, a.SlurmJobID)
	}
	if got, _ := fx.store.GetRun(ctx, b.ID); got.SlurmJobID != b.SlurmJobID {
		t.Errorf("the poll's transaction did not write the unchanged run's job id: %q", got.SlurmJobID)
	}
	c, err := fx.svc.Create(ctx, seedSpec(), "req-c")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fx.svc.Cancel(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	got, _ := fx.store.GetRun(ctx, c.ID)
	if got.SlurmJobID != c.SlurmJobID || got.State != run.StateCancelled {
		t.Errorf("after cancel the store has job %q state %v, want %q CANCELLED", got.SlurmJobID, got.State, c.SlurmJobID)
	}
	if n := fx.svc.jobs.pendingCount(); n != 0 {
		t.Errorf("%d job ids still pending", n)
	}
}

// A crash before the job ids are written loses nothing: a new controller
// on the same store adopts every job by its comment (in one transaction)
// and submits nothing.
func TestJobIDsLostInACrashAreAdopted(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	var acked []*run.Run
	for i := range 3 {
		r, err := fx.svc.Create(ctx, seedSpec(), fmt.Sprintf("req-%d", i))
		if err != nil {
			t.Fatal(err)
		}
		acked = append(acked, r)
	}
	// The crash: this Service's memory is gone; a new one starts.
	restarted := New(Config{PollInterval: time.Second, MinJobAge: 300 * time.Second, DefaultWorkDir: "/work", Now: fx.clock},
		fx.store, fx.slurm, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if got, _ := restarted.Get(ctx, acked[0].ID); got.Submitted() {
		t.Fatalf("the restarted controller sees job %q before adopting it", got.SlurmJobID)
	}
	if err := restarted.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	for _, r := range acked {
		got, err := fx.store.GetRun(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.SlurmJobID != r.SlurmJobID || got.OutputPath != r.OutputPath {
			t.Errorf("run %s: adopted job %q output %q, want %q %q", r.ID, got.SlurmJobID, got.OutputPath, r.SlurmJobID, r.OutputPath)
		}
	}
	if len(fx.slurm.submitted) != len(acked) {
		t.Errorf("%d jobs submitted, want %d", len(fx.slurm.submitted), len(acked))
	}
}

// The tracker writes pending job ids on its own clock, and once more when
// it stops.
func TestTrackerWritesJobIDsWithinASecondAndAtStop(t *testing.T) {
	for _, tc := range []struct {
		name string
		stop bool
	}{{"within a second", false}, {"at stop", true}} {
		t.Run(tc.name, func(t *testing.T) {
			fx := newFixture(t)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- fx.svc.Run(ctx) }()
			r, err := fx.svc.Create(context.Background(), seedSpec(), "req-1")
			if err != nil {
				t.Fatal(err)
			}
			if tc.stop {
				cancel()
				if err := <-done; err != nil {
					t.Fatal(err)
				}
			}
			deadline := time.Now().Add(5 * time.Second)
			for {
				got, err := fx.store.GetRun(context.Background(), r.ID)
				if err != nil {
					t.Fatal(err)
				}
				if got.SlurmJobID == r.SlurmJobID {
					break
				}
				if tc.stop || time.Now().After(deadline) {
					t.Fatalf("job id %q not written (store has %q)", r.SlurmJobID, got.SlurmJobID)
				}
				time.Sleep(10 * time.Millisecond)
			}
			cancel()
			if !tc.stop {
				if err := <-done; err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}
