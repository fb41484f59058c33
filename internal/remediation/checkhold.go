package remediation

import (
	"context"
	"errors"
	"fmt"
)

// checkHoldEvidence is the evidence of the drain that holds a node while
// an active check runs on it.
const checkHoldEvidence = "nccl check in progress"

// ErrNodeInUse: the node runs jobs (or is not plainly idle), so a check is
// not started there now.
var ErrNodeInUse = errors.New("node in use")

// ErrNoHold: the engine changes nothing in Slurm (dry-run), so it cannot
// hold a node for a check.
var ErrNoHold = errors.New("dry-run: a node is not held for a check")

// isCheckHold reports whether a reason is the engine's hold for a check.
func (e *Engine) isCheckHold(reason string) bool {
	return reason == FormatReason(e.cfg.Prefix, checkHoldEvidence, "")
}

// HoldForCheck keeps every Slurm job off node while an active check (the
// NCCL test, which runs outside Slurm through the node's agent) uses its
// GPUs, so that the check never overlaps a job: a user's, or Soperator's
// NCCL benchmark and active checks, which are Slurm jobs too. It drains the
// node with "<prefix> nccl check in progress" (Slurm starts no job on a
// drained node, and Soperator's check runner skips drained nodes), reads
// Slurm again, and gives up (resuming the node) if a job slipped in
// between. release resumes the node unless its reason changed meanwhile.
//
// A node the engine already holds drained for evidence needs no hold: its
// drain keeps jobs off, release does nothing. A node drained or down by
// someone else is ErrForeign; one that is not IDLE without flags is
// ErrNodeInUse; in dry-run it is ErrNoHold. While held the node is left
// alone by Step, and the hold is not a drain for the breaker. If the
// controller stops during a check, the hold stays: the node is then one
// of ours with healthy evidence, verified and resumed as usual.
func (e *Engine) HoldForCheck(ctx context.Context, node string) (release func(context.Context) error, err error) {
	noop := func(context.Context) error { return nil }
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cfg.DryRun {
		return nil, fmt.Errorf("hold %s: %w", node, ErrNoHold)
	}
	ns := e.state(node)
	if ns.busy {
		return nil, fmt.Errorf("hold %s: %w", node, ErrBusy)
	}
	st, err := e.lookup(ctx, node)
	switch {
	case err != nil:
		return nil, fmt.Errorf("hold %s: %w", node, err)
	case e.ours(st) && !st.Allocated():
		return noop, nil
	case e.foreign(st) || e.ours(st):
		return nil, fmt.Errorf("hold %s: %w (%s, reason %q)", node, ErrForeign, st.StateString(), st.Reason)
	case st.State != "IDLE" || len(st.Flags) > 0:
		return nil, fmt.Errorf("hold %s: %w (%s)", node, ErrNodeInUse, st.StateString())
	}
	reason := FormatReason(e.cfg.Prefix, checkHoldEvidence, "")
	if err := e.backend.Drain(ctx, node, reason); err != nil {
		return nil, fmt.Errorf("hold %s: %w", node, err)
	}
	// A job that started between the read and the drain keeps running:
	// give the node back and try later.
	if st, err = e.lookup(ctx, node); err != nil || st.Allocated() || st.Reason != reason {
		e.releaseLocked(ctx, node, reason)
		if err == nil {
			err = fmt.Errorf("%w (%s)", ErrNodeInUse, st.StateString())
		}
		return nil, fmt.Errorf("hold %s: %w", node, err)
	}
	ns.busy = true
	return func(ctx context.Context) error {
		e.mu.Lock()
		defer e.mu.Unlock()
		e.state(node).busy = false
		return e.releaseLocked(ctx, node, reason)
	}, nil
}

// releaseLocked resumes a node held for a check if it still carries the
// hold's reason. Called with e.mu held.
func (e *Engine) releaseLocked(ctx context.Context, node, reason string) error {
	st, err := e.lookup(ctx, node)
	if err != nil {
		return fmt.Errorf("release %s: %w", node, err)
	}
	if !st.Drained() || st.Reason != reason {
		return nil // taken over meanwhile (a drain for evidence, a person): theirs now
	}
	if err := e.backend.Resume(ctx, node); err != nil {
		return fmt.Errorf("release %s: %w", node, err)
	}
	return nil
}
