package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/sopilot/sopilot/internal/controller"
	"github.com/sopilot/sopilot/internal/metrics"
	"github.com/sopilot/sopilot/internal/results"
	"github.com/sopilot/sopilot/internal/run"
	"github.com/sopilot/sopilot/internal/scheduler"
	"github.com/sopilot/sopilot/internal/server"
	"github.com/sopilot/sopilot/internal/store"
	"github.com/sopilot/sopilot/pkg/apipb"
)

// resultsSlurm is a scheduler.Backend that accepts every job and reports
// it pending: the results API never needs more of Slurm.
type resultsSlurm struct {
	mu   sync.Mutex
	next int
	// completed jobs report COMPLETED; every other job PENDING.
	completed map[string]bool
}

// complete makes job id report COMPLETED from now on.
func (f *resultsSlurm) complete(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.completed == nil {
		f.completed = map[string]bool{}
	}
	f.completed[id] = true
}

func (f *resultsSlurm) Name() string { return "fake" }

func (f *resultsSlurm) Submit(context.Context, scheduler.JobSpec) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.next++
	return fmt.Sprint(1000 + f.next), nil
}

func (f *resultsSlurm) Jobs(_ context.Context, ids []string) ([]scheduler.JobStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []scheduler.JobStatus
	for _, id := range ids {
		st := scheduler.JobStatus{JobID: id, State: "PENDING"}
		if f.completed[id] {
			st.State, st.Reason = "COMPLETED", "None"
		}
		out = append(out, st)
	}
	return out, nil
}

func (f *resultsSlurm) FindByComment(context.Context, string) ([]scheduler.JobStatus, error) {
	return nil, nil
}

func (f *resultsSlurm) Cancel(context.Context, string) error { return nil }

// resultsServer is the real controller on a real store behind the real
// gRPC server (server.NewGRPC), over bufconn.
type resultsServer struct {
	client  apipb.RunServiceClient
	compare apipb.ComparisonServiceClient
	svc     *controller.Service
	store   *store.Store
	slurm   *resultsSlurm
}

func serveResults(t *testing.T, runs func(*controller.Service) Runs) resultsServer {
	t.Helper()
	return serveResultsWith(t, resultsServerOptions{runs: runs})
}

// resultsServerOptions vary the server of serveResultsWith.
type resultsServerOptions struct {
	runs func(*controller.Service) Runs
	// tcp serves on a loopback TCP socket instead of bufconn, and sync
	// keeps the store's fsyncs, as the controller ships: for benchmarks.
	tcp, sync bool
}

func serveResultsWith(t testing.TB, o resultsServerOptions) resultsServer {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := store.Open(filepath.Join(t.TempDir(), "runs.db"), store.Options{NoSync: !o.sync})
	if err != nil {
		t.Fatal(err)
	}
	sl := &resultsSlurm{}
	svc := controller.New(controller.Config{DefaultWorkDir: "/work"}, st, sl, logger, nil)
	var r Runs = svc
	if o.runs != nil {
		r = o.runs(svc)
	}
	m := metrics.NewController()
	srv, _ := server.NewGRPC(logger, m)
	apipb.RegisterRunServiceServer(srv, NewRunServer(r, logger))
	apipb.RegisterComparisonServiceServer(srv, NewComparisonServer(svc, logger))
	t.Cleanup(func() { // after the server stops
		if err := st.Check(); err != nil {
			t.Errorf("store check: %v", err)
		}
		if err := st.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	conn := dialGRPC(t, srv, o.tcp)
	return resultsServer{client: apipb.NewRunServiceClient(conn), compare: apipb.NewComparisonServiceClient(conn), svc: svc, store: st, slurm: sl}
}

func (rs resultsServer) createRun(t testing.TB) string {
	t.Helper()
	r, err := rs.svc.Create(context.Background(), run.Spec{
		JobName: "inference-trained", Nodes: 1, TimeLimit: time.Hour, Argv: []string{"python3", "infer.py"},
	}, "")
	if err != nil {
		t.Fatal(err)
	}
	return r.ID
}

// send streams chunks and returns the response or the error.
func (rs resultsServer) send(t *testing.T, chunks ...*apipb.ReportRunResultsRequest) (*apipb.ReportRunResultsResponse, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := rs.client.ReportRunResults(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range chunks {
		// The server may end the stream early; the status comes from
		// CloseAndRecv.
		if err := stream.Send(c); err != nil {
			break
		}
	}
	return stream.CloseAndRecv()
}

// checkStored fails the test unless the results stored for run id are
// the results file wantJSONL.
func (rs resultsServer) checkStored(t *testing.T, id, wantJSONL string) {
	t.Helper()
	got, err := rs.svc.Results(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	want, err := results.Parse(strings.NewReader(wantJSONL), results.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if !got.Equal(want) {
		var b strings.Builder
		_ = got.WriteJSONL(&b)
		t.Errorf("stored:\n%s", b.String())
	}
}

func rec(id string, kv ...any) *apipb.ResultRecord {
	r := &apipb.ResultRecord{SampleId: id, Values: map[string]float64{}}
	for i := 0; i < len(kv); i += 2 {
		r.Values[kv[i].(string)] = kv[i+1].(float64)
	}
	return r
}

// fieldViolations returns the status code and the BadRequest violations of
// err as "field: description".
func fieldViolations(err error) (codes.Code, []string) {
	st := status.Convert(err)
	var out []string
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				out = append(out, v.GetField()+": "+v.GetDescription())
			}
		}
	}
	return st.Code(), out
}

func TestReportRunResultsStoresAValidStream(t *testing.T) {
	rs := serveResults(t, nil)
	id := rs.createRun(t)
	resp, err := rs.send(t,
		&apipb.ReportRunResultsRequest{RunId: id, Records: []*apipb.ResultRecord{
			rec("img-0001", "correct", 1.0, "loss", 0.25),
			rec("img-0002", "correct", 0.0, "loss", 1.5),
		}},
		&apipb.ReportRunResultsRequest{RunId: id, Records: []*apipb.ResultRecord{
			rec("img-0003", "correct", 1.0, "loss", 0.125),
		}, RunMetrics: map[string]float64{"accuracy": 0.75}},
		&apipb.ReportRunResultsRequest{Records: []*apipb.ResultRecord{
			rec("img-0004", "correct", 1.0),
		}},
	)
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetSampleCount() != 4 {
		t.Errorf("sample_count = %d, want 4", resp.GetSampleCount())
	}
	rs.checkStored(t, id, `{"sample_id": "img-0001", "correct": 1, "loss": 0.25}
{"sample_id": "img-0002", "correct": 0, "loss": 1.5}
{"sample_id": "img-0003", "correct": 1, "loss": 0.125}
{"sample_id": "img-0004", "correct": 1}
{"run_metrics": {"accuracy": 0.75}}
`)

	// A second stream replaces the results.
	if resp, err := rs.send(t, &apipb.ReportRunResultsRequest{RunId: id, Records: []*apipb.ResultRecord{rec("only", "loss", 2.0)}}); err != nil || resp.GetSampleCount() != 1 {
		t.Fatalf("second stream: %v, %v", resp, err)
	}
	if got, err := rs.svc.Results(context.Background(), id); err != nil || got.Len() != 1 || got.SampleID(0) != "only" {
		t.Errorf("after the second stream: %v", err)
	}
}

func TestReportRunResultsRejects(t *testing.T) {
	nan := math.NaN()
	tests := []struct {
		name string
		// chunks builds the stream for a run with this id.
		chunks     func(id string) []*apipb.ReportRunResultsRequest
		limits     results.Limits
		wireBytes  int64
		code       codes.Code
		violations []string // "field: description"; nil: no BadRequest
		msg        string   // the status message, when set
	}{
		{
			name: "invalid record in chunk 2 is named by its index across chunks",
			chunks: func(id string) []*apipb.ReportRunResultsRequest {
				return []*apipb.ReportRunResultsRequest{
					{RunId: id, Records: []*apipb.ResultRecord{rec("a", "loss", 0.5), rec("b", "loss", 0.7)}},
					{Records: []*apipb.ResultRecord{rec("c", "loss", 0.1), rec("d", "loss", nan, "correct", 1.0)}},
					{Records: []*apipb.ResultRecord{rec("e", "loss", 0.3)}},
				}
			},
			code:       codes.InvalidArgument,
			violations: []string{`records[3].values["loss"]: must be a finite number, got NaN`},
			msg:        `records[3].values["loss"]: must be a finite number, got NaN`,
		},
		{
			name: "duplicate sample id across chunks",
			chunks: func(id string) []*apipb.ReportRunResultsRequest {
				return []*apipb.ReportRunResultsRequest{
					{RunId: id, Records: []*apipb.ResultRecord{rec("a", "x", 1.0)}},
					{Records: []*apipb.ResultRecord{rec("b", "x", 1.0), rec("a", "x", 2.0)}},
				}
			},
			code:       codes.InvalidArgument,
			violations: []string{`records[2].sample_id: duplicate sample_id "a", first used by records[0]`},
		},
		{
			name: "empty sample id",
			chunks: func(id string) []*apipb.ReportRunResultsRequest {
				return []*apipb.ReportRunResultsRequest{{RunId: id, Records: []*apipb.ResultRecord{rec("", "x", 1.0)}}}
			},
			code:       codes.InvalidArgument,
			violations: []string{`records[0].sample_id: required, non-empty`},
		},
		{
			name: "record without values",
			chunks: func(id string) []*apipb.ReportRunResultsRequest {
				return []*apipb.ReportRunResultsRequest{{RunId: id, Records: []*apipb.ResultRecord{{SampleId: "a"}}}}
			},
			code:       codes.InvalidArgument,
			violations: []string{`records[0]: record "a" has no values; it needs at least one metric besides sample_id`},
		},
		{
			name: "another run id in chunk 2",
			chunks: func(id string) []*apipb.ReportRunResultsRequest {
				return []*apipb.ReportRunResultsRequest{
					{RunId: id, Records: []*apipb.ResultRecord{rec("a", "x", 1.0)}},
					{RunId: "r-other", Records: []*apipb.ResultRecord{rec("b", "x", 1.0)}},
				}
			},
			code:       codes.InvalidArgument,
			violations: []string{`run_id: every chunk must name run "%s" or leave run_id empty`},
			msg:        `chunk 1 names run "r-other", the stream is for run "%s"`,
		},
		{
			name: "no run id in the first chunk",
			chunks: func(string) []*apipb.ReportRunResultsRequest {
				return []*apipb.ReportRunResultsRequest{{Records: []*apipb.ResultRecord{rec("a", "x", 1.0)}}}
			},
			code:       codes.InvalidArgument,
			violations: []string{`run_id: required: the id of a run, e.g. r-01jdx2k7a8m3q0c4n5p6r7s8t9`},
		},
		{
			name:       "empty stream",
			chunks:     func(string) []*apipb.ReportRunResultsRequest { return nil },
			code:       codes.InvalidArgument,
			violations: []string{`run_id: required: the id of a run, e.g. r-01jdx2k7a8m3q0c4n5p6r7s8t9`},
		},
		{
			name: "unknown run",
			chunks: func(string) []*apipb.ReportRunResultsRequest {
				return []*apipb.ReportRunResultsRequest{{RunId: "r-nope", Records: []*apipb.ResultRecord{rec("a", "x", 1.0)}}}
			},
			code: codes.NotFound,
			msg:  `run "r-nope": run not found`,
		},
		{
			name: "nothing but the run id",
			chunks: func(id string) []*apipb.ReportRunResultsRequest {
				return []*apipb.ReportRunResultsRequest{{RunId: id}}
			},
			code:       codes.InvalidArgument,
			violations: []string{`records: no records and no run_metrics`},
		},
		{
			name: "non-finite value in a column of chunk 2 is named by its sample's index across chunks",
			chunks: func(id string) []*apipb.ReportRunResultsRequest {
				return []*apipb.ReportRunResultsRequest{
					{RunId: id, Records: []*apipb.ResultRecord{rec("a", "loss", 0.5)}},
					{Columns: cols([]string{"b", "c", "d"}, col("loss", []float64{0.1, 0.2, math.Inf(-1)}))},
				}
			},
			code:       codes.InvalidArgument,
			violations: []string{`records[3].values["loss"]: must be a finite number, got -Inf`},
		},
		{
			name: "column of the wrong length",
			chunks: func(id string) []*apipb.ReportRunResultsRequest {
				return []*apipb.ReportRunResultsRequest{
					{RunId: id, Columns: cols([]string{"a", "b"}, col("loss", []float64{0.1, 0.2}))},
					{Columns: cols([]string{"c", "d"}, col("loss", []float64{0.1, 0.2}), col("correct", []float64{1}))},
				}
			},
			code:       codes.InvalidArgument,
			violations: []string{`columns.metrics[1].values: chunk 1: 1 values for 2 sample_ids; want one per sample id`},
		},
		{
			name: "absent position past the batch",
			chunks: func(id string) []*apipb.ReportRunResultsRequest {
				c := col("loss", []float64{0.1, nan})
				c.Absent = []uint32{2}
				return []*apipb.ReportRunResultsRequest{{RunId: id, Columns: cols([]string{"a", "b"}, c)}}
			},
			code:       codes.InvalidArgument,
			violations: []string{`columns.metrics[0].absent[0]: chunk 0: position 2 is past the batch's 2 samples`},
		},
		{
			name: "sample id repeated between records and columns",
			chunks: func(id string) []*apipb.ReportRunResultsRequest {
				return []*apipb.ReportRunResultsRequest{{RunId: id, Records: []*apipb.ResultRecord{rec("a", "loss", 0.5)},
					Columns: cols([]string{"b", "a"}, col("loss", []float64{0.1, 0.2}))}}
			},
			code:       codes.InvalidArgument,
			violations: []string{`records[2].sample_id: duplicate sample_id "a", first used by records[0]`},
		},
		{
			name: "run metric in two chunks",
			chunks: func(id string) []*apipb.ReportRunResultsRequest {
				return []*apipb.ReportRunResultsRequest{
					{RunId: id, RunMetrics: map[string]float64{"accuracy": 0.9}},
					{RunMetrics: map[string]float64{"accuracy": 0.9}},
				}
			},
			code:       codes.InvalidArgument,
			violations: []string{`run_metrics["accuracy"]: reported more than once`},
		},
		{
			name: "reserved metric name",
			chunks: func(id string) []*apipb.ReportRunResultsRequest {
				return []*apipb.ReportRunResultsRequest{{RunId: id, Records: []*apipb.ResultRecord{rec("a", "sample_id", 1.0)}}}
			},
			code:       codes.InvalidArgument,
			violations: []string{`records[0].values["sample_id"]: "sample_id" is reserved and cannot be a metric name`},
		},
		{
			name: "more samples than allowed",
			chunks: func(id string) []*apipb.ReportRunResultsRequest {
				return []*apipb.ReportRunResultsRequest{
					{RunId: id, Records: []*apipb.ResultRecord{rec("a", "x", 1.0), rec("b", "x", 1.0)}},
					{Records: []*apipb.ResultRecord{rec("c", "x", 1.0)}},
				}
			},
			limits: results.Limits{MaxSamples: 2},
			code:   codes.ResourceExhausted,
			msg:    `records[2]: more than 2 samples`,
		},
		{
			name: "more bytes than allowed",
			chunks: func(id string) []*apipb.ReportRunResultsRequest {
				return []*apipb.ReportRunResultsRequest{
					{RunId: id, Records: []*apipb.ResultRecord{rec("a", "x", 1.0)}},
					{Records: []*apipb.ResultRecord{rec("b", "x", 1.0)}},
				}
			},
			wireBytes: 50,
			code:      codes.ResourceExhausted,
			msg:       `stream exceeds 50 bytes of results`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs := serveResults(t, nil)
			id := rs.createRun(t)
			// Results stored before must survive a rejected stream.
			before := &apipb.ReportRunResultsRequest{RunId: id, Records: []*apipb.ResultRecord{rec("kept", "x", 7.0)}}
			if _, err := rs.send(t, before); err != nil {
				t.Fatal(err)
			}
			if tt.limits != (results.Limits{}) {
				old := reportLimits
				reportLimits = tt.limits
				t.Cleanup(func() { reportLimits = old })
			}
			if tt.wireBytes != 0 {
				old := maxReportWireBytes
				maxReportWireBytes = tt.wireBytes
				t.Cleanup(func() { maxReportWireBytes = old })
			}
			_, err := rs.send(t, tt.chunks(id)...)
			code, violations := fieldViolations(err)
			want := make([]string, len(tt.violations))
			for i, v := range tt.violations {
				want[i] = strings.ReplaceAll(v, "%s", id)
			}
			if code != tt.code || fmt.Sprint(violations) != fmt.Sprint(want) {
				t.Errorf("err = %v\ncode %v violations %q\nwant %v %q", err, code, violations, tt.code, want)
			}
			if msg := strings.ReplaceAll(tt.msg, "%s", id); msg != "" && status.Convert(err).Message() != msg {
				t.Errorf("message %q, want %q", status.Convert(err).Message(), msg)
			}
			got, gerr := rs.svc.Results(context.Background(), id)
			if gerr != nil || got.Len() != 1 || got.SampleID(0) != "kept" {
				t.Errorf("results after the rejected stream changed: %v", gerr)
			}
		})
	}
}

func cols(ids []string, metrics ...*apipb.ResultColumn) *apipb.ResultColumns {
	return &apipb.ResultColumns{SampleIds: ids, Metrics: metrics}
}

func col(name string, values []float64) *apipb.ResultColumn {
	return &apipb.ResultColumn{Name: name, Values: values}
}

// TestReportRunResultsColumns: batches in columns, alone and beside
// records, store what the same samples in records would.
func TestReportRunResultsColumns(t *testing.T) {
	rs := serveResults(t, nil)
	id := rs.createRun(t)
	score := col("score", []float64{0.5, math.NaN(), 0})
	score.Absent = []uint32{1, 2} // the value at an absent position is ignored, NaN or not
	resp, err := rs.send(t,
		&apipb.ReportRunResultsRequest{RunId: id, Records: []*apipb.ResultRecord{rec("img-0001", "correct", 1.0, "loss", 0.25)},
			Columns: cols([]string{"img-0002", "img-0003", "img-0004"}, col("loss", []float64{1.5, 0.125, 2}), score, col("correct", []float64{0, 1, 1}))},
		&apipb.ReportRunResultsRequest{Columns: cols([]string{"img-0005"}, col("correct", []float64{1})), RunMetrics: map[string]float64{"accuracy": 0.8}},
	)
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetSampleCount() != 5 {
		t.Errorf("sample_count = %d, want 5", resp.GetSampleCount())
	}
	rs.checkStored(t, id, `{"sample_id": "img-0001", "correct": 1, "loss": 0.25}
{"sample_id": "img-0002", "correct": 0, "loss": 1.5, "score": 0.5}
{"sample_id": "img-0003", "correct": 1, "loss": 0.125}
{"sample_id": "img-0004", "correct": 1, "loss": 2}
{"sample_id": "img-0005", "correct": 1}
{"run_metrics": {"accuracy": 0.8}}
`)
}

// TestReportWireSize: the handler's own count of a message's bytes is
// proto.Size's.
func TestReportWireSize(t *testing.T) {
	for _, req := range []*apipb.ReportRunResultsRequest{
		{},
		{RunId: "r-1"},
		{RunId: "r-1", Records: []*apipb.ResultRecord{rec("a", "loss", 0.5, "correct", 1.0), rec("bb", "x", 2.0), {SampleId: "c"}}},
		{Records: []*apipb.ResultRecord{rec(strings.Repeat("long-id-", 40), "metric/with:long@name", 1e300)}, RunMetrics: map[string]float64{"accuracy": 0.9}},
		{RunId: "r-1", Columns: cols([]string{"a", "b"}, col("loss", []float64{1, 2}), &apipb.ResultColumn{Name: "x", Values: []float64{1, 0}, Absent: []uint32{1}})},
	} {
		if got, want := reportWireSize(req), int64(proto.Size(req)); got != want {
			t.Errorf("reportWireSize = %d, proto.Size = %d for %v", got, want, req)
		}
	}
}

// runsOnly hides everything of the controller but Runs.
type runsOnly struct{ Runs }

func TestReportRunResultsNeedsAReporter(t *testing.T) {
	rs := serveResults(t, func(svc *controller.Service) Runs { return runsOnly{svc} })
	_, err := rs.send(t, &apipb.ReportRunResultsRequest{RunId: "r-1", Records: []*apipb.ResultRecord{rec("a", "x", 1.0)}})
	if status.Code(err) != codes.Unimplemented {
		t.Errorf("err = %v, want Unimplemented", err)
	}
}

func TestReportRunResultsClientCancels(t *testing.T) {
	rs := serveResults(t, nil)
	id := rs.createRun(t)
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := rs.client.ReportRunResults(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&apipb.ReportRunResultsRequest{RunId: id, Records: []*apipb.ResultRecord{rec("a", "x", 1.0)}}); err != nil {
		t.Fatal(err)
	}
	// Gone without closing its side (CloseAndRecv would half-close first,
	// and a server that sees the end of a valid stream rightly stores it).
	cancel()
	if err := stream.RecvMsg(new(apipb.ReportRunResultsResponse)); status.Code(err) != codes.Canceled {
		t.Errorf("err = %v, want Canceled", err)
	}
	// The handler stored nothing for the abandoned stream.
	deadline := time.Now().Add(300 * time.Millisecond)
	for time.Now().Before(deadline) {
		if _, err := rs.svc.Results(context.Background(), id); !errors.Is(err, store.ErrNoResults) {
			t.Fatalf("abandoned stream: Results err = %v, want store.ErrNoResults", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
