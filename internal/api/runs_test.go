package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sopilot/sopilot/internal/controller"
	"github.com/sopilot/sopilot/internal/metrics"
	"github.com/sopilot/sopilot/internal/run"
	"github.com/sopilot/sopilot/internal/scheduler"
	"github.com/sopilot/sopilot/internal/server"
	"github.com/sopilot/sopilot/internal/store"
	"github.com/sopilot/sopilot/pkg/agentpb"
	"github.com/sopilot/sopilot/pkg/apipb"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// startGRPC serves srv on a loopback TCP socket (tcp) or on bufconn, and
// stops it when the test ends, failing the test if Serve failed. It
// returns the target to dial and, for bufconn, the dialer option.
func startGRPC(t testing.TB, srv *grpc.Server, tcp bool) (string, []grpc.DialOption) {
	t.Helper()
	var lis net.Listener
	target := "passthrough:///bufconn"
	var opts []grpc.DialOption
	if tcp {
		var err error
		if lis, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		target = lis.Addr().String()
	} else {
		bl := bufconn.Listen(1 << 20)
		lis = bl
		opts = append(opts, grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return bl.DialContext(ctx) }))
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	t.Cleanup(func() {
		srv.Stop()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return target, opts
}

// dialGRPC serves srv as startGRPC does and returns a plaintext client
// connection to it, closed (before the server stops) when the test ends.
func dialGRPC(t testing.TB, srv *grpc.Server, tcp bool) *grpc.ClientConn {
	t.Helper()
	target, opts := startGRPC(t, srv, tcp)
	conn, err := grpc.NewClient(target, append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := conn.Close(); err != nil {
			t.Errorf("close client: %v", err)
		}
	})
	return conn
}

// fakeRuns is a hand-written Runs: it records every call and its arguments
// and answers with what the test set.
type fakeRuns struct {
	mu        sync.Mutex
	calls     []string
	spec      run.Spec
	requestID string
	id        string
	query     store.ListQuery

	run   *run.Run
	list  []*run.Run
	next  string
	err   error
	watch func(ctx context.Context, send func(*run.Run) error) error
}

func (f *fakeRuns) record(call string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call)
}

func (f *fakeRuns) Create(_ context.Context, spec run.Spec, requestID string) (*run.Run, error) {
	f.record("Create")
	f.mu.Lock()
	defer f.mu.Unlock()
	f.spec, f.requestID = spec, requestID
	return f.run, f.err
}

func (f *fakeRuns) Get(_ context.Context, id string) (*run.Run, error) {
	f.record("Get")
	f.mu.Lock()
	defer f.mu.Unlock()
	f.id = id
	return f.run, f.err
}

func (f *fakeRuns) List(_ context.Context, q store.ListQuery) ([]*run.Run, string, error) {
	f.record("List")
	f.mu.Lock()
	defer f.mu.Unlock()
	f.query = q
	return f.list, f.next, f.err
}

func (f *fakeRuns) Cancel(_ context.Context, id string) (*run.Run, error) {
	f.record("Cancel")
	f.mu.Lock()
	defer f.mu.Unlock()
	f.id = id
	return f.run, f.err
}

func (f *fakeRuns) Watch(ctx context.Context, id string, send func(*run.Run) error) error {
	f.record("Watch")
	f.mu.Lock()
	f.id = id
	watch, err := f.watch, f.err
	f.mu.Unlock()
	if watch != nil {
		return watch(ctx, send)
	}
	return err
}

func (f *fakeRuns) lastSpec() (run.Spec, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.spec, f.requestID
}

func (f *fakeRuns) lastID() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.id
}

func (f *fakeRuns) lastQuery() store.ListQuery {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.query
}

func (f *fakeRuns) callList() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

type clients struct {
	runs    apipb.RunServiceClient
	nodes   apipb.NodeServiceClient
	compare apipb.ComparisonServiceClient
	agent   agentpb.AgentServiceClient
	metrics *metrics.Controller
}

// serve runs the controller's gRPC server (server.NewGRPC with every
// service, as cmd/controller registers them) over bufconn and returns
// clients connected to it; everything stops when the test ends.
func serve(t *testing.T, runs Runs) clients {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	m := metrics.NewController()
	srv, _ := server.NewGRPC(logger, m)
	apipb.RegisterRunServiceServer(srv, NewRunServer(runs, logger))
	apipb.RegisterNodeServiceServer(srv, &NodeServer{})
	apipb.RegisterComparisonServiceServer(srv, &ComparisonServer{})
	agentpb.RegisterAgentServiceServer(srv, &AgentServer{})
	m.GRPC.InitializeMetrics(srv)
	conn := dialGRPC(t, srv, false)
	return clients{
		runs:    apipb.NewRunServiceClient(conn),
		nodes:   apipb.NewNodeServiceClient(conn),
		compare: apipb.NewComparisonServiceClient(conn),
		agent:   agentpb.NewAgentServiceClient(conn),
		metrics: m,
	}
}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// wantBadRequest checks that err is InvalidArgument with message msg and
// exactly these field violations.
func wantBadRequest(t *testing.T, err error, msg string, want ...run.FieldViolation) {
	t.Helper()
	st := status.Convert(err)
	if st.Code() != codes.InvalidArgument {
		t.Fatalf("code = %v (%v), want InvalidArgument", st.Code(), err)
	}
	if msg != "" && st.Message() != msg {
		t.Errorf("message = %q, want %q", st.Message(), msg)
	}
	got, found := badRequestViolations(t, err)
	if !found {
		t.Fatalf("no BadRequest detail in %v", st.Proto())
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("violations = %q, want %q", got, want)
	}
}

func fullProtoSpec() *apipb.RunSpec {
	return &apipb.RunSpec{
		JobName:          "train-llm",
		Nodes:            4,
		TasksPerNode:     8,
		GpusPerNode:      8,
		CpusPerTask:      12,
		TimeLimit:        durationpb.New(90*time.Minute + 30*time.Second),
		Partition:        "gpu",
		Argv:             []string{"torchrun", "--nproc-per-node=8", "train.py", ""},
		Script:           "#!/bin/bash\nsrun hostname\n",
		WorkingDirectory: "/scratch/ann",
		Environment:      map[string]string{"NCCL_DEBUG": "INFO", "EMPTY": ""},
		OutputDirectory:  "/scratch/ann/out",
		DependsOn:        []string{"r-01jdx2k7a8m3q0c4n5p6r7s8t9", "r-01jdx2k7a8m3q0c4n5p6r7s8ta"},
		Labels:           map[string]string{"team": "llm", "exp": ""},
		ResultsPath:      "/scratch/ann/results.jsonl",
		Retry: &apipb.RetryPolicy{MaxAttempts: 3, Causes: []apipb.RetryCause{apipb.RetryCause_RETRY_CAUSE_HARDWARE, apipb.RetryCause_RETRY_CAUSE_EXIT_CODE},
			KeepFaultyNodes: true, Backoff: durationpb.New(30 * time.Second)},
	}
}

func fullDomainSpec() run.Spec {
	return run.Spec{
		JobName:          "train-llm",
		Nodes:            4,
		TasksPerNode:     8,
		GPUsPerNode:      8,
		CPUsPerTask:      12,
		TimeLimit:        90*time.Minute + 30*time.Second,
		Partition:        "gpu",
		Argv:             []string{"torchrun", "--nproc-per-node=8", "train.py", ""},
		Script:           "#!/bin/bash\nsrun hostname\n",
		WorkingDirectory: "/scratch/ann",
		Environment:      map[string]string{"NCCL_DEBUG": "INFO", "EMPTY": ""},
		OutputDirectory:  "/scratch/ann/out",
		DependsOn:        []string{"r-01jdx2k7a8m3q0c4n5p6r7s8t9", "r-01jdx2k7a8m3q0c4n5p6r7s8ta"},
		Labels:           map[string]string{"team": "llm", "exp": ""},
		ResultsPath:      "/scratch/ann/results.jsonl",
		Retry: &run.RetryPolicy{MaxAttempts: 3, Causes: []run.Cause{run.CauseHardware, run.CauseExitCode},
			KeepFaultyNodes: true, Backoff: 30 * time.Second},
	}
}

// The full fixtures must set every field, so a field added to the spec
// without a conversion fails here rather than silently reading as zero.
func TestFullSpecFixturesSetEveryField(t *testing.T) {
	v := reflect.ValueOf(fullDomainSpec())
	for i := range v.NumField() {
		if v.Field(i).IsZero() {
			t.Errorf("fullDomainSpec leaves run.Spec.%s zero", v.Type().Field(i).Name)
		}
	}
	assertAllFieldsSet(t, fullProtoSpec().ProtoReflect(), nil)
}

// assertAllFieldsSet fails for every field of m that is not populated,
// except those named in except.
func assertAllFieldsSet(t *testing.T, m protoreflect.Message, except map[protoreflect.Name]bool) {
	t.Helper()
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if except[fd.Name()] {
			continue
		}
		if !m.Has(fd) {
			t.Errorf("%s.%s is not set", m.Descriptor().FullName(), fd.Name())
		}
	}
}

func TestCreateRunConvertsSpec(t *testing.T) {
	withLimit := func(d *durationpb.Duration) *apipb.RunSpec {
		p := fullProtoSpec()
		p.TimeLimit = d
		return p
	}
	domainWithLimit := func(d time.Duration) run.Spec {
		s := fullDomainSpec()
		s.TimeLimit = d
		return s
	}
	tests := []struct {
		name      string
		spec      *apipb.RunSpec
		requestID string
		want      run.Spec
		// negativeLimit: the converted time limit must be negative (any
		// value), and validation must then reject spec.time_limit.
		negativeLimit bool
		// limitRejected: run.Validate must report spec.time_limit.
		limitRejected bool
	}{
		{
			name:      "every field",
			spec:      fullProtoSpec(),
			requestID: "req-42",
			want:      fullDomainSpec(),
		},
		{
			name: "empty spec converts to the zero spec",
			spec: &apipb.RunSpec{},
			want: run.Spec{},
			// zero is not a valid time limit either
			limitRejected: true,
		},
		{
			name: "time limit with nanoseconds",
			spec: withLimit(&durationpb.Duration{Seconds: 61, Nanos: 500_000_000}),
			want: domainWithLimit(61*time.Second + 500*time.Millisecond),
			// Slurm has no sub-second resolution; validation refuses it.
			limitRejected: true,
		},
		{
			name: "negative but valid duration stays negative",
			spec: withLimit(&durationpb.Duration{Seconds: -60}),
			want: domainWithLimit(-time.Minute), limitRejected: true,
		},
		{
			name:          "seconds beyond the Duration range",
			spec:          withLimit(&durationpb.Duration{Seconds: 315_576_000_001}),
			want:          fullDomainSpec(),
			negativeLimit: true, limitRejected: true,
		},
		{
			name:          "seconds below the Duration range",
			spec:          withLimit(&durationpb.Duration{Seconds: -315_576_000_001}),
			want:          fullDomainSpec(),
			negativeLimit: true, limitRejected: true,
		},
		{
			name:          "nanos out of range",
			spec:          withLimit(&durationpb.Duration{Seconds: 1, Nanos: 1_000_000_000}),
			want:          fullDomainSpec(),
			negativeLimit: true, limitRejected: true,
		},
		{
			name:          "seconds and nanos of different sign",
			spec:          withLimit(&durationpb.Duration{Seconds: 3600, Nanos: -1}),
			want:          fullDomainSpec(),
			negativeLimit: true, limitRejected: true,
		},
		{
			// 300 years is a valid Duration but more than time.Duration
			// holds: AsDuration saturates, and validation still rejects it.
			name:          "valid duration beyond time.Duration saturates",
			spec:          withLimit(&durationpb.Duration{Seconds: 300 * 365 * 24 * 3600}),
			want:          domainWithLimit(time.Duration(math.MaxInt64).Truncate(time.Second)), // whole seconds: rejected for its size
			limitRejected: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			created := &run.Run{ID: "r-01jdx2k7a8m3q0c4n5p6r7s8t9", RequestID: "req-42", State: run.StatePending}
			fake := &fakeRuns{run: created}
			c := serve(t, fake)
			resp, err := c.runs.CreateRun(testContext(t), &apipb.CreateRunRequest{Spec: tt.spec, RequestId: tt.requestID})
			if err != nil {
				t.Fatalf("CreateRun: %v", err)
			}
			if resp.GetRun().GetId() != created.ID || resp.GetRun().GetState() != apipb.RunState_RUN_STATE_PENDING {
				t.Errorf("response run = %v, want id %s PENDING", resp.GetRun(), created.ID)
			}
			if calls := fake.callList(); !reflect.DeepEqual(calls, []string{"Create"}) {
				t.Fatalf("calls = %v, want [Create]", calls)
			}
			got, requestID := fake.lastSpec()
			if requestID != tt.requestID {
				t.Errorf("request id = %q, want %q", requestID, tt.requestID)
			}
			if tt.negativeLimit {
				if got.TimeLimit >= 0 {
					t.Errorf("time limit = %v, want negative", got.TimeLimit)
				}
				got.TimeLimit = tt.want.TimeLimit // compared above
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("spec =\n%#v\nwant\n%#v", got, tt.want)
			}
			if tt.negativeLimit || tt.limitRejected {
				converted, _ := fake.lastSpec()
				err := run.Validate(converted, run.DefaultLimits())
				var verr *run.ValidationError
				if !errors.As(err, &verr) {
					t.Fatalf("Validate(converted spec) = %v, want a ValidationError", err)
				}
				found := false
				for _, v := range verr.Violations {
					found = found || v.Field == "spec.time_limit"
				}
				if !found {
					t.Errorf("Validate(converted spec) violations %q name no spec.time_limit", verr.Violations)
				}
			}
		})
	}
}

func TestCreateRunWithoutSpec(t *testing.T) {
	fake := &fakeRuns{}
	c := serve(t, fake)
	_, err := c.runs.CreateRun(testContext(t), &apipb.CreateRunRequest{RequestId: "req-1"})
	wantBadRequest(t, err, "spec is required", run.FieldViolation{Field: "spec", Description: "required: the run to create"})
	if calls := fake.callList(); len(calls) != 0 {
		t.Errorf("Runs called: %v", calls)
	}
}

func TestRunIDRequired(t *testing.T) {
	want := run.FieldViolation{Field: "run_id", Description: "required: the id of a run, e.g. r-01jdx2k7a8m3q0c4n5p6r7s8t9"}
	tests := []struct {
		name string
		call func(context.Context, apipb.RunServiceClient) error
	}{
		{"GetRun", func(ctx context.Context, c apipb.RunServiceClient) error {
			_, err := c.GetRun(ctx, &apipb.GetRunRequest{})
			return err
		}},
		{"CancelRun", func(ctx context.Context, c apipb.RunServiceClient) error {
			_, err := c.CancelRun(ctx, &apipb.CancelRunRequest{})
			return err
		}},
		{"WatchRun", func(ctx context.Context, c apipb.RunServiceClient) error {
			stream, err := c.WatchRun(ctx, &apipb.WatchRunRequest{})
			if err != nil {
				return err
			}
			resp, err := stream.Recv()
			if err == nil {
				return fmt.Errorf("WatchRun sent %v", resp)
			}
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := &fakeRuns{run: &run.Run{ID: "r-1"}}
			c := serve(t, fake)
			err := tt.call(testContext(t), c.runs)
			wantBadRequest(t, err, "run_id is required", want)
			if calls := fake.callList(); len(calls) != 0 {
				t.Errorf("Runs called: %v", calls)
			}
		})
	}
}

func TestGetAndCancelPassTheRunID(t *testing.T) {
	const id = "r-01jdx2k7a8m3q0c4n5p6r7s8t9"
	tests := []struct {
		name     string
		wantCall string
		call     func(context.Context, apipb.RunServiceClient) (*apipb.Run, error)
	}{
		{"GetRun", "Get", func(ctx context.Context, c apipb.RunServiceClient) (*apipb.Run, error) {
			resp, err := c.GetRun(ctx, &apipb.GetRunRequest{RunId: id})
			return resp.GetRun(), err
		}},
		{"CancelRun", "Cancel", func(ctx context.Context, c apipb.RunServiceClient) (*apipb.Run, error) {
			resp, err := c.CancelRun(ctx, &apipb.CancelRunRequest{RunId: id})
			return resp.GetRun(), err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := &fakeRuns{run: &run.Run{ID: id, State: run.StateCancelled, Reason: "cancelled by user"}}
			c := serve(t, fake)
			got, err := tt.call(testContext(t), c.runs)
			if err != nil {
				t.Fatal(err)
			}
			if calls := fake.callList(); !reflect.DeepEqual(calls, []string{tt.wantCall}) {
				t.Errorf("calls = %v, want [%s]", calls, tt.wantCall)
			}
			if got := fake.lastID(); got != id {
				t.Errorf("Runs got id %q, want %q", got, id)
			}
			if got.GetId() != id || got.GetState() != apipb.RunState_RUN_STATE_CANCELLED || got.GetReason() != "cancelled by user" {
				t.Errorf("run = %v", got)
			}
		})
	}
}

func TestListRunsBuildsQuery(t *testing.T) {
	after := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	before := time.Date(2026, 2, 3, 4, 5, 6, 7, time.UTC)
	tests := []struct {
		name string
		req  *apipb.ListRunsRequest
		want store.ListQuery
	}{
		{
			name: "empty request",
			req:  &apipb.ListRunsRequest{},
			want: store.ListQuery{},
		},
		{
			name: "every filter",
			req: &apipb.ListRunsRequest{
				PageSize:         20,
				PageToken:        "AQID",
				States:           []apipb.RunState{apipb.RunState_RUN_STATE_PENDING, apipb.RunState_RUN_STATE_LOST, apipb.RunState_RUN_STATE_OUT_OF_MEMORY},
				Labels:           map[string]string{"team": "llm", "exp": ""},
				NamePrefix:       "train-",
				CreateTimeAfter:  timestamppb.New(after),
				CreateTimeBefore: timestamppb.New(before),
			},
			want: store.ListQuery{
				PageSize:      20,
				PageToken:     "AQID",
				States:        []run.State{run.StatePending, run.StateLost, run.StateOutOfMemory},
				Labels:        map[string]string{"team": "llm", "exp": ""},
				NamePrefix:    "train-",
				CreatedAfter:  after,
				CreatedBefore: before,
			},
		},
		{
			name: "page size above the maximum is left for the store to clamp",
			req:  &apipb.ListRunsRequest{PageSize: 5000},
			want: store.ListQuery{PageSize: 5000},
		},
		{
			name: "only a lower time bound",
			req:  &apipb.ListRunsRequest{CreateTimeAfter: timestamppb.New(after)},
			want: store.ListQuery{CreatedAfter: after},
		},
		{
			name: "the epoch is a bound, not the zero time",
			req:  &apipb.ListRunsRequest{CreateTimeBefore: &timestamppb.Timestamp{}},
			want: store.ListQuery{CreatedBefore: time.Unix(0, 0).UTC()},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := &fakeRuns{}
			c := serve(t, fake)
			if _, err := c.runs.ListRuns(testContext(t), tt.req); err != nil {
				t.Fatal(err)
			}
			if calls := fake.callList(); !reflect.DeepEqual(calls, []string{"List"}) {
				t.Fatalf("calls = %v, want [List]", calls)
			}
			got := fake.lastQuery()
			if !got.CreatedAfter.Equal(tt.want.CreatedAfter) || got.CreatedAfter.IsZero() != tt.want.CreatedAfter.IsZero() {
				t.Errorf("CreatedAfter = %v, want %v", got.CreatedAfter, tt.want.CreatedAfter)
			}
			if !got.CreatedBefore.Equal(tt.want.CreatedBefore) || got.CreatedBefore.IsZero() != tt.want.CreatedBefore.IsZero() {
				t.Errorf("CreatedBefore = %v, want %v", got.CreatedBefore, tt.want.CreatedBefore)
			}
			got.CreatedAfter, got.CreatedBefore = tt.want.CreatedAfter, tt.want.CreatedBefore
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("query =\n%#v\nwant\n%#v", got, tt.want)
			}
		})
	}
}

// Every API state but UNSPECIFIED has a domain state of the same name.
func TestListRunsEveryState(t *testing.T) {
	for number, name := range apipb.RunState_name {
		if number == 0 {
			continue
		}
		t.Run(name, func(t *testing.T) {
			want, ok := run.ParseState(strings.TrimPrefix(name, "RUN_STATE_"))
			if !ok {
				t.Fatalf("no domain state named like %s", name)
			}
			fake := &fakeRuns{}
			c := serve(t, fake)
			if _, err := c.runs.ListRuns(testContext(t), &apipb.ListRunsRequest{States: []apipb.RunState{apipb.RunState(number)}}); err != nil {
				t.Fatal(err)
			}
			if got := fake.lastQuery().States; !reflect.DeepEqual(got, []run.State{want}) {
				t.Errorf("states = %v, want [%v]", got, want)
			}
			// and back: a run in that state is reported in it
			if got := stateToProto(want); got != apipb.RunState(number) {
				t.Errorf("stateToProto(%v) = %v, want %v", want, got, name)
			}
		})
	}
}

func TestListRunsRejects(t *testing.T) {
	tests := []struct {
		name string
		req  *apipb.ListRunsRequest
		want []run.FieldViolation
	}{
		{
			name: "negative page size",
			req:  &apipb.ListRunsRequest{PageSize: -1},
			want: []run.FieldViolation{{Field: "page_size", Description: "must not be negative (0 means 50; values above 1000 are treated as 1000)"}},
		},
		{
			name: "unspecified state",
			req:  &apipb.ListRunsRequest{States: []apipb.RunState{apipb.RunState_RUN_STATE_UNSPECIFIED}},
			want: []run.FieldViolation{{Field: "states", Description: "unknown or unspecified state RUN_STATE_UNSPECIFIED"}},
		},
		{
			name: "unknown state among good ones",
			req:  &apipb.ListRunsRequest{States: []apipb.RunState{apipb.RunState_RUN_STATE_RUNNING, 42}},
			want: []run.FieldViolation{{Field: "states", Description: "unknown or unspecified state 42"}},
		},
		{
			name: "every problem is reported, in order",
			req: &apipb.ListRunsRequest{
				PageSize: -50,
				States:   []apipb.RunState{apipb.RunState_RUN_STATE_UNSPECIFIED, apipb.RunState_RUN_STATE_PENDING, 99},
			},
			want: []run.FieldViolation{
				{Field: "page_size", Description: "must not be negative (0 means 50; values above 1000 are treated as 1000)"},
				{Field: "states", Description: "unknown or unspecified state RUN_STATE_UNSPECIFIED"},
				{Field: "states", Description: "unknown or unspecified state 99"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := &fakeRuns{}
			c := serve(t, fake)
			_, err := c.runs.ListRuns(testContext(t), tt.req)
			wantBadRequest(t, err, "invalid ListRuns request", tt.want...)
			if calls := fake.callList(); len(calls) != 0 {
				t.Errorf("Runs called: %v", calls)
			}
		})
	}
}

func TestListRunsResponse(t *testing.T) {
	tests := []struct {
		name    string
		list    []*run.Run
		next    string
		wantIDs []string
	}{
		{name: "no runs", wantIDs: nil},
		{
			name:    "a page with more to come",
			list:    []*run.Run{{ID: "r-3", State: run.StateRunning}, {ID: "r-2", State: run.StateFailed}},
			next:    "next-token",
			wantIDs: []string{"r-3", "r-2"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := &fakeRuns{list: tt.list, next: tt.next}
			c := serve(t, fake)
			resp, err := c.runs.ListRuns(testContext(t), &apipb.ListRunsRequest{PageSize: 2})
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for i, r := range resp.GetRuns() {
				ids = append(ids, r.GetId())
				if want := runToProto(tt.list[i]); !proto.Equal(r, want) {
					t.Errorf("run %d = %v, want %v", i, r, want)
				}
			}
			if !reflect.DeepEqual(ids, tt.wantIDs) {
				t.Errorf("ids = %v, want %v", ids, tt.wantIDs)
			}
			if resp.GetNextPageToken() != tt.next {
				t.Errorf("next page token = %q, want %q", resp.GetNextPageToken(), tt.next)
			}
		})
	}
}

func TestRunToProto(t *testing.T) {
	cet := time.FixedZone("CET", 3600)
	create := time.Date(2026, 3, 1, 13, 0, 0, 123456789, cet)
	submit := create.Add(time.Second)
	start := create.Add(time.Minute)
	end := create.Add(time.Hour)
	update := end.Add(time.Millisecond)
	progressAt := start.Add(30 * time.Minute)

	full := &run.Run{
		ID:         "r-01jdx2k7a8m3q0c4n5p6r7s8t9",
		RequestID:  "req-42",
		Spec:       fullDomainSpec(),
		State:      run.StateOutOfMemory,
		SlurmState: "OUT_OF_MEMORY",
		Reason:     "OutOfMemory",
		SlurmJobID: "4242",
		NodeList:   "worker-[0-1]",
		ExitCode:   137,
		ExitSignal: 9,
		OutputPath: "/scratch/ann/out/4242.out",
		CreateTime: create,
		SubmitTime: submit,
		StartTime:  start,
		EndTime:    end,
		UpdateTime: update,
		Progress: &run.Progress{
			Step:             1200,
			TotalSteps:       10000,
			Loss:             1.875,
			SamplesPerSecond: 512.5,
			ETA:              90 * time.Minute,
			UpdateTime:       progressAt,
			Metrics:          map[string]float64{"grad_norm": 0.5, "lr": 3e-4},
		},
		Usage: &run.Usage{GPUCount: 16, UtilizationMean: 88.5, UtilizationP95: 97, MemoryPeakBytes: 80 << 30,
			EnergyJoules: 1.5e6, GPUHours: 32, XIDs: []int32{13, 79}, Samples: 1000, Simulated: true},
		IncidentIDs: []string{"inc-1", "inc-2"},
		Owner:       "ann",
		Attempts: []run.Attempt{{Number: 1, SlurmJobID: "4241", NodeList: "worker-[2-3]", State: run.StateNodeFail,
			SubmitTime: create, StartTime: create, EndTime: submit, Cause: run.CauseNodeFail, FaultyNodes: []string{"worker-2", "worker-3"},
			IncidentID: "inc-1", Checkpoint: &run.Checkpoint{Step: 600, Path: "/ckpt/600.pt", Time: create}}},
		Checkpoint: &run.Checkpoint{Step: 1200, Path: "/ckpt/1200.pt", Time: progressAt},
		Goodput:    &run.Goodput{GPUHoursUsed: 2, GPUHoursKept: 1.5, LostByCause: map[string]float64{"NODE_FAIL": 0.5}},
	}
	fullWant := &apipb.Run{
		Id:         "r-01jdx2k7a8m3q0c4n5p6r7s8t9",
		Name:       "train-llm",
		Spec:       fullProtoSpec(),
		State:      apipb.RunState_RUN_STATE_OUT_OF_MEMORY,
		SlurmState: "OUT_OF_MEMORY",
		Reason:     "OutOfMemory",
		SlurmJobId: "4242",
		NodeList:   "worker-[0-1]",
		Nodes:      []string{"worker-0", "worker-1"},
		ExitCode:   137,
		ExitSignal: 9,
		OutputPath: "/scratch/ann/out/4242.out",
		RequestId:  "req-42",
		CreateTime: &timestamppb.Timestamp{Seconds: create.Unix(), Nanos: 123456789},
		SubmitTime: &timestamppb.Timestamp{Seconds: submit.Unix(), Nanos: 123456789},
		StartTime:  &timestamppb.Timestamp{Seconds: start.Unix(), Nanos: 123456789},
		EndTime:    &timestamppb.Timestamp{Seconds: end.Unix(), Nanos: 123456789},
		UpdateTime: &timestamppb.Timestamp{Seconds: update.Unix(), Nanos: 124456789},
		Usage: &apipb.RunUsage{GpuCount: 16, GpuUtilizationMeanPercent: 88.5, GpuUtilizationP95Percent: 97, GpuMemoryPeakBytes: 80 << 30,
			EnergyJoules: 1.5e6, GpuHours: 32, Xids: []int32{13, 79}, Simulated: true},
		IncidentIds: []string{"inc-1", "inc-2"},
		Owner:       "ann",
		Attempts: []*apipb.RunAttempt{
			{Number: 1, SlurmJobId: "4241", NodeList: "worker-[2-3]", State: apipb.RunState_RUN_STATE_NODE_FAIL,
				SubmitTime: timestamppb.New(create), StartTime: timestamppb.New(create), EndTime: timestamppb.New(submit),
				Cause: apipb.RetryCause_RETRY_CAUSE_NODE_FAIL, FaultyNodes: []string{"worker-2", "worker-3"}, IncidentId: "inc-1",
				CheckpointStep: 600, CheckpointPath: "/ckpt/600.pt"},
			{Number: 2, SlurmJobId: "4242", NodeList: "worker-[0-1]", State: apipb.RunState_RUN_STATE_OUT_OF_MEMORY,
				SubmitTime: timestamppb.New(submit), StartTime: timestamppb.New(start), EndTime: timestamppb.New(end),
				CheckpointStep: 1200, CheckpointPath: "/ckpt/1200.pt"},
		},
		Goodput: &apipb.RunGoodput{GpuHoursUsed: 2, GpuHoursKept: 1.5, LostGpuHoursByCause: map[string]float64{"NODE_FAIL": 0.5}},
		Progress: &apipb.RunProgress{
			Step:             1200,
			TotalSteps:       10000,
			Loss:             1.875,
			SamplesPerSecond: 512.5,
			Eta:              &durationpb.Duration{Seconds: 5400},
			UpdateTime:       &timestamppb.Timestamp{Seconds: progressAt.Unix(), Nanos: 123456789},
			Metrics:          map[string]float64{"grad_norm": 0.5, "lr": 3e-4},
		},
	}
	tests := []struct {
		name string
		run  *run.Run
		want *apipb.Run
		// allSet: every field of the response must be populated, but for
		// those whose features have not landed (usage, incident_ids).
		allSet bool
	}{
		{name: "every field", run: full, want: fullWant, allSet: true},
		{
			name: "zero times are absent, no progress, no nodes yet",
			run: &run.Run{
				ID: "r-1", RequestID: "generated-1", Spec: run.Spec{JobName: "j", Nodes: 1, TasksPerNode: 1},
				State: run.StatePending, Reason: "submitting to Slurm", CreateTime: create, UpdateTime: create,
			},
			want: &apipb.Run{
				Id: "r-1", RequestId: "generated-1", Name: "j", Spec: &apipb.RunSpec{JobName: "j", Nodes: 1, TasksPerNode: 1},
				State: apipb.RunState_RUN_STATE_PENDING, Reason: "submitting to Slurm",
				CreateTime: timestamppb.New(create), UpdateTime: timestamppb.New(create),
			},
		},
		{
			name: "node list that does not expand keeps node_list and no nodes",
			run:  &run.Run{ID: "r-2", State: run.StateRunning, NodeList: "worker-[3-1]"},
			want: &apipb.Run{Id: "r-2", Spec: &apipb.RunSpec{}, State: apipb.RunState_RUN_STATE_RUNNING, NodeList: "worker-[3-1]"},
		},
		{
			name: "several node ranges",
			run:  &run.Run{ID: "r-3", State: run.StateRunning, NodeList: "gpu[01-02],login-0"},
			want: &apipb.Run{Id: "r-3", Spec: &apipb.RunSpec{}, State: apipb.RunState_RUN_STATE_RUNNING, NodeList: "gpu[01-02],login-0", Nodes: []string{"gpu01", "gpu02", "login-0"}},
		},
		{
			name: "progress without eta or update time",
			run:  &run.Run{ID: "r-4", State: run.StateRunning, Progress: &run.Progress{Step: 7}},
			want: &apipb.Run{Id: "r-4", Spec: &apipb.RunSpec{}, State: apipb.RunState_RUN_STATE_RUNNING, Progress: &apipb.RunProgress{Step: 7}},
		},
		{
			name: "non-positive time limit is absent",
			run:  &run.Run{ID: "r-5", State: run.StateFailed, Spec: run.Spec{TimeLimit: -1}, ExitCode: 1},
			want: &apipb.Run{Id: "r-5", Spec: &apipb.RunSpec{}, State: apipb.RunState_RUN_STATE_FAILED, ExitCode: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := &fakeRuns{run: tt.run}
			c := serve(t, fake)
			resp, err := c.runs.GetRun(testContext(t), &apipb.GetRunRequest{RunId: tt.run.ID})
			if err != nil {
				t.Fatal(err)
			}
			got := resp.GetRun()
			if !proto.Equal(got, tt.want) {
				t.Errorf("run =\n%v\nwant\n%v", got, tt.want)
			}
			if !tt.run.CreateTime.IsZero() && !got.GetCreateTime().AsTime().Equal(tt.run.CreateTime) {
				t.Errorf("create_time %v is not the instant %v", got.GetCreateTime().AsTime(), tt.run.CreateTime)
			}
			if tt.allSet {
				assertAllFieldsSet(t, got.ProtoReflect(), nil)
				assertAllFieldsSet(t, got.GetUsage().ProtoReflect(), nil)
				assertAllFieldsSet(t, got.GetSpec().ProtoReflect(), nil)
				assertAllFieldsSet(t, got.GetProgress().ProtoReflect(), nil)
			}
		})
	}
}

// Errors from Runs reach the client with their codes and details intact.
func TestRunServiceMapsErrors(t *testing.T) {
	verr := &run.ValidationError{Violations: []run.FieldViolation{
		{Field: "spec.nodes", Description: "must be 1-1024; got 0"},
		{Field: "spec.argv", Description: "argv or script is required"},
	}}
	tests := []struct {
		name     string
		err      error
		call     func(context.Context, apipb.RunServiceClient) error
		wantCode codes.Code
		wantMsg  string
		wantBR   []run.FieldViolation
		// msgPrefix: wantMsg is a prefix (an internal error's id varies).
		msgPrefix bool
	}{
		{
			name: "CreateRun validation",
			err:  verr,
			call: func(ctx context.Context, c apipb.RunServiceClient) error {
				_, err := c.CreateRun(ctx, &apipb.CreateRunRequest{Spec: &apipb.RunSpec{JobName: "x"}})
				return err
			},
			wantCode: codes.InvalidArgument, wantMsg: verr.Error(), wantBR: verr.Violations,
		},
		{
			name: "CreateRun request id reused",
			err:  controller.ErrRequestIDReused,
			call: func(ctx context.Context, c apipb.RunServiceClient) error {
				_, err := c.CreateRun(ctx, &apipb.CreateRunRequest{Spec: &apipb.RunSpec{}, RequestId: "r"})
				return err
			},
			wantCode: codes.InvalidArgument, wantMsg: controller.ErrRequestIDReused.Error(),
			wantBR: []run.FieldViolation{{Field: "request_id", Description: "already used with a different spec; use a new request_id for a different run"}},
		},
		{
			name: "GetRun not found",
			err:  fmt.Errorf("run %q: %w", "r-9", controller.ErrNotFound),
			call: func(ctx context.Context, c apipb.RunServiceClient) error {
				_, err := c.GetRun(ctx, &apipb.GetRunRequest{RunId: "r-9"})
				return err
			},
			wantCode: codes.NotFound, wantMsg: `run "r-9": run not found`,
		},
		{
			name: "CancelRun busy",
			err:  fmt.Errorf("run r-9: %w; retry in a moment", controller.ErrBusy),
			call: func(ctx context.Context, c apipb.RunServiceClient) error {
				_, err := c.CancelRun(ctx, &apipb.CancelRunRequest{RunId: "r-9"})
				return err
			},
			wantCode: codes.Aborted, wantMsg: "run r-9: run is being submitted; retry in a moment",
		},
		{
			name: "CancelRun slurm unavailable",
			err:  fmt.Errorf("cancel run r-9: %w", scheduler.ErrUnavailable),
			call: func(ctx context.Context, c apipb.RunServiceClient) error {
				_, err := c.CancelRun(ctx, &apipb.CancelRunRequest{RunId: "r-9"})
				return err
			},
			wantCode: codes.Unavailable, wantMsg: "cancel run r-9: slurm unavailable",
		},
		{
			name: "ListRuns bad page token",
			err:  fmt.Errorf("%w: wrong length", store.ErrInvalidPageToken),
			call: func(ctx context.Context, c apipb.RunServiceClient) error {
				_, err := c.ListRuns(ctx, &apipb.ListRunsRequest{PageToken: "x"})
				return err
			},
			wantCode: codes.InvalidArgument, wantMsg: "invalid page token: wrong length",
			wantBR: []run.FieldViolation{{Field: "page_token", Description: "not a token from a previous ListRuns call with the same filter"}},
		},
		{
			name: "ListRuns store failure",
			err:  errors.New("bbolt: i/o error"),
			call: func(ctx context.Context, c apipb.RunServiceClient) error {
				_, err := c.ListRuns(ctx, &apipb.ListRunsRequest{})
				return err
			},
			// The detail stays in the controller's log.
			wantCode: codes.Internal, wantMsg: "internal error (id ", msgPrefix: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := &fakeRuns{err: tt.err}
			c := serve(t, fake)
			err := tt.call(testContext(t), c.runs)
			st := status.Convert(err)
			msgOK := st.Message() == tt.wantMsg || tt.msgPrefix && strings.HasPrefix(st.Message(), tt.wantMsg)
			if st.Code() != tt.wantCode || !msgOK {
				t.Errorf("status = %v %q, want %v %q", st.Code(), st.Message(), tt.wantCode, tt.wantMsg)
			}
			if tt.wantBR != nil {
				wantBadRequest(t, err, tt.wantMsg, tt.wantBR...)
			} else if len(st.Details()) != 0 {
				t.Errorf("unexpected details %v", st.Details())
			}
		})
	}
}

func TestWatchRunStreams(t *testing.T) {
	updates := []*run.Run{
		{ID: "r-1", State: run.StatePending, Reason: "Priority"},
		{ID: "r-1", State: run.StateRunning, NodeList: "worker-[0-1]"},
		{ID: "r-1", State: run.StateCompleted, ExitCode: 0},
	}
	tests := []struct {
		name      string
		send      []*run.Run
		err       error
		wantCode  codes.Code
		wantMsg   string
		wantState []apipb.RunState
	}{
		{
			name:     "every update, then OK",
			send:     updates,
			wantCode: codes.OK,
			wantState: []apipb.RunState{
				apipb.RunState_RUN_STATE_PENDING, apipb.RunState_RUN_STATE_RUNNING, apipb.RunState_RUN_STATE_COMPLETED,
			},
		},
		{
			name:      "slurm goes away after the first update",
			send:      updates[:1],
			err:       fmt.Errorf("watch: %w", scheduler.ErrUnavailable),
			wantCode:  codes.Unavailable,
			wantMsg:   "watch: slurm unavailable",
			wantState: []apipb.RunState{apipb.RunState_RUN_STATE_PENDING},
		},
		{
			name:     "no such run",
			err:      fmt.Errorf("run %q: %w", "r-1", controller.ErrNotFound),
			wantCode: codes.NotFound,
			wantMsg:  `run "r-1": run not found`,
		},
		{
			name:     "internal context cancellation while the client is still there",
			send:     updates[:1],
			err:      fmt.Errorf("hub closed: %w", context.Canceled),
			wantCode: codes.Canceled, wantMsg: "hub closed: context canceled",
			wantState: []apipb.RunState{apipb.RunState_RUN_STATE_PENDING},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := &fakeRuns{watch: func(_ context.Context, send func(*run.Run) error) error {
				for _, r := range tt.send {
					if err := send(r); err != nil {
						return err
					}
				}
				return tt.err
			}}
			c := serve(t, fake)
			stream, err := c.runs.WatchRun(testContext(t), &apipb.WatchRunRequest{RunId: "r-1"})
			if err != nil {
				t.Fatal(err)
			}
			var states []apipb.RunState
			for {
				resp, err := stream.Recv()
				if err == io.EOF {
					if tt.wantCode != codes.OK {
						t.Errorf("stream ended OK, want %v", tt.wantCode)
					}
					break
				}
				if err != nil {
					st := status.Convert(err)
					if st.Code() != tt.wantCode || st.Message() != tt.wantMsg {
						t.Errorf("stream ended with %v %q, want %v %q", st.Code(), st.Message(), tt.wantCode, tt.wantMsg)
					}
					break
				}
				if want := runToProto(tt.send[len(states)]); !proto.Equal(resp.GetRun(), want) {
					t.Errorf("update %d = %v, want %v", len(states), resp.GetRun(), want)
				}
				states = append(states, resp.GetRun().GetState())
			}
			if !reflect.DeepEqual(states, tt.wantState) {
				t.Errorf("states = %v, want %v", states, tt.wantState)
			}
			if got := fake.lastID(); got != "r-1" {
				t.Errorf("Watch got id %q, want r-1", got)
			}
		})
	}
}

// handledCount reads grpc_server_handled_total for one method and code.
func handledCount(t *testing.T, m *metrics.Controller, method, code string) float64 {
	t.Helper()
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "grpc_server_handled_total" {
			continue
		}
		for _, metric := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range metric.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["grpc_method"] == method && labels["grpc_code"] == code {
				return metric.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func TestWatchRunEndsWhenTheClientCancels(t *testing.T) {
	tests := []struct {
		name string
		// watch sends one update, closes sentFirst, then carries on
		// until the client leaves; it returns what ends it.
		watch func(ctx context.Context, send func(*run.Run) error, sentFirst chan<- struct{}) error
		// wantWatchErr is what Watch must return.
		wantWatchErr func(error) bool
	}{
		{
			name: "waiting for the next update",
			watch: func(ctx context.Context, send func(*run.Run) error, sentFirst chan<- struct{}) error {
				if err := send(&run.Run{ID: "r-1", State: run.StateRunning}); err != nil {
					return err
				}
				close(sentFirst)
				<-ctx.Done()
				return ctx.Err()
			},
			wantWatchErr: func(err error) bool { return errors.Is(err, context.Canceled) },
		},
		{
			name: "sending updates",
			watch: func(ctx context.Context, send func(*run.Run) error, sentFirst chan<- struct{}) error {
				for i := 0; ; i++ {
					if err := send(&run.Run{ID: "r-1", State: run.StateRunning, Progress: &run.Progress{Step: int64(i)}}); err != nil {
						return err
					}
					if i == 0 {
						close(sentFirst)
					}
					time.Sleep(time.Millisecond)
				}
			},
			// Send fails once the client is gone; how exactly is gRPC's
			// business, but it must be an error.
			wantWatchErr: func(err error) bool { return err != nil },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sentFirst := make(chan struct{})
			returned := make(chan error, 1)
			fake := &fakeRuns{watch: func(ctx context.Context, send func(*run.Run) error) error {
				err := tt.watch(ctx, send, sentFirst)
				returned <- err
				return err
			}}
			c := serve(t, fake)
			ctx, cancel := context.WithCancel(testContext(t))
			defer cancel()
			stream, err := c.runs.WatchRun(ctx, &apipb.WatchRunRequest{RunId: "r-1"})
			if err != nil {
				t.Fatal(err)
			}
			resp, err := stream.Recv()
			if err != nil || resp.GetRun().GetState() != apipb.RunState_RUN_STATE_RUNNING {
				t.Fatalf("first update = %v, %v", resp, err)
			}
			<-sentFirst
			cancel()
			for {
				if _, err := stream.Recv(); err != nil {
					if status.Code(err) != codes.Canceled {
						t.Errorf("Recv after cancel = %v, want Canceled", err)
					}
					break
				}
			}
			select {
			case err := <-returned:
				if !tt.wantWatchErr(err) {
					t.Errorf("Watch returned %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Watch did not return after the client cancelled")
			}
			// The handler reports the client going away as CANCELED (not
			// INTERNAL or UNKNOWN, which would be logged as errors); the
			// server's metrics record it once the handler returned.
			deadline := time.Now().Add(10 * time.Second)
			for handledCount(t, c.metrics, "WatchRun", "Canceled") != 1 {
				if time.Now().After(deadline) {
					t.Fatalf("WatchRun handled as %v, want Canceled once", handledCodes(t, c.metrics, "WatchRun"))
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
}

// handledCodes lists the codes grpc_server_handled_total counted for method.
func handledCodes(t *testing.T, m *metrics.Controller, method string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, code := range []codes.Code{codes.OK, codes.Canceled, codes.Unknown, codes.Internal, codes.Unavailable, codes.DeadlineExceeded} {
		if n := handledCount(t, m, method, code.String()); n > 0 {
			out[code.String()] = n
		}
	}
	return out
}

func TestUnimplementedServices(t *testing.T) {
	tests := []struct {
		name string
		call func(context.Context, clients) error
	}{
		{"RunService/GetRunLogs", func(ctx context.Context, c clients) error {
			s, err := c.runs.GetRunLogs(ctx, &apipb.GetRunLogsRequest{RunId: "r-1"})
			if err != nil {
				return err
			}
			_, err = s.Recv()
			return err
		}},
		{"RunService/ReportRunResults", func(ctx context.Context, c clients) error {
			s, err := c.runs.ReportRunResults(ctx)
			if err != nil {
				return err
			}
			_, err = s.CloseAndRecv()
			return err
		}},
		{"NodeService/ListNodes", func(ctx context.Context, c clients) error {
			_, err := c.nodes.ListNodes(ctx, &apipb.ListNodesRequest{})
			return err
		}},
		{"NodeService/GetNode", func(ctx context.Context, c clients) error {
			_, err := c.nodes.GetNode(ctx, &apipb.GetNodeRequest{})
			return err
		}},
		{"NodeService/DrainNode", func(ctx context.Context, c clients) error {
			_, err := c.nodes.DrainNode(ctx, &apipb.DrainNodeRequest{})
			return err
		}},
		{"NodeService/UndrainNode", func(ctx context.Context, c clients) error {
			_, err := c.nodes.UndrainNode(ctx, &apipb.UndrainNodeRequest{})
			return err
		}},
		{"NodeService/RunNodeCheck", func(ctx context.Context, c clients) error {
			_, err := c.nodes.RunNodeCheck(ctx, &apipb.RunNodeCheckRequest{})
			return err
		}},
		{"NodeService/ListIncidents", func(ctx context.Context, c clients) error {
			_, err := c.nodes.ListIncidents(ctx, &apipb.ListIncidentsRequest{})
			return err
		}},
		{"AgentService/Connect", func(ctx context.Context, c clients) error {
			s, err := c.agent.Connect(ctx)
			if err != nil {
				return err
			}
			_, err = s.Recv()
			return err
		}},
	}
	fake := &fakeRuns{}
	c := serve(t, fake)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call(testContext(t), c)
			if status.Code(err) != codes.Unimplemented {
				t.Errorf("err = %v, want Unimplemented", err)
			}
		})
	}
	if calls := fake.callList(); len(calls) != 0 {
		t.Errorf("Runs called: %v", calls)
	}
}
