package cli

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/sopilot/sopilot/pkg/apipb"
)

func boolPtr(b bool) *bool { return &b }

// busyNode is a node running job 73 on six of its eight GPUs, one IB port
// down.
func busyNode() *apipb.Node {
	n := &apipb.Node{Name: "worker-0", SlurmState: "MIXED", Verdict: apipb.HealthVerdict_HEALTH_VERDICT_DEGRADED,
		VerdictReasons: []string{"ib: mlx5_7/1 is DOWN (Polling)", "gpu: all 8 GPUs healthy"},
		AgentConnected: true, LastSeenTime: ts(29, 58), DriverVersion: "570.124.06", CudaVersion: "12.8", NcclVersion: "2.26.2",
		AgentVersion: "v0.4.0", BootId: "b61a49e8", RunIds: []string{"r-01m8kcb0000000000000000bbb"}}
	for i := range int32(8) {
		g := &apipb.Gpu{Index: i, Model: "NVIDIA H100 80GB HBM3", Present: true, UtilizationPercent: 95, MemoryUsedBytes: 60 * gib,
			MemoryTotalBytes: 80 * gib, TemperatureCelsius: 60 + float64(i), PowerMilliwatts: 500_000, PowerLimitMilliwatts: 700_000, SlurmJobId: "73"}
		if i >= 6 {
			g.UtilizationPercent, g.SlurmJobId, g.TemperatureCelsius, g.PowerMilliwatts, g.MemoryUsedBytes = 0, "", 35, 70_000, 0
		}
		n.Gpus = append(n.Gpus, g)
	}
	n.Gpus[2].ThrottleReasons = 0x40 | 0x1
	n.Gpus[3].EccVolatileUncorrected = 2
	n.Gpus[3].RowRemapFailure = boolPtr(true)
	for i := range 8 {
		p := &apipb.IbPort{Name: "mlx5_" + string(rune('0'+i)) + "/1", State: "ACTIVE", PhysState: "LinkUp", RateGbps: 400}
		if i == 7 {
			p.State, p.PhysState, p.RateGbps, p.LinkDowned = "DOWN", "Polling", 0, 3
		}
		n.IbPorts = append(n.IbPorts, p)
	}
	return n
}

func TestRenderNodes(t *testing.T) {
	sim := &apipb.Node{Name: "worker-1", SlurmState: "IDLE", Verdict: apipb.HealthVerdict_HEALTH_VERDICT_UNHEALTHY,
		VerdictReasons: []string{"gpu5: fell off the bus"}, AgentConnected: true, LastSeenTime: ts(29, 59), Simulated: true}
	for i := range int32(8) {
		sim.Gpus = append(sim.Gpus, &apipb.Gpu{Index: i, Model: "NVIDIA H200 (simulated)", Present: i != 5, UtilizationPercent: 12,
			MemoryTotalBytes: 141 * gib, TemperatureCelsius: 34, PowerMilliwatts: 80_000})
	}
	lost := &apipb.Node{Name: "worker-2", SlurmState: "DOWN+DRAIN", SlurmReason: "sopilot: XID 79 on GPU 3", Verdict: apipb.HealthVerdict_HEALTH_VERDICT_UNKNOWN,
		LastSeenTime: ts(20, 0)}
	never := &apipb.Node{Name: "worker-3", SlurmState: "IDLE"}
	// The agent stopped 5 minutes ago with the GPUs busy; GPU 3 has an
	// open XID 79 incident and GPU 5 an XID 48 with its last numbers.
	stale := busyNode()
	stale.Name, stale.AgentConnected, stale.LastSeenTime, stale.TelemetryStale, stale.RunIds = "worker-4", false, ts(25, 0), true, nil
	stale.Gpus[3].Present, stale.Gpus[3].OpenXids = false, []int32{79}
	stale.Gpus[5].OpenXids = []int32{48}

	var b strings.Builder
	printNodeList(&b, []*apipb.Node{busyNode(), sim, lost, never, stale}, renderNow)
	golden(t, "nodes.golden", b.String())

	b.Reset()
	printNode(&b, busyNode(), renderNow)
	golden(t, "node_get.golden", b.String())

	b.Reset()
	printNode(&b, lost, renderNow)
	golden(t, "node_get_lost.golden", b.String())

	b.Reset()
	printNode(&b, stale, renderNow)
	golden(t, "node_get_stale.golden", b.String())

	b.Reset()
	printNodeList(&b, nil, renderNow)
	if b.String() != "No nodes: no agent has reported and Slurm lists none.\n" {
		t.Errorf("empty list: %q", b.String())
	}

	// The rows of nodes --watch line up without a tabwriter.
	got := nodeLine(nodeHeader) + "\n" + nodeLine(nodeRow(busyNode(), renderNow)) + "\n" + nodeLine(nodeRow(never, renderNow)) + "\n"
	golden(t, "nodes_watch.golden", got)
}

func TestRenderIncidents(t *testing.T) {
	incs := []*apipb.Incident{
		{Id: "i-01", Node: "worker-0", Component: "gpu3", Summary: "XID 79: GPU fell off the bus", Severity: apipb.HealthVerdict_HEALTH_VERDICT_UNHEALTHY,
			Count: 1, FirstSeenTime: ts(10, 0), LastSeenTime: ts(10, 0), Action: "drained", RunIds: []string{"r-1"}},
		{Id: "i-02", Node: "worker-1", Component: "ib:mlx5_7/1", Summary: "port DOWN", Severity: apipb.HealthVerdict_HEALTH_VERDICT_DEGRADED,
			Count: 4, FirstSeenTime: ts(11, 0), LastSeenTime: ts(12, 30), ResolveTime: ts(13, 0), Action: "none"},
	}
	var b strings.Builder
	printIncidents(&b, incs)
	golden(t, "incidents.golden", b.String())
	b.Reset()
	printIncidents(&b, nil)
	if b.String() != "No incidents.\n" {
		t.Errorf("no incidents: %q", b.String())
	}
}

func TestNodeSummary(t *testing.T) {
	s := summarize(busyNode())
	want := nodeSummary{gpus: 8, busy: 6, present: 8, utilSum: 6 * 95, maxTemp: 65, powerMW: 6*500_000 + 2*70_000, ibUp: 7, ibAll: 8}
	if s != want {
		t.Errorf("summarize = %+v, want %+v", s, want)
	}
	// Busy by utilization alone (no job attributed), or by a job at 0%.
	n := &apipb.Node{Gpus: []*apipb.Gpu{{Present: true, UtilizationPercent: 10}, {Present: true, UtilizationPercent: 9.9}, {Present: true, SlurmJobId: "5"}, {Present: false, SlurmJobId: "5"}}}
	if s := summarize(n); s.busy != 2 || s.present != 3 || s.gpus != 4 {
		t.Errorf("summarize = %+v, want 2 busy of 3 present of 4", s)
	}
	for _, tt := range []struct {
		g    *apipb.Gpu
		want string
	}{
		{&apipb.Gpu{ThrottleReasons: 0x1 | 0x2 | 0x10 | 0x100}, "ok"}, // idle, app clocks, sync boost, display: not slowdowns
		{&apipb.Gpu{ThrottleReasons: 0x4 | 0x8 | 0x20 | 0x40 | 0x80}, "slowdown: power cap, slowdown: hw slowdown, slowdown: sw thermal, slowdown: hw thermal, slowdown: power brake"},
		{&apipb.Gpu{EccVolatileUncorrected: 3, RowRemapFailure: boolPtr(false)}, "3 uncorrected ECC"},
	} {
		if got := gpuStatus(tt.g); got != tt.want {
			t.Errorf("gpuStatus(%v) = %q, want %q", tt.g, got, tt.want)
		}
	}
}

func TestCheckText(t *testing.T) {
	tests := []struct {
		r    *apipb.RunNodeCheckResponse
		want string
	}{
		{&apipb.RunNodeCheckResponse{Passed: true, Summary: "all_reduce_perf 8 GPUs", BusBandwidthGbps: 481.25}, "PASSED nccl on worker-0: all_reduce_perf 8 GPUs (bus bandwidth 481.2 GB/s)"},
		{&apipb.RunNodeCheckResponse{Summary: "bus bandwidth 120 GB/s below 400"}, "FAILED nccl on worker-0: bus bandwidth 120 GB/s below 400"},
		{&apipb.RunNodeCheckResponse{}, "FAILED nccl on worker-0"},
	}
	for _, tt := range tests {
		if got := checkText("worker-0", "nccl", tt.r); got != tt.want {
			t.Errorf("checkText = %q, want %q", got, tt.want)
		}
	}
}

// fakeNodes records the node operations it was asked for. With ops false
// it answers them UNIMPLEMENTED, as a controller without them does.
type fakeNodes struct {
	apipb.UnimplementedNodeServiceServer
	ops bool

	mu   sync.Mutex
	reqs []proto.Message
}

func (f *fakeNodes) record(m proto.Message) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reqs = append(f.reqs, m)
	if !f.ops {
		return status.Errorf(codes.Unimplemented, "method %T not implemented", m)
	}
	return nil
}

func (f *fakeNodes) DrainNode(_ context.Context, req *apipb.DrainNodeRequest) (*apipb.DrainNodeResponse, error) {
	if err := f.record(req); err != nil {
		return nil, err
	}
	if req.GetName() == "worker-dry" { // a controller in --remediation dry-run changes nothing
		return &apipb.DrainNodeResponse{Node: &apipb.Node{Name: req.GetName(), SlurmState: "IDLE"}}, nil
	}
	return &apipb.DrainNodeResponse{Node: &apipb.Node{Name: req.GetName(), SlurmState: "DRAIN", SlurmReason: "sopilot: " + req.GetReason()}}, nil
}

func (f *fakeNodes) UndrainNode(_ context.Context, req *apipb.UndrainNodeRequest) (*apipb.UndrainNodeResponse, error) {
	if err := f.record(req); err != nil {
		return nil, err
	}
	var overridden []*apipb.Incident
	if req.GetName() == "worker-3" { // has an open XID 79 incident
		if !req.GetForce() {
			return nil, status.Error(codes.FailedPrecondition, "node worker-3 has 1 open hardware incident(s): i-79 (xid 79 (drain) on gpu3); the fault may still be there: fix or replace the machine, or set force to resume anyway")
		}
		overridden = []*apipb.Incident{{Id: "i-79", Node: "worker-3", Summary: "xid 79 (drain) on gpu3"}}
	}
	if req.GetName() == "worker-dry" {
		return &apipb.UndrainNodeResponse{Node: &apipb.Node{Name: req.GetName(), SlurmState: "IDLE+DRAIN"}}, nil
	}
	return &apipb.UndrainNodeResponse{Node: &apipb.Node{Name: req.GetName(), SlurmState: "IDLE"}, OverriddenIncidents: overridden}, nil
}

func (f *fakeNodes) ListNodes(context.Context, *apipb.ListNodesRequest) (*apipb.ListNodesResponse, error) {
	return &apipb.ListNodesResponse{Nodes: []*apipb.Node{busyNode()}, Remediation: &apipb.Remediation{
		AutomaticDrainsPaused: true, PausedReason: "refused automatic drains of worker-3 (2 of 8 nodes drained by us, limit 2; 2 automatic drains in 10m0s, limit 1)"}}, nil
}

func (f *fakeNodes) RunNodeCheck(_ context.Context, req *apipb.RunNodeCheckRequest) (*apipb.RunNodeCheckResponse, error) {
	if err := f.record(req); err != nil {
		return nil, err
	}
	if req.GetName() == "worker-1" {
		return &apipb.RunNodeCheckResponse{Passed: false, Summary: "bus bandwidth 120.0 GB/s, want at least 400", BusBandwidthGbps: 120}, nil
	}
	return &apipb.RunNodeCheckResponse{Passed: true, Summary: "all_reduce_perf on 8 GPUs", BusBandwidthGbps: 480}, nil
}

func (f *fakeNodes) ListIncidents(_ context.Context, req *apipb.ListIncidentsRequest) (*apipb.ListIncidentsResponse, error) {
	if err := f.record(req); err != nil {
		return nil, err
	}
	if req.GetNode() == "worker-9" {
		return nil, status.Error(codes.NotFound, `node "worker-9" not found: no agent has reported it and Slurm does not list it`)
	}
	// Two pages.
	if req.GetPageToken() == "" {
		return &apipb.ListIncidentsResponse{Incidents: []*apipb.Incident{{Id: "i-1", Node: "worker-0", Summary: "first"}}, NextPageToken: "p2"}, nil
	}
	return &apipb.ListIncidentsResponse{Incidents: []*apipb.Incident{{Id: "i-2", Node: "worker-0", Summary: "second"}}}, nil
}

// serveNodes serves f on a local TCP port and returns its address.
func serveNodes(t *testing.T, f *fakeNodes) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	apipb.RegisterNodeServiceServer(s, f)
	go func() { _ = s.Serve(lis) }()
	t.Cleanup(s.Stop)
	return lis.Addr().String()
}

func TestNodeOpsUnimplemented(t *testing.T) {
	addr := serveNodes(t, &fakeNodes{})
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"node", "drain", "worker-0", "--reason", "XID 79"}, "sopilot: drain node worker-0: this controller does not support node drains yet"},
		{[]string{"node", "undrain", "worker-0"}, "sopilot: undrain node worker-0: this controller does not support node undrains yet"},
		{[]string{"node", "check", "worker-0"}, "sopilot: check node worker-0: this controller does not support node checks yet"},
		{[]string{"node", "incidents"}, "sopilot: list incidents: this controller does not support incident listing yet"},
	}
	for _, tt := range tests {
		t.Run(tt.args[1], func(t *testing.T) {
			r := sopilot(t, invocation{args: append(tt.args, "--controller", addr)})
			if r.code != ExitError || r.stdout != "" || !strings.HasPrefix(r.stderr, tt.want+" ("+addr+" answered UNIMPLEMENTED: ") {
				t.Errorf("exit %d\nstdout %q\nstderr %q\nwant prefix %q", r.code, r.stdout, r.stderr, tt.want)
			}
		})
	}
}

func TestNodeOps(t *testing.T) {
	f := &fakeNodes{ops: true}
	addr := serveNodes(t, f)
	run := func(args ...string) result {
		t.Helper()
		return sopilot(t, invocation{args: args, env: map[string]string{"SOPILOT_CONTROLLER": addr}})
	}
	last := func() proto.Message {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.reqs[len(f.reqs)-1]
	}

	r := run("node", "drain", "worker-0", "--reason", "XID 79 on GPU 3")
	if r.code != ExitOK || r.stdout != "drained worker-0 (running jobs finish; no new ones start), Slurm state DRAIN\n" {
		t.Errorf("drain: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if want := (&apipb.DrainNodeRequest{Name: "worker-0", Reason: "XID 79 on GPU 3"}); !proto.Equal(last(), want) {
		t.Errorf("drain sent %v, want %v", last(), want)
	}
	r = run("node", "drain", "worker-0", "--reason", "  ")
	if r.code != ExitUsage || !strings.Contains(r.stderr, "--reason is required") {
		t.Errorf("drain --reason blank: exit %d, stderr %q", r.code, r.stderr)
	}

	r = run("node", "undrain", "worker-0")
	if r.code != ExitOK || r.stdout != "resumed worker-0, Slurm state IDLE\n" {
		t.Errorf("undrain: exit %d\n%q%s", r.code, r.stdout, r.stderr)
	}
	if want := (&apipb.UndrainNodeRequest{Name: "worker-0"}); !proto.Equal(last(), want) {
		t.Errorf("undrain sent %v, want %v", last(), want)
	}
	// A dry-run controller records the operation but Slurm is unchanged:
	// never claim it was done.
	r = run("node", "undrain", "worker-dry")
	if want := "undrain of worker-dry recorded, but Slurm still shows it drained (a controller in --remediation dry-run records undrains without making them), Slurm state IDLE+DRAIN\n"; r.code != ExitOK || r.stdout != want {
		t.Errorf("undrain in dry-run: exit %d\n%q%s", r.code, r.stdout, r.stderr)
	}
	r = run("node", "drain", "worker-dry", "--reason", "look")
	if want := "drain of worker-dry recorded, but Slurm does not show it drained (a controller in --remediation dry-run records drains without making them), Slurm state IDLE\n"; r.code != ExitOK || r.stdout != want {
		t.Errorf("drain in dry-run: exit %d\n%q%s", r.code, r.stdout, r.stderr)
	}
	r = run("node", "drain", "worker-0", "--reason", "XID 79", "-o", "yaml")
	if r.code != ExitOK || !strings.HasPrefix(r.stdout, "name: worker-0\nslurmState: DRAIN\nslurmReason: 'sopilot: XID 79'\n") {
		t.Errorf("drain -o yaml: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = run("node", "undrain", "worker-0", "--skip-verification", "-o", "json")
	var n struct {
		Name       string `json:"name"`
		SlurmState string `json:"slurmState"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &n); err != nil || r.code != ExitOK || n.Name != "worker-0" || n.SlurmState != "IDLE" {
		t.Errorf("undrain -o json: exit %d, %v\n%s%s", r.code, err, r.stdout, r.stderr)
	}
	if want := (&apipb.UndrainNodeRequest{Name: "worker-0", SkipVerification: true}); !proto.Equal(last(), want) {
		t.Errorf("undrain sent %v, want %v", last(), want)
	}

	r = run("node", "check", "worker-0")
	if r.code != ExitOK || r.stdout != "PASSED nccl on worker-0: all_reduce_perf on 8 GPUs (bus bandwidth 480.0 GB/s)\n" {
		t.Errorf("check: exit %d\n%q%s", r.code, r.stdout, r.stderr)
	}
	if want := (&apipb.RunNodeCheckRequest{Name: "worker-0", Check: "nccl"}); !proto.Equal(last(), want) {
		t.Errorf("check sent %v, want %v", last(), want)
	}
	r = run("node", "check", "worker-1", "--check", "nccl")
	if r.code != ExitError || r.stdout != "FAILED nccl on worker-1: bus bandwidth 120.0 GB/s, want at least 400 (bus bandwidth 120.0 GB/s)\n" ||
		r.stderr != "sopilot: node check failed: nccl on worker-1\n" {
		t.Errorf("failing check: exit %d\nstdout %q\nstderr %q", r.code, r.stdout, r.stderr)
	}
	r = run("node", "check", "worker-0", "--check-timeout", "0s")
	if r.code != ExitUsage {
		t.Errorf("check --check-timeout 0s: exit %d, stderr %q", r.code, r.stderr)
	}

	r = run("node", "incidents", "worker-0", "--run", "r-1", "--limit", "0")
	if r.code != ExitOK || !strings.HasPrefix(r.stdout, "ID   NODE") || !strings.Contains(r.stdout, "first") || !strings.Contains(r.stdout, "second") {
		t.Errorf("incidents (two pages): exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if want := (&apipb.ListIncidentsRequest{Node: "worker-0", RunId: "r-1", PageSize: 1000, PageToken: "p2"}); !proto.Equal(last(), want) {
		t.Errorf("incidents sent %v, want %v", last(), want)
	}
	r = run("node", "incidents", "--limit", "1", "-o", "yaml")
	if r.code != ExitOK || r.stdout != "incidents:\n  - id: i-1\n    node: worker-0\n    component: \"\"\n    summary: first\n    severity: HEALTH_VERDICT_UNSPECIFIED\n    count: \"0\"\n    firstSeenTime: null\n    lastSeenTime: null\n    resolveTime: null\n    action: \"\"\n    runIds: []\nnextPageToken: \"\"\n" {
		t.Errorf("incidents --limit 1 -o yaml: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = run("node", "incidents", "a", "b")
	if r.code != ExitUsage {
		t.Errorf("incidents a b: exit %d", r.code)
	}
}

// watchNodesServer sends its nodes, then waits for the client to go.
type watchNodesServer struct {
	apipb.UnimplementedNodeServiceServer
	nodes []*apipb.Node
}

func (s *watchNodesServer) WatchNodes(_ *apipb.WatchNodesRequest, stream grpc.ServerStreamingServer[apipb.WatchNodesResponse]) error {
	for _, n := range s.nodes {
		if err := stream.Send(&apipb.WatchNodesResponse{Node: n}); err != nil {
			return err
		}
	}
	<-stream.Context().Done()
	return nil
}

func TestWatchNodes(t *testing.T) {
	idle := &apipb.Node{Name: "worker-1", SlurmState: "IDLE", Verdict: apipb.HealthVerdict_HEALTH_VERDICT_HEALTHY, AgentConnected: true, LastSeenTime: ts(29, 59)}
	idleLater := proto.Clone(idle).(*apipb.Node)
	idleLater.LastSeenTime = ts(29, 58) // only the age moved: no new row
	drained := proto.Clone(idle).(*apipb.Node)
	drained.SlurmState = "IDLE+DRAIN"
	nodes := []*apipb.Node{busyNode(), idle, idleLater, drained}

	tests := []struct {
		name     string
		output   string
		terminal bool
		check    func(t *testing.T, out string)
	}{
		{"rows per change", "table", false, func(t *testing.T, out string) {
			lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			if len(lines) != 4 || !strings.HasPrefix(lines[0], "NODE          SLURM") || !strings.HasPrefix(lines[1], "worker-0      MIXED") ||
				!strings.HasPrefix(lines[2], "worker-1      IDLE          HEALTHY") || !strings.HasPrefix(lines[3], "worker-1      IDLE+DRAIN    HEALTHY") {
				t.Errorf("want a header and 3 rows, got\n%s", out)
			}
			if strings.Contains(out, "\033") {
				t.Errorf("escape sequences when not a terminal: %q", out)
			}
		}},
		{"json lines", "json", false, func(t *testing.T, out string) {
			lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			if len(lines) != 4 || !strings.HasPrefix(lines[3], `{"name":"worker-1","slurmState":"IDLE+DRAIN"`) {
				t.Errorf("want 4 JSON lines, got\n%s", out)
			}
		}},
		{"terminal: the table redrawn", "table", true, func(t *testing.T, out string) {
			frames := strings.Split(out, "\033[H\033[2J")
			if len(frames) < 2 || frames[0] != "" {
				t.Fatalf("want frames after clear-screen, got %q", out)
			}
			last := frames[len(frames)-1]
			if !strings.HasPrefix(last, "NODE      SLURM       HEALTH") || !strings.Contains(last, "\nworker-1  IDLE+DRAIN  HEALTHY") || strings.Count(last, "\n") != 3 {
				t.Errorf("last frame:\n%s", last)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lis, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			s := grpc.NewServer()
			apipb.RegisterNodeServiceServer(s, &watchNodesServer{nodes: nodes})
			go func() { _ = s.Serve(lis) }()
			defer s.Stop()
			var out syncBuffer
			a := &app{env: Env{Stdout: &out, IsTerminal: func(io.Writer) bool { return tt.terminal }}, root: rootOptions{output: tt.output}}
			o := &clientOptions{controller: lis.Addr().String(), insecure: true, timeout: time.Second}
			conn, err := o.dial()
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			// Interrupted (Ctrl-C) after a while.
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			time.AfterFunc(1200*time.Millisecond, cancel)
			err = watchNodes(ctx, a, o, apipb.NewNodeServiceClient(conn))
			if !errors.Is(err, context.Canceled) {
				t.Errorf("err = %v, want the context's", err)
			}
			tt.check(t, out.String())
		})
	}
}

// TestNodeOpsRefusals: an undrain with open hardware incidents needs
// --force and then warns; incidents of an unknown node are NOT_FOUND (exit
// 1); the breaker shows above the nodes table.
func TestNodeOpsRefusals(t *testing.T) {
	f := &fakeNodes{ops: true}
	addr := serveNodes(t, f)
	run := func(args ...string) result {
		t.Helper()
		return sopilot(t, invocation{args: args, env: map[string]string{"SOPILOT_CONTROLLER": addr}})
	}
	r := run("node", "undrain", "worker-3")
	if r.code != ExitError || r.stdout != "" || r.stderr != "sopilot: undrain node worker-3: refused: node worker-3 has 1 open hardware incident(s): i-79 (xid 79 (drain) on gpu3); "+
		"the fault may still be there: fix or replace the machine, or set force to resume anyway\n  (--force resumes it anyway)\n" {
		t.Errorf("undrain with an open XID 79: exit %d\nstdout %q\nstderr %q", r.code, r.stdout, r.stderr)
	}
	r = run("node", "undrain", "worker-3", "--force")
	if r.code != ExitOK || r.stdout != "resumed worker-3, Slurm state IDLE\n" ||
		r.stderr != "sopilot: warning: worker-3 resumed with open hardware incident i-79: xid 79 (drain) on gpu3 (--force)\n" {
		t.Errorf("undrain --force: exit %d\nstdout %q\nstderr %q", r.code, r.stdout, r.stderr)
	}
	r = run("node", "incidents", "worker-9")
	if r.code != ExitError || r.stdout != "" || r.stderr != "sopilot: list incidents: node \"worker-9\" not found: no agent has reported it and Slurm does not list it\n" {
		t.Errorf("incidents of an unknown node: exit %d\nstdout %q\nstderr %q", r.code, r.stdout, r.stderr)
	}
	r = run("nodes")
	if r.code != ExitOK || !strings.HasPrefix(r.stdout, "AUTOMATIC DRAINS PAUSED by the circuit breaker: refused automatic drains of worker-3 (2 of 8 nodes drained by us, limit 2; 2 automatic drains in 10m0s, limit 1)\n"+
		"(operators' drains still work; see docs/operations.md)\n\nNODE ") {
		t.Errorf("nodes with the breaker open: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}
