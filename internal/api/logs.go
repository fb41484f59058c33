package api

import (
	"context"
	"errors"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sopilot/sopilot/internal/controller"
	"github.com/sopilot/sopilot/pkg/apipb"
)

// LogReader is what GetRunLogs needs from the controller.
type LogReader interface {
	Logs(ctx context.Context, runID string, opts controller.LogOptions, send func(offset int64, data []byte) error) error
}

var _ LogReader = (*controller.Service)(nil)

// GetRunLogs streams the run's output file. Like ReportRunResults it is
// served only when the Runs implementation can read logs.
func (s *RunServer) GetRunLogs(req *apipb.GetRunLogsRequest, stream grpc.ServerStreamingServer[apipb.GetRunLogsResponse]) error {
	lr, ok := s.runs.(LogReader)
	if !ok {
		return status.Error(codes.Unimplemented, "GetRunLogs is not served by this controller")
	}
	if err := requireRunID(req.GetRunId()); err != nil {
		return err
	}
	opts := controller.LogOptions{Follow: req.GetFollow(), TailBytes: req.GetTailBytes(), TailLines: req.GetTailLines(), Offset: req.GetOffset()}
	err := lr.Logs(stream.Context(), req.GetRunId(), opts, func(offset int64, b []byte) error {
		return stream.Send(&apipb.GetRunLogsResponse{Data: b, Offset: offset})
	})
	if errors.Is(err, context.Canceled) && stream.Context().Err() != nil {
		return status.Error(codes.Canceled, "client went away")
	}
	return toStatus(stream.Context(), s.log, err)
}
