package cli

import (
	"bytes"
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sopilot/sopilot/pkg/apipb"
)

type cancelServer struct {
	apipb.UnimplementedRunServiceServer
}

func (cancelServer) CancelRun(_ context.Context, req *apipb.CancelRunRequest) (*apipb.CancelRunResponse, error) {
	switch req.GetRunId() {
	case "r-1":
		return &apipb.CancelRunResponse{Run: &apipb.Run{Id: "r-1", State: apipb.RunState_RUN_STATE_RUNNING, SlurmJobId: "42"}}, nil
	case "r-3":
		return &apipb.CancelRunResponse{Run: &apipb.Run{Id: "r-3", State: apipb.RunState_RUN_STATE_COMPLETED, SlurmJobId: "43"}}, nil
	}
	return nil, status.Errorf(codes.NotFound, "run %q not found", req.GetRunId())
}

func TestCancelSeveralRuns(t *testing.T) {
	c := watchClient(t, cancelServer{})
	o := &clientOptions{controller: "bufnet", timeout: time.Second}
	var out, errOut bytes.Buffer
	a := &app{env: Env{Stdout: &out, Stderr: &errOut}, root: rootOptions{output: "table"}}
	err := cancelRuns(context.Background(), a, o, c, []string{"r-1", "r-2", "r-3"})
	if ExitCode(err) != ExitError || err.Error() != "1 of 3 runs not cancelled (see above)" {
		t.Errorf("err = %v (exit %d)", err, ExitCode(err))
	}
	if want := "r-1 cancel requested (slurm job 42, now RUNNING)\nr-3 had already ended COMPLETED\n"; out.String() != want {
		t.Errorf("stdout = %q, want %q", out.String(), want)
	}
	if want := "sopilot: run \"r-2\" not found\n"; errOut.String() != want {
		t.Errorf("stderr = %q, want %q", errOut.String(), want)
	}

	out.Reset()
	if err := cancelRuns(context.Background(), a, o, c, []string{"r-1", "r-3"}); err != nil || out.Len() == 0 {
		t.Errorf("all cancelled: err = %v, stdout %q", err, out.String())
	}
}
