package cli

import (
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"

	"google.golang.org/grpc"

	"github.com/sopilot/sopilot/internal/api"
	"github.com/sopilot/sopilot/internal/fleet"
	"github.com/sopilot/sopilot/internal/scheduler"
	"github.com/sopilot/sopilot/internal/telemetry"
	"github.com/sopilot/sopilot/pkg/apipb"
)

// manyNodes is a fleet of n nodes with 8 GPUs each, every tenth
// UNHEALTHY, for the real NodeServer.
type manyNodes int

func (m manyNodes) view(i int) fleet.NodeView {
	name := fmt.Sprintf("node-%04d", i)
	v := fleet.NodeView{Name: name, Connected: true, Slurm: &scheduler.NodeStatus{Name: name, State: "IDLE"}, Verdict: fleet.Verdict{Verdict: "HEALTHY"}}
	if i%10 == 9 {
		v.Verdict.Verdict = "UNHEALTHY"
	}
	return v
}

func (m manyNodes) Index() []fleet.NodeView {
	out := make([]fleet.NodeView, 0, int(m))
	for i := range int(m) {
		out = append(out, m.view(i))
	}
	return out
}

func (m manyNodes) Snapshot(name string) (fleet.NodeView, bool) {
	var i int
	if _, err := fmt.Sscanf(name, "node-%04d", &i); err != nil || i >= int(m) {
		return fleet.NodeView{}, false
	}
	v := m.view(i)
	for g := range 8 {
		util := 50.0
		v.Inventory.GPUs = append(v.Inventory.GPUs, telemetry.GPUInfo{Index: g})
		v.GPUs = append(v.GPUs, telemetry.GPUSample{Index: g, SMUtilizationPercent: &util})
	}
	return v, true
}

func TestNodesPagesThroughTheController(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	apipb.RegisterNodeServiceServer(s, api.NewNodeServer(manyNodes(450), nil, slog.New(slog.DiscardHandler)))
	go func() { _ = s.Serve(lis) }()
	t.Cleanup(s.Stop)
	addr := lis.Addr().String()
	rows := func(out string) int { return strings.Count(out, "\nnode-") }

	r := sopilot(t, invocation{args: []string{"nodes", "--controller", addr}})
	if r.code != 0 || rows(r.stdout) != nodesFirstScreen || !strings.Contains(r.stderr, "200 of 450 nodes shown: --all lists every one") {
		t.Errorf("nodes: exit %d, %d rows, stderr %q", r.code, rows(r.stdout), r.stderr)
	}
	if !strings.Contains(r.stdout, "8/8   50%") {
		t.Errorf("nodes: the BASIC rows lack the GPU summary:\n%s", r.stdout[:min(len(r.stdout), 400)])
	}
	r = sopilot(t, invocation{args: []string{"nodes", "--all", "--controller", addr}})
	if r.code != 0 || rows(r.stdout) != 450 || r.stderr != "" {
		t.Errorf("nodes --all: exit %d, %d rows, stderr %q", r.code, rows(r.stdout), r.stderr)
	}
	r = sopilot(t, invocation{args: []string{"nodes", "--filter", "verdict=UNHEALTHY", "--limit", "20", "--controller", addr}})
	if r.code != 0 || rows(r.stdout) != 20 || strings.Count(r.stdout, "UNHEALTHY") != 20 || !strings.Contains(r.stderr, "20 of 45 nodes shown") {
		t.Errorf("nodes --filter: exit %d, %d rows\n%s\nstderr %q", r.code, rows(r.stdout), r.stdout, r.stderr)
	}
	r = sopilot(t, invocation{args: []string{"nodes", "--filter", "verdict=SICK", "--controller", addr}})
	if r.code == 0 || !strings.Contains(r.stderr, "verdict") {
		t.Errorf("nodes --filter verdict=SICK: exit %d, stderr %q", r.code, r.stderr)
	}
	r = sopilot(t, invocation{args: []string{"nodes", "--all", "-o", "json", "--controller", addr}})
	if r.code != 0 || strings.Count(r.stdout, `"name": "node-`) != 450 || !strings.Contains(r.stdout, `"gpus"`) {
		t.Errorf("nodes --all -o json: exit %d, %d nodes, gpus %t", r.code, strings.Count(r.stdout, `"name": "node-`), strings.Contains(r.stdout, `"gpus"`))
	}
}
