package run

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Cause is why an attempt of a run ended and another began.
type Cause int

// Retry causes. The names are the API's RetryCause enum without its prefix.
const (
	CauseUnspecified Cause = iota
	// CauseHardware: remediation drained (or handed off) one of the
	// attempt's nodes for hardware-class evidence (an XID 79, ...).
	CauseHardware
	// CauseNodeFail: Slurm ended the job NODE_FAIL.
	CauseNodeFail
	// CausePreempted: Slurm ended the job PREEMPTED.
	CausePreempted
	// CauseExitCode: the job itself failed (non-zero exit, no hardware
	// evidence). Retried only when the policy names it.
	CauseExitCode
	// CauseDependency: a run this one depends on started a new attempt,
	// so this run's job, still waiting on the old one, was replaced by one
	// that waits on the new one. Never counts against max_attempts.
	CauseDependency
)

var causeNames = [...]string{
	CauseUnspecified: "UNSPECIFIED",
	CauseHardware:    "HARDWARE",
	CauseNodeFail:    "NODE_FAIL",
	CausePreempted:   "PREEMPTED",
	CauseExitCode:    "EXIT_CODE",
	CauseDependency:  "DEPENDENCY",
}

func (c Cause) String() string {
	if c < 0 || int(c) >= len(causeNames) {
		return "UNSPECIFIED"
	}
	return causeNames[c]
}

// ParseCause is the inverse of String.
func ParseCause(name string) (Cause, bool) {
	for i, n := range causeNames {
		if n == name {
			return Cause(i), true
		}
	}
	return CauseUnspecified, false
}

// MarshalText writes the cause by name, so stored records stay readable
// and do not depend on the numbering.
func (c Cause) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

// UnmarshalText reads a name written by MarshalText.
func (c *Cause) UnmarshalText(b []byte) error {
	v, ok := ParseCause(string(b))
	if !ok {
		return fmt.Errorf("unknown retry cause %q", b)
	}
	*c = v
	return nil
}

// Retry policy bounds.
const (
	// MaxAttemptsLimit bounds RetryPolicy.MaxAttempts.
	MaxAttemptsLimit = 16
	// MaxBackoff bounds RetryPolicy.Backoff.
	MaxBackoff = time.Hour
)

// DefaultCauses are the causes retried when a policy names none: every
// cause that is the hardware's or the scheduler's fault, never the job's.
var DefaultCauses = []Cause{CauseHardware, CauseNodeFail, CausePreempted}

// RetryPolicy says when a run's job is started again after it ended.
type RetryPolicy struct {
	// MaxAttempts is how many attempts the run may have in all, the
	// first included (2-16). Dependency replacements do not count.
	MaxAttempts int `json:"max_attempts"`
	// Causes are the causes retried; empty means DefaultCauses.
	Causes []Cause `json:"causes,omitempty"`
	// KeepFaultyNodes, when set, lets the next attempt run on the node
	// that caused the retry; by default it is excluded (--exclude).
	KeepFaultyNodes bool `json:"keep_faulty_nodes,omitempty"`
	// Backoff is the wait before the second attempt's job is submitted;
	// it doubles for each further attempt, up to MaxBackoff.
	Backoff time.Duration `json:"backoff,omitempty"`
}

// Retries reports whether the policy retries cause.
func (p *RetryPolicy) Retries(c Cause) bool {
	if p == nil || p.MaxAttempts < 2 {
		return false
	}
	if c == CauseDependency {
		return true
	}
	causes := p.Causes
	if len(causes) == 0 {
		causes = DefaultCauses
	}
	return slices.Contains(causes, c)
}

// BackoffBefore is the wait before attempt n (n >= 2) is submitted.
func (p *RetryPolicy) BackoffBefore(n int) time.Duration {
	if p == nil || p.Backoff <= 0 || n < 2 {
		return 0
	}
	d := p.Backoff
	for i := 2; i < n && d < MaxBackoff; i++ {
		d *= 2
	}
	return min(d, MaxBackoff)
}

func validateRetry(vs *violations, p *RetryPolicy) {
	if p == nil {
		return
	}
	validateRange(vs, "spec.retry.max_attempts", p.MaxAttempts, 2, MaxAttemptsLimit, " (the first attempt included; leave retry unset for none)")
	seen := map[Cause]int{}
	for i, c := range p.Causes {
		field := fmt.Sprintf("spec.retry.causes[%d]", i)
		switch c {
		case CauseHardware, CauseNodeFail, CausePreempted, CauseExitCode:
		default:
			vs.add(field, "must be one of HARDWARE, NODE_FAIL, PREEMPTED, EXIT_CODE; got %s", c)
			continue
		}
		if j, ok := seen[c]; ok {
			vs.add(field, "must not repeat a cause; %s is also spec.retry.causes[%d]", c, j)
			continue
		}
		seen[c] = i
	}
	if p.Backoff < 0 || p.Backoff > MaxBackoff {
		vs.add("spec.retry.backoff", "must be between 0 and %s; got %s", MaxBackoff, p.Backoff)
	}
}

// Checkpoint is the last checkpoint a job reported in its progress file.
type Checkpoint struct {
	Step int64  `json:"step"`
	Path string `json:"path"`
	// Time is when the job wrote the line that reported it.
	Time time.Time `json:"time"`
}

// Attempt is one ended attempt of a run: one Slurm job. The current
// attempt is the run's own fields (SlurmJobID, NodeList, State, ...);
// Run.AllAttempts puts them together.
type Attempt struct {
	Number     int       `json:"number"`
	SlurmJobID string    `json:"slurm_job_id,omitempty"`
	NodeList   string    `json:"node_list,omitempty"`
	State      State     `json:"state"`
	SlurmState string    `json:"slurm_state,omitempty"`
	ExitCode   int       `json:"exit_code"`
	SubmitTime time.Time `json:"submit_time,omitzero"`
	StartTime  time.Time `json:"start_time,omitzero"`
	EndTime    time.Time `json:"end_time,omitzero"`
	// Cause is why the attempt ended and the next one began (zero for the
	// current attempt).
	Cause Cause `json:"cause,omitempty"`
	// FaultyNodes are the nodes blamed for the cause (excluded from the
	// next attempts unless the policy keeps them).
	FaultyNodes []string `json:"faulty_nodes,omitempty"`
	// IncidentID is the health incident behind a HARDWARE cause.
	IncidentID string `json:"incident_id,omitempty"`
	// Checkpoint is the last checkpoint the attempt's job reported; the
	// next attempt resumes from it.
	Checkpoint *Checkpoint `json:"checkpoint,omitempty"`
	// CancelPending is set while the attempt's job, ended by sopilot for
	// the retry, has not yet been cancelled in Slurm: the intent is stored
	// before the cancel, so a controller that dies between the two
	// cancels it after its restart, before the next job is submitted.
	CancelPending bool `json:"cancel_pending,omitempty"`
}

// Attempt is the number of the run's current attempt, counting from 1.
func (r *Run) Attempt() int { return len(r.Attempts) + 1 }

// CountedAttempts is how many attempts count against the policy's
// MaxAttempts: all but the dependency replacements.
func (r *Run) CountedAttempts() int {
	n := 1
	for _, a := range r.Attempts {
		if a.Cause != CauseDependency {
			n++
		}
	}
	return n
}

// Current is the current attempt as an Attempt record.
func (r *Run) Current() Attempt {
	return Attempt{
		Number: r.Attempt(), SlurmJobID: r.SlurmJobID, NodeList: r.NodeList, State: r.State,
		SlurmState: r.SlurmState, ExitCode: r.ExitCode, SubmitTime: r.SubmitTime,
		StartTime: r.StartTime, EndTime: r.EndTime, Checkpoint: r.Checkpoint,
	}
}

// AllAttempts lists every attempt, the current one last.
func (r *Run) AllAttempts() []Attempt {
	return append(slices.Clone(r.Attempts), r.Current())
}

// ExcludedNodes are the nodes the next job of the run must not use: the
// faulty nodes of every ended attempt, unless the policy keeps them.
func (r *Run) ExcludedNodes() []string {
	if r.Spec.Retry != nil && r.Spec.Retry.KeepFaultyNodes {
		return nil
	}
	var out []string
	for _, a := range r.Attempts {
		for _, n := range a.FaultyNodes {
			if !slices.Contains(out, n) {
				out = append(out, n)
			}
		}
	}
	return out
}

// ResumeCheckpoint is the newest checkpoint of any attempt: where the
// current attempt's job should resume.
func (r *Run) ResumeCheckpoint() *Checkpoint {
	var best *Checkpoint
	consider := func(c *Checkpoint) {
		if c != nil && (best == nil || c.Step > best.Step) {
			best = c
		}
	}
	for i := range r.Attempts {
		consider(r.Attempts[i].Checkpoint)
	}
	consider(r.Checkpoint)
	if best == nil {
		return nil
	}
	c := *best
	return &c
}

// RetryDecision is what Decide says about an attempt that is ending.
type RetryDecision struct {
	Retry bool
	// Why explains a refusal (for the run's reason): "" when retried.
	Why string
}

// DecideRetry applies the run's policy to an attempt ending for cause.
// Only non-terminal runs, and runs whose current job just reached a
// terminal state in the same observation, may be retried: the caller
// passes the run as it was before the observation.
func (r *Run) DecideRetry(c Cause) RetryDecision {
	p := r.Spec.Retry
	switch {
	case c == CauseDependency:
		// Not the run's fault and not the hardware's: its job waits on a
		// job that will never succeed, whatever its own policy says.
		return RetryDecision{Retry: true}
	case p == nil:
		return RetryDecision{Why: "the run has no retry policy"}
	case !p.Retries(c):
		return RetryDecision{Why: fmt.Sprintf("the retry policy does not retry %s", c)}
	case c != CauseDependency && r.CountedAttempts() >= p.MaxAttempts:
		return RetryDecision{Why: fmt.Sprintf("all %d attempts used", p.MaxAttempts)}
	}
	return RetryDecision{Retry: true}
}

// CauseOf says which retry cause, if any, a job's terminal state is. A
// FAILED job is the job's own failure (EXIT_CODE) unless hardware evidence
// says otherwise, which the caller knows and this function does not.
func CauseOf(s State) (Cause, bool) {
	switch s {
	case StateNodeFail:
		return CauseNodeFail, true
	case StatePreempted:
		return CausePreempted, true
	case StateFailed, StateOutOfMemory:
		return CauseExitCode, true
	}
	return CauseUnspecified, false
}

// BeginRetry ends the current attempt for cause and makes the run wait for
// its next one: the attempt is moved into Attempts and the run's own job
// fields are cleared (state PENDING, no Slurm job id), so the controller
// submits the next job once NotBefore has passed. cancel says the ended
// attempt's job is still alive in Slurm and must be cancelled first (a
// drain: the job runs on); endState is the state recorded for it
// (CANCELLED then, or what Slurm reported: NODE_FAIL, PREEMPTED, ...).
// The caller has checked DecideRetry.
func (r *Run) BeginRetry(cause Cause, faulty []string, incidentID string, endState State, cancel bool, now time.Time) {
	a := r.Current()
	a.Cause, a.FaultyNodes, a.IncidentID = cause, slices.Clone(faulty), incidentID
	a.State, a.CancelPending = endState, cancel
	if a.EndTime.IsZero() {
		a.EndTime = now
	}
	r.Attempts = append(r.Attempts, a)
	next := r.Attempt()
	var wait time.Duration
	if cause != CauseDependency {
		wait = r.Spec.Retry.BackoffBefore(r.CountedAttempts())
	}
	r.State, r.SlurmState, r.SlurmJobID, r.NodeList = StatePending, "", "", ""
	r.ExitCode, r.ExitSignal = 0, 0
	r.SubmitTime, r.StartTime, r.EndTime, r.SubmitBegan = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	r.Checkpoint, r.AttemptIncidentIDs = nil, nil
	r.AttemptTime = now
	r.NotBefore = now.Add(wait)
	var why strings.Builder
	fmt.Fprintf(&why, "attempt %d: attempt %d ended (%s", next, a.Number, cause)
	if len(faulty) > 0 {
		fmt.Fprintf(&why, " on %s", strings.Join(faulty, ","))
	}
	if incidentID != "" {
		fmt.Fprintf(&why, ", incident %s", incidentID)
	}
	why.WriteString(")")
	if wait > 0 {
		fmt.Fprintf(&why, "; submitting after a %s back-off", wait)
	}
	r.Reason = why.String()
	r.UpdateTime = now
}

// CommentFor is the Slurm job comment of attempt n of run id: prefix and
// the id for the first attempt (what every earlier release wrote), then
// ";attempt=n". The attempt number makes each attempt's job findable on
// its own, so adoption after a crash never takes the job of one attempt
// for another's.
func CommentFor(prefix, id string, n int) string {
	if n <= 1 {
		return prefix + id
	}
	return fmt.Sprintf("%s%s;attempt=%d", prefix, id, n)
}

// ParseComment reads a comment written by CommentFor: the run id and the
// attempt number. ok is false for a comment without prefix or with a
// malformed attempt.
func ParseComment(prefix, comment string) (id string, attempt int, ok bool) {
	rest, found := strings.CutPrefix(comment, prefix)
	if !found || rest == "" {
		return "", 0, false
	}
	id, n, has := strings.Cut(rest, ";attempt=")
	if !has {
		return id, 1, true
	}
	attempt = 0
	for _, c := range []byte(n) {
		if c < '0' || c > '9' || attempt > MaxAttemptsLimit*1000 {
			return "", 0, false
		}
		attempt = attempt*10 + int(c-'0')
	}
	if attempt < 2 || id == "" {
		return "", 0, false
	}
	return id, attempt, true
}
