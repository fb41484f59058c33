package run

import "time"

// LateProgressWindow is how long after a run ends (or leaves a node) the
// progress its job wrote is still taken: a job's last lines are written
// just before it exits, and reach the controller after Slurm, the agent
// and the fleet have each seen it end.
const LateProgressWindow = time.Minute

// AcceptsProgress is the one rule for late progress, used by the node
// agent (how long it reads a run's file after the run left the node), the
// fleet (whose progress it takes from a node) and the run service (what it
// stores): progress is taken until LateProgressWindow after end. A zero
// end is a run that has not ended.
func AcceptsProgress(end, now time.Time) bool {
	return end.IsZero() || now.Sub(end) <= LateProgressWindow
}
