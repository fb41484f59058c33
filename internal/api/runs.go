package api

import (
	"context"
	"errors"
	"log/slog"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sopilot/sopilot/internal/controller"
	"github.com/sopilot/sopilot/internal/run"
	"github.com/sopilot/sopilot/internal/store"
	"github.com/sopilot/sopilot/pkg/apipb"
)

// Runs is what the RunService handlers need from the controller.
type Runs interface {
	Create(ctx context.Context, spec run.Spec, requestID string) (*run.Run, error)
	Get(ctx context.Context, id string) (*run.Run, error)
	List(ctx context.Context, q store.ListQuery) ([]*run.Run, string, error)
	Cancel(ctx context.Context, id string) (*run.Run, error)
	Watch(ctx context.Context, id string, send func(*run.Run) error) error
}

var _ Runs = (*controller.Service)(nil)

// RunServer implements apipb.RunServiceServer on top of the controller.
type RunServer struct {
	apipb.UnimplementedRunServiceServer
	runs Runs
	log  *slog.Logger
}

var _ apipb.RunServiceServer = (*RunServer)(nil)

// NewRunServer builds the RunService handlers.
func NewRunServer(runs Runs, logger *slog.Logger) *RunServer {
	return &RunServer{runs: runs, log: logger.With("component", "api")}
}

func (s *RunServer) CreateRun(ctx context.Context, req *apipb.CreateRunRequest) (*apipb.CreateRunResponse, error) {
	if req.GetSpec() == nil {
		return nil, badRequest("spec is required", run.FieldViolation{Field: "spec", Description: "required: the run to create"})
	}
	r, err := s.runs.Create(ctx, specFromProto(req.GetSpec()), req.GetRequestId())
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	return &apipb.CreateRunResponse{Run: runToProto(r)}, nil
}

func (s *RunServer) GetRun(ctx context.Context, req *apipb.GetRunRequest) (*apipb.GetRunResponse, error) {
	if err := requireRunID(req.GetRunId()); err != nil {
		return nil, err
	}
	r, err := s.runs.Get(ctx, req.GetRunId())
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	return &apipb.GetRunResponse{Run: runToProto(r)}, nil
}

func (s *RunServer) ListRuns(ctx context.Context, req *apipb.ListRunsRequest) (*apipb.ListRunsResponse, error) {
	q := store.ListQuery{
		PageSize:   int(req.GetPageSize()),
		PageToken:  req.GetPageToken(),
		Labels:     req.GetLabels(),
		NamePrefix: req.GetNamePrefix(),
	}
	var violations []run.FieldViolation
	if req.GetPageSize() < 0 {
		violations = append(violations, run.FieldViolation{Field: "page_size", Description: "must not be negative (0 means 50; values above 1000 are treated as 1000)"})
	}
	for _, p := range req.GetStates() {
		st, ok := stateFromProto(p)
		if !ok {
			violations = append(violations, run.FieldViolation{Field: "states", Description: "unknown or unspecified state " + p.String()})
			continue
		}
		q.States = append(q.States, st)
	}
	if t := req.GetCreateTimeAfter(); t != nil {
		q.CreatedAfter = t.AsTime()
	}
	if t := req.GetCreateTimeBefore(); t != nil {
		q.CreatedBefore = t.AsTime()
	}
	if len(violations) > 0 {
		return nil, badRequest("invalid ListRuns request", violations...)
	}
	runs, next, err := s.runs.List(ctx, q)
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	resp := &apipb.ListRunsResponse{NextPageToken: next}
	for _, r := range runs {
		resp.Runs = append(resp.Runs, runToProto(r))
	}
	return resp, nil
}

func (s *RunServer) CancelRun(ctx context.Context, req *apipb.CancelRunRequest) (*apipb.CancelRunResponse, error) {
	if err := requireRunID(req.GetRunId()); err != nil {
		return nil, err
	}
	r, err := s.runs.Cancel(ctx, req.GetRunId())
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	return &apipb.CancelRunResponse{Run: runToProto(r)}, nil
}

func (s *RunServer) WatchRun(req *apipb.WatchRunRequest, stream grpc.ServerStreamingServer[apipb.WatchRunResponse]) error {
	if err := requireRunID(req.GetRunId()); err != nil {
		return err
	}
	err := s.runs.Watch(stream.Context(), req.GetRunId(), func(r *run.Run) error {
		return stream.Send(&apipb.WatchRunResponse{Run: runToProto(r)})
	})
	if errors.Is(err, context.Canceled) && stream.Context().Err() != nil {
		return status.Error(codes.Canceled, "client went away")
	}
	return toStatus(stream.Context(), s.log, err)
}

func requireRunID(id string) error {
	if id == "" {
		return badRequest("run_id is required", run.FieldViolation{Field: "run_id", Description: "required: the id of a run, e.g. r-01jdx2k7a8m3q0c4n5p6r7s8t9"})
	}
	return nil
}
