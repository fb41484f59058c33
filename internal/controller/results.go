package controller

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/sopilot/sopilot/internal/results"
	"github.com/sopilot/sopilot/internal/run"
	"github.com/sopilot/sopilot/internal/scheduler"
	"github.com/sopilot/sopilot/internal/store"
)

// ResultsStore keeps runs' per-sample results (implemented by
// internal/store).
type ResultsStore interface {
	// PutResults replaces the run's results atomically; store.ErrNotFound
	// if the run does not exist.
	PutResults(ctx context.Context, runID string, set *results.Set) error
	// GetResults returns them; store.ErrNoResults (which is also
	// store.ErrNotFound) if the run has none.
	GetResults(ctx context.Context, runID string) (*results.Set, error)
}

// maxResultsReason bounds the "results: ..." text a failed pickup leaves in
// a run's reason.
const maxResultsReason = 512

// ReportResults stores set as the results of run runID, replacing any it
// had. It is allowed in every state: a job typically reports from inside
// itself while RUNNING, and a tool may report for a run that ended long
// ago. If the run also has a results_path, the file picked up when it
// completes replaces what was reported before. ErrNotFound if there is no
// such run.
func (s *Service) ReportResults(ctx context.Context, runID string, set *results.Set) error {
	if err := s.store.PutResults(ctx, runID, set); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("run %q: %w", runID, ErrNotFound)
		}
		return fmt.Errorf("store results of run %s: %w", runID, err)
	}
	s.log.Info("results stored", "run_id", runID, "source", "api", "samples", set.Len(), "metrics", len(set.Metrics()), "run_metrics", len(set.RunMetrics()))
	return nil
}

// Results returns the results of run runID; ErrNotFound if there is no such
// run, and store.ErrNoResults if it has none.
func (s *Service) Results(ctx context.Context, runID string) (*results.Set, error) {
	set, err := s.store.GetResults(ctx, runID)
	switch {
	case errors.Is(err, store.ErrNoResults):
		return nil, err // names the run already
	case errors.Is(err, store.ErrNotFound):
		return nil, fmt.Errorf("run %q: %w", runID, ErrNotFound)
	}
	return set, err
}

// pickUpResults reads and stores the results file of every run that this
// poll's observations complete and that has a results_path. It runs before
// the poll commits the new states, so a controller that crashes in between
// finds the runs still active and picks the files up again on its next
// poll (PutResults replaces, so twice is harmless); after the state commit
// nothing would remind it. A missing or malformed file does not stop
// tracking: the returned map holds "results: <why>" for the run's reason,
// which notePickup sets when the run's COMPLETED state is committed.
func (s *Service) pickUpResults(ctx context.Context, runs []*run.Run, jobs map[string]scheduler.JobStatus) map[string]string {
	var failed map[string]string
	for _, r := range runs {
		j, ok := jobs[r.SlurmJobID]
		if !ok || r.Spec.ResultsPath == "" || r.State.Terminal() {
			continue
		}
		if st, _ := run.FromSlurm(j.State); st != run.StateCompleted {
			continue
		}
		set, err := readResultsFile(r.Spec.ResultsPath)
		if err == nil {
			err = s.store.PutResults(ctx, r.ID, set)
		}
		if err != nil {
			if ctx.Err() != nil {
				// Shutting down: the state update fails too, and the next
				// start tries again.
				return failed
			}
			s.log.Warn("results file not stored; the run completes without results", "run_id", r.ID, "results_path", r.Spec.ResultsPath, "err", err)
			if failed == nil {
				failed = map[string]string{}
			}
			reason := "results: " + err.Error()
			if len(reason) > maxResultsReason {
				reason = reason[:maxResultsReason-3] + "..."
			}
			failed[r.ID] = reason
			continue
		}
		s.log.Info("results stored", "run_id", r.ID, "source", "results_path", "results_path", r.Spec.ResultsPath,
			"samples", set.Len(), "metrics", len(set.Metrics()), "run_metrics", len(set.RunMetrics()))
	}
	return failed
}

// notePickup records a failed pickup in the run's reason once the run has
// reached COMPLETED, and reports whether it changed r. It runs inside the
// store transaction of refresh.
func notePickup(r *run.Run, failed map[string]string) bool {
	reason, ok := failed[r.ID]
	if !ok || r.State != run.StateCompleted || r.Reason == reason {
		return false
	}
	r.Reason = reason
	return true
}

// readResultsFile parses the results file a job wrote on the shared
// filesystem. Anything but a regular file is refused before it is opened:
// opening a FIFO would block the tracker.
func readResultsFile(path string) (*results.Set, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file (%s)", path, fi.Mode().Type())
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	set, err := results.Parse(f, results.Limits{})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return set, nil
}
