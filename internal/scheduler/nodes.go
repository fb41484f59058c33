package scheduler

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"
)

// NodeStatus is Slurm's view of one node.
type NodeStatus struct {
	Name string
	// State is the base state, upper case: IDLE, ALLOCATED, MIXED, DOWN,
	// COMPLETING, FUTURE, UNKNOWN, ...
	State string
	// Flags are upper-case state flags: DRAIN, NOT_RESPONDING, COMPLETING,
	// RESERVED, MAINTENANCE, ... in the order Slurm reports them.
	Flags []string
	// Reason is the drain/down reason as Slurm stores it: "" when none, and
	// for a node that is neither down nor drained (nor failing, rebooting or
	// powering down), whatever Slurm still stores (24.11 keeps a drain
	// reason after RESUME), so that every Slurm version reads alike.
	Reason string
	// ReasonUser is who set Reason (a user name, or a uid as text).
	ReasonUser string
	// ReasonTime is when Reason was set (zero when none).
	ReasonTime time.Time
	// GPUs is the node's configured gpu GRES count (0 when none).
	GPUs int
	// InstanceID is the machine the node's slurmd runs on, as slurmd
	// registered it (--instance-id; Slurm 23.11 and later). Soperator
	// starts slurmd with the worker pod's Kubernetes node name here, so it
	// is what maps a Slurm node to the node agent of its machine. Empty
	// when slurmd set none, on Slurm without instance ids (22.05) and from
	// listings that do not carry it (sinfo --json). A value that is not a
	// plain name (CheckNodeName) is InstanceIDInvalid.
	InstanceID string
}

// InstanceIDInvalid stands for an instance id that is not a plain name: it
// matches no machine and is not empty, so the node is never mapped to an
// agent by its own name either.
const InstanceIDInvalid = "(invalid)"

// CleanInstanceID is how backends store an instance id read from Slurm:
// "" stays "", a plain name (CheckNodeName) is kept, anything else is
// InstanceIDInvalid.
func CleanInstanceID(raw string) string {
	if raw == "" || CheckNodeName(raw) == nil {
		return raw
	}
	return InstanceIDInvalid
}

// Drained reports whether the node carries the DRAIN flag (draining or
// drained).
func (n NodeStatus) Drained() bool { return n.HasFlag("DRAIN") }

// HasFlag reports whether the node carries the state flag (upper case).
func (n NodeStatus) HasFlag(flag string) bool { return slices.Contains(n.Flags, flag) }

// Allocated reports whether jobs hold some of the node (ALLOCATED or MIXED,
// or COMPLETING as a base state).
func (n NodeStatus) Allocated() bool {
	switch n.State {
	case "ALLOCATED", "MIXED", "COMPLETING":
		return true
	}
	return false
}

// StateString is the scontrol-style state: "IDLE", "ALLOCATED+DRAIN", ...
func (n NodeStatus) StateString() string {
	if len(n.Flags) == 0 {
		return n.State
	}
	return n.State + "+" + strings.Join(n.Flags, "+")
}

// ErrNodeUnsupported is returned by a NodeBackend that cannot perform a node
// operation (e.g. an old slurmrestd API version without node updates).
var ErrNodeUnsupported = errors.New("node operation not supported by this slurm backend")

// NodeBackend is how the controller reads and changes Slurm node state.
// Implementations must be safe for concurrent use. Errors wrap
// ErrUnavailable, ErrRejected or ErrNodeUnsupported where they apply.
type NodeBackend interface {
	// Nodes returns every node Slurm knows, with one query to slurmctld.
	Nodes(ctx context.Context) ([]NodeStatus, error)
	// Drain sets the DRAIN flag on the node with the given reason. Running
	// jobs keep running; no new job starts there.
	Drain(ctx context.Context, node, reason string) error
	// Resume clears DRAIN (scontrol update state=RESUME).
	Resume(ctx context.Context, node string) error
}
