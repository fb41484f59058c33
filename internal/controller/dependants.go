package controller

import (
	"context"
	"errors"
	"fmt"

	"github.com/sopilot/sopilot/internal/run"
	"github.com/sopilot/sopilot/internal/store"
)

// cancelDependants cancels the runs that wait for a run that ended other
// than COMPLETED: their afterok dependency can never be met, and Slurm
// would keep their jobs PENDING (DependencyNeverSatisfied) until someone
// cancels them. Each is stored CANCELLED with the reason "dependency
// failed: <run> ended <STATE>", so run get/list show why. A dependency that
// is LOST may still be found, so it is left alone. A cancelled run's own
// dependants follow in the next pass. It is called by Poll, under tmu.
func (s *Service) cancelDependants(ctx context.Context) error {
	var errs []error
	for pass := 0; ; pass++ {
		active, err := s.store.ActiveRuns(ctx)
		if err != nil {
			return fmt.Errorf("load active runs: %w", err)
		}
		cancelled := 0
		// A dependency among the active runs has not ended: only the
		// others are read from the store.
		isActive := make(map[string]bool, len(active))
		for _, r := range active {
			isActive[r.ID] = true
		}
		for _, r := range active {
			if len(r.Spec.DependsOn) == 0 || s.isInflight(r.ID) {
				continue
			}
			dep, err := s.failedDependency(ctx, r, isActive)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if dep == nil {
				continue
			}
			if err := s.cancelForDependency(ctx, r, dep); err != nil {
				errs = append(errs, err)
				continue
			}
			cancelled++
		}
		// Each pass ends at least one run, so active runs bound the passes.
		if cancelled == 0 || pass >= len(active) {
			return errors.Join(errs...)
		}
	}
}

// failedDependency is r's first dependency that ended other than
// COMPLETED (and not LOST), or nil. Dependencies in active are skipped
// without a store read: they have not ended.
func (s *Service) failedDependency(ctx context.Context, r *run.Run, active map[string]bool) (*run.Run, error) {
	for _, id := range r.Spec.DependsOn {
		if active[id] {
			continue
		}
		dep, err := s.store.GetRun(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("look up dependency %s of run %s: %w", id, r.ID, err)
		}
		if dep.State.Terminal() && dep.State != run.StateCompleted && dep.State != run.StateLost {
			return dep, nil
		}
	}
	return nil, nil
}

func (s *Service) cancelForDependency(ctx context.Context, r, dep *run.Run) error {
	if r.Submitted() {
		if err := s.backend.Cancel(ctx, r.SlurmJobID); err != nil {
			return fmt.Errorf("cancel run %s (slurm job %s) after its dependency %s ended %s: %w", r.ID, r.SlurmJobID, dep.ID, dep.State, err)
		}
	}
	now := s.cfg.Now().UTC()
	reason := fmt.Sprintf("dependency failed: %s ended %s", dep.ID, dep.State)
	updated, err := s.store.UpdateRun(ctx, r.ID, func(x *run.Run) bool {
		if x.State.Terminal() {
			return false
		}
		x.State = run.StateCancelled
		if x.Submitted() {
			x.SlurmState = "CANCELLED" // what scancel just made it
		}
		x.Reason = reason
		x.EndTime, x.UpdateTime = now, now
		return true
	})
	if err != nil {
		return fmt.Errorf("store run %s cancelled: %w", r.ID, err)
	}
	if updated.State == run.StateCancelled && updated.Reason == reason {
		s.log.Info("run cancelled: its dependency failed", "run_id", r.ID, "slurm_job_id", r.SlurmJobID, "dependency", dep.ID, "dependency_state", dep.State.String())
		s.countTransitions(updated.State)
		s.hub.publish(updated)
	}
	return nil
}
