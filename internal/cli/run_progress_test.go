package cli

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/sopilot/sopilot/pkg/apipb"
)

func TestProgressBar(t *testing.T) {
	tests := []struct {
		step, total int64
		want        string
	}{
		{0, 100, "[>                             ]   0%"},
		{50, 100, "[===============>              ]  50%"},
		{999, 1000, "[=============================>]  99%"},
		{1000, 1000, "[==============================] 100%"},
		{1500, 1000, "[==============================] 100%"}, // past the end: clamped
		{-5, 1000, "[>                             ]   0%"},
		{10, 0, ""}, // total unknown
	}
	for _, tt := range tests {
		if got := progressBar(tt.step, tt.total); got != tt.want {
			t.Errorf("progressBar(%d, %d) = %q, want %q", tt.step, tt.total, got, tt.want)
		}
	}
}

func runningRun() *apipb.Run {
	return &apipb.Run{Id: "r-1", State: apipb.RunState_RUN_STATE_RUNNING, SlurmState: "RUNNING", SlurmJobId: "73",
		NodeList: "worker-[0-1]", Nodes: []string{"worker-0", "worker-1"}, CreateTime: ts(20, 0), StartTime: ts(20, 5),
		Progress: &apipb.RunProgress{Step: 120, TotalSteps: 1000, Loss: 0.4321, SamplesPerSecond: 812, Eta: durationpb.New(12*time.Minute + 3*time.Second)}}
}

func TestWatchLines(t *testing.T) {
	running := runningRun()
	noTotal := runningRun()
	noTotal.Progress = &apipb.RunProgress{Step: 7, Loss: 2.5}
	noProgress := runningRun()
	noProgress.Progress = nil
	tests := []struct {
		name   string
		run    *apipb.Run
		util   float64
		utilOK bool
		tty    bool
		want   []string
	}{
		{"terminal, progress and utilization", running, 87.4, true, true, []string{
			"r-1  RUNNING  slurm=RUNNING  nodes=worker-[0-1]  9m55s",
			"[===>                          ]  12%  step 120/1000 loss 0.4321 812 samples/s ETA 12m03s  gpu util 87%",
		}},
		{"terminal, progress, utilization unknown", running, 0, false, true, []string{
			"r-1  RUNNING  slurm=RUNNING  nodes=worker-[0-1]  9m55s",
			"[===>                          ]  12%  step 120/1000 loss 0.4321 812 samples/s ETA 12m03s",
		}},
		{"terminal, no total steps: no bar", noTotal, 3, true, true, []string{
			"r-1  RUNNING  slurm=RUNNING  nodes=worker-[0-1]  9m55s",
			"step 7 loss 2.5  gpu util 3%",
		}},
		{"terminal, no progress: one line", noProgress, 55.5, true, true, []string{
			"r-1  RUNNING  slurm=RUNNING  nodes=worker-[0-1]  9m55s  gpu util 56%",
		}},
		{"not a terminal: one line, no bar", running, 87.4, true, false, []string{
			"r-1  RUNNING  slurm=RUNNING  nodes=worker-[0-1]  9m55s  step 120/1000 loss 0.4321 812 samples/s ETA 12m03s  gpu util 87%",
		}},
		{"not a terminal, utilization unknown", running, 0, false, false, []string{
			"r-1  RUNNING  slurm=RUNNING  nodes=worker-[0-1]  9m55s  step 120/1000 loss 0.4321 812 samples/s ETA 12m03s",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := watchLines(tt.run, tt.util, tt.utilOK, renderNow, tt.tty)
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("got\n%q\nwant\n%q", got, tt.want)
			}
			for _, l := range got {
				if strings.ContainsRune(l, '\033') {
					t.Errorf("escape sequence in %q", l)
				}
			}
		})
	}
}

func TestUsageText(t *testing.T) {
	if got := usageText(nil); got != "" {
		t.Errorf("usageText(nil) = %q", got)
	}
	u := &apipb.RunUsage{GpuCount: 16, GpuUtilizationMeanPercent: 71.26, GpuUtilizationP95Percent: 98.9, GpuMemoryPeakBytes: 75 * gib / 2,
		EnergyJoules: 9e6, GpuHours: 12.345, Xids: []int32{79, 48}}
	want := "usage: 16 GPU(s), 12.35 GPU-hours, utilization mean 71% p95 99%, memory peak 37.5 GiB, energy 2.50 kWh, XIDs 79,48"
	if got := usageText(u); got != want {
		t.Errorf("usageText =\n%q\nwant\n%q", got, want)
	}
	u.Simulated = true
	if got := usageText(u); got != want+" (simulated)" {
		t.Errorf("simulated usage = %q", got)
	}
}

func gpu(util float64, job string) *apipb.Gpu {
	return &apipb.Gpu{Present: true, UtilizationPercent: util, SlurmJobId: job}
}

func TestRunUtilization(t *testing.T) {
	nodes := []*apipb.Node{
		{Name: "worker-0", Gpus: []*apipb.Gpu{gpu(90, "73"), gpu(70, "73"), gpu(0, ""), {UtilizationPercent: 100}}},
		{Name: "worker-1", Gpus: []*apipb.Gpu{gpu(80, "73"), gpu(20, "99")}},
		{Name: "worker-2", Gpus: []*apipb.Gpu{gpu(100, "73")}},
	}
	tests := []struct {
		name  string
		names []string
		job   string
		want  float64
		ok    bool
	}{
		{"the job's GPUs on the run's nodes", []string{"worker-0", "worker-1"}, "73", 80, true},
		{"no GPU attributed: every present GPU", []string{"worker-0", "worker-1"}, "12", 52, true},
		{"no job id yet", []string{"worker-1"}, "", 50, true},
		{"unknown node", []string{"worker-9"}, "73", 0, false},
		{"no nodes", nil, "73", 0, false},
	}
	for _, tt := range tests {
		got, ok := runUtilization(nodes, tt.names, tt.job)
		if got != tt.want || ok != tt.ok {
			t.Errorf("%s: = %v, %v; want %v, %v", tt.name, got, ok, tt.want, tt.ok)
		}
	}
}

// progressServer serves WatchRun (a running run, then, once ListNodes has
// been answered, the same run further on, then the run completed), GetRun
// (the run between those two steps, as a controller whose WatchRun sends
// only state changes has it) and ListNodes.
type progressServer struct {
	apipb.UnimplementedRunServiceServer
	apipb.UnimplementedNodeServiceServer
	listed chan struct{}
}

func (s *progressServer) WatchRun(req *apipb.WatchRunRequest, stream grpc.ServerStreamingServer[apipb.WatchRunResponse]) error {
	r := runningRun()
	if err := stream.Send(&apipb.WatchRunResponse{Run: r}); err != nil {
		return err
	}
	select {
	case <-s.listed:
	case <-time.After(10 * time.Second):
	}
	time.Sleep(200 * time.Millisecond) // the utilization reaches the watch loop
	r2 := runningRun()
	r2.Progress.Step = 500
	if err := stream.Send(&apipb.WatchRunResponse{Run: r2}); err != nil {
		return err
	}
	done := completedRun()
	done.Id = "r-1"
	return stream.Send(&apipb.WatchRunResponse{Run: done})
}

func (s *progressServer) GetRun(context.Context, *apipb.GetRunRequest) (*apipb.GetRunResponse, error) {
	r := runningRun()
	r.Progress.Step = 300
	return &apipb.GetRunResponse{Run: r}, nil
}

func (s *progressServer) ListNodes(context.Context, *apipb.ListNodesRequest) (*apipb.ListNodesResponse, error) {
	defer func() {
		select {
		case s.listed <- struct{}{}:
		default:
		}
	}()
	return &apipb.ListNodesResponse{Nodes: []*apipb.Node{
		{Name: "worker-0", Gpus: []*apipb.Gpu{gpu(91, "73"), gpu(93, "73")}},
		{Name: "worker-1", Gpus: []*apipb.Gpu{gpu(89, "73"), gpu(0, "")}},
	}}, nil
}

func TestWatchRunShowsNodeUtilization(t *testing.T) {
	srv := &progressServer{listed: make(chan struct{}, 1)}
	conn := dialFake(t, func(s *grpc.Server) {
		apipb.RegisterRunServiceServer(s, srv)
		apipb.RegisterNodeServiceServer(s, srv)
	})
	var out bytes.Buffer
	a := &app{env: Env{Stdout: &out, IsTerminal: func(io.Writer) bool { return false }}, root: rootOptions{output: "table"}}
	err := watchRun(context.Background(), a, &clientOptions{controller: "bufnet", timeout: time.Second},
		apipb.NewRunServiceClient(conn), apipb.NewNodeServiceClient(conn), "r-1")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 5 {
		t.Fatalf("want 5 lines, got\n%s", out.String())
	}
	if strings.Contains(lines[0], "gpu util") || !strings.Contains(lines[0], "step 120/1000") {
		t.Errorf("first line %q: want progress, no utilization yet", lines[0])
	}
	if !strings.HasSuffix(lines[1], "step 300/1000 loss 0.4321 812 samples/s ETA 12m03s  gpu util 91%") {
		t.Errorf("second line %q: want the polled progress and the job's GPUs' mean utilization, 91%%", lines[1])
	}
	if !strings.HasSuffix(lines[2], "step 500/1000 loss 0.4321 812 samples/s ETA 12m03s  gpu util 91%") {
		t.Errorf("third line %q: want the streamed progress", lines[2])
	}
	if lines[4] != "usage: 16 GPU(s), 3.33 GPU-hours, utilization mean 87% p95 99% (simulated)" {
		t.Errorf("last line %q: want the usage", lines[4])
	}
}

func TestNewerProgress(t *testing.T) {
	at := func(step int64, sec int) *apipb.RunProgress {
		return &apipb.RunProgress{Step: step, UpdateTime: ts(0, sec)}
	}
	tests := []struct {
		name        string
		cur, polled *apipb.RunProgress
		want        bool
	}{
		{"nothing polled", at(1, 0), nil, false},
		{"first progress", nil, at(1, 0), true},
		{"further on", at(1, 0), at(2, 0), true},
		{"behind the stream", at(5, 9), at(4, 10), false},
		{"same step, later line", at(5, 1), at(5, 2), true},
		{"same step, same time", at(5, 1), at(5, 1), false},
	}
	for _, tt := range tests {
		if got := newerProgress(tt.cur, tt.polled); got != tt.want {
			t.Errorf("%s: newerProgress = %v, want %v", tt.name, got, tt.want)
		}
	}
}
