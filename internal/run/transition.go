package run

import (
	"strings"
	"time"
)

// FromSlurm maps a Slurm base job state onto a run state. The second result
// is false for a state sopilot does not know; the caller then keeps the run
// where it is.
func FromSlurm(slurmState string) (State, bool) {
	switch strings.ToUpper(strings.TrimSpace(slurmState)) {
	// Allocated but nodes still booting, or waiting to be (re)started.
	case "PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD":
		return StatePending, true
	case "RUNNING", "SUSPENDED", "STOPPED", "RESIZING", "SIGNALING", "UPDATE_DB", "POWER_UP_NODE":
		return StateRunning, true
	case "COMPLETING", "STAGE_OUT":
		return StateCompleting, true
	case "COMPLETED":
		return StateCompleted, true
	case "FAILED", "BOOT_FAIL", "SPECIAL_EXIT":
		return StateFailed, true
	case "CANCELLED", "REVOKED":
		return StateCancelled, true
	case "TIMEOUT", "DEADLINE":
		return StateTimeout, true
	case "NODE_FAIL":
		return StateNodeFail, true
	case "PREEMPTED":
		return StatePreempted, true
	case "OUT_OF_MEMORY":
		return StateOutOfMemory, true
	}
	return StateUnspecified, false
}

// Observation is what Slurm said about a run's job at one moment.
type Observation struct {
	SlurmState string
	Reason     string
	NodeList   string
	ExitCode   int
	ExitSignal int
	StartTime  time.Time
	EndTime    time.Time
}

// Apply folds an observation into the run and reports whether the record
// changed. The state only moves forward: an observation that would move it
// back (a requeued job seen as PENDING after RUNNING, a stale read) updates
// the Slurm fields but not State, and nothing changes a terminal run, with
// one exception: LOST.
//
// LOST is not an observation but a conclusion drawn from Slurm's silence
// (the job was missing from its listings), so an observation of the job in
// any state Slurm names replaces it: the run takes the observed state, even
// a non-terminal one (it becomes active again), with the observed exit code
// and signal. An unknown Slurm state leaves a LOST run as it is.
func (r *Run) Apply(o Observation, now time.Time) bool {
	changed := false
	if r.State == StateLost {
		next, known := FromSlurm(o.SlurmState)
		if !known {
			return false
		}
		r.State = next
		r.EndTime, r.ExitCode, r.ExitSignal = time.Time{}, 0, 0
		changed = true
	}
	if r.State.Terminal() && !changed {
		return false
	}
	set := func(dst *string, v string) {
		if v != "" && *dst != v {
			*dst = v
			changed = true
		}
	}
	set(&r.SlurmState, o.SlurmState)
	reason := o.Reason
	if reason == "None" || reason == "(null)" {
		reason = ""
	}
	if r.Reason != reason {
		r.Reason = reason
		changed = true
	}
	set(&r.NodeList, o.NodeList)
	if !o.StartTime.IsZero() && !r.StartTime.Equal(o.StartTime) {
		r.StartTime = o.StartTime
		changed = true
	}
	next, known := FromSlurm(o.SlurmState)
	if known && next.rank() > r.State.rank() {
		r.State = next
		changed = true
	}
	if r.State.Terminal() {
		r.ExitCode = o.ExitCode
		r.ExitSignal = o.ExitSignal
		r.EndTime = o.EndTime
		if r.EndTime.IsZero() {
			r.EndTime = now
		}
		changed = true
	}
	if changed {
		r.UpdateTime = now
	}
	return changed
}

// MarkLost ends a run whose job Slurm no longer knows, with why. Unlike the
// other terminal states it is not final: see Apply.
func (r *Run) MarkLost(reason string, now time.Time) bool {
	if r.State.Terminal() {
		return false
	}
	r.State = StateLost
	r.Reason = reason
	r.EndTime = now
	r.UpdateTime = now
	return true
}

// MarkFailed ends a run that never became a Slurm job (submission refused).
func (r *Run) MarkFailed(reason string, now time.Time) bool {
	if r.State.Terminal() {
		return false
	}
	r.State = StateFailed
	r.Reason = reason
	r.ExitCode = -1
	r.EndTime = now
	r.UpdateTime = now
	return true
}
