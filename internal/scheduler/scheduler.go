// Package scheduler owns sopilot's view of Slurm: one Backend interface with
// two real implementations (the Slurm command-line tools in slurmcli and the
// slurmrestd REST API in slurmrest), the job description they submit, the
// job states they report, and the batch-script renderer that turns a
// validated job description into a script without ever interpolating a user
// value into shell code unquoted.
package scheduler

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Backend is how the controller talks to Slurm. Implementations must be safe
// for concurrent use.
type Backend interface {
	// Submit creates one batch job and returns its Slurm job id.
	Submit(ctx context.Context, job JobSpec) (JobID string, err error)
	// Jobs returns the state of every job Slurm still knows whose id is in
	// ids, with one query to slurmctld however many ids there are. Ids Slurm
	// has forgotten are simply absent from the result.
	Jobs(ctx context.Context, ids []string) ([]JobStatus, error)
	// FindByComment returns the jobs Slurm still knows whose comment starts
	// with prefix (one query). The controller uses it to adopt jobs it
	// submitted but had not recorded before a crash.
	FindByComment(ctx context.Context, prefix string) ([]JobStatus, error)
	// Cancel asks Slurm to cancel the job. Cancelling a job that has already
	// ended or that Slurm has forgotten returns nil.
	Cancel(ctx context.Context, jobID string) error
	// Name says which backend this is ("cli" or "rest"), for logs and metrics.
	Name() string
}

// Sentinel errors. Backends wrap them so callers can use errors.Is.
var (
	// ErrUnavailable means slurmctld (or slurmrestd) could not be reached;
	// the operation may succeed if retried.
	ErrUnavailable = errors.New("slurm unavailable")
	// ErrRejected means Slurm refused the request (bad partition, too many
	// nodes, invalid dependency, ...). Retrying the same request will not help.
	ErrRejected = errors.New("slurm rejected the request")
	// ErrMisconfigured means the backend is set up wrong for the Slurm it
	// talks to: the credentials were refused, or slurmrestd does not serve
	// the API version or path asked for. Retrying will not help until the
	// configuration changes, and it says nothing about the job itself:
	// it is never ErrRejected.
	ErrMisconfigured = errors.New("slurm backend misconfigured")
)

// JobSpec is everything needed to submit one batch job. All fields must
// already be validated (see run validation); backends pass them to Slurm as
// separate, typed arguments, never through a shell.
type JobSpec struct {
	Name         string // --job-name
	Partition    string // --partition; empty = cluster default
	Nodes        int    // --nodes
	TasksPerNode int    // --ntasks-per-node
	GPUsPerNode  int    // --gres=gpu:N; 0 = none
	CPUsPerTask  int    // --cpus-per-task; 0 = Slurm default
	TimeLimit    time.Duration
	WorkDir      string // --chdir; absolute
	// OutputPath is the job's stdout/stderr file (--output, --error);
	// absolute, may contain Slurm's %j and %x patterns.
	OutputPath string
	// Comment is written into the job's comment field; the controller puts
	// its idempotency key here.
	Comment string
	// Dependencies are Slurm job ids this job waits for (afterok).
	Dependencies []string
	// Exclude are node names the job must not run on (--exclude): the
	// nodes blamed for an earlier attempt of the run. slurmrestd's
	// v0.0.38 (Slurm 22.05) has no such field ("excluded_nodes" is a
	// disabled key there); that backend submits without it, and the
	// node's drain alone keeps the job off it.
	Exclude []string
	// Environment is the complete environment of the batch step, on top of
	// what Slurm itself sets. Nothing from the controller's own environment
	// leaks into the job.
	Environment map[string]string
	// Script is the complete batch script (starts with #!), as rendered by
	// RenderScript.
	Script string
}

// State is a Slurm job state reduced to what sopilot distinguishes.
type State string

// Job states as Slurm names them (base state, flags removed).
const (
	StatePending     State = "PENDING"
	StateRunning     State = "RUNNING"
	StateSuspended   State = "SUSPENDED"
	StateCompleting  State = "COMPLETING"
	StateCompleted   State = "COMPLETED"
	StateFailed      State = "FAILED"
	StateCancelled   State = "CANCELLED"
	StateTimeout     State = "TIMEOUT"
	StateNodeFail    State = "NODE_FAIL"
	StatePreempted   State = "PREEMPTED"
	StateOutOfMemory State = "OUT_OF_MEMORY"
	StateBootFail    State = "BOOT_FAIL"
	StateDeadline    State = "DEADLINE"
)

// JobStatus is one job as Slurm reports it.
type JobStatus struct {
	JobID string
	Name  string
	// State is the one word Slurm's job_state_string() prints for the job,
	// upper case: the base state ("RUNNING", "COMPLETED", "CANCELLED", ...)
	// unless a flag takes precedence ("COMPLETING", "CONFIGURING",
	// "REQUEUED", ...). It is the same on every Slurm version and from every
	// backend: Slurm 24.11 and later report a job right after scancel as
	// ["CANCELLED","COMPLETING"], which reads "COMPLETING", as 22.05's
	// string did. COMPLETING is not final; the exit code and signal are
	// known only once it is gone. Unknown states are passed through as Slurm
	// spelled them.
	State   string
	Reason  string // Slurm's reason ("None", "Resources", "Dependency", ...)
	Comment string
	// Nodes is the compact Slurm node list ("worker-[0-1]"); empty while pending.
	Nodes string
	// ExitCode is the batch script's exit status; -1 when unknown (always
	// while the job is pending, running or COMPLETING). Signal is the
	// terminating signal, 0 if none.
	ExitCode  int
	Signal    int
	StartTime time.Time // zero when not started
	EndTime   time.Time // zero when not ended
}

// Option is one sbatch option: Name without the leading "--".
type Option struct{ Name, Value string }

// Options returns the sbatch options that describe job, in a fixed order.
// The CLI backend passes them as argv elements and RenderScript writes the
// same list as #SBATCH lines, so the script a user reads says exactly what
// was submitted.
func (j JobSpec) Options() []Option {
	var opts []Option
	add := func(name, value string) { opts = append(opts, Option{name, value}) }
	if j.Name != "" {
		add("job-name", j.Name)
	}
	if j.Partition != "" {
		add("partition", j.Partition)
	}
	if j.Nodes > 0 {
		add("nodes", strconv.Itoa(j.Nodes))
	}
	if j.TasksPerNode > 0 {
		add("ntasks-per-node", strconv.Itoa(j.TasksPerNode))
	}
	if j.GPUsPerNode > 0 {
		add("gres", "gpu:"+strconv.Itoa(j.GPUsPerNode))
	}
	if j.CPUsPerTask > 0 {
		add("cpus-per-task", strconv.Itoa(j.CPUsPerTask))
	}
	if j.TimeLimit > 0 {
		add("time", FormatTimeLimit(j.TimeLimit))
	}
	if j.WorkDir != "" {
		add("chdir", j.WorkDir)
	}
	if j.OutputPath != "" {
		add("output", j.OutputPath)
		add("error", j.OutputPath)
	}
	if j.Comment != "" {
		add("comment", j.Comment)
	}
	if len(j.Dependencies) > 0 {
		add("dependency", "afterok:"+strings.Join(j.Dependencies, ":"))
	}
	if len(j.Exclude) > 0 {
		add("exclude", strings.Join(j.Exclude, ","))
	}
	return opts
}

// ValidNodeName reports whether name can be passed to Slurm as one node
// name in a list: non-empty, at most 64 bytes of letters, digits, '-', '_'
// and '.' (no list or range syntax).
func ValidNodeName(name string) bool {
	if name == "" || len(name) > 64 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}
