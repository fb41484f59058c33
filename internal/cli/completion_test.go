package cli

import (
	"context"
	"net"
	"strings"
	"testing"

	"google.golang.org/grpc"

	"github.com/sopilot/sopilot/pkg/apipb"
)

type completionRuns struct {
	apipb.UnimplementedRunServiceServer
}

func (completionRuns) ListRuns(context.Context, *apipb.ListRunsRequest) (*apipb.ListRunsResponse, error) {
	return &apipb.ListRunsResponse{Runs: []*apipb.Run{
		{Id: "r-01aaa", Name: "train", State: apipb.RunState_RUN_STATE_RUNNING},
		{Id: "r-01bbb", Name: "eval", State: apipb.RunState_RUN_STATE_COMPLETED},
		{Id: "r-02ccc", Name: "sweep", State: apipb.RunState_RUN_STATE_PENDING},
	}}, nil
}

// TestCompletion: run ids and node names come from the controller (found
// through SOPILOT_CONTROLLER, as the command would), enum flags from their
// values, and nothing offers file names except FILE arguments.
func TestCompletion(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	apipb.RegisterNodeServiceServer(s, &fakeNodes{ops: true})
	apipb.RegisterRunServiceServer(s, completionRuns{})
	go func() { _ = s.Serve(lis) }()
	t.Cleanup(s.Stop)
	env := map[string]string{"SOPILOT_CONTROLLER": lis.Addr().String()}

	const noFiles = ":4\n"
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"run ids by prefix", []string{"run", "get", "r-01"}, "r-01aaa\ttrain RUNNING\nr-01bbb\teval COMPLETED\n" + noFiles},
		{"run ids of compare's second argument", []string{"compare", "r-01aaa", "r-02"}, "r-02ccc\tsweep PENDING\n" + noFiles},
		{"compare takes two runs", []string{"compare", "r-01aaa", "r-02ccc", ""}, noFiles},
		{"results upload: a run, then a file", []string{"results", "upload", "r-01aaa", ""}, ":0\n"},
		{"node names", []string{"node", "get", ""}, "worker-0\tMIXED DEGRADED\n" + noFiles},
		{"incidents --run", []string{"node", "incidents", "--run", "r-02"}, "r-02ccc\tsweep PENDING\n" + noFiles},
		{"--state", []string{"run", "list", "--state", "f"}, "failed\n" + noFiles},
		{"-o", []string{"nodes", "-o", "y"}, "yaml\tthe same document as YAML\n" + noFiles},
		{"--check", []string{"node", "check", "worker-0", "--check", ""}, "nccl\tNCCL all_reduce_perf\n" + noFiles},
		{"no arguments: no files", []string{"nodes", ""}, noFiles},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := sopilot(t, invocation{args: append([]string{"__complete"}, tt.args...), env: env})
			if r.code != ExitOK || r.stdout != tt.want {
				t.Errorf("exit %d\nstdout %q\nwant   %q\nstderr %q", r.code, r.stdout, tt.want, r.stderr)
			}
		})
	}
	// An unreachable controller: an error directive, no file names, fast.
	r := sopilot(t, invocation{args: []string{"__complete", "node", "get", ""}, env: map[string]string{"SOPILOT_CONTROLLER": "127.0.0.1:1"}})
	if r.stdout != ":5\n" {
		t.Errorf("unreachable controller: stdout %q", r.stdout)
	}
}

func TestArgNames(t *testing.T) {
	tests := map[string]string{
		"get RUN_ID":               "RUN_ID",
		"cancel RUN_ID...":         "RUN_ID...",
		"upload RUN_ID FILE":       "RUN_ID FILE",
		"incidents [NAME]":         "NAME",
		"drain NAME --reason TEXT": "NAME",
		"compare BASELINE_RUN CANDIDATE_RUN --metric NAME:higher|lower...": "BASELINE_RUN CANDIDATE_RUN",
		"submit [flags] [-- COMMAND [ARG...]]":                             "",
		"list":                                                             "",
	}
	for use, want := range tests {
		if got := strings.Join(argNames(use), " "); got != want {
			t.Errorf("argNames(%q) = %q, want %q", use, got, want)
		}
	}
}
