package auth

import (
	"fmt"

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
	// Runs says what the method does to existing runs.
	Runs RunAccess
	// AnyRun, for RunWrite methods, is the least role that may write runs
	// the caller did not create. A caller with Role but not AnyRun writes
	// only runs it created; nobody but AnyRun writes a run created with no
	// owner (insecure mode, records older than ownership).
	AnyRun Role
	// Cost is how many rate-limit tokens a call takes (0 means 1): calls
	// that walk the whole fleet or many runs, start Slurm jobs or hold
	// a stream open cost more, so that a caller's budget of cheap calls
	// is not also a budget of as many expensive ones.
	Cost int
}

// Costs of the expensive methods (Rule.Cost), in cheap calls: a list or
// watch of every node reads and encodes up to ~10,000 node records; a
// comparison reads the results of many runs; a node check runs NCCL on a
// node for minutes.
const (
	costList      = 10
	costCompare   = 10
	costStream    = 5
	costSubmit    = 5
	costNodeCheck = 50
)

// RunAccess says what a method does to the existing runs its request
// names. Every method whose request names a run declares it; a test walks
// the generated request messages to make sure.
type RunAccess int

const (
	// RunNone: the request names no existing run.
	RunNone RunAccess = iota
	// RunRead: reads the runs it names; Role is enough.
	RunRead
	// RunWrite: changes the run named by the request's run_id field (its
	// state, results or labels). The Authorizer checks ownership before
	// the handler sees the request (unary) or each message naming a run
	// (streams): see Rule.AnyRun.
	RunWrite
	// RunWriteAssigned: an agent's stream reports progress of runs; the
	// fleet keeps only progress for runs whose jobs run on the agent's
	// own node (the node binding is CheckAgentNode), because run
	// assignments live there, not in the run's owner.
	RunWriteAssigned
)

// String names the access as docs/api.md does.
func (a RunAccess) String() string {
	switch a {
	case RunNone:
		return "none"
	case RunRead:
		return "read"
	case RunWrite:
		return "write"
	case RunWriteAssigned:
		return "write-assigned"
	}
	return fmt.Sprintf("RunAccess(%d)", int(a))
}

// RuleFor returns the Rule of a gRPC full method name
// ("/sopilot.api.v1.RunService/CreateRun"), and false for a method the
// table does not list, which the interceptors deny.
func RuleFor(fullMethod string) (Rule, bool) {
	r, ok := policy[fullMethod]
	return r, ok
}

// ownRuns is the rule of a method that writes an existing run: submitters
// write their own runs, operators and admins anyone's.
var ownRuns = Rule{Role: RoleSubmitter, Runs: RunWrite, AnyRun: RoleOperator}

// policy maps every gRPC full method name the controller serves to its
// Rule. A method not in the table is denied to everyone except in insecure
// mode; a test fails when a generated method is missing, and when a
// method whose request names a run does not say what it does to it.
var policy = map[string]Rule{
	apipb.RunService_CreateRun_FullMethodName:        {Role: RoleSubmitter, Runs: RunRead, Cost: costSubmit}, // reads the runs it depends on
	apipb.RunService_GetRun_FullMethodName:           {Role: RoleViewer, Runs: RunRead},
	apipb.RunService_ListRuns_FullMethodName:         {Role: RoleViewer, Runs: RunRead, Cost: costList},
	apipb.RunService_CancelRun_FullMethodName:        ownRuns,
	apipb.RunService_WatchRun_FullMethodName:         {Role: RoleViewer, Runs: RunRead, Cost: costStream},
	apipb.RunService_GetRunLogs_FullMethodName:       {Role: RoleViewer, Runs: RunRead, Cost: costStream},
	apipb.RunService_ReportRunResults_FullMethodName: ownRuns,

	apipb.NodeService_ListNodes_FullMethodName:     {Role: RoleViewer, Cost: costList},
	apipb.NodeService_GetNode_FullMethodName:       {Role: RoleViewer},
	apipb.NodeService_WatchNodes_FullMethodName:    {Role: RoleViewer, Cost: costList},
	apipb.NodeService_DrainNode_FullMethodName:     {Role: RoleOperator},
	apipb.NodeService_UndrainNode_FullMethodName:   {Role: RoleOperator},
	apipb.NodeService_RunNodeCheck_FullMethodName:  {Role: RoleOperator, Cost: costNodeCheck},
	apipb.NodeService_ListIncidents_FullMethodName: {Role: RoleViewer, Runs: RunRead, Cost: costList},

	apipb.ComparisonService_CompareRuns_FullMethodName:      {Role: RoleViewer, Runs: RunRead, Cost: costCompare},
	apipb.ComparisonService_CompareRunGroups_FullMethodName: {Role: RoleViewer, Runs: RunRead, Cost: costCompare},

	agentpb.AgentService_Connect_FullMethodName: {AgentOnly: true, Runs: RunWriteAssigned},

	grpc_health_v1.Health_Check_FullMethodName:                       {Public: true},
	grpc_health_v1.Health_List_FullMethodName:                        {Public: true},
	grpc_health_v1.Health_Watch_FullMethodName:                       {Public: true},
	"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo":      {Public: true},
	"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": {Public: true},
}
