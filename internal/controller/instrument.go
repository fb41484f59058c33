package controller

import (
	"context"
	"errors"
	"time"

	"github.com/sopilot/sopilot/internal/metrics"
	"github.com/sopilot/sopilot/internal/scheduler"
)

// instrumented records every Slurm request's latency and result.
type instrumented struct {
	scheduler.Backend
	m *metrics.Controller
}

var (
	_ scheduler.Backend        = (*instrumented)(nil)
	_ scheduler.GatedSubmitter = (*instrumented)(nil)
)

func (b *instrumented) observe(op string, start time.Time, err error) {
	result := "ok"
	switch {
	case err == nil:
	case errors.Is(err, scheduler.ErrUnavailable):
		result = "unavailable"
	case errors.Is(err, scheduler.ErrRejected):
		result = "rejected"
	default:
		result = "error"
	}
	b.m.ObserveScheduler(b.Name(), op, result, time.Since(start))
}

func (b *instrumented) Submit(ctx context.Context, job scheduler.JobSpec) (string, error) {
	start := time.Now()
	id, err := b.Backend.Submit(ctx, job)
	b.observe("submit", start, err)
	return id, err
}

// SubmitGated keeps the inner backend's gated submission visible through
// the wrapper (scheduler.SubmitAfter looks for it on the outermost value).
// "submit" is observed only when the gate opened: after a refused gate
// nothing was asked of Slurm. It is timed as the backend's whole call,
// which holds the gate's time where it overlaps; without a gated inner
// backend the gate runs first, outside the timing, as before.
func (b *instrumented) SubmitGated(ctx context.Context, job scheduler.JobSpec, gate func() error) (string, error) {
	g, ok := b.Backend.(scheduler.GatedSubmitter)
	if !ok {
		if err := gate(); err != nil {
			return "", err
		}
		return b.Submit(ctx, job)
	}
	start := time.Now()
	opened := false
	id, err := g.SubmitGated(ctx, job, func() error {
		err := gate()
		opened = err == nil
		return err
	})
	if opened {
		b.observe("submit", start, err)
	}
	return id, err
}

func (b *instrumented) Jobs(ctx context.Context, ids []string) ([]scheduler.JobStatus, error) {
	start := time.Now()
	jobs, err := b.Backend.Jobs(ctx, ids)
	b.observe("jobs", start, err)
	return jobs, err
}

func (b *instrumented) FindByComment(ctx context.Context, prefix string) ([]scheduler.JobStatus, error) {
	start := time.Now()
	jobs, err := b.Backend.FindByComment(ctx, prefix)
	b.observe("find_by_comment", start, err)
	return jobs, err
}

func (b *instrumented) Cancel(ctx context.Context, jobID string) error {
	start := time.Now()
	err := b.Backend.Cancel(ctx, jobID)
	b.observe("cancel", start, err)
	return err
}
