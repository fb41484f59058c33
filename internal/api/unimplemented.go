package api

import (
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sopilot/sopilot/pkg/agentpb"
)

// AgentServer accepts node agents' streams. The zero value answers
// UNIMPLEMENTED (a controller built without a fleet).
type AgentServer struct {
	agentpb.UnimplementedAgentServiceServer
	agents Agents
}

// Agents serves the agent stream.
type Agents interface {
	Connect(agentpb.AgentService_ConnectServer) error
}

// NewAgentServer builds the AgentService handler.
func NewAgentServer(a Agents) *AgentServer { return &AgentServer{agents: a} }

// Connect hands the stream to the fleet.
func (s *AgentServer) Connect(stream grpc.BidiStreamingServer[agentpb.ConnectRequest, agentpb.ConnectResponse]) error {
	if s.agents == nil {
		return status.Error(codes.Unimplemented, "this controller does not accept node agents")
	}
	return s.agents.Connect(stream)
}
