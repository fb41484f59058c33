package run

import "time"

// Goodput is what a run did with its GPU time across its attempts.
type Goodput struct {
	// GPUHoursUsed is the GPU time of every attempt, start to end (or
	// now, for an attempt still running): nodes × GPUs per node × hours.
	// A run that asks for no GPUs counts each node as one GPU.
	GPUHoursUsed float64 `json:"gpu_hours_used"`
	// GPUHoursKept is the part of it whose work survived: all of the
	// current attempt, and of each ended attempt the time up to its last
	// checkpoint (an attempt that reported none kept nothing).
	GPUHoursKept float64 `json:"gpu_hours_kept"`
	// LostByCause is GPUHoursUsed − GPUHoursKept by the cause that ended
	// the attempts that lost it (Cause names).
	LostByCause map[string]float64 `json:"lost_by_cause,omitempty"`
}

// Fraction is kept / used, 1 for a run that used nothing.
func (g Goodput) Fraction() float64 {
	if g.GPUHoursUsed <= 0 {
		return 1
	}
	return g.GPUHoursKept / g.GPUHoursUsed
}

// GPUsPerAttempt is the GPU count the goodput arithmetic charges an
// attempt: nodes × GPUs per node, each node counting as one when the run
// asks for no GPUs.
func (s Spec) GPUsPerAttempt() int { return max(s.Nodes, 1) * max(s.GPUsPerNode, 1) }

// ComputeGoodput works out the run's goodput at now.
func (r *Run) ComputeGoodput(now time.Time) Goodput {
	gpus := float64(r.Spec.GPUsPerAttempt())
	hours := func(from, to time.Time) float64 {
		if from.IsZero() || !to.After(from) {
			return 0
		}
		return to.Sub(from).Hours() * gpus
	}
	var g Goodput
	for _, a := range r.Attempts {
		used := hours(a.StartTime, a.EndTime)
		kept := 0.0
		if c := a.Checkpoint; c != nil && !c.Time.Before(a.StartTime) {
			kept = hours(a.StartTime, minTime(c.Time, a.EndTime))
		}
		g.GPUHoursUsed += used
		g.GPUHoursKept += kept
		if lost := used - kept; lost > 0 {
			if g.LostByCause == nil {
				g.LostByCause = map[string]float64{}
			}
			g.LostByCause[a.Cause.String()] += lost
		}
	}
	end := r.EndTime
	if end.IsZero() {
		end = now
	}
	cur := hours(r.StartTime, end)
	g.GPUHoursUsed += cur
	g.GPUHoursKept += cur
	return g
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
