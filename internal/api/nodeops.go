package api

import (
	"context"

	"github.com/sopilot/sopilot/pkg/apipb"
)

// NodeOps are NodeService's operations: drains, checks and incidents.
type NodeOps interface {
	DrainNode(ctx context.Context, req *apipb.DrainNodeRequest) (*apipb.DrainNodeResponse, error)
	UndrainNode(ctx context.Context, req *apipb.UndrainNodeRequest) (*apipb.UndrainNodeResponse, error)
	RunNodeCheck(ctx context.Context, req *apipb.RunNodeCheckRequest) (*apipb.RunNodeCheckResponse, error)
	ListIncidents(ctx context.Context, req *apipb.ListIncidentsRequest) (*apipb.ListIncidentsResponse, error)
}
