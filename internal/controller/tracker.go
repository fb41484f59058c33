package controller

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sopilot/sopilot/internal/run"
	"github.com/sopilot/sopilot/internal/scheduler"
	"github.com/sopilot/sopilot/internal/store"
)

// tracking is what the tracker remembers between polls (in memory only: a
// restarted controller starts over, which only delays a LOST verdict).
// Guarded by Service.tmu.
type tracking struct {
	// lastSeen is when each submitted active run's job was last listed by
	// Slurm, or when this process began tracking the run.
	lastSeen map[string]time.Time
	// absent counts the consecutive trusted listings that lacked the job.
	absent map[string]int
	// lost holds the runs marked LOST within LostRecheckWindow; their jobs
	// are asked for in every poll's listing, so that the run takes its true
	// state if Slurm reports the job again. Written only under both tmu and
	// Service.mu (setLost, dropLost), so Watch may read it under mu alone.
	lost map[string]lostRun
	// lostLoaded is set once lost has been filled from the store.
	lostLoaded bool
}

type lostRun struct {
	jobID  string // empty: lost before Slurm confirmed a job
	lostAt time.Time
}

func newTracking() tracking {
	return tracking{lastSeen: map[string]time.Time{}, absent: map[string]int{}, lost: map[string]lostRun{}}
}

// Run is the tracker: it polls Slurm for every active run once per
// PollInterval until ctx ends. The first poll happens at once, so a
// restarted controller reconciles before its first tick.
func (s *Service) Run(ctx context.Context) error {
	s.log.Info("tracker started", "poll_interval", s.cfg.PollInterval, "backend", s.backend.Name())
	// Job ids are written on their own clock: a poll can take seconds (a
	// long listing, a Slurm outage), and the ids CreateRun answered with
	// must not wait for it.
	var flusher sync.WaitGroup
	flusher.Go(func() { s.flushJobIDs(ctx) })
	defer flusher.Wait()
	t := time.NewTicker(s.cfg.PollInterval)
	defer t.Stop()
	for {
		if err := s.Poll(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("poll failed; will retry", "err", err)
		}
		select {
		case <-ctx.Done():
			s.hub.close()
			s.log.Info("tracker stopped")
			return nil
		case <-t.C:
		}
	}
}

// flushJobIDs writes the job ids CreateRun answered with (jobIDs) every
// flushInterval, or every poll interval when that is shorter, until ctx
// ends, and once more then, so that a clean stop leaves nothing for
// adoption to recover.
func (s *Service) flushJobIDs(ctx context.Context) {
	f := time.NewTicker(min(flushInterval, s.cfg.PollInterval))
	defer f.Stop()
	for {
		select {
		case <-ctx.Done():
			if err := s.jobs.flush(context.WithoutCancel(ctx)); err != nil {
				s.log.Error("write pending Slurm job ids at stop; the next start adopts their jobs", "runs", s.jobs.pendingCount(), "err", err)
			}
			return
		case <-f.C:
			if err := s.jobs.flush(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("write pending Slurm job ids; will retry", "runs", s.jobs.pendingCount(), "err", err)
			}
		}
	}
}

// flushInterval bounds how long a Slurm job id that CreateRun answered
// with stays in memory only (jobIDs): at most this, or the poll interval
// when that is shorter.
const flushInterval = time.Second

// Poll refreshes every active run and every recently LOST one: one Slurm
// query for the submitted ones, and one more only when some submission is
// unconfirmed (or a run lost before its submission was confirmed is still
// being looked for).
func (s *Service) Poll(ctx context.Context) error {
	s.tmu.Lock()
	defer s.tmu.Unlock()
	start := time.Now()
	active, err := s.store.ActiveRuns(ctx)
	if err != nil {
		return fmt.Errorf("load active runs: %w", err)
	}
	var errs []error
	if err := s.loadLost(ctx); err != nil {
		errs = append(errs, err)
	}
	s.expireLost()
	s.pruneTracking(active)
	var submitted, unconfirmed, between []*run.Run
	for _, r := range active {
		switch {
		case r.Submitted():
			submitted = append(submitted, r)
		case s.isInflight(r.ID):
		case s.jobs.has(r.ID):
			// A run read before its Create finished may have been given
			// its job id since: has sees that id, not yet written.
		case r.Attempt() > 1 && r.SubmitBegan.IsZero():
			// Between attempts, nothing handed to Slurm yet: no job of
			// this attempt can exist, so there is nothing to adopt.
			between = append(between, r)
		default:
			unconfirmed = append(unconfirmed, r)
		}
	}
	_, listing, err := s.refresh(ctx, submitted, true)
	if err != nil {
		errs = append(errs, err)
	}
	if err := s.reconcileUnconfirmed(ctx, unconfirmed, listing); err != nil {
		errs = append(errs, err)
	}
	if err := s.advanceRetries(ctx, between); err != nil {
		errs = append(errs, err)
	}
	if err := s.cancelDependants(ctx); err != nil {
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

// listingResult is what one poll's job listing established, for the
// adoption step that follows it.
type listingResult struct {
	outcome listingOutcome
	// began is when the query was sent.
	began time.Time
	// present are the jobs the listing reported, by job id.
	present map[string]scheduler.JobStatus
}

type listingOutcome int

const (
	listingNone      listingOutcome = iota // nothing to ask for
	listingFailed                          // the backend returned an error
	listingUntrusted                       // an answer, but a suspicious one (see trusted)
	listingTrusted
)

// refresh applies one batched Slurm query to runs (and, when track is set,
// to the recently LOST runs) and stores every change in one transaction.
// With track set it also keeps the absence counts and marks LOST the runs
// whose jobs are gone by the rule of the package comment; without it (a
// refresh of a single run after a cancel) a missing job changes nothing.
func (s *Service) refresh(ctx context.Context, runs []*run.Run, track bool) ([]*run.Run, listingResult, error) {
	res := listingResult{began: s.cfg.Now()}
	var lostIDs []string
	if track {
		for id, l := range s.track.lost {
			if l.jobID != "" {
				lostIDs = append(lostIDs, id)
			}
		}
	}
	if len(runs) == 0 && len(lostIDs) == 0 {
		return nil, res, nil
	}
	ids := make([]string, 0, len(runs)+len(lostIDs))
	for _, r := range runs {
		ids = append(ids, r.SlurmJobID)
	}
	for _, id := range lostIDs {
		ids = append(ids, s.track.lost[id].jobID)
	}
	jobs, err := s.backend.Jobs(ctx, ids)
	if err != nil {
		res.outcome = listingFailed
		if track {
			s.resetAbsence()
		}
		return nil, res, fmt.Errorf("query %d jobs: %w", len(ids), err)
	}
	byID := make(map[string]scheduler.JobStatus, len(jobs))
	for _, j := range jobs {
		byID[j.JobID] = j
	}
	res.present = byID
	now := s.cfg.Now().UTC()

	// Each run's own job, by run id. A listed job whose comment names
	// another run is not this run's: Slurm hands job ids out again (after
	// a slurmctld that was killed before it saved its state comes back,
	// for one). A LOST run comes back only when its comment matches
	// exactly; an active run's job may also carry no comment at all (a
	// backend that does not report it).
	listed := make(map[string]scheduler.JobStatus, len(runs))
	owned := make(map[string]scheduler.JobStatus, len(runs)) // by job id, for pickUpResults
	for _, r := range runs {
		if j, ok := byID[r.SlurmJobID]; ok {
			if j.Comment != "" && j.Comment != run.CommentFor(CommentPrefix, r.ID, r.Attempt()) {
				s.log.Warn("Slurm lists the run's job id for another job; Slurm reused the id", "run_id", r.ID, "slurm_job_id", j.JobID, "comment", j.Comment)
				continue
			}
			listed[r.ID], owned[j.JobID] = j, j
		}
	}

	res.outcome = listingTrusted
	lose := map[string]string{}
	if track {
		if !s.trusted(runs, listed, now) {
			res.outcome = listingUntrusted
		}
		lose = s.countAbsence(ctx, runs, listed, res, now)
		if res.outcome == listingTrusted && s.ready != nil {
			s.ready.Answered()
		}
	}

	var reviveRecs []*run.Run
	for _, id := range lostIDs {
		j, ok := byID[s.track.lost[id].jobID]
		if !ok {
			continue
		}
		if jid, _, ok := run.ParseComment(CommentPrefix, j.Comment); !ok || jid != id {
			s.log.Debug("job id of a lost run now belongs to another job", "run_id", id, "slurm_job_id", j.JobID, "comment", j.Comment)
			continue
		}
		r, err := s.store.GetRun(ctx, id)
		if err != nil {
			return nil, res, fmt.Errorf("load lost run %s: %w", id, err)
		}
		listed[id], owned[j.JobID] = j, j
		reviveRecs = append(reviveRecs, r)
	}

	updateIDs := make([]string, 0, len(runs)+len(reviveRecs))
	for _, r := range runs {
		updateIDs = append(updateIDs, r.ID)
	}
	for _, r := range reviveRecs {
		updateIDs = append(updateIDs, r.ID)
	}
	if len(updateIDs) == 0 {
		return nil, res, nil
	}
	// Before the states are committed: see pickUpResults.
	failedPickups := s.pickUpResults(ctx, append(append([]*run.Run(nil), runs...), reviveRecs...), owned)
	if track {
		s.loadRetries(ctx)
	}
	var reached []run.State
	var retried []*run.Run
	retrying := map[string]bool{}
	changed, err := s.store.UpdateRuns(ctx, updateIDs, func(r *run.Run) bool {
		prev := r.State
		var ch bool
		j, ok := listed[r.ID]
		switch {
		case prev == run.StateLost && !ok:
			return false
		case ok:
			ch = r.Apply(observation(j), now)
		case lose[r.ID] != "":
			ch = r.MarkLost(lose[r.ID], now)
		}
		ch = notePickup(r, failedPickups) || ch
		if r.State != prev && r.State.Terminal() && track && s.retryOnEnd(r, prev, now) {
			retrying[r.ID] = true
			return true
		}
		if r.State != prev {
			reached = append(reached, r.State)
			if r.State.Terminal() {
				s.recordUsage(r, r.State != run.StateLost)
				g := r.ComputeGoodput(now)
				r.Goodput = &g
			}
		}
		return ch
	})
	if err != nil {
		return nil, res, fmt.Errorf("store %d job states: %w", len(updateIDs), err)
	}
	for _, r := range changed {
		if retrying[r.ID] {
			retried = append(retried, r)
		}
	}
	if track {
		for _, r := range changed {
			s.noteState(r, now)
		}
	}
	s.countTransitions(reached...)
	s.announce(changed)
	if track {
		if err := s.advanceRetries(ctx, retried); err != nil {
			s.log.Warn("start the next attempts", "err", err)
		}
		s.afterRetries(ctx, retried)
		s.reviveDependants(ctx, changed)
	}
	return changed, res, nil
}

// countLost adds the work lost by the attempt r just ended to the metrics.
func (s *Service) countLost(r *run.Run) {
	if s.lostGPUHours == nil || len(r.Attempts) == 0 {
		return
	}
	one := &run.Run{Spec: r.Spec, Attempts: r.Attempts[len(r.Attempts)-1:]}
	for cause, h := range one.ComputeGoodput(r.AttemptTime).LostByCause {
		s.lostGPUHours.WithLabelValues(cause).Add(h * 3600)
	}
}

// trusted decides whether a listing that came back without error can be
// believed about the jobs it lacks. It cannot when it lacks every job asked
// for while at least one of them was listed less than MinJobAge ago: Slurm
// keeps even a finished job listed for MinJobAge after it ends, so a healthy
// slurmctld cannot have forgotten that one. That is what an empty answer
// from a slurmctld that is down looks like (22.05's squeue --json exits 0
// with an empty list and an "errors" entry). The backends already report
// such a document as scheduler.ErrUnavailable; this is the second line, for
// a backend or Slurm version that still answers with a bare empty list.
func (s *Service) trusted(runs []*run.Run, listed map[string]scheduler.JobStatus, now time.Time) bool {
	if len(runs) == 0 {
		return true
	}
	recent := false
	for _, r := range runs {
		if _, ok := listed[r.ID]; ok {
			return true
		}
		if seen, ok := s.track.lastSeen[r.ID]; ok && now.Sub(seen) < s.cfg.MinJobAge {
			recent = true
		}
	}
	if recent {
		s.log.Warn("Slurm's listing lacks every tracked job although some were listed less than MinJobAge ago; not believing it",
			"jobs", len(runs), "min_job_age", s.cfg.MinJobAge)
		if s.untrusted != nil {
			s.untrusted.Inc()
		}
		s.resetAbsence()
		return false
	}
	return true
}

// countAbsence updates lastSeen and the absence counts from a listing
// (listed: each run's own job, by run id) and returns the runs, with the
// reason, that are gone by the rule of the package comment.
func (s *Service) countAbsence(ctx context.Context, runs []*run.Run, listed map[string]scheduler.JobStatus, res listingResult, now time.Time) map[string]string {
	lose := map[string]string{}
	// A listing taken while the last probe found the backend unusable
	// counts for nothing, and breaks every streak.
	counts := res.outcome == listingTrusted && (s.ready == nil || s.ready.Status().Ready())
	if !counts {
		s.resetAbsence()
	}
	for _, r := range runs {
		if _, ok := listed[r.ID]; ok {
			s.track.lastSeen[r.ID] = now
			delete(s.track.absent, r.ID)
			continue
		}
		seen, ok := s.track.lastSeen[r.ID]
		if !ok {
			// Never listed since this process began tracking it: count
			// from now, so a restart never shortens the wait.
			s.track.lastSeen[r.ID] = now
			seen = now
		}
		if !counts {
			continue
		}
		s.track.absent[r.ID]++
		if s.track.absent[r.ID] >= s.cfg.LostAfterPolls && now.Sub(seen) >= s.cfg.MinJobAge {
			lose[r.ID] = fmt.Sprintf("Slurm has not listed job %s for %s (%d polls in a row) and its final state was never observed",
				r.SlurmJobID, now.Sub(seen).Round(time.Second), s.track.absent[r.ID])
		}
	}
	if len(lose) > 0 && s.ready != nil {
		if err := s.ready.Confirm(ctx, res.began); err != nil {
			s.log.Warn("jobs missing from Slurm's listing; not marking their runs LOST until slurmctld is confirmed up",
				"runs", len(lose), "err", err)
			s.resetAbsence()
			return nil
		}
	}
	return lose
}

// pruneTracking forgets runs that are no longer active (ended through a
// cancel, or by another path than the tracker's own listing).
func (s *Service) pruneTracking(active []*run.Run) {
	ids := make(map[string]bool, len(active))
	for _, r := range active {
		ids[r.ID] = true
	}
	for id := range s.track.lastSeen {
		if !ids[id] {
			delete(s.track.lastSeen, id)
			delete(s.track.absent, id)
		}
	}
}

// resetAbsence forgets every absence count: a failed or untrusted listing
// breaks every run's streak.
func (s *Service) resetAbsence() { clear(s.track.absent) }

// noteState updates tracking after a run's state was stored.
func (s *Service) noteState(r *run.Run, now time.Time) {
	switch {
	case r.State == run.StateLost:
		s.setLost(r.ID, lostRun{jobID: r.SlurmJobID, lostAt: now})
		delete(s.track.lastSeen, r.ID)
		delete(s.track.absent, r.ID)
	case r.State.Terminal():
		s.dropLost(r.ID)
		delete(s.track.lastSeen, r.ID)
		delete(s.track.absent, r.ID)
	default:
		if _, was := s.track.lost[r.ID]; was {
			s.dropLost(r.ID)
			s.track.lastSeen[r.ID] = now
		}
	}
}

func (s *Service) setLost(id string, l lostRun) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.track.lost[id] = l
}

func (s *Service) dropLost(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.track.lost, id)
}

// rechecking reports whether the tracker still looks for the job of run id,
// which is LOST.
func (s *Service) rechecking(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.track.lost[id]
	return ok
}

// loadLost fills the LOST re-check list from the store once, so a restarted
// controller keeps looking for the runs it lost within the window.
func (s *Service) loadLost(ctx context.Context) error {
	if s.track.lostLoaded {
		return nil
	}
	cutoff := s.cfg.Now().Add(-s.cfg.LostRecheckWindow)
	q := store.ListQuery{States: []run.State{run.StateLost}, PageSize: store.MaxPageSize}
	for {
		page, next, err := s.store.ListRuns(ctx, q)
		if err != nil {
			return fmt.Errorf("load lost runs: %w", err)
		}
		for _, r := range page {
			if r.EndTime.After(cutoff) {
				s.setLost(r.ID, lostRun{jobID: r.SlurmJobID, lostAt: r.EndTime})
			}
		}
		if next == "" {
			break
		}
		q.PageToken = next
	}
	s.track.lostLoaded = true
	if n := len(s.track.lost); n > 0 {
		s.log.Info("looking for the jobs of recently lost runs", "runs", n, "window", s.cfg.LostRecheckWindow)
	}
	return nil
}

// expireLost stops looking for runs lost longer ago than the window; their
// GPU usage, kept in case they came back, is final now.
func (s *Service) expireLost() {
	cutoff := s.cfg.Now().Add(-s.cfg.LostRecheckWindow)
	for id, l := range s.track.lost {
		if l.lostAt.Before(cutoff) {
			s.dropLost(id)
			if s.usage != nil {
				s.usage.RunUsage(id, true)
			}
		}
	}
}

// reconcileUnconfirmed deals with runs recorded before a crash (or a Slurm
// outage) whose submission was never confirmed, and looks for the jobs of
// runs lost that way; see the package comment. listing is what this poll's
// job listing established: Slurm's silence about a run is acted on
// (submitting it again, or marking it LOST) only when that listing and this
// one were trusted and slurmctld is confirmed up.
func (s *Service) reconcileUnconfirmed(ctx context.Context, runs []*run.Run, listing listingResult) error {
	var lostUnsubmitted []string
	for id, l := range s.track.lost {
		if l.jobID == "" {
			lostUnsubmitted = append(lostUnsubmitted, id)
		}
	}
	if len(runs) == 0 && len(lostUnsubmitted) == 0 {
		return nil
	}
	began := s.cfg.Now()
	jobs, err := s.backend.FindByComment(ctx, CommentPrefix)
	if err != nil {
		return fmt.Errorf("look for unconfirmed submissions: %w", err)
	}
	// Each run's job by run id and attempt: a job of an earlier attempt
	// (cancelled, still listed for MinJobAge) is never taken for the
	// current attempt's.
	type attemptKey struct {
		id string
		n  int
	}
	byAttempt := make(map[attemptKey]scheduler.JobStatus, len(jobs))
	byRun := make(map[string]scheduler.JobStatus, len(jobs))
	listedIDs := make(map[string]bool, len(jobs))
	for _, j := range jobs {
		listedIDs[j.JobID] = true
		id, n, ok := run.ParseComment(CommentPrefix, j.Comment)
		if !ok {
			continue
		}
		byAttempt[attemptKey{id, n}] = j
		byRun[id] = j
	}
	var errs []error
	// Adopting needs no trust: a listed job is an observation.
	var missing []*run.Run
	adopt := map[string]string{} // run id → job id
	for _, r := range runs {
		if j, ok := byAttempt[attemptKey{r.ID, r.Attempt()}]; ok {
			s.log.Info("adopting job submitted before a restart", "run_id", r.ID, "slurm_job_id", j.JobID, "attempt", r.Attempt())
			adopt[r.ID] = j.JobID
			continue
		}
		missing = append(missing, r)
	}
	if err := s.recordAdopted(ctx, adopt); err != nil {
		errs = append(errs, err)
	}
	for _, id := range lostUnsubmitted {
		if j, ok := byRun[id]; ok {
			errs = append(errs, s.adoptLost(ctx, id, j))
		}
	}
	if len(missing) == 0 {
		return errors.Join(errs...)
	}
	if why := s.distrustComments(listing, listedIDs); why != "" {
		s.log.Warn("not acting on unconfirmed submissions this poll", "runs", len(missing), "why", why)
		return errors.Join(errs...)
	}
	if s.ready != nil {
		since := began
		if !listing.began.IsZero() && listing.began.Before(since) {
			since = listing.began
		}
		if err := s.ready.Confirm(ctx, since); err != nil {
			s.log.Warn("not acting on unconfirmed submissions until slurmctld is confirmed up", "runs", len(missing), "err", err)
			return errors.Join(errs...)
		}
	}
	for _, r := range missing {
		since := r.CreateTime
		if r.Attempt() > 1 {
			since = r.SubmitBegan
		}
		age := s.cfg.Now().Sub(since)
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
			if updated.State == run.StateLost {
				s.noteState(updated, now)
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

// recordAdopted writes the job ids of adopted runs in one transaction: after
// a crash in a burst of CreateRuns there can be hundreds, and one commit
// each would hold the first poll up for seconds.
func (s *Service) recordAdopted(ctx context.Context, jobs map[string]string) error {
	if len(jobs) == 0 {
		return nil
	}
	ids := slices.Sorted(maps.Keys(jobs))
	now := s.cfg.Now().UTC()
	changed, err := s.store.UpdateRuns(ctx, ids, func(x *run.Run) bool { return markSubmitted(x, jobs[x.ID], now) })
	if err != nil {
		return fmt.Errorf("record %d adopted Slurm jobs: %w", len(ids), err)
	}
	for _, r := range changed {
		s.hub.publish(r)
	}
	return nil
}

// distrustComments says why the comment listing cannot be believed about
// what it lacks, or "" when it can: this poll's job listing failed or was
// untrusted, or it listed one of the controller's jobs that the comment
// listing, taken moments later, lacks.
func (s *Service) distrustComments(listing listingResult, listedIDs map[string]bool) string {
	switch listing.outcome {
	case listingFailed:
		return "this poll's job listing failed"
	case listingUntrusted:
		return "this poll's job listing was not trusted"
	}
	for id, j := range listing.present {
		if strings.HasPrefix(j.Comment, CommentPrefix) && !listedIDs[id] {
			return fmt.Sprintf("the comment listing lacks job %s, which the job listing just reported", id)
		}
	}
	return ""
}

// adoptLost gives a run that was lost before its submission was confirmed
// the job Slurm now lists for it.
func (s *Service) adoptLost(ctx context.Context, id string, j scheduler.JobStatus) error {
	now := s.cfg.Now().UTC()
	updated, err := s.store.UpdateRun(ctx, id, func(x *run.Run) bool {
		if x.State != run.StateLost || x.Submitted() {
			return false
		}
		x.SlurmJobID = j.JobID
		x.OutputPath = strings.ReplaceAll(x.OutputPath, "%j", j.JobID)
		x.Apply(observation(j), now)
		return true
	})
	if err != nil {
		return fmt.Errorf("adopt job %s for lost run %s: %w", j.JobID, id, err)
	}
	s.log.Info("found the job of a run lost before its submission was confirmed", "run_id", id, "slurm_job_id", j.JobID, "state", updated.State.String())
	if updated.State != run.StateLost {
		if updated.State.Terminal() {
			s.recordUsage(updated, true)
		}
		s.noteState(updated, now)
		s.countTransitions(updated.State)
	} else {
		// Slurm named a state sopilot does not know; track it by job id.
		s.setLost(id, lostRun{jobID: j.JobID, lostAt: s.track.lost[id].lostAt})
	}
	s.announce([]*run.Run{updated})
	return nil
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
