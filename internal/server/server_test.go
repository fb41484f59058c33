package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/sopilot/sopilot/internal/api"
	"github.com/sopilot/sopilot/internal/controller"
	"github.com/sopilot/sopilot/internal/metrics"
	"github.com/sopilot/sopilot/internal/run"
	"github.com/sopilot/sopilot/internal/scheduler"
	"github.com/sopilot/sopilot/internal/store"
	"github.com/sopilot/sopilot/pkg/agentpb"
	"github.com/sopilot/sopilot/pkg/apipb"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeRuns is a hand-written api.Runs whose behaviour each test sets:
// get answers GetRun, watch answers WatchRun; the others fail.
type fakeRuns struct {
	get   func(ctx context.Context, id string) (*run.Run, error)
	watch func(ctx context.Context, id string, send func(*run.Run) error) error
}

func (f *fakeRuns) Create(context.Context, run.Spec, string) (*run.Run, error) {
	return nil, errors.New("fake: Create not expected")
}

func (f *fakeRuns) Get(ctx context.Context, id string) (*run.Run, error) {
	if f.get == nil {
		return &run.Run{ID: id, State: run.StateRunning}, nil
	}
	return f.get(ctx, id)
}

func (f *fakeRuns) List(context.Context, store.ListQuery) ([]*run.Run, string, error) {
	return nil, "", nil
}

func (f *fakeRuns) Cancel(context.Context, string) (*run.Run, error) {
	return nil, errors.New("fake: Cancel not expected")
}

func (f *fakeRuns) Watch(ctx context.Context, id string, send func(*run.Run) error) error {
	if f.watch == nil {
		return send(&run.Run{ID: id, State: run.StateCompleted})
	}
	return f.watch(ctx, id, send)
}

// lockedBuffer collects log output written from the server's goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// records parses the JSON log lines written so far.
func (b *lockedBuffer) records(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(b.String()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		out = append(out, rec)
	}
	return out
}

type testServer struct {
	srv     *grpc.Server
	health  *health.Server
	metrics *metrics.Controller
	logs    *lockedBuffer
}

// newTestServer builds the controller's gRPC server as cmd/controller does,
// with runs behind the RunService.
func newTestServer(runs api.Runs) *testServer {
	logs := &lockedBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	m := metrics.NewController()
	srv, hs := NewGRPC(logger, m)
	apipb.RegisterRunServiceServer(srv, api.NewRunServer(runs, logger))
	apipb.RegisterNodeServiceServer(srv, &api.NodeServer{})
	apipb.RegisterComparisonServiceServer(srv, &api.ComparisonServer{})
	agentpb.RegisterAgentServiceServer(srv, &api.AgentServer{})
	m.GRPC.InitializeMetrics(srv)
	return &testServer{srv: srv, health: hs, metrics: m, logs: logs}
}

// serveBufconn serves ts over bufconn until the test ends and returns a
// client connection to it.
func serveBufconn(t *testing.T, ts *testServer) *grpc.ClientConn {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	served := make(chan error, 1)
	go func() { served <- ts.srv.Serve(lis) }()
	conn := dial(t, "passthrough:///bufconn", grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
		return lis.DialContext(ctx)
	}))
	t.Cleanup(func() {
		ts.srv.Stop()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return conn
}

func dial(t *testing.T, target string, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(target, append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestHealth(t *testing.T) {
	ts := newTestServer(&fakeRuns{})
	conn := serveBufconn(t, ts)
	client := healthpb.NewHealthClient(conn)
	const runService = "sopilot.api.v1.RunService"

	steps := []struct {
		name    string
		set     func()
		service string
		want    healthpb.HealthCheckResponse_ServingStatus
		code    codes.Code
	}{
		{name: "server is serving from the start", service: "", want: healthpb.HealthCheckResponse_SERVING},
		{name: "unknown service", service: runService, code: codes.NotFound},
		{
			name:    "service marked not serving",
			set:     func() { ts.health.SetServingStatus(runService, healthpb.HealthCheckResponse_NOT_SERVING) },
			service: runService, want: healthpb.HealthCheckResponse_NOT_SERVING,
		},
		{
			name:    "service marked serving",
			set:     func() { ts.health.SetServingStatus(runService, healthpb.HealthCheckResponse_SERVING) },
			service: runService, want: healthpb.HealthCheckResponse_SERVING,
		},
		{
			name:    "shutdown marks everything not serving",
			set:     func() { ts.health.Shutdown() },
			service: "", want: healthpb.HealthCheckResponse_NOT_SERVING,
		},
	}
	for _, step := range steps {
		t.Run(step.name, func(t *testing.T) {
			if step.set != nil {
				step.set()
			}
			resp, err := client.Check(testContext(t), &healthpb.HealthCheckRequest{Service: step.service})
			if status.Code(err) != step.code {
				t.Fatalf("Check(%q) = %v, want code %v", step.service, err, step.code)
			}
			if err == nil && resp.GetStatus() != step.want {
				t.Errorf("Check(%q) = %v, want %v", step.service, resp.GetStatus(), step.want)
			}
		})
	}
}

func TestReflection(t *testing.T) {
	ts := newTestServer(&fakeRuns{})
	conn := serveBufconn(t, ts)
	stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = stream.CloseSend() }()
	ask := func(req *reflectionpb.ServerReflectionRequest) *reflectionpb.ServerReflectionResponse {
		t.Helper()
		if err := stream.Send(req); err != nil {
			t.Fatal(err)
		}
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if e := resp.GetErrorResponse(); e != nil {
			t.Fatalf("reflection error %d: %s", e.GetErrorCode(), e.GetErrorMessage())
		}
		return resp
	}

	t.Run("list services", func(t *testing.T) {
		resp := ask(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}})
		var got []string
		for _, s := range resp.GetListServicesResponse().GetService() {
			got = append(got, s.GetName())
		}
		slices.Sort(got)
		want := []string{
			"grpc.health.v1.Health",
			"grpc.reflection.v1.ServerReflection",
			"grpc.reflection.v1alpha.ServerReflection",
			"sopilot.agent.v1.AgentService",
			"sopilot.api.v1.ComparisonService",
			"sopilot.api.v1.NodeService",
			"sopilot.api.v1.RunService",
		}
		if !slices.Equal(got, want) {
			t.Errorf("services = %q, want %q", got, want)
		}
	})

	tests := []struct {
		symbol   string
		file     string
		services []string
	}{
		{symbol: "sopilot.api.v1.RunService", file: "sopilot/api/v1/run.proto", services: []string{"RunService"}},
		{symbol: "sopilot.api.v1.RunSpec", file: "sopilot/api/v1/run.proto", services: []string{"RunService"}},
		{symbol: "sopilot.api.v1.NodeService", file: "sopilot/api/v1/node.proto", services: []string{"NodeService"}},
		{symbol: "sopilot.agent.v1.AgentService", file: "sopilot/agent/v1/agent.proto", services: []string{"AgentService"}},
	}
	for _, tt := range tests {
		t.Run("file containing "+tt.symbol, func(t *testing.T) {
			resp := ask(&reflectionpb.ServerReflectionRequest{
				MessageRequest: &reflectionpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: tt.symbol},
			})
			files := resp.GetFileDescriptorResponse().GetFileDescriptorProto()
			if len(files) == 0 {
				t.Fatal("no file descriptors")
			}
			// The first file is the one that defines the symbol; its
			// dependencies may follow.
			var fd descriptorpb.FileDescriptorProto
			if err := proto.Unmarshal(files[0], &fd); err != nil {
				t.Fatal(err)
			}
			if fd.GetName() != tt.file {
				t.Errorf("file = %q, want %q", fd.GetName(), tt.file)
			}
			var services []string
			for _, s := range fd.GetService() {
				services = append(services, s.GetName())
			}
			if !slices.Equal(services, tt.services) {
				t.Errorf("services in %s = %q, want %q", fd.GetName(), services, tt.services)
			}
		})
	}

	// What `grpcurl describe sopilot.api.v1.RunService.CreateRun` prints
	// comes from the served file's source info: the method's comment.
	t.Run("describe a method shows its comment", func(t *testing.T) {
		resp := ask(&reflectionpb.ServerReflectionRequest{
			MessageRequest: &reflectionpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: "sopilot.api.v1.RunService.CreateRun"},
		})
		var fd descriptorpb.FileDescriptorProto
		if err := proto.Unmarshal(resp.GetFileDescriptorResponse().GetFileDescriptorProto()[0], &fd); err != nil {
			t.Fatal(err)
		}
		svc := slices.IndexFunc(fd.GetService(), func(s *descriptorpb.ServiceDescriptorProto) bool { return s.GetName() == "RunService" })
		method := slices.IndexFunc(fd.GetService()[svc].GetMethod(), func(m *descriptorpb.MethodDescriptorProto) bool { return m.GetName() == "CreateRun" })
		// Source info path of a method: service (6), index, method (2), index.
		want := []int32{6, int32(svc), 2, int32(method)}
		var comment string
		for _, loc := range fd.GetSourceCodeInfo().GetLocation() {
			if slices.Equal(loc.GetPath(), want) {
				comment = loc.GetLeadingComments()
			}
		}
		if !strings.Contains(comment, "CreateRun validates a spec, records the run durably") {
			t.Errorf("CreateRun's comment through reflection = %q", comment)
		}
	})
}

// firstFinishedCall returns the interceptor's first "finished call" log
// record for method, or nil.
func firstFinishedCall(t *testing.T, logs *lockedBuffer, method string) map[string]any {
	t.Helper()
	for _, rec := range logs.records(t) {
		if rec["msg"] == "finished call" && rec["grpc.method"] == method {
			return rec
		}
	}
	return nil
}

func TestPanicInHandler(t *testing.T) {
	tests := []struct {
		name   string
		method string
		call   func(context.Context, apipb.RunServiceClient) error
	}{
		{
			name:   "unary",
			method: "GetRun",
			call: func(ctx context.Context, c apipb.RunServiceClient) error {
				_, err := c.GetRun(ctx, &apipb.GetRunRequest{RunId: "r-boom"})
				return err
			},
		},
		{
			name:   "server streaming",
			method: "WatchRun",
			call: func(ctx context.Context, c apipb.RunServiceClient) error {
				s, err := c.WatchRun(ctx, &apipb.WatchRunRequest{RunId: "r-boom"})
				if err != nil {
					return err
				}
				for {
					if _, err := s.Recv(); err != nil {
						return err
					}
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := &fakeRuns{
				get: func(_ context.Context, id string) (*run.Run, error) {
					if id == "r-boom" {
						panic("nil map in " + id)
					}
					return &run.Run{ID: id, State: run.StateRunning}, nil
				},
				watch: func(_ context.Context, id string, send func(*run.Run) error) error {
					if err := send(&run.Run{ID: id, State: run.StateRunning}); err != nil {
						return err
					}
					panic("nil map in " + id)
				},
			}
			ts := newTestServer(fake)
			conn := serveBufconn(t, ts)
			client := apipb.NewRunServiceClient(conn)
			ctx := testContext(t)

			err := tt.call(ctx, client)
			st := status.Convert(err)
			if st.Code() != codes.Internal || st.Message() != "internal error; the controller logged the details" {
				t.Errorf("status = %v %q, want Internal with the generic message", st.Code(), st.Message())
			}
			if strings.Contains(st.Message(), "nil map") {
				t.Errorf("panic value leaked to the client: %q", st.Message())
			}

			// The server keeps serving, on the same connection.
			resp, err := client.GetRun(ctx, &apipb.GetRunRequest{RunId: "r-fine"})
			if err != nil || resp.GetRun().GetId() != "r-fine" {
				t.Errorf("GetRun after the panic = %v, %v", resp, err)
			}
			h, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
			if err != nil || h.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				t.Errorf("health after the panic = %v, %v", h, err)
			}

			// The panic and its stack are logged, at error level.
			var panicRec map[string]any
			for _, rec := range ts.logs.records(t) {
				if rec["msg"] == "panic in handler" {
					panicRec = rec
				}
			}
			if panicRec == nil {
				t.Fatalf("no panic log record in\n%s", ts.logs.String())
			}
			if panicRec["level"] != "ERROR" || panicRec["panic"] != "nil map in r-boom" || !strings.Contains(fmt.Sprint(panicRec["stack"]), "runtime/debug.Stack") {
				t.Errorf("panic record = %v", panicRec)
			}
			if rec := firstFinishedCall(t, ts.logs, tt.method); rec["grpc.code"] != "Internal" || rec["level"] != "ERROR" {
				t.Errorf("finished call record = %v, want Internal at ERROR", rec)
			}
		})
	}
}

// The logging interceptor logs each finished call at a level chosen by its
// code: client mistakes at INFO, what may be transient at WARN, the rest at
// ERROR.
func TestCallLogLevels(t *testing.T) {
	tests := []struct {
		err       error
		wantCode  string
		wantLevel string
	}{
		{nil, "OK", "INFO"},
		{controller.ErrNotFound, "NotFound", "INFO"},
		{&run.ValidationError{Violations: []run.FieldViolation{{Field: "run_id", Description: "bad"}}}, "InvalidArgument", "INFO"},
		{controller.ErrFailedPrecondition, "FailedPrecondition", "INFO"},
		{controller.ErrBusy, "Aborted", "INFO"},
		{context.Canceled, "Canceled", "INFO"},
		{status.Error(codes.AlreadyExists, "exists"), "AlreadyExists", "INFO"},
		{scheduler.ErrUnavailable, "Unavailable", "WARN"},
		{context.DeadlineExceeded, "DeadlineExceeded", "WARN"},
		{status.Error(codes.Unimplemented, "later"), "Unimplemented", "WARN"},
		{errors.New("disk on fire"), "Internal", "ERROR"},
		{status.Error(codes.ResourceExhausted, "slow down"), "ResourceExhausted", "ERROR"},
		{status.Error(codes.PermissionDenied, "no"), "PermissionDenied", "ERROR"},
	}
	for _, tt := range tests {
		t.Run(tt.wantCode, func(t *testing.T) {
			ts := newTestServer(&fakeRuns{get: func(_ context.Context, id string) (*run.Run, error) {
				if tt.err != nil {
					return nil, tt.err
				}
				return &run.Run{ID: id}, nil
			}})
			conn := serveBufconn(t, ts)
			_, err := apipb.NewRunServiceClient(conn).GetRun(testContext(t), &apipb.GetRunRequest{RunId: "r-1"})
			if got := status.Code(err).String(); got != tt.wantCode {
				t.Fatalf("code = %s (%v), want %s", got, err, tt.wantCode)
			}
			rec := firstFinishedCall(t, ts.logs, "GetRun")
			if rec == nil {
				t.Fatalf("no finished call record in\n%s", ts.logs.String())
			}
			if rec["grpc.code"] != tt.wantCode || rec["level"] != tt.wantLevel {
				t.Errorf("record = %v, want code %s at %s", rec, tt.wantCode, tt.wantLevel)
			}
			if rec["component"] != "grpc" || rec["grpc.service"] != "sopilot.api.v1.RunService" {
				t.Errorf("record = %v, want component grpc, service sopilot.api.v1.RunService", rec)
			}
		})
	}
}

func TestServeGRPCGracefulShutdown(t *testing.T) {
	const margin = 3 * time.Second
	tests := []struct {
		name  string
		grace time.Duration
		// open starts what is in flight when ctx is cancelled and returns
		// a function that checks how it ended.
		open func(t *testing.T, c apipb.RunServiceClient, handlerStarted <-chan struct{}) func(t *testing.T)
		// releaseLate: the slow handler is released only after shutdown
		// began.
		releaseLate bool
		// forced: ServeGRPC must wait out the grace period, then stop.
		forced bool
	}{
		{
			name:  "idle server stops at once",
			grace: 10 * time.Second,
			open: func(*testing.T, apipb.RunServiceClient, <-chan struct{}) func(*testing.T) {
				return func(*testing.T) {}
			},
		},
		{
			name:        "a unary call in flight finishes",
			grace:       10 * time.Second,
			releaseLate: true,
			open: func(t *testing.T, c apipb.RunServiceClient, handlerStarted <-chan struct{}) func(*testing.T) {
				done := make(chan error, 1)
				go func() {
					resp, err := c.GetRun(context.Background(), &apipb.GetRunRequest{RunId: "r-slow"})
					if err == nil && resp.GetRun().GetId() != "r-slow" {
						err = fmt.Errorf("got run %v", resp.GetRun())
					}
					done <- err
				}()
				select {
				case <-handlerStarted:
				case <-time.After(10 * time.Second):
					t.Fatal("GetRun handler never started")
				}
				return func(t *testing.T) {
					if err := <-done; err != nil {
						t.Errorf("GetRun in flight during shutdown = %v, want success", err)
					}
				}
			},
		},
		{
			name:   "an open WatchRun is cut off after the grace period",
			grace:  300 * time.Millisecond,
			forced: true,
			open: func(t *testing.T, c apipb.RunServiceClient, _ <-chan struct{}) func(*testing.T) {
				ctx, cancel := context.WithCancel(context.Background())
				s, err := c.WatchRun(ctx, &apipb.WatchRunRequest{RunId: "r-long"})
				if err != nil {
					t.Fatal(err)
				}
				if resp, err := s.Recv(); err != nil || resp.GetRun().GetId() != "r-long" {
					t.Fatalf("first update = %v, %v", resp, err)
				}
				return func(t *testing.T) {
					defer cancel()
					_, err := s.Recv()
					if status.Code(err) != codes.Unavailable {
						t.Errorf("Recv after the forced stop = %v, want Unavailable", err)
					}
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			started := make(chan struct{}, 1)
			release := make(chan struct{})
			if !tt.releaseLate {
				close(release)
			}
			watchEnded := make(chan struct{})
			fake := &fakeRuns{
				get: func(_ context.Context, id string) (*run.Run, error) {
					if id == "r-slow" {
						started <- struct{}{}
						<-release
					}
					return &run.Run{ID: id}, nil
				},
				watch: func(ctx context.Context, id string, send func(*run.Run) error) error {
					defer close(watchEnded)
					if err := send(&run.Run{ID: id, State: run.StateRunning}); err != nil {
						return err
					}
					<-ctx.Done()
					return ctx.Err()
				},
			}
			ts := newTestServer(fake)
			lis, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			served := make(chan error, 1)
			go func() { served <- ServeGRPC(ctx, ts.srv, lis, tt.grace) }()

			conn := dial(t, lis.Addr().String())
			client := apipb.NewRunServiceClient(conn)
			// Wait until the server answers, so shutdown starts while
			// serving.
			if _, err := client.GetRun(testContext(t), &apipb.GetRunRequest{RunId: "r-ready"}, grpc.WaitForReady(true)); err != nil {
				t.Fatal(err)
			}

			check := tt.open(t, client, started)

			begin := time.Now()
			cancel()
			if tt.releaseLate {
				// Let the handler finish while GracefulStop waits for it.
				time.Sleep(100 * time.Millisecond)
				close(release)
			}
			select {
			case err := <-served:
				if err != nil {
					t.Errorf("ServeGRPC = %v, want nil", err)
				}
			case <-time.After(tt.grace + margin):
				t.Fatalf("ServeGRPC did not return within grace %v + %v", tt.grace, margin)
			}
			took := time.Since(begin)
			if tt.forced && took < tt.grace {
				t.Errorf("ServeGRPC returned after %v, before the grace period %v", took, tt.grace)
			}
			if !tt.forced && took > margin {
				t.Errorf("ServeGRPC took %v with nothing holding it", took)
			}
			check(t)
			if tt.forced {
				select {
				case <-watchEnded:
				case <-time.After(10 * time.Second):
					t.Error("Watch still running after ServeGRPC returned")
				}
			}
			// Nothing listens any more.
			if c, err := net.Dial("tcp", lis.Addr().String()); err == nil {
				_ = c.Close()
				t.Error("listener still accepts connections")
			}
		})
	}
}

func TestServeGRPCListenerFails(t *testing.T) {
	ts := newTestServer(&fakeRuns{})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_ = lis.Close()
	done := make(chan error, 1)
	go func() { done <- ServeGRPC(context.Background(), ts.srv, lis, time.Second) }()
	select {
	case err := <-done:
		if err == nil || !strings.HasPrefix(err.Error(), "grpc server: ") || !errors.Is(err, net.ErrClosed) {
			t.Errorf("ServeGRPC = %v, want a grpc server: error wrapping net.ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ServeGRPC did not return")
	}
	ts.srv.Stop()
}

func httpGet(t *testing.T, client *http.Client, url string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(testContext(t), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(body)
}

func TestServeHTTP(t *testing.T) {
	ts := newTestServer(&fakeRuns{})
	conn := serveBufconn(t, ts)
	ctx := testContext(t)
	client := apipb.NewRunServiceClient(conn)
	if _, err := client.GetRun(ctx, &apipb.GetRunRequest{RunId: "r-1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.GetRun(ctx, &apipb.GetRunRequest{}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("GetRun without id = %v", err)
	}
	ws, err := client.WatchRun(ctx, &apipb.WatchRunRequest{RunId: "r-1"})
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := ws.Recv(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	// What the controller records when a run is created.
	ts.metrics.RunsCreated.WithLabelValues("created").Inc()

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- ServeHTTP(sctx, NewMetricsHTTP(ts.metrics, nil), lis, 5*time.Second) }()
	transport := &http.Transport{}
	defer transport.CloseIdleConnections()
	hc := &http.Client{Transport: transport}
	base := "http://" + lis.Addr().String()

	t.Run("metrics", func(t *testing.T) {
		code, ctype, body := httpGet(t, hc, base+"/metrics")
		if code != http.StatusOK || !strings.HasPrefix(ctype, "text/plain") {
			t.Fatalf("GET /metrics = %d %q", code, ctype)
		}
		for _, want := range []string{
			`grpc_server_handled_total{grpc_code="OK",grpc_method="GetRun",grpc_service="sopilot.api.v1.RunService",grpc_type="unary"} 1`,
			`grpc_server_handled_total{grpc_code="InvalidArgument",grpc_method="GetRun",grpc_service="sopilot.api.v1.RunService",grpc_type="unary"} 1`,
			`grpc_server_handled_total{grpc_code="OK",grpc_method="WatchRun",grpc_service="sopilot.api.v1.RunService",grpc_type="server_stream"} 1`,
			`grpc_server_msg_sent_total{grpc_method="WatchRun",grpc_service="sopilot.api.v1.RunService",grpc_type="server_stream"} 1`,
			// InitializeMetrics: every method is listed before its first call.
			`grpc_server_started_total{grpc_method="ListNodes",grpc_service="sopilot.api.v1.NodeService",grpc_type="unary"} 0`,
			`grpc_server_handling_seconds_count{grpc_method="GetRun",grpc_service="sopilot.api.v1.RunService",grpc_type="unary"} 2`,
			"# HELP sopilot_runs_created_total CreateRun calls by result: created, deduplicated (same request_id), rejected (by validation or Slurm), deferred (Slurm unavailable, submitted later).",
			"# TYPE sopilot_runs_created_total counter",
			`sopilot_runs_created_total{result="created"} 1`,
			"# HELP sopilot_active_runs Runs not yet in a terminal state, as of the last poll.",
			"sopilot_active_runs 0",
			"sopilot_tracker_poll_duration_seconds_count 0",
			"# TYPE go_goroutines gauge",
			"# TYPE process_start_time_seconds gauge",
		} {
			if !strings.Contains(body, want+"\n") {
				t.Errorf("/metrics lacks %q", want)
			}
		}
	})
	t.Run("healthz", func(t *testing.T) {
		code, _, body := httpGet(t, hc, base+"/healthz")
		if code != http.StatusOK || body != "ok\n" {
			t.Errorf("GET /healthz = %d %q, want 200 \"ok\\n\"", code, body)
		}
	})
	t.Run("unknown path", func(t *testing.T) {
		if code, _, _ := httpGet(t, hc, base+"/debug/pprof/"); code != http.StatusNotFound {
			t.Errorf("GET /debug/pprof/ = %d, want 404", code)
		}
	})

	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("ServeHTTP = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ServeHTTP did not return")
	}
	if c, err := net.Dial("tcp", lis.Addr().String()); err == nil {
		_ = c.Close()
		t.Error("listener still accepts connections")
	}
}

// serveOneRequest runs ServeHTTP(ctx, srv, grace) on a loopback socket,
// sends it GET /metrics and returns once srv's handler has closed entered:
// served then yields ServeHTTP's result, got the client's error once the
// GET has returned.
func serveOneRequest(t *testing.T, ctx context.Context, srv *http.Server, grace time.Duration, entered <-chan struct{}) (served, got <-chan error) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	servedc, gotc := make(chan error, 1), make(chan error, 1)
	go func() { servedc <- ServeHTTP(ctx, srv, lis, grace) }()
	transport := &http.Transport{}
	t.Cleanup(transport.CloseIdleConnections)
	go func() {
		resp, err := (&http.Client{Transport: transport}).Get("http://" + lis.Addr().String() + "/metrics")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
		}
		gotc <- err
	}()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("handler never called")
	}
	return servedc, gotc
}

func TestServeHTTPGraceBoundsShutdown(t *testing.T) {
	srv := NewMetricsHTTP(metrics.NewController(), nil)
	entered := make(chan struct{})
	unblock := make(chan struct{})
	srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-unblock
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const grace = 200 * time.Millisecond
	served, got := serveOneRequest(t, ctx, srv, grace, entered)
	begin := time.Now()
	cancel()
	select {
	case err := <-served:
		// Shutdown ran out of time; whether ServeHTTP says so is its
		// business, but it must say nothing else.
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("ServeHTTP = %v, want nil or context.DeadlineExceeded", err)
		}
	case <-time.After(grace + 3*time.Second):
		t.Fatal("ServeHTTP did not return within its grace period")
	}
	if took := time.Since(begin); took < grace {
		t.Errorf("ServeHTTP returned after %v, before the grace period %v", took, grace)
	}
	close(unblock)
	if err := <-got; err != nil {
		t.Logf("client: %v", err)
	}
}

func TestServeHTTPListenerFails(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_ = lis.Close()
	err = ServeHTTP(context.Background(), NewMetricsHTTP(metrics.NewController(), nil), lis, time.Second)
	if err == nil || !strings.HasPrefix(err.Error(), "http server: ") || !errors.Is(err, net.ErrClosed) {
		t.Errorf("ServeHTTP = %v, want an http server: error wrapping net.ErrClosed", err)
	}
}

// After the grace period ServeHTTP should close what is still open, as
// ServeGRPC does with srv.Stop: a request still in its handler must see
// its context end. http.Server.Shutdown alone never closes active
// connections, so today the handler (and its connection) outlive
// ServeHTTP.
func TestServeHTTPClosesConnectionsAfterGrace(t *testing.T) {
	srv := NewMetricsHTTP(metrics.NewController(), nil)
	entered := make(chan struct{})
	handlerCtxDone := make(chan struct{})
	release := make(chan struct{})
	srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		select {
		case <-r.Context().Done():
			close(handlerCtxDone)
		case <-release:
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served, clientDone := serveOneRequest(t, ctx, srv, 100*time.Millisecond, entered)
	defer func() {
		close(release)
		<-clientDone
	}()
	cancel()
	select {
	case <-served:
	case <-time.After(10 * time.Second):
		t.Fatal("ServeHTTP did not return")
	}
	select {
	case <-handlerCtxDone:
	case <-time.After(5 * time.Second):
		t.Error("5s after ServeHTTP returned, the request in flight still runs on an open connection")
	}
}

// A context that has already ended stops the servers at once, however the
// race between starting to serve and stopping goes, and frees the listener.
func TestServeWithEndedContext(t *testing.T) {
	tests := []struct {
		name  string
		serve func(context.Context, net.Listener) error
	}{
		{"grpc", func(ctx context.Context, lis net.Listener) error {
			return ServeGRPC(ctx, newTestServer(&fakeRuns{}).srv, lis, 10*time.Second)
		}},
		{"http", func(ctx context.Context, lis net.Listener) error {
			return ServeHTTP(ctx, NewMetricsHTTP(metrics.NewController(), nil), lis, 10*time.Second)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for range 20 {
				lis, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				done := make(chan error, 1)
				go func() { done <- tt.serve(ctx, lis) }()
				select {
				case err := <-done:
					if err != nil {
						t.Fatalf("serve = %v, want nil", err)
					}
				case <-time.After(5 * time.Second):
					t.Fatal("serve did not return")
				}
				if c, err := net.Dial("tcp", lis.Addr().String()); err == nil {
					_ = c.Close()
					t.Fatal("listener still accepts connections")
				}
			}
		})
	}
}

func TestReadyz(t *testing.T) {
	tests := []struct {
		name     string
		ready    ReadyFunc
		wantCode int
		wantBody string
	}{
		{name: "ready", ready: func() (bool, string) { return true, "slurm backend ready (rest v0.0.45)" },
			wantCode: http.StatusOK, wantBody: "slurm backend ready (rest v0.0.45)\n"},
		{name: "not ready", ready: func() (bool, string) { return false, "slurm backend unreachable: scontrol ping: DOWN" },
			wantCode: http.StatusServiceUnavailable, wantBody: "slurm backend unreachable: scontrol ping: DOWN\n"},
		{name: "no readiness: no endpoint", ready: nil, wantCode: http.StatusNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			NewMetricsHTTP(metrics.NewController(), tc.ready).Handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
			if rec.Code != tc.wantCode {
				t.Errorf("GET /readyz = %d, want %d", rec.Code, tc.wantCode)
			}
			if tc.wantBody != "" && rec.Body.String() != tc.wantBody {
				t.Errorf("body = %q, want %q", rec.Body.String(), tc.wantBody)
			}
		})
	}
}
