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
	"google.golang.org/protobuf/encoding/protowire"
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
		if wireBytes += reportWireSize(req); wireBytes > maxReportWireBytes {
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
		if c := req.GetColumns(); c != nil {
			if err := b.AddColumns(columnsFromProto(c)); err != nil {
				return toStatus(ctx, s.log, chunkError(chunk, err))
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

// columnsFromProto is the domain view of a ResultColumns batch. The slices
// are the message's own: the Builder copies what it keeps.
func columnsFromProto(c *apipb.ResultColumns) results.Columns {
	out := results.Columns{IDs: c.GetSampleIds(), Metrics: make([]results.Column, len(c.GetMetrics()))}
	for j, m := range c.GetMetrics() {
		out.Metrics[j] = results.Column{Name: m.GetName(), Values: m.GetValues(), Absent: m.GetAbsent()}
	}
	return out
}

// chunkError says which chunk a batch-shape error (one that names a
// columns field rather than a record) came from.
func chunkError(chunk int, err error) error {
	var re *results.Error
	if errors.As(err, &re) && re.Record < 0 && re.Field != "" {
		re.Reason = fmt.Sprintf("chunk %d: %s", chunk, re.Reason)
	}
	return err
}

// reportWireSize is the protobuf size of one ReportRunResultsRequest,
// computed without proto.Size: proto.Size walks every record's map through
// reflection and cost more than the rest of the handler together.
func reportWireSize(req *apipb.ReportRunResultsRequest) int64 {
	n := 0
	if id := req.GetRunId(); id != "" {
		n += protowire.SizeTag(1) + protowire.SizeBytes(len(id))
	}
	for _, rec := range req.GetRecords() {
		m := protowire.SizeTag(1) + protowire.SizeBytes(len(rec.GetSampleId()))
		for name := range rec.GetValues() {
			// An entry: key (tag, length, name) and value (tag, 8 bytes).
			m += protowire.SizeTag(2) + protowire.SizeBytes(protowire.SizeTag(1)+protowire.SizeBytes(len(name))+protowire.SizeTag(2)+8)
		}
		n += protowire.SizeTag(2) + protowire.SizeBytes(m)
	}
	if rm := req.GetRunMetrics(); len(rm) > 0 {
		n += proto.Size(&apipb.ReportRunResultsRequest{RunMetrics: rm})
	}
	if c := req.GetColumns(); c != nil {
		n += protowire.SizeTag(4) + protowire.SizeBytes(proto.Size(c))
	}
	return int64(n)
}
