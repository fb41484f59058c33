package controlplane

import (
	"context"
	"fmt"

	"github.com/sopilot/sopilot/internal/scheduler"
)

// NoSlurm is a Config.Backend for running the controller without Slurm
// (hack/ingestbench, tests that need agents only): it has no jobs, so the
// run service polls nothing and every node's run assignments are empty,
// and it cannot read node states, so there is no node poller and no
// remediation. Submitting is refused as unavailable.
type NoSlurm struct{}

var _ scheduler.Backend = NoSlurm{}

var errNoSlurm = fmt.Errorf("%w: this controller runs without Slurm", scheduler.ErrUnavailable)

// Submit implements scheduler.Backend.
func (NoSlurm) Submit(context.Context, scheduler.JobSpec) (string, error) { return "", errNoSlurm }

// Jobs implements scheduler.Backend.
func (NoSlurm) Jobs(context.Context, []string) ([]scheduler.JobStatus, error) { return nil, nil }

// FindByComment implements scheduler.Backend.
func (NoSlurm) FindByComment(context.Context, string) ([]scheduler.JobStatus, error) {
	return nil, nil
}

// Cancel implements scheduler.Backend.
func (NoSlurm) Cancel(context.Context, string) error { return nil }

// Name implements scheduler.Backend.
func (NoSlurm) Name() string { return "none" }
