// Package run owns sopilot's domain model of a run: the spec a user asks
// for, its validation, the run record the controller keeps, and the state
// machine that maps Slurm's job states onto run states that only move
// forward. It has no knowledge of protobuf, bbolt or Slurm's wire formats.
package run

import (
	"time"
)

// State is a run's place in its life.
type State int

// Run states. Their order matters: a run never moves to a lower rank (see
// rank), and every state from Completed on is terminal.
const (
	StateUnspecified State = iota
	StatePending
	StateRunning
	StateCompleting
	StateCompleted
	StateFailed
	StateCancelled
	StateTimeout
	StateNodeFail
	StatePreempted
	StateOutOfMemory
	StateLost
)

var stateNames = [...]string{
	StateUnspecified: "UNSPECIFIED",
	StatePending:     "PENDING",
	StateRunning:     "RUNNING",
	StateCompleting:  "COMPLETING",
	StateCompleted:   "COMPLETED",
	StateFailed:      "FAILED",
	StateCancelled:   "CANCELLED",
	StateTimeout:     "TIMEOUT",
	StateNodeFail:    "NODE_FAIL",
	StatePreempted:   "PREEMPTED",
	StateOutOfMemory: "OUT_OF_MEMORY",
	StateLost:        "LOST",
}

func (s State) String() string {
	if s < 0 || int(s) >= len(stateNames) {
		return "UNSPECIFIED"
	}
	return stateNames[s]
}

// ParseState is the inverse of String.
func ParseState(name string) (State, bool) {
	for i, n := range stateNames {
		if n == name {
			return State(i), true
		}
	}
	return StateUnspecified, false
}

// Terminal reports whether the run has ended: no longer tracked as active.
// Every terminal state is final except LOST, which a later observation of
// the job replaces (see Apply).
func (s State) Terminal() bool { return s >= StateCompleted }

// rank orders states for the forward-only rule: pending < running <
// completing < any terminal state.
func (s State) rank() int {
	switch {
	case s == StateUnspecified:
		return 0
	case s == StatePending:
		return 1
	case s == StateRunning:
		return 2
	case s == StateCompleting:
		return 3
	default:
		return 4
	}
}

// Spec is what a user asks to run. See the RunSpec message in the API for
// each field's meaning; Validate enforces the rules.
type Spec struct {
	JobName          string            `json:"job_name"`
	Nodes            int               `json:"nodes"`
	TasksPerNode     int               `json:"tasks_per_node,omitempty"`
	GPUsPerNode      int               `json:"gpus_per_node,omitempty"`
	CPUsPerTask      int               `json:"cpus_per_task,omitempty"`
	TimeLimit        time.Duration     `json:"time_limit"`
	Partition        string            `json:"partition,omitempty"`
	Argv             []string          `json:"argv,omitempty"`
	Script           string            `json:"script,omitempty"`
	WorkingDirectory string            `json:"working_directory,omitempty"`
	Environment      map[string]string `json:"environment,omitempty"`
	OutputDirectory  string            `json:"output_directory,omitempty"`
	DependsOn        []string          `json:"depends_on,omitempty"`
	Labels           map[string]string `json:"labels,omitempty"`
	ResultsPath      string            `json:"results_path,omitempty"`
	// Retry, when set, starts the run's job again after a hardware fault,
	// a node failure or a preemption (docs/resilience.md).
	Retry *RetryPolicy `json:"retry,omitempty"`
}

// Progress is the latest training progress a job reported.
type Progress struct {
	Step             int64              `json:"step"`
	TotalSteps       int64              `json:"total_steps,omitempty"`
	Loss             float64            `json:"loss,omitempty"`
	SamplesPerSecond float64            `json:"samples_per_second,omitempty"`
	ETA              time.Duration      `json:"eta,omitempty"`
	UpdateTime       time.Time          `json:"update_time"`
	Metrics          map[string]float64 `json:"metrics,omitempty"`
	// Checkpoint is the newest checkpoint among the lines of this update
	// (nil when none); the run keeps it as Run.Checkpoint.
	Checkpoint *Checkpoint `json:"checkpoint,omitempty"`
}

// Usage is what a run's jobs did with their GPUs, aggregated by the
// controller from the node agents' telemetry and stored when the run ends.
type Usage struct {
	GPUCount        int     `json:"gpu_count"`
	UtilizationMean float64 `json:"gpu_utilization_mean_percent"`
	UtilizationP95  float64 `json:"gpu_utilization_p95_percent"`
	MemoryPeakBytes int64   `json:"gpu_memory_peak_bytes"`
	EnergyJoules    float64 `json:"energy_joules"`
	GPUHours        float64 `json:"gpu_hours"`
	XIDs            []int32 `json:"xids,omitempty"`
	Samples         int64   `json:"samples"`
	Simulated       bool    `json:"simulated,omitempty"`
}

// Run is the controller's record of one submission.
type Run struct {
	ID         string `json:"id"`
	RequestID  string `json:"request_id"`
	Spec       Spec   `json:"spec"`
	State      State  `json:"state"`
	SlurmState string `json:"slurm_state,omitempty"`
	Reason     string `json:"reason,omitempty"`
	// SlurmJobID is empty until Slurm accepted the job. A non-terminal run
	// without one was recorded but its submission was not confirmed.
	SlurmJobID string    `json:"slurm_job_id,omitempty"`
	NodeList   string    `json:"node_list,omitempty"`
	ExitCode   int       `json:"exit_code"`
	ExitSignal int       `json:"exit_signal,omitempty"`
	OutputPath string    `json:"output_path,omitempty"`
	CreateTime time.Time `json:"create_time"`
	SubmitTime time.Time `json:"submit_time,omitzero"`
	StartTime  time.Time `json:"start_time,omitzero"`
	EndTime    time.Time `json:"end_time,omitzero"`
	UpdateTime time.Time `json:"update_time"`
	Progress   *Progress `json:"progress,omitempty"`
	Usage      *Usage    `json:"usage,omitempty"`
	// IncidentIDs are the health incidents on the run's nodes while it ran.
	IncidentIDs []string `json:"incident_ids,omitempty"`
	// Owner is who created the run (the authenticated user's name), empty
	// for runs created in insecure mode or before owners were recorded.
	// Submitters write (cancel, report results of) only runs they own;
	// operators and admins write any (auth.RuleFor).
	Owner string `json:"owner,omitempty"`

	// AttemptIncidentIDs are the incidents attached while the current
	// attempt ran: the hardware evidence that turns a FAILED job into a
	// HARDWARE retry rather than the job's own failure.
	AttemptIncidentIDs []string `json:"attempt_incident_ids,omitempty"`
	// Attempts are the run's ended attempts, oldest first; the current
	// attempt is the fields above (see Attempt, AllAttempts).
	Attempts []Attempt `json:"attempts,omitempty"`
	// Checkpoint is the last checkpoint the current attempt's job reported.
	Checkpoint *Checkpoint `json:"checkpoint,omitempty"`
	// AttemptTime is when the current attempt was decided (zero for the
	// first: CreateTime).
	AttemptTime time.Time `json:"attempt_time,omitzero"`
	// NotBefore is when the current attempt's job may be submitted (the
	// policy's back-off).
	NotBefore time.Time `json:"not_before,omitzero"`
	// SubmitBegan is written, for attempts after the first, just before
	// the job is handed to Slurm: a run with it set and no job id may have
	// a job in Slurm that only adoption can find; one without it has none.
	SubmitBegan time.Time `json:"submit_began,omitzero"`
	// Goodput is the run's GPU time used and kept, computed when an
	// attempt ends.
	Goodput *Goodput `json:"goodput,omitempty"`
}

// Submitted reports whether Slurm has accepted the run's job.
func (r *Run) Submitted() bool { return r.SlurmJobID != "" }

// Clone returns a deep copy, so callers can change it without touching a
// record shared with other goroutines.
func (r *Run) Clone() *Run {
	c := *r
	c.Spec.Argv = append([]string(nil), r.Spec.Argv...)
	c.Spec.DependsOn = append([]string(nil), r.Spec.DependsOn...)
	c.Spec.Environment = cloneMap(r.Spec.Environment)
	c.Spec.Labels = cloneMap(r.Spec.Labels)
	if r.Progress != nil {
		p := *r.Progress
		p.Metrics = cloneMap(r.Progress.Metrics)
		c.Progress = &p
	}
	if r.Usage != nil {
		u := *r.Usage
		u.XIDs = append([]int32(nil), r.Usage.XIDs...)
		c.Usage = &u
	}
	c.IncidentIDs = append([]string(nil), r.IncidentIDs...)
	c.AttemptIncidentIDs = append([]string(nil), r.AttemptIncidentIDs...)
	if r.Spec.Retry != nil {
		p := *r.Spec.Retry
		p.Causes = append([]Cause(nil), r.Spec.Retry.Causes...)
		c.Spec.Retry = &p
	}
	if r.Attempts != nil {
		c.Attempts = make([]Attempt, len(r.Attempts))
		for i, a := range r.Attempts {
			a.FaultyNodes = append([]string(nil), a.FaultyNodes...)
			if a.Checkpoint != nil {
				cp := *a.Checkpoint
				a.Checkpoint = &cp
			}
			c.Attempts[i] = a
		}
	}
	if r.Checkpoint != nil {
		cp := *r.Checkpoint
		c.Checkpoint = &cp
	}
	if r.Goodput != nil {
		g := *r.Goodput
		g.LostByCause = cloneMap(r.Goodput.LostByCause)
		c.Goodput = &g
	}
	return &c
}

func cloneMap[V any](m map[string]V) map[string]V {
	if m == nil {
		return nil
	}
	c := make(map[string]V, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}
