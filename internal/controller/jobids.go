package controller

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/sopilot/sopilot/internal/run"
	"github.com/sopilot/sopilot/internal/store"
)

// jobIDs is the Store the controller works on: the real one, plus the Slurm
// job ids that Slurm has returned for runs whose record does not hold them
// yet. CreateRun answers as soon as sbatch has, without waiting for a
// second fsync to record the job id: the id is kept here, shown in every
// read, and written by the next transaction that touches the run (the
// tracker's batched update of every active run, or any other update), or
// by flush, which the tracker calls every flushInterval. A crash before
// then loses nothing: the run is durable without the id and the job
// carries the run's comment, so the restarted tracker adopts the job (see
// the package comment), exactly as after a crash between steps 2 and 3.
//
// Every write of a run with a pending id carries the id in the same
// transaction, so no update can store a run that lacks an id it had already
// been given; the id leaves this map only after that transaction commits.
type jobIDs struct {
	Store
	mu      sync.Mutex
	pending map[string]pendingJob // by run id
}

// pendingJob is a Slurm job id not yet in the store.
type pendingJob struct {
	jobID string
	at    time.Time // when Slurm accepted it
}

func newJobIDs(st Store) *jobIDs { return &jobIDs{Store: st, pending: map[string]pendingJob{}} }

// markSubmitted records what Slurm's acceptance of jobID changes in the
// run: the job id, the submission time and the output path. It reports
// whether x changed (false when x already has a job).
func markSubmitted(x *run.Run, jobID string, at time.Time) bool {
	if x.Submitted() {
		return false
	}
	x.SlurmJobID = jobID
	x.SubmitTime = at
	x.UpdateTime = at
	x.Reason = ""
	x.OutputPath = strings.ReplaceAll(x.OutputPath, "%j", jobID)
	return true
}

// remember keeps jobID for r (a run as stored, without a job) and returns
// r as it reads from now on.
func (j *jobIDs) remember(r *run.Run, jobID string, at time.Time) *run.Run {
	j.mu.Lock()
	j.pending[r.ID] = pendingJob{jobID: jobID, at: at}
	j.mu.Unlock()
	out := r.Clone()
	markSubmitted(out, jobID, at)
	return out
}

// has reports whether run id has a job id waiting for a write.
func (j *jobIDs) has(id string) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	_, ok := j.pending[id]
	return ok
}

// pendingCount is how many job ids wait for a write.
func (j *jobIDs) pendingCount() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return len(j.pending)
}

// overlay applies the pending job ids to runs read from the store.
func (j *jobIDs) overlay(runs ...*run.Run) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if len(j.pending) == 0 {
		return
	}
	for _, r := range runs {
		if r == nil {
			continue
		}
		if p, ok := j.pending[r.ID]; ok {
			markSubmitted(r, p.jobID, p.at)
		}
	}
}

// take returns the pending ids of these runs (every pending one when ids
// is nil) for a transaction that will write them.
func (j *jobIDs) take(ids []string) map[string]pendingJob {
	j.mu.Lock()
	defer j.mu.Unlock()
	if len(j.pending) == 0 {
		return nil
	}
	out := map[string]pendingJob{}
	if ids == nil {
		for id, p := range j.pending {
			out[id] = p
		}
		return out
	}
	for _, id := range ids {
		if p, ok := j.pending[id]; ok {
			out[id] = p
		}
	}
	return out
}

// written forgets the ids a committed transaction stored.
func (j *jobIDs) written(done map[string]pendingJob) {
	if len(done) == 0 {
		return
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	for id, p := range done {
		if j.pending[id] == p {
			delete(j.pending, id)
		}
	}
}

// withPending wraps an update so that it also writes the run's pending job
// id, and reports a change when it did.
func withPending(carry map[string]pendingJob, fn func(*run.Run) bool) func(*run.Run) bool {
	if len(carry) == 0 {
		return fn
	}
	return func(x *run.Run) bool {
		changed := false
		if p, ok := carry[x.ID]; ok {
			changed = markSubmitted(x, p.jobID, p.at)
		}
		return fn(x) || changed
	}
}

// flush writes every pending job id in one transaction.
func (j *jobIDs) flush(ctx context.Context) error {
	carry := j.take(nil)
	if len(carry) == 0 {
		return nil
	}
	ids := make([]string, 0, len(carry))
	for id := range carry {
		ids = append(ids, id)
	}
	if _, err := j.Store.UpdateRuns(ctx, ids, withPending(carry, func(*run.Run) bool { return false })); err != nil {
		return err
	}
	j.written(carry)
	return nil
}

func (j *jobIDs) CreateRun(ctx context.Context, r *run.Run) (*run.Run, bool, error) {
	stored, created, err := j.Store.CreateRun(ctx, r)
	if err == nil && !created {
		j.overlay(stored)
	}
	return stored, created, err
}

func (j *jobIDs) GetRun(ctx context.Context, id string) (*run.Run, error) {
	r, err := j.Store.GetRun(ctx, id)
	if err == nil {
		j.overlay(r)
	}
	return r, err
}

func (j *jobIDs) UpdateRun(ctx context.Context, id string, fn func(*run.Run) bool) (*run.Run, error) {
	carry := j.take([]string{id})
	r, err := j.Store.UpdateRun(ctx, id, withPending(carry, fn))
	if err != nil {
		return nil, err
	}
	j.written(carry)
	return r, nil
}

func (j *jobIDs) UpdateRuns(ctx context.Context, ids []string, fn func(*run.Run) bool) ([]*run.Run, error) {
	carry := j.take(ids)
	changed, err := j.Store.UpdateRuns(ctx, ids, withPending(carry, fn))
	if err != nil {
		return nil, err
	}
	j.written(carry)
	return changed, nil
}

func (j *jobIDs) ActiveRuns(ctx context.Context) ([]*run.Run, error) {
	runs, err := j.Store.ActiveRuns(ctx)
	if err == nil {
		j.overlay(runs...)
	}
	return runs, err
}

func (j *jobIDs) ListRuns(ctx context.Context, q store.ListQuery) ([]*run.Run, string, error) {
	runs, token, err := j.Store.ListRuns(ctx, q)
	if err == nil {
		j.overlay(runs...)
	}
	return runs, token, err
}

var _ Store = (*jobIDs)(nil)
