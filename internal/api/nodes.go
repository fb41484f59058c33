package api

import (
	"context"
	"fmt"
	"log/slog"

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
	Snapshots() []fleet.NodeView
	Snapshot(name string) (fleet.NodeView, bool)
	Watch(ctx context.Context, names []string, send func(fleet.NodeView) error) error
}

var _ Nodes = (*fleet.Fleet)(nil)

// NodeServer implements NodeService. The zero value answers UNIMPLEMENTED;
// operations (drain, undrain, checks, incidents) need NodeOps as well.
type NodeServer struct {
	apipb.UnimplementedNodeServiceServer
	nodes Nodes
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
	return &NodeServer{nodes: nodes, ops: ops, log: logger.With("component", "api")}
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

// ListNodes returns every Slurm node, with the machine it runs on and
// what that machine's agent reports, and every machine whose agent reports
// but that no Slurm node maps to (unmapped), by name.
func (s *NodeServer) ListNodes(ctx context.Context, _ *apipb.ListNodesRequest) (*apipb.ListNodesResponse, error) {
	if err := s.ready(); err != nil {
		return nil, err
	}
	views := s.nodes.Snapshots()
	out := &apipb.ListNodesResponse{Nodes: make([]*apipb.Node, 0, len(views)), Remediation: s.remediation()}
	xids := s.openXIDs(ctx, "")
	for _, v := range views {
		n := NodeToProto(v)
		addXIDs(n, xids[v.Name])
		out.Nodes = append(out.Nodes, n)
	}
	return out, nil
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
	v, ok := s.nodes.Snapshot(req.GetName())
	if !ok {
		return nil, nodeNotFound(req.GetName())
	}
	n := NodeToProto(v)
	addXIDs(n, s.openXIDs(ctx, v.Name)[v.Name])
	return &apipb.GetNodeResponse{Node: n}, nil
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
	err := s.nodes.Watch(stream.Context(), req.GetNames(), func(v fleet.NodeView) error {
		return stream.Send(&apipb.WatchNodesResponse{Node: NodeToProto(v)})
	})
	if stream.Context().Err() != nil {
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
