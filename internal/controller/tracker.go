package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sopilot/sopilot/internal/run"
	"github.com/sopilot/sopilot/internal/scheduler"
)

// Run is the tracker: it polls Slurm for every active run once per
// PollInterval until ctx ends. The first poll happens at once, so a
// restarted controller reconciles before its first tick.
func (s *Service) Run(ctx context.Context) error {
	s.log.Info("tracker started", "poll_interval", s.cfg.PollInterval, "backend", s.backend.Name())
	t := time.NewTicker(s.cfg.PollInterval)
	defer t.Stop()
	for {
		if err := s.Poll(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("poll failed; will retry", "err", err)
		}
		select {
		case <-ctx.Done():
			s.log.Info("tracker stopped")
			return nil
		case <-t.C:
		}
	}
}

// Poll refreshes every active run: one Slurm query for the submitted ones,
// and one more only when some submission is unconfirmed.
func (s *Service) Poll(ctx context.Context) error {
	start := time.Now()
	active, err := s.store.ActiveRuns(ctx)
	if err != nil {
		return fmt.Errorf("load active runs: %w", err)
	}
	var submitted, unconfirmed []*run.Run
	for _, r := range active {
		switch {
		case r.Submitted():
			submitted = append(submitted, r)
		case !s.isInflight(r.ID):
			unconfirmed = append(unconfirmed, r)
		}
	}
	var errs []error
	if _, err := s.refresh(ctx, submitted); err != nil {
		errs = append(errs, err)
	}
	if err := s.reconcileUnconfirmed(ctx, unconfirmed); err != nil {
		errs = append(errs, err)
	}
	if s.metrics != nil {
		s.metrics.PollDuration.Observe(time.Since(start).Seconds())
		s.metrics.ActiveRuns.Set(float64(len(active)))
		if len(errs) == 0 {
			s.metrics.LastPollSuccess.SetToCurrentTime()
		}
	}
	return errors.Join(errs...)
}

// refresh applies one batched Slurm query to runs and stores every change in
// one transaction. A job Slurm no longer lists ended while nobody watched
// (the controller was down longer than MinJobAge): its run becomes LOST.
func (s *Service) refresh(ctx context.Context, runs []*run.Run) ([]*run.Run, error) {
	if len(runs) == 0 {
		return nil, nil
	}
	ids := make([]string, 0, len(runs))
	runIDs := make([]string, 0, len(runs))
	for _, r := range runs {
		ids = append(ids, r.SlurmJobID)
		runIDs = append(runIDs, r.ID)
	}
	jobs, err := s.backend.Jobs(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("query %d jobs: %w", len(ids), err)
	}
	byID := make(map[string]scheduler.JobStatus, len(jobs))
	for _, j := range jobs {
		byID[j.JobID] = j
	}
	now := s.cfg.Now().UTC()
	// Before the states are committed: see pickUpResults.
	failedPickups := s.pickUpResults(ctx, runs, byID)
	var reached []run.State
	changed, err := s.store.UpdateRuns(ctx, runIDs, func(r *run.Run) bool {
		prev := r.State
		var ch bool
		if j, ok := byID[r.SlurmJobID]; ok {
			ch = r.Apply(observation(j), now)
		} else {
			ch = r.MarkLost(fmt.Sprintf("Slurm no longer knows job %s and its final state was never observed", r.SlurmJobID), now)
		}
		ch = notePickup(r, failedPickups) || ch
		if r.State != prev {
			reached = append(reached, r.State)
			if r.State.Terminal() {
				s.recordUsage(r)
			}
		}
		return ch
	})
	if err != nil {
		return nil, fmt.Errorf("store %d job states: %w", len(ids), err)
	}
	s.countTransitions(reached...)
	s.announce(changed)
	return changed, nil
}

// reconcileUnconfirmed deals with runs recorded before a crash (or a Slurm
// outage) whose submission was never confirmed; see the package comment.
func (s *Service) reconcileUnconfirmed(ctx context.Context, runs []*run.Run) error {
	if len(runs) == 0 {
		return nil
	}
	jobs, err := s.backend.FindByComment(ctx, CommentPrefix)
	if err != nil {
		return fmt.Errorf("look for unconfirmed submissions: %w", err)
	}
	byRun := make(map[string]scheduler.JobStatus, len(jobs))
	for _, j := range jobs {
		byRun[strings.TrimPrefix(j.Comment, CommentPrefix)] = j
	}
	var errs []error
	for _, r := range runs {
		if j, ok := byRun[r.ID]; ok {
			s.log.Info("adopting job submitted before a restart", "run_id", r.ID, "slurm_job_id", j.JobID)
			if _, err := s.recordSubmitted(ctx, r.ID, j.JobID); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		age := s.cfg.Now().Sub(r.CreateTime)
		if age >= s.cfg.MinJobAge {
			now := s.cfg.Now().UTC()
			updated, err := s.store.UpdateRun(ctx, r.ID, func(x *run.Run) bool {
				if x.Submitted() {
					return false
				}
				return x.MarkLost(fmt.Sprintf("submission was never confirmed and Slurm has no job for it after %s; not resubmitting, to avoid running it twice", age.Round(time.Second)), now)
			})
			if err != nil {
				errs = append(errs, err)
				continue
			}
			s.countTransitions(updated.State)
			s.announce([]*run.Run{updated})
			continue
		}
		if err := s.resubmit(ctx, r); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (s *Service) resubmit(ctx context.Context, r *run.Run) error {
	s.markInflight(r.ID, true)
	defer s.markInflight(r.ID, false)
	deps, err := s.resolveDependencies(ctx, r.Spec.DependsOn)
	if err != nil {
		_, ferr := s.failSubmit(ctx, r, err)
		return ferr
	}
	s.log.Info("submitting unconfirmed run", "run_id", r.ID)
	_, err = s.submit(ctx, r, deps)
	return err
}

func (s *Service) announce(changed []*run.Run) {
	for _, r := range changed {
		if r.State.Terminal() {
			s.log.Info("run ended", "run_id", r.ID, "state", r.State.String(), "exit_code", r.ExitCode, "reason", r.Reason)
		}
		s.hub.publish(r)
	}
}

func observation(j scheduler.JobStatus) run.Observation {
	return run.Observation{
		SlurmState: j.State,
		Reason:     j.Reason,
		NodeList:   j.Nodes,
		ExitCode:   j.ExitCode,
		ExitSignal: j.Signal,
		StartTime:  j.StartTime,
		EndTime:    j.EndTime,
	}
}

func (s *Service) countTransitions(states ...run.State) {
	if s.metrics == nil {
		return
	}
	for _, st := range states {
		s.metrics.RunTransitions.WithLabelValues(st.String()).Inc()
	}
}
