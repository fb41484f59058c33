// Package controller owns the life of runs: it validates and records a run
// before submitting it to Slurm exactly once, tracks every active run with
// one batched Slurm query per poll, adopts jobs it submitted but had not
// recorded before a crash, and tells watchers about every change.
//
// The order of operations is what makes it crash-safe:
//
//  1. CreateRun commits the run (state PENDING, no Slurm job id) and its
//     request_id to the store before anything reaches Slurm.
//  2. The job is submitted with the comment "sopilot:run=<run id>". With
//     the CLI backend, sbatch is started during step 1 and sent its script
//     only once the commit is durable (scheduler.SubmitAfter): a failed
//     commit, a request_id seen before or a crash leaves sbatch an empty
//     script, which it refuses, so no job exists without its run.
//  3. The Slurm job id is committed to the run. CreateRun answers before
//     this commit (the id is held in memory and shown in every read, see
//     jobIDs), and the tracker writes it within flushInterval, so a
//     CreateRun costs one fsync, not two.
//
// A crash between 1 and 3 leaves a run without a job id. The tracker finds
// such runs, looks for a Slurm job carrying their comment (one query for all
// of them) and adopts it; if there is none and the run is younger than
// Slurm's MinJobAge (so a job, had it been created, would still be listed)
// it submits again; otherwise it marks the run LOST rather than risk a
// second job.
//
// A Slurm outage never changes a run (docs/design.md, "Slurm outages"):
// Slurm's silence about a job is "unknown", not "gone", unless all of this
// holds: the listing came back without error; it is trusted (it does not
// lack every tracked job while one was listed less than MinJobAge ago,
// which is what squeue answers, exit 0, with slurmctld down); the job was
// missing from LostAfterPolls such listings in a row, the last at least
// MinJobAge after it was last listed; the backend was ready meanwhile and
// Readiness confirms with a fresh probe. Only then is the run LOST, and
// LOST is not final: the tracker asks for the job in the same batched
// query for LostRecheckWindow and the run takes its true state if Slurm
// lists the job again with the run's comment. A listed job whose comment
// names another run is never taken for this run's (Slurm reuses ids).
// Adoption acts on absence (resubmit, LOST) only under the same trust and
// confirmation. Readiness refuses CreateRun, recording nothing, while the
// backend is misconfigured; while slurmctld is merely unreachable runs are
// recorded and submitted when it is back.
package controller

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sopilot/sopilot/internal/auth"
	"github.com/sopilot/sopilot/internal/metrics"
	"github.com/sopilot/sopilot/internal/run"
	"github.com/sopilot/sopilot/internal/scheduler"
	"github.com/sopilot/sopilot/internal/store"
)

// CommentPrefix starts the comment of every Slurm job the controller submits.
const CommentPrefix = "sopilot:run="

// The environment a job learns its attempt from (docs/resilience.md).
const (
	// AttemptEnv is the attempt number, from 1.
	AttemptEnv = "SOPILOT_ATTEMPT"
	// ResumeEnv is the path of the newest checkpoint any earlier attempt
	// reported; unset when there is none.
	ResumeEnv = "SOPILOT_RESUME_FROM"
)

// Sentinel errors; the API maps them to gRPC codes.
var (
	// ErrNotFound: no run with that id.
	ErrNotFound = errors.New("run not found")
	// ErrRequestIDReused: the request_id was used before with a different spec.
	ErrRequestIDReused = errors.New("request_id was already used with a different spec")
	// ErrFailedPrecondition: the request is valid but the world is not in a
	// state that allows it (a dependency that failed, Slurm refusing the job).
	ErrFailedPrecondition = errors.New("failed precondition")
	// ErrBusy: the run is being submitted right now; retry shortly.
	ErrBusy = errors.New("run is being submitted")
	// ErrShuttingDown ends a watch when the controller stops; the caller
	// watches again once it is back.
	ErrShuttingDown = errors.New("controller is shutting down")
	// errDependencyUnsubmitted: a dependency has no Slurm job yet (being
	// submitted, or between attempts).
	errDependencyUnsubmitted = errors.New("dependency has no Slurm job yet")
)

// Store is the persistence the controller needs (implemented by
// internal/store over bbolt).
type Store interface {
	CreateRun(ctx context.Context, r *run.Run) (*run.Run, bool, error)
	GetRun(ctx context.Context, id string) (*run.Run, error)
	UpdateRun(ctx context.Context, id string, fn func(*run.Run) bool) (*run.Run, error)
	UpdateRuns(ctx context.Context, ids []string, fn func(*run.Run) bool) ([]*run.Run, error)
	ReleaseRequestID(ctx context.Context, requestID, runID string) error
	ActiveRuns(ctx context.Context) ([]*run.Run, error)
	ListRuns(ctx context.Context, q store.ListQuery) ([]*run.Run, string, error)
	ResultsStore
}

var _ Store = (*store.Store)(nil)

// Config tunes the controller.
type Config struct {
	// PollInterval is how often all active runs are refreshed from Slurm,
	// with one query. Must be well below Slurm's MinJobAge.
	PollInterval time.Duration
	// MinJobAge is Slurm's MinJobAge: how long Slurm lists a finished job.
	// Unconfirmed submissions older than this are not resubmitted, and a
	// job listed less than this long ago is never taken for gone.
	MinJobAge time.Duration
	// LostAfterPolls is how many trusted listings in a row must lack a job
	// before its run is marked LOST (default 3); see the package comment.
	LostAfterPolls int
	// LostRecheckWindow is how long after a run was marked LOST the tracker
	// keeps asking Slurm for its job (default 24 h).
	LostRecheckWindow time.Duration
	// DefaultWorkDir and DefaultOutputDir apply when a spec leaves them empty.
	DefaultWorkDir   string
	DefaultOutputDir string
	Limits           run.Limits
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Usage, when set, gives the GPU usage the node agents saw for a run;
	// the tracker stores it in the run when it ends.
	Usage UsageSource
	// RetryBreaker bounds the retries started across all runs.
	RetryBreaker RetryBreakerConfig
	// Failpoint, when set, is called at the named steps of a retry (the
	// Failpoint* constants). Tests kill the process there; production
	// leaves it nil.
	Failpoint func(name string)
}

func (c *Config) setDefaults() {
	if c.PollInterval <= 0 {
		c.PollInterval = 5 * time.Second
	}
	if c.MinJobAge <= 0 {
		c.MinJobAge = 300 * time.Second
	}
	if c.LostAfterPolls <= 0 {
		c.LostAfterPolls = 3
	}
	if c.LostRecheckWindow <= 0 {
		c.LostRecheckWindow = 24 * time.Hour
	}
	if c.DefaultWorkDir == "" {
		c.DefaultWorkDir = "/tmp"
	}
	if c.DefaultOutputDir == "" {
		c.DefaultOutputDir = c.DefaultWorkDir
	}
	if c.Limits == (run.Limits{}) {
		c.Limits = run.DefaultLimits()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	c.RetryBreaker.setDefaults()
}

// Service is the run controller. Create it with New and start its tracker
// with Run.
type Service struct {
	cfg     Config
	store   Store   // jobs, as the Store interface
	jobs    *jobIDs // the real store and the job ids not yet in it
	backend scheduler.Backend
	log     *slog.Logger
	metrics *metrics.Controller
	hub     *hub
	usage   UsageSource
	ready   *Readiness
	// untrusted counts job listings the tracker did not believe.
	untrusted prometheus.Counter

	// tmu serialises polls; track is the tracker's memory between them.
	tmu   sync.Mutex
	track tracking

	mu       sync.Mutex
	inflight map[string]struct{} // run ids whose submission is under way
	// The retry breaker's window of retry times, loaded from the store's
	// retry log on first use; under mu.
	retryTimes    []time.Time
	retriesLoaded bool
	gate          RetryGate
	retriesTotal  *prometheus.CounterVec
	lostGPUHours  *prometheus.CounterVec
}

// New builds a controller. metrics may be nil.
func New(cfg Config, st Store, backend scheduler.Backend, logger *slog.Logger, m *metrics.Controller) *Service {
	cfg.setDefaults()
	var untrusted prometheus.Counter
	var retriesTotal, lostGPUHours *prometheus.CounterVec
	if m != nil {
		backend = &instrumented{Backend: backend, m: m}
		untrusted = prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sopilot_tracker_untrusted_listings_total",
			Help: "Slurm job listings the tracker did not believe: they lacked every tracked job although some were listed less than MinJobAge ago (what an answer from a slurmctld that is down looks like).",
		})
		if err := m.Registry.Register(untrusted); err != nil {
			logger.Error("register tracker metrics", "err", err)
			untrusted = nil
		}
		// Create every series up front, so dashboards and rate() see zeros
		// rather than nothing before the first event.
		for _, result := range []string{"created", "deduplicated", "rejected", "deferred"} {
			m.RunsCreated.WithLabelValues(result)
		}
		for st := run.StatePending; st <= run.StateLost; st++ {
			m.RunTransitions.WithLabelValues(st.String())
		}
		retriesTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sopilot_run_retries_total",
			Help: "Attempts of runs ended by a fault and started again, by cause (HARDWARE, NODE_FAIL, PREEMPTED, EXIT_CODE).",
		}, []string{"cause"})
		lostGPUHours = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sopilot_run_lost_gpu_seconds_total",
			Help: "GPU time (GPU-seconds) of work lost by ended attempts of runs (what they ran after their last checkpoint), by the cause that ended them.",
		}, []string{"cause"})
		for _, c := range []*prometheus.CounterVec{retriesTotal, lostGPUHours} {
			if err := m.Registry.Register(c); err != nil {
				logger.Error("register retry metrics", "err", err)
				retriesTotal, lostGPUHours = nil, nil
				break
			}
		}
		if retriesTotal != nil {
			for _, c := range run.DefaultCauses {
				retriesTotal.WithLabelValues(c.String())
				lostGPUHours.WithLabelValues(c.String())
			}
			retriesTotal.WithLabelValues(run.CauseExitCode.String())
			lostGPUHours.WithLabelValues(run.CauseExitCode.String())
		}
	}
	jobs := newJobIDs(st)
	return &Service{
		cfg:       cfg,
		store:     jobs,
		jobs:      jobs,
		backend:   backend,
		log:       logger.With("component", "controller"),
		metrics:   m,
		usage:     cfg.Usage,
		hub:       newHub(),
		inflight:  map[string]struct{}{},
		untrusted: untrusted,
		track:     newTracking(),

		retriesTotal: retriesTotal,
		lostGPUHours: lostGPUHours,
	}
}

// SetReadiness makes the controller consult r: CreateRun is refused while
// the backend is misconfigured, and the tracker acts on Slurm's silence
// (LOST, resubmission) only once r confirms slurmctld is up. r must use the
// same clock as the Service. Call before Run.
func (s *Service) SetReadiness(r *Readiness) { s.ready = r }

// Create validates spec, records the run and submits it to Slurm. A
// request_id seen before returns the run created then (and submits nothing).
func (s *Service) Create(ctx context.Context, spec run.Spec, requestID string) (*run.Run, error) {
	spec.Normalize()
	if spec.WorkingDirectory == "" {
		spec.WorkingDirectory = s.cfg.DefaultWorkDir
	}
	if spec.OutputDirectory == "" {
		spec.OutputDirectory = s.cfg.DefaultOutputDir
	}
	if err := run.Validate(spec, s.cfg.Limits); err != nil {
		s.countCreate("rejected")
		return nil, err
	}
	if requestID == "" {
		requestID = "generated-" + newID()
	} else if err := run.ValidateRequestID(requestID); err != nil {
		s.countCreate("rejected")
		return nil, err
	}
	deps, err := s.resolveDependencies(ctx, spec.DependsOn)
	if err != nil {
		s.countCreate("rejected")
		return nil, err
	}
	if s.ready != nil {
		if err := s.ready.admit(); err != nil {
			s.countCreate("rejected")
			return nil, err
		}
	}

	now := s.cfg.Now().UTC()
	// The owner is the authenticated user. The insecure identity is
	// nobody: its runs are left without an owner, which only operators and
	// admins may write once authentication is on (auth.CheckRunWrite).
	var owner string
	if id, ok := auth.FromContext(ctx); ok && id.Kind == auth.KindUser {
		owner = id.Name
	}
	r := &run.Run{
		Owner:      owner,
		ID:         newID(),
		RequestID:  requestID,
		Spec:       spec,
		State:      run.StatePending,
		Reason:     "submitting to Slurm",
		OutputPath: path.Join(spec.OutputDirectory, spec.JobName+"-%j.out"),
		CreateTime: now,
		UpdateTime: now,
	}
	s.markInflight(r.ID, true)
	defer s.markInflight(r.ID, false)

	job, err := jobSpec(r, deps)
	if err != nil {
		// Validation passed, so this is a bug. Record the run and fail
		// it without starting sbatch, as happened when the job spec was
		// built after the commit: the failure stays in the run's
		// history and the request_id is released.
		stored, created, rerr := s.store.CreateRun(ctx, r)
		if done, out, derr := s.recorded(stored, created, rerr, spec, requestID); done {
			return out, derr
		}
		return s.failSubmit(ctx, stored, err)
	}
	// The run's record must be durable before a Slurm job can exist, so
	// that a crash never leaves a job no run owns and a retry with the
	// same request_id never makes a second job. SubmitAfter keeps that
	// order while overlapping the commit with sbatch's start-up: the gate
	// commits the run, and the script reaches sbatch only if it returns
	// nil (see slurmcli's SubmitGated).
	var (
		stored  *run.Run
		created bool
		recErr  error
	)
	jobID, err := scheduler.SubmitAfter(ctx, s.backend, job, func() error {
		stored, created, recErr = s.store.CreateRun(ctx, r)
		if recErr == nil && !created {
			return errAlreadyRecorded
		}
		return recErr
	})
	if done, out, derr := s.recorded(stored, created, recErr, spec, requestID); done {
		return out, derr
	}
	s.log.Info("run recorded", "run_id", r.ID, "request_id", requestID, "job_name", spec.JobName)
	return s.submitted(ctx, stored, jobID, err)
}

// errAlreadyRecorded withdraws Create's submission when its request_id was
// recorded before: the run of that request is the answer, not a new job.
var errAlreadyRecorded = errors.New("request_id already recorded")

// recorded handles the outcome of Create's recording commit. done means
// Create is over and returns (out, err): the commit failed, or the
// request_id was recorded before (then out is that run if the spec is the
// same). Otherwise the run was recorded now and Create goes on.
func (s *Service) recorded(stored *run.Run, created bool, err error, spec run.Spec, requestID string) (done bool, out *run.Run, _ error) {
	switch {
	case err != nil:
		return true, nil, fmt.Errorf("record run: %w", err)
	case stored == nil:
		// The backend broke SubmitAfter's contract: it returned
		// without calling the gate.
		return true, nil, errors.New("record run: the scheduler backend never let the run be recorded")
	case created:
		return false, nil, nil
	case !sameSpec(stored.Spec, spec):
		s.countCreate("rejected")
		return true, nil, fmt.Errorf("request_id %q belongs to run %s: %w", requestID, stored.ID, ErrRequestIDReused)
	}
	s.countCreate("deduplicated")
	return true, stored, nil
}

// submit sends a recorded run to Slurm and records the outcome.
func (s *Service) submit(ctx context.Context, r *run.Run, deps []string) (*run.Run, error) {
	job, err := jobSpec(r, deps)
	if err != nil {
		// Validation passed, so this is a bug; do not leave the run pending.
		return s.failSubmit(ctx, r, err)
	}
	jobID, err := s.backend.Submit(ctx, job)
	return s.submitted(ctx, r, jobID, err)
}

// submitted records the outcome of submitting a recorded run.
func (s *Service) submitted(ctx context.Context, r *run.Run, jobID string, err error) (*run.Run, error) {
	if err == nil && r.Attempt() > 1 && s.cfg.Failpoint != nil {
		s.cfg.Failpoint(FailpointRetrySubmitted)
	}
	switch {
	case err == nil:
	case errors.Is(err, scheduler.ErrRejected):
		return s.failSubmit(ctx, r, err)
	default:
		// Slurm may or may not have created the job. Leave the run
		// unsubmitted: the tracker adopts the job if it exists, or submits
		// it again while that is still safe.
		s.log.Warn("submission not confirmed; the tracker will retry", "run_id", r.ID, "err", err)
		s.countCreate("deferred")
		updated, uerr := s.store.UpdateRun(context.WithoutCancel(ctx), r.ID, func(x *run.Run) bool {
			x.Reason = "waiting to submit: " + err.Error()
			x.UpdateTime = s.cfg.Now().UTC()
			return true
		})
		if uerr != nil {
			return nil, fmt.Errorf("record deferred submission: %w", uerr)
		}
		s.hub.publish(updated)
		return updated, nil
	}
	// The job id is not written now: that would be a second fsync on the
	// caller's time. It is shown in every read at once and written by the
	// tracker within flushInterval (jobIDs); a crash before then leaves a
	// durable run whose job the restarted tracker adopts by its comment.
	updated := s.jobs.remember(r, jobID, s.cfg.Now().UTC())
	s.hub.publish(updated)
	s.countCreate("created")
	s.log.Info("run submitted", "run_id", r.ID, "slurm_job_id", jobID, "attempt", r.Attempt())
	return updated, nil
}

func (s *Service) failSubmit(ctx context.Context, r *run.Run, cause error) (*run.Run, error) {
	ctx = context.WithoutCancel(ctx)
	now := s.cfg.Now().UTC()
	why := "submission failed: "
	if errors.Is(cause, scheduler.ErrRejected) {
		why = "submission refused by Slurm: "
	}
	updated, err := s.store.UpdateRun(ctx, r.ID, func(x *run.Run) bool {
		return x.MarkFailed(why+cause.Error(), now)
	})
	if err != nil {
		return nil, fmt.Errorf("record refused submission: %w", err)
	}
	// The refused run stays in history, but its request_id is freed so the
	// client can correct the spec and retry with the same key.
	if err := s.store.ReleaseRequestID(ctx, r.RequestID, r.ID); err != nil {
		s.log.Error("release request_id", "run_id", r.ID, "err", err)
	}
	s.countTransitions(updated.State)
	s.hub.publish(updated)
	s.countCreate("rejected")
	return nil, fmt.Errorf("submit run %s: %w: %w", r.ID, ErrFailedPrecondition, cause)
}

// resolveDependencies turns run ids into Slurm job ids for afterok. A
// dependency that already completed is satisfied and dropped (Slurm may
// have forgotten its job); one that ended any other way can never be.
func (s *Service) resolveDependencies(ctx context.Context, ids []string) ([]string, error) {
	var jobs []string
	var verr run.ValidationError
	for i, id := range ids {
		field := fmt.Sprintf("spec.depends_on[%d]", i)
		dep, err := s.store.GetRun(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			verr.Violations = append(verr.Violations, run.FieldViolation{Field: field, Description: fmt.Sprintf("no run with id %q", id)})
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("look up dependency %s: %w", id, err)
		}
		switch {
		case dep.State == run.StateCompleted:
		case dep.State.Terminal():
			return nil, fmt.Errorf("dependency %s ended %s, so this run could never start: %w", id, dep.State, ErrFailedPrecondition)
		case !dep.Submitted():
			return nil, fmt.Errorf("dependency %s is not yet accepted by Slurm; retry in a few seconds: %w: %w", id, ErrFailedPrecondition, errDependencyUnsubmitted)
		default:
			jobs = append(jobs, dep.SlurmJobID)
		}
	}
	if len(verr.Violations) > 0 {
		return nil, &verr
	}
	return jobs, nil
}

// Get returns one run.
func (s *Service) Get(ctx context.Context, id string) (*run.Run, error) {
	r, err := s.store.GetRun(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("run %q: %w", id, ErrNotFound)
	}
	return r, err
}

// List returns a page of runs, newest first.
func (s *Service) List(ctx context.Context, q store.ListQuery) ([]*run.Run, string, error) {
	return s.store.ListRuns(ctx, q)
}

// Cancel asks Slurm to cancel the run's job and returns the run as Slurm
// then reports it. A run that already ended is returned unchanged. Who may
// cancel which run is the API's authorization policy (auth.RuleFor: the
// owner, or an operator), checked before the call reaches here.
func (s *Service) Cancel(ctx context.Context, id string) (*run.Run, error) {
	r, err := s.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if r.State.Terminal() {
		return r, nil
	}
	if s.isInflight(id) {
		return nil, fmt.Errorf("run %s: %w; retry in a moment", id, ErrBusy)
	}
	if n := len(r.Attempts); !r.Submitted() && n > 0 && r.Attempts[n-1].CancelPending {
		// Between attempts: the ended attempt's job may still run.
		if err := s.backend.Cancel(ctx, r.Attempts[n-1].SlurmJobID); err != nil {
			return nil, fmt.Errorf("cancel run %s (slurm job %s of attempt %d): %w", id, r.Attempts[n-1].SlurmJobID, n, err)
		}
	}
	if !r.Submitted() {
		updated, err := s.cancelUnsubmitted(ctx, id)
		if err != nil {
			return nil, err
		}
		if !updated.Submitted() || updated.State.Terminal() {
			return updated, nil
		}
		r = updated // adopted meanwhile: cancel it in Slurm
	}
	if err := s.backend.Cancel(ctx, r.SlurmJobID); err != nil {
		return nil, fmt.Errorf("cancel run %s (slurm job %s): %w", id, r.SlurmJobID, err)
	}
	s.log.Info("run cancelled", "run_id", id, "slurm_job_id", r.SlurmJobID)
	// Refresh this one run now so the caller sees Slurm's answer.
	changed, _, err := s.refresh(ctx, []*run.Run{r}, false)
	if err != nil {
		s.log.Warn("refresh after cancel", "run_id", id, "err", err)
	}
	for _, c := range changed {
		if c.ID == id {
			return c, nil
		}
	}
	return s.Get(ctx, id)
}

// cancelUnsubmitted ends a run that never reached Slurm (or whose
// submission is unconfirmed) so that the tracker never submits it.
func (s *Service) cancelUnsubmitted(ctx context.Context, id string) (*run.Run, error) {
	s.markInflight(id, true)
	defer s.markInflight(id, false)
	now := s.cfg.Now().UTC()
	updated, err := s.store.UpdateRun(ctx, id, func(x *run.Run) bool {
		if x.State.Terminal() || x.Submitted() {
			return false
		}
		x.State = run.StateCancelled
		x.Reason = "cancelled before Slurm accepted the job"
		x.EndTime, x.UpdateTime = now, now
		return true
	})
	if err != nil {
		return nil, err
	}
	if updated.State == run.StateCancelled && !updated.Submitted() {
		s.countTransitions(updated.State)
		s.hub.publish(updated)
	}
	return updated, nil
}

// Watch calls send with the run's current state, then with every change,
// until the run's state is final, ctx ends, or send fails. Every terminal
// state is final except LOST while the tracker still looks for the run's
// job (LostRecheckWindow): a watcher of a LOST run hears when it takes its
// true state, and the watch ends once the tracker gives up on it.
func (s *Service) Watch(ctx context.Context, id string, send func(*run.Run) error) error {
	ch, cancel := s.hub.subscribe(id)
	defer cancel()
	r, err := s.Get(ctx, id)
	if err != nil {
		return err
	}
	last := r.UpdateTime
	if err := send(r); err != nil {
		return err
	}
	var recheck <-chan time.Time
	for !s.final(r) {
		if r.State == run.StateLost && recheck == nil {
			t := time.NewTicker(s.cfg.PollInterval)
			defer t.Stop()
			recheck = t.C
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.hub.done:
			return ErrShuttingDown
		case <-recheck:
		case next := <-ch:
			if !next.UpdateTime.After(last) && next.State == r.State {
				continue
			}
			r, last = next, next.UpdateTime
			if err := send(r); err != nil {
				return err
			}
		}
	}
	return nil
}

// final reports whether r's state can no longer change.
func (s *Service) final(r *run.Run) bool {
	if r.State == run.StateLost {
		return !s.rechecking(r.ID)
	}
	return r.State.Terminal()
}

func (s *Service) markInflight(id string, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if on {
		s.inflight[id] = struct{}{}
	} else {
		delete(s.inflight, id)
	}
}

func (s *Service) isInflight(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.inflight[id]
	return ok
}

func (s *Service) countCreate(result string) {
	if s.metrics != nil {
		s.metrics.RunsCreated.WithLabelValues(result).Inc()
	}
}

// sameSpec compares specs as stored: the record went through JSON, where an
// empty list or map and a missing one are the same thing.
func sameSpec(a, b run.Spec) bool {
	ja, erra := json.Marshal(a)
	jb, errb := json.Marshal(b)
	return erra == nil && errb == nil && bytes.Equal(ja, jb)
}

// jobSpec turns a recorded run into the job Slurm gets.
func jobSpec(r *run.Run, deps []string) (scheduler.JobSpec, error) {
	sp := r.Spec
	job := scheduler.JobSpec{
		Name:         sp.JobName,
		Partition:    sp.Partition,
		Nodes:        sp.Nodes,
		TasksPerNode: sp.TasksPerNode,
		GPUsPerNode:  sp.GPUsPerNode,
		CPUsPerTask:  sp.CPUsPerTask,
		TimeLimit:    sp.TimeLimit,
		WorkDir:      sp.WorkingDirectory,
		OutputPath:   r.OutputPath,
		Comment:      run.CommentFor(CommentPrefix, r.ID, r.Attempt()),
		Dependencies: deps,
		Exclude:      r.ExcludedNodes(),
		Environment:  map[string]string{},
	}
	for k, v := range sp.Environment {
		job.Environment[k] = v
	}
	// Tell the job who it is, so scripts and later tools can find their run.
	job.Environment["SOPILOT_RUN_ID"] = r.ID
	job.Environment[ProgressEnv] = ProgressPath(r)
	job.Environment[AttemptEnv] = strconv.Itoa(r.Attempt())
	if c := r.ResumeCheckpoint(); c != nil {
		job.Environment[ResumeEnv] = c.Path
	}
	script, err := scheduler.RenderScript(job, sp.Argv, sp.Script)
	if err != nil {
		return scheduler.JobSpec{}, fmt.Errorf("render batch script: %w", err)
	}
	job.Script = script
	return job, nil
}

// newID returns a run id: "r-" and a lower-case ULID, so ids sort by
// creation time and never collide across controller restarts.
func newID() string {
	return "r-" + strings.ToLower(ulid.MustNew(ulid.Now(), rand.Reader).String())
}
