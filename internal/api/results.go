package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/sopilot/sopilot/internal/controller"
	"github.com/sopilot/sopilot/internal/results"
	"github.com/sopilot/sopilot/internal/run"
	"github.com/sopilot/sopilot/pkg/apipb"
)

// ResultsReporter is what ReportRunResults needs from the controller. It is
// not part of Runs: a RunServer finds it on its Runs value, and answers
// UNIMPLEMENTED when that value does not have it (as the Runs fakes of
// tests that predate results do not).
type ResultsReporter interface {
	ReportResults(ctx context.Context, runID string, set *results.Set) error
}

var _ ResultsReporter = (*controller.Service)(nil)

// Bounds of one ReportRunResults stream. Variables so tests can lower them.
var (
	// reportLimits bound the set a stream builds (results.DefaultLimits:
	// 10M samples, 64 metrics, 1 GiB of ids and values).
	reportLimits = results.Limits{}
	// maxReportWireBytes bounds the protobuf bytes of all a stream's
	// messages: a client cannot keep the handler busy with input that
	// costs it little memory, such as long metric names repeated on
	// every record.
	maxReportWireBytes int64 = 4 << 30
)

// ReportRunResults stores the per-sample results a client streams in
// chunks. The first chunk names the run (later chunks may repeat the same
// id); every record is checked as it arrives, and the first bad one ends
// the stream with INVALID_ARGUMENT naming it by its index across all chunks
// (records[17].values["loss"]). Too many samples or bytes end it with
// RESOURCE_EXHAUSTED. Nothing is stored unless the whole stream is valid;
// then the results replace any the run had.
func (s *RunServer) ReportRunResults(stream grpc.ClientStreamingServer[apipb.ReportRunResultsRequest, apipb.ReportRunResultsResponse]) error {
	reporter, ok := s.runs.(ResultsReporter)
	if !ok {
		return status.Error(codes.Unimplemented, "this server does not store results")
	}
	ctx := stream.Context()
	b := results.NewBuilder(reportLimits)
	var runID string
	var wireBytes int64
	for chunk := 0; ; chunk++ {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if wireBytes += int64(proto.Size(req)); wireBytes > maxReportWireBytes {
			return status.Errorf(codes.ResourceExhausted, "stream exceeds %d bytes of results", maxReportWireBytes)
		}
		switch id := req.GetRunId(); {
		case chunk == 0:
			if err := requireRunID(id); err != nil {
				return err
			}
			// Fail before the client sends the rest.
			if _, err := s.runs.Get(ctx, id); err != nil {
				return toStatus(ctx, s.log, err)
			}
			runID = id
		case id != "" && id != runID:
			return badRequest(fmt.Sprintf("chunk %d names run %q, the stream is for run %q", chunk, id, runID),
				run.FieldViolation{Field: "run_id", Description: fmt.Sprintf("every chunk must name run %q or leave run_id empty", runID)})
		}
		for _, rec := range req.GetRecords() {
			if err := b.Add(rec.GetSampleId(), rec.GetValues()); err != nil {
				return toStatus(ctx, s.log, err)
			}
		}
		metrics := req.GetRunMetrics()
		for _, name := range slices.Sorted(maps.Keys(metrics)) {
			if err := b.AddRunMetric(name, metrics[name]); err != nil {
				return toStatus(ctx, s.log, err)
			}
		}
	}
	if runID == "" {
		return requireRunID("")
	}
	set, err := b.Finish()
	if err != nil {
		return toStatus(ctx, s.log, err)
	}
	if err := reporter.ReportResults(ctx, runID, set); err != nil {
		return toStatus(ctx, s.log, err)
	}
	return stream.SendAndClose(&apipb.ReportRunResultsResponse{SampleCount: int64(set.Len())})
}
