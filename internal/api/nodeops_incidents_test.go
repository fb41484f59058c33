package api

import (
	"context"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sopilot/sopilot/internal/auth"
	"github.com/sopilot/sopilot/internal/fleet"
	"github.com/sopilot/sopilot/internal/scheduler"
	"github.com/sopilot/sopilot/internal/store"
	"github.com/sopilot/sopilot/internal/telemetry"
	"github.com/sopilot/sopilot/pkg/apipb"
)

// storeOps is recordingOps whose incidents come from a real store.
type storeOps struct {
	recordingOps
	st *store.Store
}

func (o *storeOps) Incidents(ctx context.Context, q store.IncidentQuery) ([]*store.Incident, string, error) {
	return o.st.ListIncidents(ctx, q)
}

// oneNode is a fleet of one node, worker-0, whose agent stopped reporting
// a minute ago: 2 GPUs, last seen busy.
type oneNode struct{ slurmState string }

func (f oneNode) view() fleet.NodeView {
	util, temp := 97.0, 71.0
	return fleet.NodeView{
		Name: "worker-0", Connected: false, Silent: true, LastSeen: time.Now().Add(-time.Minute),
		Inventory: telemetry.Inventory{GPUs: []telemetry.GPUInfo{{Index: 0, UUID: "GPU-0"}, {Index: 3, UUID: "GPU-3"}}},
		GPUs: []telemetry.GPUSample{{Index: 0, SMUtilizationPercent: &util, TemperatureCelsius: &temp},
			{Index: 3, SMUtilizationPercent: &util, TemperatureCelsius: &temp}},
		Slurm: &scheduler.NodeStatus{Name: "worker-0", State: f.slurmState},
	}
}
func (f oneNode) Index() []fleet.NodeView { return []fleet.NodeView{f.view()} }
func (f oneNode) Snapshot(name string) (fleet.NodeView, bool) {
	if name != "worker-0" {
		return fleet.NodeView{}, false
	}
	return f.view(), true
}

// incidentServer is NodeService over a real store holding an open XID 79
// incident on worker-0's gpu3, a resolved one on gpu0, and a resolved
// incident of worker-7, a node that has since left Slurm.
func incidentServer(t *testing.T) (*NodeServer, *storeOps, context.Context) {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "c.db"), store.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	now := time.Now().UTC().Truncate(time.Second)
	incs := []*store.Incident{
		{ID: "01J0000000000000000000000A", Node: "worker-0", Component: "gpu0", Rule: "xid_drain", Summary: "xid 48 (drain) on gpu0",
			Evidence: "xid 48 (drain) on gpu0", Severity: "UNHEALTHY", Count: 1, FirstSeen: now.Add(-time.Hour), LastSeen: now.Add(-time.Hour), ResolveTime: now.Add(-50 * time.Minute)},
		{ID: "01J0000000000000000000000B", Node: "worker-0", Component: "gpu3", Rule: "xid_drain", Summary: "xid 79 (drain) on gpu3",
			Evidence: "xid 79 (drain) on gpu3", Severity: "UNHEALTHY", Count: 2, FirstSeen: now.Add(-time.Minute), LastSeen: now, Action: "drained"},
		{ID: "01J0000000000000000000000C", Node: "worker-7", Component: "nccl", Rule: "nccl_busbw", Summary: "NCCL check failed",
			Severity: "DEGRADED", Count: 1, FirstSeen: now.Add(-2 * time.Hour), LastSeen: now.Add(-2 * time.Hour), ResolveTime: now.Add(-time.Hour)},
	}
	if err := st.PutIncidents(context.Background(), incs); err != nil {
		t.Fatal(err)
	}
	ops := &storeOps{st: st}
	s := NewNodeServer(oneNode{slurmState: "IDLE+DRAIN"}, ops, slog.New(slog.DiscardHandler))
	return s, ops, auth.NewContext(context.Background(), auth.Identity{Name: "alice"})
}

func TestGPUsCarryOpenXIDs(t *testing.T) {
	s, _, ctx := incidentServer(t)
	got, err := s.GetNode(ctx, &apipb.GetNodeRequest{Name: "worker-0"})
	if err != nil {
		t.Fatal(err)
	}
	var xids [][]int32
	for _, g := range got.GetNode().GetGpus() {
		xids = append(xids, g.GetOpenXids())
	}
	// gpu0's XID 48 is resolved; gpu3's XID 79 is open.
	if len(xids) != 2 || len(xids[0]) != 0 || !slices.Equal(xids[1], []int32{79}) {
		t.Errorf("open XIDs by GPU = %v, want [[] [79]]", xids)
	}
	list, err := s.ListNodes(ctx, &apipb.ListNodesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if g := list.GetNodes()[0].GetGpus()[1]; !slices.Equal(g.GetOpenXids(), []int32{79}) {
		t.Errorf("ListNodes: gpu3 open XIDs %v, want [79]", g.GetOpenXids())
	}
}

func TestStaleTelemetryIsMarked(t *testing.T) {
	s, _, ctx := incidentServer(t)
	got, err := s.GetNode(ctx, &apipb.GetNodeRequest{Name: "worker-0"})
	if err != nil {
		t.Fatal(err)
	}
	if !got.GetNode().GetTelemetryStale() {
		t.Error("telemetry_stale = false for a node whose agent is disconnected")
	}
	live := NodeToProto(fleet.NodeView{Name: "worker-1", Connected: true, LastSeen: time.Now()})
	never := NodeToProto(fleet.NodeView{Name: "worker-2", Silent: true})
	if live.GetTelemetryStale() || never.GetTelemetryStale() {
		t.Errorf("telemetry_stale: live %v, never reported %v; want false, false", live.GetTelemetryStale(), never.GetTelemetryStale())
	}
}

func TestIncidentsOfAnUnknownNodeAreNotFound(t *testing.T) {
	s, _, ctx := incidentServer(t)
	_, err := s.ListIncidents(ctx, &apipb.ListIncidentsRequest{Node: "worker-9"})
	if status.Code(err) != codes.NotFound || !strings.Contains(status.Convert(err).Message(), `node "worker-9" not found`) {
		t.Errorf("unknown node: %v, want NOT_FOUND naming it", err)
	}
	// A node that left Slurm keeps its history.
	got, err := s.ListIncidents(ctx, &apipb.ListIncidentsRequest{Node: "worker-7"})
	if err != nil || len(got.GetIncidents()) != 1 {
		t.Errorf("worker-7 (gone, with history): %v, %v", got, err)
	}
	// A known node without incidents is an empty list, not an error.
	s.ops = &storeOps{st: mustEmptyStore(t)}
	if got, err := s.ListIncidents(ctx, &apipb.ListIncidentsRequest{Node: "worker-0"}); err != nil || len(got.GetIncidents()) != 0 {
		t.Errorf("known node without incidents: %v, %v", got, err)
	}
}

func mustEmptyStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "empty.db"), store.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func TestUndrainWithOpenHardwareIncidentNeedsForce(t *testing.T) {
	s, ops, ctx := incidentServer(t)
	refreshed := 0
	s.RefreshSlurm = func(context.Context) error { refreshed++; return nil }

	_, err := s.UndrainNode(ctx, &apipb.UndrainNodeRequest{Name: "worker-0"})
	msg := status.Convert(err).Message()
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(msg, "01J0000000000000000000000B (xid 79 (drain) on gpu3)") || !strings.Contains(msg, "force") {
		t.Fatalf("undrain without force: %v, want FAILED_PRECONDITION naming the incident", err)
	}
	if len(ops.recorded()) != 0 || refreshed != 0 {
		t.Fatalf("refused undrain reached the engine (%v) or refreshed Slurm (%d)", ops.recorded(), refreshed)
	}

	resp, err := s.UndrainNode(ctx, &apipb.UndrainNodeRequest{Name: "worker-0", Force: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := ops.recorded(); !slices.Equal(got, []string{"undrain worker-0 by alice"}) {
		t.Errorf("engine calls %v", got)
	}
	if ids := resp.GetOverriddenIncidents(); len(ids) != 1 || ids[0].GetId() != "01J0000000000000000000000B" {
		t.Errorf("overridden incidents %v, want the XID 79 one", ids)
	}
	if refreshed != 1 {
		t.Errorf("Slurm read %d times after the undrain, want 1", refreshed)
	}
}

// breakerOps is storeOps whose remediation has paused automatic drains.
type breakerOps struct{ storeOps }

func (*breakerOps) AutomaticDrains() (bool, string, bool, bool) {
	return true, "refused automatic drains of worker-3 (2 of 8 nodes drained by us, limit 2; ...)", false, true
}

func TestListNodesShowsTheBreaker(t *testing.T) {
	s, ops, ctx := incidentServer(t)
	if got, err := s.ListNodes(ctx, &apipb.ListNodesRequest{}); err != nil || got.GetRemediation() != nil {
		t.Errorf("without remediation: %v, %v; want no remediation state", got.GetRemediation(), err)
	}
	s.ops = &breakerOps{storeOps: storeOps{st: ops.st}}
	got, err := s.ListNodes(ctx, &apipb.ListNodesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if r := got.GetRemediation(); !r.GetAutomaticDrainsPaused() || !strings.Contains(r.GetPausedReason(), "worker-3") {
		t.Errorf("remediation %v, want paused naming worker-3", r)
	}
}
