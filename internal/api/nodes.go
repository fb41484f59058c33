package api

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sopilot/sopilot/internal/fleet"
	"github.com/sopilot/sopilot/internal/run"
	"github.com/sopilot/sopilot/internal/telemetry"
	"github.com/sopilot/sopilot/pkg/apipb"
)

// Nodes is what the read side of NodeService needs.
type Nodes interface {
	// Index is every node without telemetry, with its verdict, in name
	// order.
	Index() []fleet.NodeView
	Snapshot(name string) (fleet.NodeView, bool)
}

var _ Nodes = (*fleet.Fleet)(nil)

// NodeServer implements NodeService. The zero value answers UNIMPLEMENTED;
// operations (drain, undrain, checks, incidents) need NodeOps as well.
type NodeServer struct {
	apipb.UnimplementedNodeServiceServer
	nodes Nodes
	hub   *nodeHub
	ops   NodeOps
	log   *slog.Logger
	// RefreshSlurm, when set, reads Slurm's node states into Nodes and
	// returns once they are there. Drains and undrains call it, so that
	// their answer and the next ListNodes show Slurm's new state rather
	// than the last periodic read's.
	RefreshSlurm func(ctx context.Context) error
}

// NewNodeServer builds the NodeService handlers; ops may be nil.
func NewNodeServer(nodes Nodes, ops NodeOps, logger *slog.Logger) *NodeServer {
	return &NodeServer{nodes: nodes, hub: newNodeHub(nodes), ops: ops, log: logger.With("component", "api")}
}

func (s *NodeServer) ready() error {
	if s.nodes == nil {
		return status.Error(codes.Unimplemented, "this controller does not track nodes")
	}
	return nil
}

func requireNodeName(name string) error {
	if name == "" {
		return badRequest("name is required", run.FieldViolation{Field: "name", Description: "required: a Slurm node name, e.g. worker-0"})
	}
	if !fleet.ValidNodeName(name) {
		return badRequest(fmt.Sprintf("name %q is not a node name", name), run.FieldViolation{Field: "name", Description: "letters, digits, '.', '_' and '-', starting with a letter or digit, at most 253 characters"})
	}
	return nil
}

// ListNodes returns a page of the Slurm nodes, with the machine each runs
// on and what that machine's agent reports, and of the machines whose
// agent reports but that no Slurm node maps to (unmapped), by name.
func (s *NodeServer) ListNodes(ctx context.Context, req *apipb.ListNodesRequest) (*apipb.ListNodesResponse, error) {
	if err := s.ready(); err != nil {
		return nil, err
	}
	size := int(req.GetPageSize())
	switch {
	case size < 0:
		return nil, badRequest(fmt.Sprintf("page_size %d is negative", size), run.FieldViolation{Field: "page_size", Description: fmt.Sprintf("0 (%d) to %d; larger is %d", defaultNodePageSize, maxNodePageSize, maxNodePageSize)})
	case size == 0:
		size = defaultNodePageSize
	case size > maxNodePageSize:
		size = maxNodePageSize
	}
	if err := checkView(req.GetView()); err != nil {
		return nil, err
	}
	filter, err := parseNodeFilter(req.GetFilter())
	if err != nil {
		return nil, filterViolation(err)
	}
	after, err := parseNodePageToken(req.GetPageToken(), req.GetFilter())
	if err != nil {
		return nil, err
	}
	var names []string
	for _, v := range s.nodes.Index() {
		if filter.match(v) {
			names = append(names, v.Name)
		}
	}
	start, _ := slices.BinarySearch(names, after)
	if start < len(names) && names[start] == after {
		start++
	}
	page := names[start:min(start+size, len(names))]
	out := &apipb.ListNodesResponse{Nodes: make([]*apipb.Node, 0, len(page)), Remediation: s.remediation(), TotalSize: int32(len(names))}
	if start+size < len(names) {
		out.NextPageToken = nodePageToken(req.GetFilter(), page[len(page)-1])
	}
	var xids map[string]map[int32][]int32
	if len(page) > 0 {
		xids = s.openXIDs(ctx, "")
	}
	for _, name := range page {
		v, ok := s.nodes.Snapshot(name)
		if !ok {
			continue // gone since the index was read
		}
		out.Nodes = append(out.Nodes, nodeProto(v, xids[v.Name], req.GetView()))
	}
	return out, nil
}

// checkView refuses a view this server does not know.
func checkView(v apipb.NodeView) error {
	if _, ok := apipb.NodeView_name[int32(v)]; !ok {
		return badRequest(fmt.Sprintf("view %d is not a NodeView", v), run.FieldViolation{Field: "view", Description: "NODE_VIEW_BASIC or NODE_VIEW_FULL (the default)"})
	}
	return nil
}

// nodeProto is v in the view asked for, with its GPUs' open XIDs.
func nodeProto(v fleet.NodeView, xids map[int32][]int32, view apipb.NodeView) *apipb.Node {
	n := NodeToProto(v)
	if view == apipb.NodeView_NODE_VIEW_BASIC {
		n.Gpus, n.IbPorts = nil, nil
		return n
	}
	addXIDs(n, xids)
	return n
}

// automaticDrains is the monitor's view of its remediation engine.
type automaticDrains interface {
	AutomaticDrains() (paused bool, why string, dryRun bool, ok bool)
}

// remediation is the state of automatic drains, nil when the controller
// runs none.
func (s *NodeServer) remediation() *apipb.Remediation {
	ad, ok := s.ops.(automaticDrains)
	if !ok {
		return nil
	}
	paused, why, dry, running := ad.AutomaticDrains()
	if !running {
		return nil
	}
	return &apipb.Remediation{AutomaticDrainsPaused: paused, PausedReason: why, DryRun: dry}
}

// GetNode returns one node.
func (s *NodeServer) GetNode(ctx context.Context, req *apipb.GetNodeRequest) (*apipb.GetNodeResponse, error) {
	if err := s.ready(); err != nil {
		return nil, err
	}
	if err := requireNodeName(req.GetName()); err != nil {
		return nil, err
	}
	if err := checkView(req.GetView()); err != nil {
		return nil, err
	}
	v, ok := s.nodes.Snapshot(req.GetName())
	if !ok {
		return nil, nodeNotFound(req.GetName())
	}
	var xids map[int32][]int32
	if req.GetView() != apipb.NodeView_NODE_VIEW_BASIC {
		xids = s.openXIDs(ctx, v.Name)[v.Name]
	}
	return &apipb.GetNodeResponse{Node: nodeProto(v, xids, req.GetView())}, nil
}

func nodeNotFound(name string) error {
	return status.Errorf(codes.NotFound, "node %q not found: no agent has reported it and Slurm does not list it", name)
}

// WatchNodes streams nodes as they change.
func (s *NodeServer) WatchNodes(req *apipb.WatchNodesRequest, stream grpc.ServerStreamingServer[apipb.WatchNodesResponse]) error {
	if err := s.ready(); err != nil {
		return err
	}
	for i, n := range req.GetNames() {
		if !fleet.ValidNodeName(n) {
			return badRequest(fmt.Sprintf("names[%d] %q is not a node name", i, n), run.FieldViolation{Field: fmt.Sprintf("names[%d]", i), Description: "a Slurm node name"})
		}
	}
	if err := checkView(req.GetView()); err != nil {
		return err
	}
	ctx := stream.Context()
	w := newNodeWatcher(req.GetNames(), req.GetView())
	s.hub.join(w)
	defer s.hub.leave(w)
	// Every node once. A queued update of a node is older than the
	// snapshot taken after dropping it; the hub publishes whatever
	// changes later.
	for _, v := range s.nodes.Index() {
		if !w.wants(v.Name) {
			continue
		}
		w.drop(v.Name)
		snap, ok := s.nodes.Snapshot(v.Name)
		if !ok {
			continue
		}
		if err := stream.Send(&apipb.WatchNodesResponse{Node: nodeProto(snap, nil, req.GetView())}); err != nil {
			return watchEnd(ctx, err)
		}
	}
	for {
		u, err := w.next(ctx)
		if err != nil {
			return watchEnd(ctx, err)
		}
		if err := stream.SendMsg(u.message(stream, req.GetView())); err != nil {
			return watchEnd(ctx, err)
		}
	}
}

// watchEnd is nil when the watcher went away, else err.
func watchEnd(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}

var verdicts = map[string]apipb.HealthVerdict{
	"HEALTHY":   apipb.HealthVerdict_HEALTH_VERDICT_HEALTHY,
	"DEGRADED":  apipb.HealthVerdict_HEALTH_VERDICT_DEGRADED,
	"UNHEALTHY": apipb.HealthVerdict_HEALTH_VERDICT_UNHEALTHY,
	"UNKNOWN":   apipb.HealthVerdict_HEALTH_VERDICT_UNKNOWN,
}

// busyUtilizationPercent is the utilization from which a GPU counts as
// busy in NodeSummary (as does one with a Slurm job on it).
const busyUtilizationPercent = 10

// NodeToProto converts a fleet snapshot to the API's Node.
func NodeToProto(v fleet.NodeView) *apipb.Node {
	n := &apipb.Node{
		Name:           v.Name,
		Verdict:        verdicts[v.Verdict.Verdict],
		VerdictReasons: v.Verdict.Reasons,
		AgentConnected: v.Connected,
		LastSeenTime:   ts(v.LastSeen),
		Simulated:      v.Inventory.Simulated,
		DriverVersion:  v.Inventory.DriverVersion,
		NcclVersion:    v.Inventory.NCCLVersion,
		CudaVersion:    v.Inventory.CUDAVersion,
		RunIds:         v.RunIDs,
		AgentVersion:   v.AgentVersion,
		BootId:         v.BootID,
		Machine:        v.Machine,
		Unmapped:       v.Unmapped,
		// What the agent last said, not what the GPUs do now.
		TelemetryStale: !v.LastSeen.IsZero() && (!v.Connected || v.Silent),
	}
	if v.Slurm != nil {
		n.SlurmState, n.SlurmReason = v.Slurm.StateString(), v.Slurm.Reason
	}
	sum := &apipb.NodeSummary{}
	n.Summary = sum
	samples := make(map[int]*telemetry.GPUSample, len(v.GPUs))
	for i := range v.GPUs {
		samples[v.GPUs[i].Index] = &v.GPUs[i]
	}
	for _, info := range v.Inventory.GPUs {
		g := &apipb.Gpu{Index: int32(info.Index), Uuid: info.UUID, Model: info.Model, MemoryTotalBytes: info.MemoryTotalBytes}
		if s := samples[info.Index]; s != nil {
			// A lost GPU is reported with its index and uuid only.
			g.Present = s.SMUtilizationPercent != nil || s.TemperatureCelsius != nil || s.MemoryUsedBytes != nil
			g.UtilizationPercent = deref(s.SMUtilizationPercent)
			g.MemoryUsedBytes = deref(s.MemoryUsedBytes)
			g.TemperatureCelsius = deref(s.TemperatureCelsius)
			g.MemoryTemperatureCelsius = deref(s.MemoryTemperatureCelsius)
			g.PowerMilliwatts = deref(s.PowerMilliwatts)
			g.PowerLimitMilliwatts = deref(s.PowerLimitMilliwatts)
			g.ThrottleReasons = deref(s.ThrottleReasons)
			g.EccVolatileUncorrected = deref(s.ECCVolatileUncorrected)
			g.RowRemapFailure = s.RowRemapFailure
			g.SlurmJobId = s.SlurmJobID
		}
		n.Gpus = append(n.Gpus, g)
		sum.GpuCount++
		if g.Present {
			sum.GpusPresent++
			if g.UtilizationPercent >= busyUtilizationPercent || g.SlurmJobId != "" {
				sum.GpusBusy++
			}
			sum.MeanUtilizationPercent += g.UtilizationPercent
			sum.MaxTemperatureCelsius = max(sum.MaxTemperatureCelsius, g.TemperatureCelsius)
			sum.PowerMilliwatts += g.PowerMilliwatts
		}
	}
	if sum.GpusPresent > 0 {
		sum.MeanUtilizationPercent /= float64(sum.GpusPresent)
	}
	for _, p := range v.IBPorts {
		n.IbPorts = append(n.IbPorts, &apipb.IbPort{
			Name:          fmt.Sprintf("%s/%d", p.Device, p.Port),
			State:         p.State,
			PhysState:     p.PhysState,
			RateGbps:      p.RateGbps,
			SymbolErrors:  p.Counters.SymbolError,
			LinkDowned:    p.Counters.LinkDowned,
			PortRcvErrors: p.Counters.PortRcvErrors,
		})
		sum.IbPortCount++
		if strings.EqualFold(p.State, "ACTIVE") {
			sum.IbPortsActive++
		}
	}
	return n
}

// deref is *p, or the zero value for a field the GPU does not report.
func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
