package auth

import (
	"google.golang.org/grpc/health/grpc_health_v1"

	"github.com/sopilot/sopilot/pkg/agentpb"
	"github.com/sopilot/sopilot/pkg/apipb"
)

// Rule is what a method requires of its caller.
type Rule struct {
	// Public methods need no credentials (health checks, reflection).
	Public bool
	// AgentOnly methods may be called only by node agents.
	AgentOnly bool
	// Role is the least role a user needs; unused for Public and
	// AgentOnly methods.
	Role Role
}

// RuleFor returns the Rule of a gRPC full method name
// ("/sopilot.api.v1.RunService/CreateRun"), and false for a method the
// table does not list, which the interceptors deny.
func RuleFor(fullMethod string) (Rule, bool) {
	r, ok := policy[fullMethod]
	return r, ok
}

// policy maps every gRPC full method name the controller serves to its
// Rule. A method not in the table is denied to everyone except in insecure
// mode; a test fails when a generated method is missing.
var policy = map[string]Rule{
	apipb.RunService_CreateRun_FullMethodName:        {Role: RoleSubmitter},
	apipb.RunService_GetRun_FullMethodName:           {Role: RoleViewer},
	apipb.RunService_ListRuns_FullMethodName:         {Role: RoleViewer},
	apipb.RunService_CancelRun_FullMethodName:        {Role: RoleSubmitter}, // the handler restricts submitters to their own runs (CheckOwner)
	apipb.RunService_WatchRun_FullMethodName:         {Role: RoleViewer},
	apipb.RunService_GetRunLogs_FullMethodName:       {Role: RoleViewer},
	apipb.RunService_ReportRunResults_FullMethodName: {Role: RoleSubmitter},

	apipb.NodeService_ListNodes_FullMethodName:     {Role: RoleViewer},
	apipb.NodeService_GetNode_FullMethodName:       {Role: RoleViewer},
	apipb.NodeService_WatchNodes_FullMethodName:    {Role: RoleViewer},
	apipb.NodeService_DrainNode_FullMethodName:     {Role: RoleOperator},
	apipb.NodeService_UndrainNode_FullMethodName:   {Role: RoleOperator},
	apipb.NodeService_RunNodeCheck_FullMethodName:  {Role: RoleOperator},
	apipb.NodeService_ListIncidents_FullMethodName: {Role: RoleViewer},

	apipb.ComparisonService_CompareRuns_FullMethodName:      {Role: RoleViewer},
	apipb.ComparisonService_CompareRunGroups_FullMethodName: {Role: RoleViewer},

	agentpb.AgentService_Connect_FullMethodName: {AgentOnly: true},

	grpc_health_v1.Health_Check_FullMethodName:                       {Public: true},
	grpc_health_v1.Health_List_FullMethodName:                        {Public: true},
	grpc_health_v1.Health_Watch_FullMethodName:                       {Public: true},
	"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo":      {Public: true},
	"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": {Public: true},
}
