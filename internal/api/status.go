// Package api owns sopilot's gRPC surface: the RunService handlers, the
// conversion between protobuf messages and domain types, the mapping of
// domain errors to gRPC status codes (in one function, toStatus), and the
// services whose issues have not landed yet, which answer UNIMPLEMENTED.
package api

import (
	"context"
	"errors"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sopilot/sopilot/internal/controller"
	"github.com/sopilot/sopilot/internal/run"
	"github.com/sopilot/sopilot/internal/scheduler"
	"github.com/sopilot/sopilot/internal/store"
)

// toStatus maps a domain error onto a gRPC status. Bad input carries a
// BadRequest detail with one field violation per problem.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	var verr *run.ValidationError
	switch {
	case errors.As(err, &verr):
		return badRequest(verr.Error(), verr.Violations...)
	case errors.Is(err, controller.ErrRequestIDReused):
		return badRequest(err.Error(), run.FieldViolation{Field: "request_id", Description: "already used with a different spec; use a new request_id for a different run"})
	case errors.Is(err, store.ErrInvalidPageToken):
		return badRequest(err.Error(), run.FieldViolation{Field: "page_token", Description: "not a token from a previous ListRuns call with the same filter"})
	case errors.Is(err, controller.ErrNotFound), errors.Is(err, store.ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, controller.ErrBusy):
		return status.Error(codes.Aborted, err.Error())
	case errors.Is(err, controller.ErrFailedPrecondition), errors.Is(err, scheduler.ErrRejected), errors.Is(err, controller.ErrNoOutput):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, scheduler.ErrUnavailable):
		return status.Error(codes.Unavailable, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	}
	return status.Error(codes.Internal, err.Error())
}

func badRequest(msg string, violations ...run.FieldViolation) error {
	st := status.New(codes.InvalidArgument, msg)
	br := &errdetails.BadRequest{}
	for _, v := range violations {
		br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{Field: v.Field, Description: v.Description})
	}
	if withDetails, err := st.WithDetails(br); err == nil {
		st = withDetails
	}
	return st.Err()
}
