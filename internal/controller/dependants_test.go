package controller

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/sopilot/sopilot/internal/run"
	"github.com/sopilot/sopilot/internal/scheduler"
)

// A pipeline a -> b -> c, and d after a and e: when a fails, b is cancelled
// in Slurm and stored CANCELLED with the reason, then c (whose dependency
// b is now CANCELLED) in the same poll; d, which also waits for a, too. A
// run whose dependency COMPLETED keeps waiting.
func TestDependantsOfAFailedRunAreCancelled(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	create := func(key string, deps ...string) *run.Run {
		t.Helper()
		spec := seedSpec()
		spec.DependsOn = deps
		r, err := fx.svc.Create(ctx, spec, key)
		if err != nil {
			t.Fatalf("create %s: %v", key, err)
		}
		return r
	}
	a := create("a")
	e := create("e")
	b := create("b", a.ID)
	c := create("c", b.ID)
	d := create("d", a.ID, e.ID)
	for _, r := range []*run.Run{b, c, d} {
		fx.slurm.set(r.SlurmJobID, func(j *scheduler.JobStatus) { j.State, j.Reason = "PENDING", "Dependency" })
	}
	fx.finish(e, "COMPLETED")
	fx.advance(time.Second)
	if err := fx.svc.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if got := fx.get(t, d.ID); got.State != run.StatePending {
		t.Fatalf("d after e COMPLETED: %s (%s), want PENDING", got.State, got.Reason)
	}

	fx.finish(a, "FAILED")
	fx.advance(time.Second)
	if err := fx.svc.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		r      *run.Run
		reason string
	}{
		{b, "dependency failed: " + a.ID + " ended FAILED"},
		{c, "dependency failed: " + b.ID + " ended CANCELLED"},
		{d, "dependency failed: " + a.ID + " ended FAILED"},
	} {
		got := fx.get(t, tc.r.ID)
		if got.State != run.StateCancelled || got.SlurmState != "CANCELLED" || got.Reason != tc.reason || got.EndTime.IsZero() {
			t.Errorf("run %s: %s %q (end %v); want CANCELLED %q", tc.r.ID, got.State, got.Reason, got.EndTime, tc.reason)
		}
		if !slices.Contains(fx.slurm.cancelled, tc.r.SlurmJobID) {
			t.Errorf("slurm job %s of run %s not cancelled in Slurm (cancelled: %v)", tc.r.SlurmJobID, tc.r.ID, fx.slurm.cancelled)
		}
	}
	if slices.Contains(fx.slurm.cancelled, e.SlurmJobID) || slices.Contains(fx.slurm.cancelled, a.SlurmJobID) {
		t.Errorf("cancelled %v: more than the dependants", fx.slurm.cancelled)
	}
}
