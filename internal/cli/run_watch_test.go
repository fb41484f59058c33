package cli

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
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

func watchClient(t *testing.T, srv *watchServer) apipb.RunServiceClient {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	s := grpc.NewServer()
	apipb.RegisterRunServiceServer(s, srv)
	go func() { _ = s.Serve(lis) }()
	t.Cleanup(s.Stop)
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return apipb.NewRunServiceClient(conn)
}

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
			want: "\r\033[Kr-1  PENDING  -" +
				"\r\033[Kr-1  COMPLETED  slurm=COMPLETED  nodes=worker-[0-1]  12m28s\n" +
				"[==============================] 100%  step 1000/1000 loss 0.1234 812.5 samples/s" +
				"\r\033[1A\033[Jr-1  COMPLETED  slurm=COMPLETED  nodes=worker-[0-1]  12m28s\n" +
				"[==============================] 100%  step 1000/1000 loss 0.1234 812.5 samples/s\n" +
				"usage: 16 GPU(s), 3.33 GPU-hours, utilization mean 87% p95 99% (simulated)\n",
		},
		{
			name: "json lines",
			id:   "r-1", srv: &watchServer{runs: []*apipb.Run{pending}, end: nil},
			output:  "json",
			want:    `{"id":"r-1","state":"RUN_STATE_PENDING"}` + "\n",
			wantErr: "the controller ended the stream before the run ended",
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
			err := watchRun(context.Background(), a, o, watchClient(t, tt.srv), nil, tt.id)
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
	lis := bufconn.Listen(1 << 20)
	s := grpc.NewServer()
	apipb.RegisterRunServiceServer(s, blockingServer{})
	go func() { _ = s.Serve(lis) }()
	t.Cleanup(s.Stop)
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var out bytes.Buffer
	a := &app{env: Env{Stdout: &out, IsTerminal: func(io.Writer) bool { return false }}, root: rootOptions{output: "table"}}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err = watchRun(ctx, a, &clientOptions{controller: "bufnet", timeout: time.Second}, apipb.NewRunServiceClient(conn), nil, "r-1")
	if err == nil || out.String() != "r-1  RUNNING  -\n" {
		t.Errorf("err = %v, stdout %q; want an error after the RUNNING line", err, out.String())
	}
}
