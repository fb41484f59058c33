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

var _ scheduler.Backend = (*instrumented)(nil)

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
