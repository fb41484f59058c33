package cli

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sopilot/sopilot/pkg/apipb"
)

// restartingLogServer serves "a\nb\n" and breaks (a controller restart);
// asked again from an offset, it answers from two bytes before it (an
// overlap the client must not print twice), then "c\n", and ends.
type restartingLogServer struct {
	apipb.UnimplementedRunServiceServer
	mu   sync.Mutex
	reqs []*apipb.GetRunLogsRequest
}

func (s *restartingLogServer) GetRun(_ context.Context, req *apipb.GetRunRequest) (*apipb.GetRunResponse, error) {
	return &apipb.GetRunResponse{Run: &apipb.Run{Id: req.GetRunId(), State: apipb.RunState_RUN_STATE_RUNNING}}, nil
}

func (s *restartingLogServer) GetRunLogs(req *apipb.GetRunLogsRequest, stream grpc.ServerStreamingServer[apipb.GetRunLogsResponse]) error {
	s.mu.Lock()
	s.reqs = append(s.reqs, req)
	n := len(s.reqs)
	s.mu.Unlock()
	file := "a\nb\nc\n"
	if n == 1 {
		if err := stream.Send(&apipb.GetRunLogsResponse{Data: []byte(file[:4]), Offset: 0}); err != nil {
			return err
		}
		return status.Error(codes.Unavailable, "transport is closing")
	}
	from := req.GetOffset() - 2
	for _, chunk := range []string{file[from:4], file[4:]} {
		if err := stream.Send(&apipb.GetRunLogsResponse{Data: []byte(chunk), Offset: from}); err != nil {
			return err
		}
		from += int64(len(chunk))
	}
	return nil
}

func TestFollowLogsResumesAfterRestart(t *testing.T) {
	srv := &restartingLogServer{}
	var out, errOut bytes.Buffer
	a := &app{env: Env{Stdout: &out, Stderr: &errOut}, root: rootOptions{output: "table"}}
	o := &clientOptions{controller: "bufnet", timeout: time.Second}
	err := followLogs(context.Background(), a, o, watchClient(t, srv), &apipb.GetRunLogsRequest{RunId: "r-1", Follow: true, TailLines: 5}, fastFollow)
	if err != nil || out.String() != "a\nb\nc\n" {
		t.Fatalf("followLogs = %q, %v; want every line once", out.String(), err)
	}
	if len(srv.reqs) != 2 || srv.reqs[1].GetOffset() != 4 || srv.reqs[1].GetTailLines() != 0 {
		t.Errorf("requests = %v; want the second from offset 4, without tail_lines", srv.reqs)
	}
	if !strings.Contains(errOut.String(), "reconnecting") || !strings.Contains(errOut.String(), "reconnected") {
		t.Errorf("stderr = %q", errOut.String())
	}
}

// stallingLogServer sends one chunk and waits for the client to go.
type stallingLogServer struct {
	apipb.UnimplementedRunServiceServer
}

func (stallingLogServer) GetRun(_ context.Context, req *apipb.GetRunRequest) (*apipb.GetRunResponse, error) {
	return &apipb.GetRunResponse{Run: &apipb.Run{Id: req.GetRunId(), State: apipb.RunState_RUN_STATE_RUNNING}}, nil
}

func (stallingLogServer) GetRunLogs(_ *apipb.GetRunLogsRequest, stream grpc.ServerStreamingServer[apipb.GetRunLogsResponse]) error {
	if err := stream.Send(&apipb.GetRunLogsResponse{Data: []byte("step 1\n")}); err != nil {
		return err
	}
	<-stream.Context().Done()
	return nil
}

func TestFollowLogsInterrupted(t *testing.T) {
	a := &app{env: Env{Stdout: io.Discard}, root: rootOptions{output: "table"}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	time.AfterFunc(200*time.Millisecond, cancel) // Ctrl-C
	err := followLogs(ctx, a, &clientOptions{controller: "bufnet", timeout: time.Second}, watchClient(t, stallingLogServer{}), &apipb.GetRunLogsRequest{RunId: "r-1", Follow: true}, fastFollow)
	if !errors.Is(err, context.Canceled) || ExitCode(err) != ExitInterrupted || !strings.Contains(err.Error(), "run r-1 keeps running (again: sopilot run logs -f r-1") {
		t.Errorf("err = %v (exit %d)", err, ExitCode(err))
	}
}

// pendingLogServer breaks its first stream before any output (a job still
// pending when the controller restarts), then serves the file.
type pendingLogServer struct {
	stallingLogServer
	mu    sync.Mutex
	calls int
}

func (s *pendingLogServer) GetRunLogs(req *apipb.GetRunLogsRequest, stream grpc.ServerStreamingServer[apipb.GetRunLogsResponse]) error {
	s.mu.Lock()
	s.calls++
	first := s.calls == 1
	s.mu.Unlock()
	if first {
		return status.Error(codes.Unavailable, "transport is closing")
	}
	return stream.Send(&apipb.GetRunLogsResponse{Data: []byte("started\n")})
}

func TestFollowLogsReconnectsBeforeAnyOutput(t *testing.T) {
	srv := &pendingLogServer{}
	var out bytes.Buffer
	a := &app{env: Env{Stdout: &out}, root: rootOptions{output: "table"}}
	err := followLogs(context.Background(), a, &clientOptions{controller: "bufnet", timeout: time.Second}, watchClient(t, srv), &apipb.GetRunLogsRequest{RunId: "r-1", Follow: true}, fastFollow)
	if err != nil || out.String() != "started\n" || srv.calls != 2 {
		t.Errorf("followLogs = %q, %v after %d calls; want the output after a reconnect", out.String(), err, srv.calls)
	}
}
