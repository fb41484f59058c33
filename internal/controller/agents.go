package controller

import (
	"context"
	"fmt"
	"maps"
	"path"
	"slices"
	"time"

	"github.com/sopilot/sopilot/internal/fleet"
	"github.com/sopilot/sopilot/internal/run"
	"github.com/sopilot/sopilot/internal/scheduler"
)

// ProgressEnv is the environment variable that tells a job where to append
// its progress lines (docs/progress.md).
const ProgressEnv = "SOPILOT_PROGRESS_FILE"

// ProgressPath is where a run's job writes its progress: next to its output
// file, on the file system the job and the node agents share.
func ProgressPath(r *run.Run) string {
	return path.Join(r.Spec.OutputDirectory, "sopilot-"+r.ID+".progress.jsonl")
}

// UsageSource gives the GPU usage the node agents saw for a run.
type UsageSource interface {
	RunUsage(runID string, final bool) *run.Usage
}

// ApplyProgress stores runs' latest training progress (fleet.ProgressSink).
// Progress never goes backwards. The last lines a job writes can arrive
// just after Slurm reported it ended; they are taken while
// run.AcceptsProgress, then the run's progress is final.
func (s *Service) ApplyProgress(ctx context.Context, updates map[string]run.Progress) error {
	ids := slices.Sorted(maps.Keys(updates))
	now := s.cfg.Now()
	changed, err := s.store.UpdateRuns(ctx, ids, func(r *run.Run) bool {
		p, ok := updates[r.ID]
		if !ok || r.State.Terminal() && !run.AcceptsProgress(r.EndTime, now) {
			return false
		}
		// A later attempt resumes from a checkpoint, so its steps start
		// below the last attempt's: its progress replaces what the last
		// one reported, and lines of the attempt that was ended (written
		// before the retry was decided) are dropped.
		if r.Attempt() > 1 && p.UpdateTime.Before(r.AttemptTime) {
			return false
		}
		fresh := r.Attempt() > 1 && r.Progress != nil && r.Progress.UpdateTime.Before(r.AttemptTime)
		if r.Progress != nil && !fresh && (p.Step < r.Progress.Step || p.UpdateTime.Before(r.Progress.UpdateTime)) {
			return false
		}
		if c := p.Checkpoint; c != nil && (r.Checkpoint == nil || c.Step >= r.Checkpoint.Step) && !c.Time.Before(r.AttemptTime) {
			r.Checkpoint = c
		}
		p.Checkpoint = nil
		r.Progress = &p
		touch(r, now)
		return true
	})
	if err != nil {
		return fmt.Errorf("store progress of %d runs: %w", len(ids), err)
	}
	for _, r := range changed {
		s.hub.publish(r)
	}
	return nil
}

// Assignments lists the runs whose jobs run now and their nodes
// (fleet.AssignmentSource).
func (s *Service) Assignments(ctx context.Context) ([]fleet.Assignment, error) {
	active, err := s.store.ActiveRuns(ctx)
	if err != nil {
		return nil, err
	}
	var out []fleet.Assignment
	for _, r := range active {
		if r.State != run.StateRunning && r.State != run.StateCompleting || r.NodeList == "" {
			continue
		}
		nodes, err := scheduler.ExpandHostlist(r.NodeList)
		if err != nil {
			continue
		}
		out = append(out, fleet.Assignment{
			RunID: r.ID, JobID: r.SlurmJobID, Nodes: nodes, ProgressPath: ProgressPath(r), GPUsPerNode: r.Spec.GPUsPerNode,
		})
	}
	return out, nil
}

// recordUsage puts the agents' aggregate into a run that just ended. With
// final false (a run marked LOST, which may yet come back) the aggregate is
// kept, so that the run's whole usage is recorded if it does.
func (s *Service) recordUsage(r *run.Run, final bool) {
	if s.usage == nil {
		return
	}
	u := s.usage.RunUsage(r.ID, final)
	if u == nil {
		return
	}
	if !r.StartTime.IsZero() && r.EndTime.After(r.StartTime) {
		u.GPUHours = r.EndTime.Sub(r.StartTime).Hours() * float64(r.Spec.GPUsPerNode*max(r.Spec.Nodes, 1))
	}
	r.Usage = u
}

// AttachIncident lists a health incident on runs whose nodes it hit
// (monitor.RunIncidents). Ended runs are marked too: the incident may have
// ended them.
func (s *Service) AttachIncident(ctx context.Context, runIDs []string, incidentID string) error {
	changed, err := s.store.UpdateRuns(ctx, runIDs, func(r *run.Run) bool {
		if slices.Contains(r.IncidentIDs, incidentID) {
			return false
		}
		r.IncidentIDs = append(r.IncidentIDs, incidentID)
		if !r.State.Terminal() || run.AcceptsProgress(r.EndTime, s.cfg.Now()) {
			r.AttemptIncidentIDs = append(r.AttemptIncidentIDs, incidentID)
		}
		touch(r, s.cfg.Now())
		return true
	})
	if err != nil {
		return fmt.Errorf("mark %d runs with incident %s: %w", len(runIDs), incidentID, err)
	}
	for _, r := range changed {
		s.hub.publish(r)
	}
	return nil
}

// touch moves a run's update time forward, so watchers see the change.
func touch(r *run.Run, now time.Time) {
	now = now.UTC()
	if !now.After(r.UpdateTime) {
		now = r.UpdateTime.Add(time.Microsecond)
	}
	r.UpdateTime = now
}
