// Package api owns sopilot's gRPC surface: the RunService, NodeService,
// ComparisonService and AgentService handlers, the conversion between
// protobuf messages and domain types, and the mapping of domain errors to
// gRPC status codes (one table, errorClasses, read by one function,
// toStatus).
package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sopilot/sopilot/internal/controller"
	"github.com/sopilot/sopilot/internal/fleet"
	"github.com/sopilot/sopilot/internal/monitor"
	"github.com/sopilot/sopilot/internal/remediation"
	"github.com/sopilot/sopilot/internal/results"
	"github.com/sopilot/sopilot/internal/run"
	"github.com/sopilot/sopilot/internal/scheduler"
	"github.com/sopilot/sopilot/internal/store"
)

// errorClass is one kind of domain error and the status it reaches a
// caller as. The message is the error's own text: domain errors name what
// the caller asked for and why it failed.
type errorClass struct {
	err  error
	code codes.Code
	// field and description, when field is set, add a BadRequest field
	// violation (InvalidArgument only).
	field, description string
}

// errorClasses maps every domain sentinel that reaches the API to one
// code. The first class whose sentinel the error wraps wins, so Slurm
// being unavailable beats the context deadline that made it so.
//
// INVALID_ARGUMENT is for input that our own validation rejects: run specs
// (run.ValidationError, handled before the table), request ids, page
// tokens, check names. FAILED_PRECONDITION is for a well-formed request
// the state of things refuses — including scheduler.ErrRejected, Slurm
// refusing a request that passed our validation (an unknown partition, a
// node Slurm does not know, a dependency on a finished job): the caller
// must change the cluster or the request's target, not its syntax.
var errorClasses = []errorClass{
	{err: controller.ErrRequestIDReused, code: codes.InvalidArgument, field: "request_id", description: "already used with a different spec; use a new request_id for a different run"},
	{err: store.ErrInvalidPageToken, code: codes.InvalidArgument, field: "page_token", description: "not a token from a previous ListRuns call with the same filter"},
	{err: monitor.ErrUnknownCheck, code: codes.InvalidArgument, field: "check", description: `"nccl" (the default) is the only check`},
	{err: results.ErrInvalid, code: codes.InvalidArgument},
	{err: controller.ErrNotFound, code: codes.NotFound},
	{err: store.ErrNotFound, code: codes.NotFound},
	{err: fleet.ErrUnknownNode, code: codes.NotFound},
	{err: remediation.ErrUnknownNode, code: codes.NotFound},
	{err: controller.ErrBusy, code: codes.Aborted},
	{err: remediation.ErrBusy, code: codes.Aborted},
	{err: controller.ErrFailedPrecondition, code: codes.FailedPrecondition},
	{err: controller.ErrNoOutput, code: codes.FailedPrecondition},
	{err: controller.ErrNoMetric, code: codes.FailedPrecondition},
	{err: scheduler.ErrRejected, code: codes.FailedPrecondition},
	{err: remediation.ErrForeign, code: codes.FailedPrecondition},
	{err: remediation.ErrNodeInUse, code: codes.FailedPrecondition},
	{err: remediation.ErrNotDrained, code: codes.FailedPrecondition},
	{err: remediation.ErrVerificationFailed, code: codes.FailedPrecondition},
	{err: results.ErrTooLarge, code: codes.ResourceExhausted},
	{err: scheduler.ErrNodeUnsupported, code: codes.Unimplemented},
	{err: scheduler.ErrUnavailable, code: codes.Unavailable},
	{err: fleet.ErrNotConnected, code: codes.Unavailable},
	{err: controller.ErrShuttingDown, code: codes.Unavailable},
	{err: context.DeadlineExceeded, code: codes.DeadlineExceeded},
	{err: context.Canceled, code: codes.Canceled},
}

// toStatus maps an error from the domain onto the status the caller gets.
// A status error passes through unchanged. Bad input (run.ValidationError,
// results.Error, and the table's input classes) carries a BadRequest
// detail with one field violation per problem. An error of no class is
// INTERNAL: its text (wrapping chains, paths, database details) is logged
// with a fresh error id, and the caller gets only the id to quote.
func toStatus(ctx context.Context, log *slog.Logger, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	var verr *run.ValidationError
	if errors.As(err, &verr) {
		return badRequest(verr.Error(), verr.Violations...)
	}
	var rerr *results.Error
	if errors.As(err, &rerr) && !errors.Is(err, results.ErrTooLarge) {
		return badRequest(rerr.Error(), run.FieldViolation{Field: resultsField(rerr), Description: rerr.Reason})
	}
	for _, c := range errorClasses {
		if !errors.Is(err, c.err) {
			continue
		}
		if c.field != "" {
			return badRequest(err.Error(), run.FieldViolation{Field: c.field, Description: c.description})
		}
		return status.Error(c.code, err.Error())
	}
	id := errorID()
	if log == nil {
		log = slog.Default()
	}
	method, _ := grpc.Method(ctx)
	log.ErrorContext(ctx, "internal error", "error_id", id, "method", method, "err", err)
	return status.Errorf(codes.Internal, "internal error (id %s); the controller's log has the details", id)
}

// resultsField names a results.Error's field within the whole
// ReportRunResults stream: records[17].values["loss"].
func resultsField(e *results.Error) string {
	switch {
	case e.Record >= 0 && e.Field != "":
		return fmt.Sprintf("records[%d].%s", e.Record, e.Field)
	case e.Record >= 0:
		return fmt.Sprintf("records[%d]", e.Record)
	case e.Field == "":
		return "records" // the stream as a whole: it had nothing in it
	}
	return e.Field
}

// errorID names one internal error in the log and in the caller's status.
func errorID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
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
