package health

import (
	"time"

	"github.com/sopilot/sopilot/internal/telemetry"
)

// Verdict is the health of a component or a node. Values are ordered from
// best to worst, so the node verdict is the maximum over its components.
type Verdict int

// Verdicts. Unknown ranks between Degraded and Unhealthy: a node we cannot
// see is not scheduled on with confidence, but it is never drained for
// silence alone.
const (
	Healthy Verdict = iota
	Degraded
	Unknown
	Unhealthy
)

func (v Verdict) String() string {
	switch v {
	case Healthy:
		return "HEALTHY"
	case Degraded:
		return "DEGRADED"
	case Unknown:
		return "UNKNOWN"
	case Unhealthy:
		return "UNHEALTHY"
	}
	return "INVALID"
}

// Action is what a finding recommends. Values are ordered by urgency, so the
// node action is the maximum over its findings.
type Action int

// Actions.
const (
	ActionNone Action = iota
	// ActionRecordAgainstRun: attach the evidence to the run that was hit.
	ActionRecordAgainstRun
	// ActionResetWhenIdle: reset the GPU once no job runs on it.
	ActionResetWhenIdle
	// ActionDrainAfterJob: drain, letting the running job finish.
	ActionDrainAfterJob
	// ActionDrainNow: drain now; the running job is already lost.
	ActionDrainNow
)

func (a Action) String() string {
	switch a {
	case ActionNone:
		return "none"
	case ActionRecordAgainstRun:
		return "record_against_run"
	case ActionResetWhenIdle:
		return "reset_when_idle"
	case ActionDrainAfterJob:
		return "drain_after_job"
	case ActionDrainNow:
		return "drain_now"
	}
	return "invalid"
}

// Event is a health event with the job that ran on its component when it
// happened ("" when none or not known).
type Event struct {
	telemetry.HealthEvent
	JobID string
}

// Evidence is what is known about one node over a window.
type Evidence struct {
	Node string
	// LastReport is when the agent last reported; zero when never.
	LastReport time.Time
	// ExpectedGPUs is the inventory expectation (0: no expectation).
	ExpectedGPUs int
	// ObservedGPUs is how many GPUs the agent enumerates now.
	ObservedGPUs int
	// GPUSamples over the window, any order.
	GPUSamples []telemetry.GPUSample
	// Events over the window, any order.
	Events []Event
	// IBPorts samples over the window, any order.
	IBPorts []telemetry.IBPortSample
}

// Finding is one component's reason for a verdict.
type Finding struct {
	Component string // "gpu3", "ib:mlx5_0/1", "node", "agent"
	Rule      string // stable rule name, e.g. "xid_drain", "ib_symbol_error_fatal"
	Verdict   Verdict
	Action    Action
	Reason    string // for operators: "xid 79 (drain) on gpu3"
	// Kind and Code are the event kind and code of a finding made from
	// health events ("" and 0 for the others).
	Kind string
	Code int64
}

// Result is a node's verdict: the worst over its findings.
type Result struct {
	Verdict  Verdict
	Action   Action
	Findings []Finding
}
