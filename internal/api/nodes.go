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
	"github.com/sopilot/sopilot/pkg/agentpb"
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

// ListNodes returns every node an agent or Slurm knows, by name.
func (s *NodeServer) ListNodes(ctx context.Context, _ *apipb.ListNodesRequest) (*apipb.ListNodesResponse, error) {
	if err := s.ready(); err != nil {
		return nil, err
	}
	views := s.nodes.Snapshots()
	out := &apipb.ListNodesResponse{Nodes: make([]*apipb.Node, 0, len(views))}
	for _, v := range views {
		out.Nodes = append(out.Nodes, NodeToProto(v))
	}
	return out, nil
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
		return nil, status.Errorf(codes.NotFound, "node %q: no agent has reported it and Slurm does not list it", req.GetName())
	}
	return &apipb.GetNodeResponse{Node: NodeToProto(v)}, nil
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
		Simulated:      v.Inventory.GetSimulated(),
		DriverVersion:  v.Inventory.GetDriverVersion(),
		NcclVersion:    v.Inventory.GetNcclVersion(),
		CudaVersion:    v.Inventory.GetCudaVersion(),
		RunIds:         v.RunIDs,
		AgentVersion:   v.AgentVersion,
		BootId:         v.BootID,
	}
	if v.Slurm != nil {
		n.SlurmState, n.SlurmReason = v.Slurm.StateString(), v.Slurm.Reason
	}
	samples := map[int32]*agentpb.GpuSample{}
	for _, g := range v.GPUs {
		samples[g.GetIndex()] = g
	}
	for _, info := range v.Inventory.GetGpus() {
		g := &apipb.Gpu{Index: info.GetIndex(), Uuid: info.GetUuid(), Model: info.GetModel(), MemoryTotalBytes: info.GetMemoryTotalBytes()}
		if s := samples[info.GetIndex()]; s != nil {
			g.Present = true
			g.UtilizationPercent = s.GetSmUtilizationPercent()
			g.MemoryUsedBytes = s.GetMemoryUsedBytes()
			g.TemperatureCelsius = s.GetTemperatureCelsius()
			g.MemoryTemperatureCelsius = s.GetMemoryTemperatureCelsius()
			g.PowerMilliwatts = s.GetPowerMilliwatts()
			g.PowerLimitMilliwatts = s.GetPowerLimitMilliwatts()
			g.ThrottleReasons = s.GetThrottleReasons()
			g.EccVolatileUncorrected = s.GetEccVolatileUncorrected()
			g.RowRemapFailure = s.RowRemapFailure
			for _, p := range s.GetProcesses() {
				if p.GetSlurmJobId() != "" {
					g.SlurmJobId = p.GetSlurmJobId()
					break
				}
			}
			// A lost GPU is reported with its index and uuid only.
			if s.SmUtilizationPercent == nil && s.TemperatureCelsius == nil && s.MemoryUsedBytes == nil {
				g.Present = false
			}
		}
		n.Gpus = append(n.Gpus, g)
	}
	for _, p := range v.IBPorts {
		n.IbPorts = append(n.IbPorts, &apipb.IbPort{
			Name:          fmt.Sprintf("%s/%d", p.GetDevice(), p.GetPort()),
			State:         p.GetState(),
			PhysState:     p.GetPhysState(),
			RateGbps:      p.GetRateGbps(),
			SymbolErrors:  p.GetCounters().GetSymbolError(),
			LinkDowned:    p.GetCounters().GetLinkDowned(),
			PortRcvErrors: p.GetCounters().GetPortRcvErrors(),
		})
	}
	return n
}
