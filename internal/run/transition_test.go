package run

import (
	"testing"
	"time"
)

// LOST is a conclusion drawn from Slurm's silence, not an observation, so
// a later observation of the job replaces it; every other terminal state is
// final, and non-terminal states only move forward.
func TestApplyLeavesLostOnlyForAnObservedState(t *testing.T) {
	t0 := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	lost := func() *Run {
		r := &Run{ID: "r-1", State: StateRunning, StartTime: t0, UpdateTime: t0}
		r.MarkLost("Slurm no longer lists job 7", t0.Add(time.Hour))
		return r
	}
	end := t0.Add(30 * time.Minute)
	tests := []struct {
		name      string
		start     func() *Run
		obs       Observation
		changed   bool
		want      State
		exit      int
		signal    int
		endTime   time.Time
		reason    string
		slurmWant string
	}{
		{
			name: "lost run seen completed takes the true state and exit code", start: lost,
			obs:     Observation{SlurmState: "COMPLETED", ExitCode: 0, EndTime: end, Reason: "None"},
			changed: true, want: StateCompleted, endTime: end, slurmWant: "COMPLETED",
		},
		{
			name: "lost run seen failed by a signal", start: lost,
			obs:     Observation{SlurmState: "FAILED", ExitCode: 0, ExitSignal: 9, EndTime: end},
			changed: true, want: StateFailed, signal: 9, endTime: end, slurmWant: "FAILED",
		},
		{
			name: "lost run seen still running becomes active again", start: lost,
			obs:     Observation{SlurmState: "RUNNING", Reason: "None", NodeList: "worker-0"},
			changed: true, want: StateRunning, slurmWant: "RUNNING",
		},
		{
			name: "lost run seen requeued goes back to pending", start: lost,
			obs:     Observation{SlurmState: "PENDING", Reason: "BeginTime"},
			changed: true, want: StatePending, reason: "BeginTime", slurmWant: "PENDING",
		},
		{
			name: "lost run and an unknown Slurm state: stays lost", start: lost,
			obs:     Observation{SlurmState: "SOMETHING_NEW"},
			changed: false, want: StateLost, endTime: t0.Add(time.Hour), reason: "Slurm no longer lists job 7",
		},
		{
			name:    "completed is final",
			start:   func() *Run { return &Run{State: StateCompleted, EndTime: end, SlurmState: "COMPLETED"} },
			obs:     Observation{SlurmState: "RUNNING"},
			changed: false, want: StateCompleted, endTime: end, slurmWant: "COMPLETED",
		},
		{
			name:    "running does not go back to pending",
			start:   func() *Run { return &Run{State: StateRunning, SlurmState: "RUNNING"} },
			obs:     Observation{SlurmState: "PENDING"},
			changed: true, want: StateRunning, slurmWant: "PENDING",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.start()
			now := t0.Add(2 * time.Hour)
			if got := r.Apply(tc.obs, now); got != tc.changed {
				t.Errorf("changed = %v, want %v", got, tc.changed)
			}
			if r.State != tc.want || r.ExitCode != tc.exit || r.ExitSignal != tc.signal || !r.EndTime.Equal(tc.endTime) || r.Reason != tc.reason || r.SlurmState != tc.slurmWant {
				t.Errorf("run = state %s exit %d signal %d end %v reason %q slurm %q; want %s %d %d %v %q %q",
					r.State, r.ExitCode, r.ExitSignal, r.EndTime, r.Reason, r.SlurmState, tc.want, tc.exit, tc.signal, tc.endTime, tc.reason, tc.slurmWant)
			}
		})
	}
}
