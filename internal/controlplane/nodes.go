package controlplane

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sopilot/sopilot/internal/api"
	"github.com/sopilot/sopilot/internal/fleet"
	"github.com/sopilot/sopilot/internal/monitor"
	"github.com/sopilot/sopilot/internal/remediation"
	"github.com/sopilot/sopilot/internal/scheduler"
)

// nodePoller keeps the fleet's copy of Slurm's node states fresh: one
// query per interval, and one more at once when kicked (after a drain or
// resume, so that NodeService shows it).
type nodePoller struct {
	nodes scheduler.NodeBackend
	fleet *fleet.Fleet
	every time.Duration
	kick  chan struct{}
	log   *slog.Logger
	// mu orders reads with their writes to the fleet, so that a read
	// started before a drain or resume never lands after Refresh's newer
	// one.
	mu sync.Mutex
}

// Refresh reads Slurm's node states now and records them before it
// returns: NodeService calls it after a drain or resume, so that its
// answer and the next ListNodes show Slurm's new state, not the previous
// poll's for up to an interval.
func (p *nodePoller) Refresh(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	ns, err := p.nodes.Nodes(ctx)
	if err != nil {
		return fmt.Errorf("read slurm node states: %w", err)
	}
	p.fleet.SetSlurmNodes(ctx, ns)
	return nil
}

func newNodePoller(nodes scheduler.NodeBackend, fl *fleet.Fleet, every time.Duration, logger *slog.Logger) *nodePoller {
	return &nodePoller{nodes: nodes, fleet: fl, every: every, kick: make(chan struct{}, 1), log: logger.With("component", "node_poller")}
}

// Kick asks for a read now; it never blocks.
func (p *nodePoller) Kick() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// Run polls until ctx ends. A failed read is logged and retried at the
// next tick; it never ends the controller.
func (p *nodePoller) Run(ctx context.Context) error {
	t := time.NewTicker(p.every)
	defer t.Stop()
	for {
		if err := p.Refresh(ctx); err != nil && ctx.Err() == nil {
			p.log.Warn("read slurm node states", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-p.kick:
		}
	}
}

// noDrains is the monitor's node operations on a controller that runs no
// remediation engine (--remediation=off, or a Slurm backend that cannot
// change node state): checks and incidents work, drains are refused with
// a reason the caller can act on.
type noDrains struct{ *monitor.Monitor }

var _ api.NodeOps = noDrains{}

var errNoRemediation = status.Error(codes.FailedPrecondition, "this controller runs no remediation (remediation is off, or its Slurm backend cannot change node state): drain and resume the node in Slurm")

func (noDrains) Drain(context.Context, string, string, string) (remediation.Decision, error) {
	return remediation.Decision{}, errNoRemediation
}

func (noDrains) Undrain(context.Context, string, bool, string) (remediation.Decision, error) {
	return remediation.Decision{}, errNoRemediation
}
