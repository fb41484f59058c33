package controller

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/sopilot/sopilot/internal/run"
	"github.com/sopilot/sopilot/internal/scheduler"
	"github.com/sopilot/sopilot/internal/store"
)

// Retries (docs/resilience.md). A run with a retry policy whose attempt
// ends for a cause the policy names gets a new attempt: a new Slurm job,
// submitted with the attempt number in its comment and the faulty nodes
// excluded. The steps, each stored before the next begins, are what keeps
// a retry from ever running one attempt twice:
//
//  1. BeginRetry is committed: the ended attempt moves into the run's
//     attempts (with CancelPending when its job still runs: a drain does
//     not stop a job), the run is PENDING with no job id.
//  2. The old job is cancelled, and CancelPending cleared.
//  3. Once the back-off has passed, SubmitBegan is committed, then the job
//     is submitted with the comment "sopilot:run=<id>;attempt=<n>".
//  4. Its job id is committed (recordSubmitted).
//
// A controller killed between 3 and 4 finds the job by its comment and
// attempt on restart (reconcileUnconfirmed) and adopts it; one killed
// before 3 knows that no job of the attempt exists and submits it.

// RetryGate says whether retries are paused: the remediation breaker,
// open when many nodes failed at once. Implemented over the monitor.
type RetryGate interface {
	RetriesPaused() (paused bool, why string)
}

// RetryBreakerConfig bounds how many retries the controller starts in a
// window, across all runs: a fault that takes many nodes at once is not
// one node's hardware, and retrying every run into it only burns the
// cluster's time.
type RetryBreakerConfig struct {
	// MaxRetries in Window (default 8); more are refused until the window
	// has moved on.
	MaxRetries int
	// Window (default 10 min).
	Window time.Duration
}

func (c *RetryBreakerConfig) setDefaults() {
	if c.MaxRetries <= 0 {
		c.MaxRetries = 8
	}
	if c.Window <= 0 {
		c.Window = 10 * time.Minute
	}
}

// RetryStore is the retry log the breaker counts (internal/store).
type RetryStore interface {
	PutRetry(ctx context.Context, e store.RetryEvent) error
	RetriesSince(ctx context.Context, since time.Time) ([]store.RetryEvent, error)
}

// Failpoints: Config.Failpoint is called with these names at the steps of
// a retry, so tests can kill the real binary there (cmd/controller).
const (
	// FailpointRetrySubmitted: the next attempt's job was accepted by
	// Slurm and its id is not yet stored.
	FailpointRetrySubmitted = "retry-submitted"
)

// SetRetryGate makes the controller refuse retries while g says so. Call
// before Run.
func (s *Service) SetRetryGate(g RetryGate) { s.gate = g }

// retryAllowed says whether one more retry may start now, and why not; a
// retry it allows is counted against the window.
// Dependency replacements are not retries of a fault and always may.
// It runs inside store transactions, so it reads only memory: loadRetries
// fills the window from the store first.
func (s *Service) retryAllowed(now time.Time) (bool, string) {
	if s.gate != nil {
		if paused, why := s.gate.RetriesPaused(); paused {
			return false, "the remediation breaker is open (" + why + ")"
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cut := now.Add(-s.cfg.RetryBreaker.Window)
	s.retryTimes = slices.DeleteFunc(s.retryTimes, func(t time.Time) bool { return t.Before(cut) })
	if len(s.retryTimes) >= s.cfg.RetryBreaker.MaxRetries {
		return false, fmt.Sprintf("the retry breaker is open: %d retries in the last %s", len(s.retryTimes), s.cfg.RetryBreaker.Window)
	}
	// Counted at once: the retries of one poll are decided together.
	s.retryTimes = append(s.retryTimes, now)
	return true, ""
}

// loadRetries fills the breaker's window from the store's retry log once,
// so a restarted controller does not forget the retries it just started.
func (s *Service) loadRetries(ctx context.Context) {
	s.mu.Lock()
	loaded := s.retriesLoaded
	s.mu.Unlock()
	rs, ok := s.store.(RetryStore)
	if loaded || !ok {
		return
	}
	evs, err := rs.RetriesSince(ctx, s.cfg.Now().Add(-s.cfg.RetryBreaker.Window))
	if err != nil {
		s.log.Warn("load the retry log; will try again", "err", err)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range evs {
		s.retryTimes = append(s.retryTimes, e.Time)
	}
	s.retriesLoaded = true
}

// noteRetry counts a retry that began against the breaker and logs it.
func (s *Service) noteRetry(ctx context.Context, r *run.Run) {
	a := r.Attempts[len(r.Attempts)-1]
	if a.Cause != run.CauseDependency {
		if rs, ok := s.store.(RetryStore); ok {
			if err := rs.PutRetry(ctx, store.RetryEvent{Time: r.AttemptTime, RunID: r.ID, Attempt: r.Attempt(), Cause: a.Cause.String(), Nodes: a.FaultyNodes}); err != nil {
				s.log.Warn("log retry", "run_id", r.ID, "err", err)
			}
		}
		if s.retriesTotal != nil {
			s.retriesTotal.WithLabelValues(a.Cause.String()).Inc()
		}
		s.countLost(r)
	}
	s.log.Info("run retrying", "run_id", r.ID, "attempt", r.Attempt(), "cause", a.Cause.String(), "ended_job", a.SlurmJobID,
		"faulty_nodes", a.FaultyNodes, "incident_id", a.IncidentID, "not_before", r.NotBefore)
}

// beginRetry applies a retry decision to r inside a store update.
func (s *Service) beginRetry(r *run.Run, cause run.Cause, faulty []string, incidentID string, endState run.State, cancel bool, now time.Time) {
	r.BeginRetry(cause, faulty, incidentID, endState, cancel, now)
	r.OutputPath = path.Join(r.Spec.OutputDirectory, r.Spec.JobName+"-%j.out")
	g := r.ComputeGoodput(now)
	r.Goodput = &g
}

// retryOnEnd decides, inside the tracker's store update, whether a run
// whose job just reached a terminal state gets another attempt. prev is
// the state before the observation. It reports whether a retry began.
func (s *Service) retryOnEnd(r *run.Run, prev run.State, now time.Time) bool {
	if prev.Terminal() || !r.State.Terminal() {
		return false
	}
	cause, ok := run.CauseOf(r.State)
	if !ok {
		return false
	}
	var faulty []string
	incident := ""
	if cause == run.CauseExitCode && len(r.AttemptIncidentIDs) > 0 {
		// Hardware evidence on its nodes while it ran: the job died of
		// the fault, not of its own code.
		cause, incident = run.CauseHardware, r.AttemptIncidentIDs[len(r.AttemptIncidentIDs)-1]
	}
	if cause != run.CauseExitCode {
		if nodes, err := scheduler.ExpandHostlist(r.NodeList); err == nil && cause == run.CauseNodeFail {
			faulty = nodes
		}
	}
	d := r.DecideRetry(cause)
	if !d.Retry {
		if r.Spec.Retry != nil {
			r.Reason = strings.TrimSpace(r.Reason + " (not retried: " + d.Why + ")")
		}
		return false
	}
	if ok, why := s.retryAllowed(now); !ok {
		r.Reason = strings.TrimSpace(r.Reason + " (not retried: " + why + ")")
		return false
	}
	s.beginRetry(r, cause, faulty, incident, r.State, false, now)
	return true
}

// NodeFault is how remediation tells the controller that it drained (or
// handed off) node for hardware-class evidence (incidentID): every active
// run on the node with a policy that retries HARDWARE ends its attempt and
// starts the next one away from the node. Runs without a policy are left
// alone: their job runs on, as it would without sopilot.
func (s *Service) NodeFault(ctx context.Context, node, incidentID string) error {
	s.tmu.Lock()
	defer s.tmu.Unlock()
	active, err := s.store.ActiveRuns(ctx)
	if err != nil {
		return fmt.Errorf("node fault on %s: load active runs: %w", node, err)
	}
	var ids []string
	for _, r := range active {
		if !r.Submitted() || r.NodeList == "" || r.Spec.Retry == nil {
			continue
		}
		nodes, err := scheduler.ExpandHostlist(r.NodeList)
		if err != nil || !slices.Contains(nodes, node) {
			continue
		}
		ids = append(ids, r.ID)
	}
	if len(ids) == 0 {
		return nil
	}
	s.loadRetries(ctx)
	now := s.cfg.Now().UTC()
	var refused []string
	changed, err := s.store.UpdateRuns(ctx, ids, func(r *run.Run) bool {
		if r.State.Terminal() || !r.Submitted() {
			return false
		}
		d := r.DecideRetry(run.CauseHardware)
		if d.Retry {
			if ok, why := s.retryAllowed(now); !ok {
				d = run.RetryDecision{Why: why}
			}
		}
		if !d.Retry {
			refused = append(refused, r.ID+": "+d.Why)
			return false
		}
		s.beginRetry(r, run.CauseHardware, []string{node}, incidentID, run.StateCancelled, true, now)
		return true
	})
	if err != nil {
		return fmt.Errorf("node fault on %s: %w", node, err)
	}
	for _, why := range refused {
		s.log.Warn("run on a faulty node not retried", "node", node, "incident_id", incidentID, "why", why)
	}
	// The next jobs first, so the dependants' new jobs can wait on them.
	err = s.advanceRetries(ctx, changed)
	s.afterRetries(ctx, changed)
	return err
}

// afterRetries logs the retries that began, tells watchers, and replaces
// the jobs of the runs that wait on them.
func (s *Service) afterRetries(ctx context.Context, began []*run.Run) {
	if len(began) == 0 {
		return
	}
	for _, r := range began {
		s.noteRetry(ctx, r)
	}
	s.countTransitions(run.StatePending)
	s.announce(began)
	if err := s.replaceDependants(ctx, began); err != nil {
		s.log.Warn("replace the jobs of dependants", "err", err)
	}
}

// replaceDependants gives every active run that depends on one of the
// retried runs, and whose job has not started, a new attempt: its job
// waits (afterok) on the ended attempt's job, which will never succeed,
// so it is cancelled and submitted again waiting on the new attempt's.
// Dependants the old job's end already got Slurm to cancel (its
// kill_invalid_depend) are revived the same way by the tracker.
func (s *Service) replaceDependants(ctx context.Context, retried []*run.Run) error {
	ids := map[string]bool{}
	for _, r := range retried {
		ids[r.ID] = true
	}
	active, err := s.store.ActiveRuns(ctx)
	if err != nil {
		return err
	}
	var deps []string
	for _, r := range active {
		if r.Submitted() && r.StartTime.IsZero() && slices.ContainsFunc(r.Spec.DependsOn, func(id string) bool { return ids[id] }) {
			deps = append(deps, r.ID)
		}
	}
	if len(deps) == 0 {
		return nil
	}
	now := s.cfg.Now().UTC()
	changed, err := s.store.UpdateRuns(ctx, deps, func(r *run.Run) bool {
		if r.State.Terminal() || !r.Submitted() || !r.StartTime.IsZero() {
			return false
		}
		s.beginRetry(r, run.CauseDependency, nil, "", run.StateCancelled, true, now)
		return true
	})
	if err != nil {
		return err
	}
	err = s.advanceRetries(ctx, changed)
	// Their dependants in turn.
	s.afterRetries(ctx, changed)
	return err
}

// reviveDependants gives a new attempt to runs that Slurm ended before
// they started while a run they depend on is retrying: their job's
// dependency could never be satisfied once the old attempt's job ended.
func (s *Service) reviveDependants(ctx context.Context, ended []*run.Run) {
	var ids []string
	for _, r := range ended {
		if r.State.Terminal() && r.State != run.StateCompleted && r.StartTime.IsZero() && len(r.Spec.DependsOn) > 0 && r.Submitted() {
			ids = append(ids, r.ID)
		}
	}
	if len(ids) == 0 {
		return
	}
	retrying := func(id string) bool {
		d, err := s.store.GetRun(ctx, id)
		return err == nil && !d.State.Terminal() && d.Attempt() > 1
	}
	var revive []string
	for _, id := range ids {
		r, err := s.store.GetRun(ctx, id)
		if err == nil && slices.ContainsFunc(r.Spec.DependsOn, retrying) {
			revive = append(revive, id)
		}
	}
	if len(revive) == 0 {
		return
	}
	now := s.cfg.Now().UTC()
	changed, err := s.store.UpdateRuns(ctx, revive, func(r *run.Run) bool {
		if !r.State.Terminal() || !r.StartTime.IsZero() {
			return false
		}
		s.beginRetry(r, run.CauseDependency, nil, "", r.State, false, now)
		return true
	})
	if err != nil {
		s.log.Warn("revive dependants of a retried run", "err", err)
		return
	}
	s.afterRetries(ctx, changed)
}

// errWaiting: a retry step cannot run yet (back-off, a dependency's new
// job not yet submitted); the tracker tries again next poll.
var errWaiting = errors.New("waiting")

// advanceRetries moves every run that is between attempts one step on.
func (s *Service) advanceRetries(ctx context.Context, runs []*run.Run) error {
	var errs []error
	for _, r := range runs {
		if err := s.advanceRetry(ctx, r); err != nil && !errors.Is(err, errWaiting) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// advanceRetry takes a run between attempts through steps 2 and 3 of the
// retry (see the top of this file): cancel the ended attempt's job, wait
// out the back-off and the dependencies, record the intent, submit.
func (s *Service) advanceRetry(ctx context.Context, r *run.Run) error {
	if r.Submitted() || r.State.Terminal() || r.Attempt() < 2 || !r.SubmitBegan.IsZero() {
		return nil
	}
	if s.isInflight(r.ID) {
		return nil
	}
	s.markInflight(r.ID, true)
	defer s.markInflight(r.ID, false)
	last := r.Attempts[len(r.Attempts)-1]
	if last.CancelPending {
		if err := s.backend.Cancel(ctx, last.SlurmJobID); err != nil {
			return fmt.Errorf("run %s: cancel the job %s of attempt %d: %w", r.ID, last.SlurmJobID, last.Number, err)
		}
		s.log.Info("cancelled the job of an ended attempt", "run_id", r.ID, "slurm_job_id", last.SlurmJobID, "attempt", last.Number)
		updated, err := s.store.UpdateRun(ctx, r.ID, func(x *run.Run) bool {
			if len(x.Attempts) == 0 || !x.Attempts[len(x.Attempts)-1].CancelPending {
				return false
			}
			x.Attempts[len(x.Attempts)-1].CancelPending = false
			return true
		})
		if err != nil {
			return fmt.Errorf("run %s: record the cancel of attempt %d: %w", r.ID, last.Number, err)
		}
		r = updated
	}
	now := s.cfg.Now().UTC()
	if now.Before(r.NotBefore) {
		return errWaiting
	}
	deps, err := s.resolveDependencies(ctx, r.Spec.DependsOn)
	switch {
	case errors.Is(err, errDependencyUnsubmitted):
		return errWaiting
	case err != nil:
		_, ferr := s.failSubmit(ctx, r, err)
		return ferr
	}
	updated, err := s.store.UpdateRun(ctx, r.ID, func(x *run.Run) bool {
		if x.Submitted() || x.State.Terminal() || !x.SubmitBegan.IsZero() || x.Attempt() != r.Attempt() {
			return false
		}
		x.SubmitBegan = now
		return true
	})
	if err != nil {
		return fmt.Errorf("run %s: record the submission of attempt %d: %w", r.ID, r.Attempt(), err)
	}
	if !updated.SubmitBegan.Equal(now) {
		return nil // someone else got there
	}
	s.log.Info("submitting the next attempt", "run_id", r.ID, "attempt", updated.Attempt(), "exclude", updated.ExcludedNodes())
	_, err = s.submit(ctx, updated, deps)
	return err
}
