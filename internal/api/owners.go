package api

import (
	"context"
	"log/slog"

	"github.com/sopilot/sopilot/internal/auth"
	"github.com/sopilot/sopilot/internal/run"
)

// RunHistory is where the ownership check finds a run's owner
// (implemented by internal/store).
type RunHistory interface {
	GetRun(ctx context.Context, id string) (*run.Run, error)
}

// RunOwners answers the Authorizer's question "who created this run?"
// from the run history, with errors mapped as every handler maps them
// (NotFound for no such run).
func RunOwners(history RunHistory, logger *slog.Logger) auth.RunOwners {
	return runOwners{history: history, log: logger.With("component", "api")}
}

type runOwners struct {
	history RunHistory
	log     *slog.Logger
}

func (o runOwners) RunOwner(ctx context.Context, runID string) (string, error) {
	if err := requireRunID(runID); err != nil {
		return "", err
	}
	r, err := o.history.GetRun(ctx, runID)
	if err != nil {
		return "", toStatus(ctx, o.log, err)
	}
	return r.Owner, nil
}
