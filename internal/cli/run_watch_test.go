package cli

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/sopilot/sopilot/pkg/apipb"
)

// watchServer sends a fixed sequence of runs, then ends the stream.
type watchServer struct {
	apipb.UnimplementedRunServiceServer
	runs []*apipb.Run
	end  error
}

func (s *watchServer) WatchRun(req *apipb.WatchRunRequest, stream grpc.ServerStreamingServer[apipb.WatchRunResponse]) error {
	if req.GetRunId() != "r-1" {
		return status.Errorf(codes.NotFound, "run %q: run not found", req.GetRunId())
	}
	for _, r := range s.runs {
		if err := stream.Send(&apipb.WatchRunResponse{Run: r}); err != nil {
			return err
		}
	}
	return s.end
}

// dialFake serves the services register adds on bufconn and returns a
// client connection to them; both end with the test.
func dialFake(t *testing.T, register func(*grpc.Server)) *grpc.ClientConn {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	s := grpc.NewServer()
	register(s)
	go func() { _ = s.Serve(lis) }()
	t.Cleanup(s.Stop)
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func watchClient(t *testing.T, srv apipb.RunServiceServer) apipb.RunServiceClient {
	t.Helper()
	return apipb.NewRunServiceClient(dialFake(t, func(s *grpc.Server) { apipb.RegisterRunServiceServer(s, srv) }))
}

// fastFollow reconnects at once and gives up after 300ms.
var fastFollow = followSettings{reconnectFor: 300 * time.Millisecond, firstRetry: 10 * time.Millisecond, maxRetry: 50 * time.Millisecond}

func TestWatchRun(t *testing.T) {
	pending := &apipb.Run{Id: "r-1", State: apipb.RunState_RUN_STATE_PENDING}
	pendingSlurm := &apipb.Run{Id: "r-1", State: apipb.RunState_RUN_STATE_PENDING, SlurmState: "PENDING", Reason: "Resources"}
	done := completedRun()
	done.Id = "r-1"
	failed := completedRun()
	failed.Id, failed.State, failed.SlurmState, failed.ExitCode = "r-1", apipb.RunState_RUN_STATE_FAILED, "FAILED", 1

	tests := []struct {
		name     string
		id       string
		srv      *watchServer
		output   string
		terminal bool
		want     string // stdout, exactly
		wantErr  string
	}{
		{
			name: "plain lines, repeats folded",
			id:   "r-1", srv: &watchServer{runs: []*apipb.Run{pending, pending, pendingSlurm, done}},
			output: "table",
			want: "r-1  PENDING  -\n" +
				"r-1  PENDING  slurm=PENDING  reason=Resources  -\n" +
				"r-1  COMPLETED  slurm=COMPLETED  nodes=worker-[0-1]  12m28s  step 1000/1000 loss 0.1234 812.5 samples/s\n" +
				"usage: 16 GPU(s), 3.33 GPU-hours, utilization mean 87% p95 99% (simulated)\n",
		},
		{
			name: "terminal: a block redrawn in place",
			id:   "r-1", srv: &watchServer{runs: []*apipb.Run{pending, done, done}},
			output: "table", terminal: true,
			// The progress line is 82 columns: two rows at 80, so the
			// redraw goes up two rows, not one.
			want: "\r\033[Jr-1  PENDING  -" +
				"\r\033[Jr-1  COMPLETED  slurm=COMPLETED  nodes=worker-[0-1]  12m28s\n" +
				"[==============================] 100%  step 1000/1000 loss 0.1234 812.5 samples/s" +
				"\r\033[2A\033[Jr-1  COMPLETED  slurm=COMPLETED  nodes=worker-[0-1]  12m28s\n" +
				"[==============================] 100%  step 1000/1000 loss 0.1234 812.5 samples/s\n" +
				"usage: 16 GPU(s), 3.33 GPU-hours, utilization mean 87% p95 99% (simulated)\n",
		},
		{
			name: "json lines",
			id:   "r-1", srv: &watchServer{runs: []*apipb.Run{pending}, end: nil},
			output: "json",
			// The stream ends early again and again: each reconnect sends
			// the same run, printed once; then the watch gives up.
			want:    `{"id":"r-1","state":"RUN_STATE_PENDING"}` + "\n",
			wantErr: "the controller ended the stream before the run ended, 4 times",
		},
		{
			name: "failed run",
			id:   "r-1", srv: &watchServer{runs: []*apipb.Run{failed}},
			output: "table",
			want: "r-1  FAILED  slurm=FAILED  nodes=worker-[0-1]  12m28s  step 1000/1000 loss 0.1234 812.5 samples/s\n" +
				"usage: 16 GPU(s), 3.33 GPU-hours, utilization mean 87% p95 99% (simulated)\n",
			wantErr: "run r-1 ended FAILED (slurm FAILED, exit code 1)",
		},
		{
			name: "unknown run",
			id:   "r-2", srv: &watchServer{},
			output:  "table",
			wantErr: `run "r-2" not found`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			a := &app{env: Env{Stdout: &out, IsTerminal: func(io.Writer) bool { return tt.terminal }}, root: rootOptions{output: tt.output}}
			o := &clientOptions{controller: "bufnet", timeout: time.Second}
			err := watchRunWith(context.Background(), a, o, watchClient(t, tt.srv), nil, tt.id, fastFollow)
			if tt.wantErr == "" && err != nil {
				t.Errorf("err = %v", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("err = %v, want %q", err, tt.wantErr)
			}
			if got := out.String(); got != tt.want {
				t.Errorf("stdout =\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
	if err := endError(failed); !errors.Is(err, ErrRunNotCompleted) {
		t.Errorf("endError(failed) = %v, not ErrRunNotCompleted", err)
	}
}

// blockingServer sends one run and then waits for the client to go away.
type blockingServer struct {
	apipb.UnimplementedRunServiceServer
}

func (blockingServer) WatchRun(req *apipb.WatchRunRequest, stream grpc.ServerStreamingServer[apipb.WatchRunResponse]) error {
	if err := stream.Send(&apipb.WatchRunResponse{Run: &apipb.Run{Id: req.GetRunId(), State: apipb.RunState_RUN_STATE_RUNNING}}); err != nil {
		return err
	}
	<-stream.Context().Done()
	return stream.Context().Err()
}

func TestWatchRunInterrupted(t *testing.T) {
	client := watchClient(t, blockingServer{})
	var out bytes.Buffer
	a := &app{env: Env{Stdout: &out, IsTerminal: func(io.Writer) bool { return false }}, root: rootOptions{output: "table"}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	time.AfterFunc(200*time.Millisecond, cancel) // Ctrl-C
	err := watchRun(ctx, a, &clientOptions{controller: "bufnet", timeout: time.Second}, client, nil, "r-1")
	if err == nil || out.String() != "r-1  RUNNING  -\n" {
		t.Errorf("err = %v, stdout %q; want an error after the RUNNING line", err, out.String())
	}
	// Ctrl-C exits 130 and says that the run goes on, not "context canceled".
	if ExitCode(err) != ExitInterrupted || strings.Contains(err.Error(), "context") ||
		!strings.Contains(err.Error(), "run r-1 keeps running (again: sopilot run watch r-1") {
		t.Errorf("interrupted watch: exit %d, %q", ExitCode(err), err)
	}
}

// restartingServer is a controller that restarts during the watch: its
// first stream sends RUNNING and breaks with Unavailable, the second sends
// RUNNING again and then COMPLETED.
type restartingServer struct {
	apipb.UnimplementedRunServiceServer
	mu    sync.Mutex
	calls int
}

func (s *restartingServer) WatchRun(req *apipb.WatchRunRequest, stream grpc.ServerStreamingServer[apipb.WatchRunResponse]) error {
	s.mu.Lock()
	s.calls++
	call := s.calls
	s.mu.Unlock()
	running := &apipb.Run{Id: req.GetRunId(), State: apipb.RunState_RUN_STATE_RUNNING, SlurmState: "RUNNING"}
	if err := stream.Send(&apipb.WatchRunResponse{Run: running}); err != nil {
		return err
	}
	if call == 1 {
		return status.Error(codes.Unavailable, "transport is closing")
	}
	done := completedRun()
	done.Id = req.GetRunId()
	return stream.Send(&apipb.WatchRunResponse{Run: done})
}

func TestWatchRunReconnects(t *testing.T) {
	for _, output := range []string{"table", "json"} {
		t.Run(output, func(t *testing.T) {
			srv := &restartingServer{}
			var out, errOut bytes.Buffer
			a := &app{env: Env{Stdout: &out, Stderr: &errOut, IsTerminal: func(io.Writer) bool { return false }}, root: rootOptions{output: output}}
			err := watchRunWith(context.Background(), a, &clientOptions{controller: "bufnet", timeout: time.Second}, watchClient(t, srv), nil, "r-1", fastFollow)
			if err != nil {
				t.Fatalf("err = %v; want nil (the run completed)", err)
			}
			if srv.calls != 2 {
				t.Errorf("%d WatchRun calls, want 2", srv.calls)
			}
			running := "r-1  RUNNING"
			if output == "json" {
				running = `"RUN_STATE_RUNNING"`
			}
			if n := strings.Count(out.String(), running); n != 1 {
				t.Errorf("RUNNING printed %d times, want once (resumed, not repeated):\n%s", n, out.String())
			}
			if !strings.Contains(errOut.String(), "lost the controller at bufnet (transport is closing); reconnecting") ||
				!strings.Contains(errOut.String(), "reconnected to the controller after") {
				t.Errorf("stderr = %q", errOut.String())
			}
		})
	}
}

func TestWatchRunUnreachable(t *testing.T) {
	conn, err := grpc.NewClient("127.0.0.1:1", grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	a := &app{env: Env{Stdout: io.Discard, IsTerminal: func(io.Writer) bool { return false }}, root: rootOptions{output: "table"}}
	err = watchRunWith(context.Background(), a, &clientOptions{controller: "127.0.0.1:1", timeout: time.Second}, apipb.NewRunServiceClient(conn), nil, "r-1", fastFollow)
	if !errors.Is(err, ErrUnreachable) || ExitCode(err) != ExitUnreachable {
		t.Errorf("err = %v (exit %d); want ErrUnreachable, exit %d", err, ExitCode(err), ExitUnreachable)
	}
}

func TestScreenRows(t *testing.T) {
	tests := []struct {
		name  string
		line  string
		width int
		want  int
	}{
		{"empty", "", 80, 1},
		{"fits", strings.Repeat("x", 79), 80, 1},
		{"fills the row exactly", strings.Repeat("x", 80), 80, 1},
		{"one column more wraps", strings.Repeat("x", 81), 80, 2},
		{"three rows", strings.Repeat("x", 161), 80, 3},
		{"escape sequences take no columns", "\033[1;31m" + strings.Repeat("x", 80) + "\033[0m", 80, 1},
		{"wide runes", strings.Repeat("日", 40), 80, 1},
		{"a wide rune does not split", strings.Repeat("x", 79) + "日", 80, 2},
		{"narrow terminal", "r-1  RUNNING  slurm=RUNNING", 10, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := screenRows(tt.line, tt.width); got != tt.want {
				t.Errorf("screenRows(%q, %d) = %d, want %d", tt.line, tt.width, got, tt.want)
			}
		})
	}
}
