package api

import (
	"github.com/sopilot/sopilot/pkg/agentpb"
	"github.com/sopilot/sopilot/pkg/apipb"
)

// The services below are part of the published API so that clients and
// grpcurl see them today; each answers UNIMPLEMENTED until its feature lands.

// NodeServer will serve node health and remediation.
type NodeServer struct {
	apipb.UnimplementedNodeServiceServer
}

// AgentServer will accept node agents' streams.
type AgentServer struct {
	agentpb.UnimplementedAgentServiceServer
}
