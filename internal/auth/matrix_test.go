package auth_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/sopilot/sopilot/internal/auth"
	"github.com/sopilot/sopilot/internal/tlsutil/tlstest"
	"github.com/sopilot/sopilot/pkg/agentpb"
	"github.com/sopilot/sopilot/pkg/apipb"
)

// serviceDescs are the services the controller registers.
var serviceDescs = []grpc.ServiceDesc{
	apipb.RunService_ServiceDesc,
	apipb.NodeService_ServiceDesc,
	apipb.ComparisonService_ServiceDesc,
	agentpb.AgentService_ServiceDesc,
}

type rpc struct {
	method string
	stream *grpc.StreamDesc // nil for unary
}

func allRPCs() []rpc {
	var out []rpc
	for _, sd := range serviceDescs {
		for _, m := range sd.Methods {
			out = append(out, rpc{method: "/" + sd.ServiceName + "/" + m.MethodName})
		}
		for i := range sd.Streams {
			s := sd.Streams[i]
			out = append(out, rpc{method: "/" + sd.ServiceName + "/" + s.StreamName, stream: &s})
		}
	}
	return out
}

// expected is the access each RPC should have, written out independently
// of the policy table so that a change to either shows up here.
// "agent" marks agent-only methods.
var expected = map[string]string{
	"/sopilot.api.v1.RunService/CreateRun":               "submitter",
	"/sopilot.api.v1.RunService/GetRun":                  "viewer",
	"/sopilot.api.v1.RunService/ListRuns":                "viewer",
	"/sopilot.api.v1.RunService/CancelRun":               "submitter",
	"/sopilot.api.v1.RunService/WatchRun":                "viewer",
	"/sopilot.api.v1.RunService/GetRunLogs":              "viewer",
	"/sopilot.api.v1.RunService/ReportRunResults":        "submitter",
	"/sopilot.api.v1.NodeService/ListNodes":              "viewer",
	"/sopilot.api.v1.NodeService/GetNode":                "viewer",
	"/sopilot.api.v1.NodeService/WatchNodes":             "viewer",
	"/sopilot.api.v1.NodeService/DrainNode":              "operator",
	"/sopilot.api.v1.NodeService/UndrainNode":            "operator",
	"/sopilot.api.v1.NodeService/RunNodeCheck":           "operator",
	"/sopilot.api.v1.NodeService/ListIncidents":          "viewer",
	"/sopilot.api.v1.ComparisonService/CompareRuns":      "viewer",
	"/sopilot.api.v1.ComparisonService/CompareRunGroups": "viewer",
	"/sopilot.agent.v1.AgentService/Connect":             "agent",
}

func TestEveryGeneratedMethodHasARule(t *testing.T) {
	for _, r := range allRPCs() {
		if _, ok := auth.RuleFor(r.method); !ok {
			t.Errorf("%s has no authorization rule: add it to the policy table in policy.go", r.method)
		}
		if _, ok := expected[r.method]; !ok {
			t.Errorf("%s is missing from this test's expected table", r.method)
		}
	}
	if got, want := len(allRPCs()), len(expected); got != want {
		t.Errorf("generated RPCs = %d, expected table has %d", got, want)
	}
	for _, m := range []string{healthpb.Health_Check_FullMethodName, healthpb.Health_Watch_FullMethodName, "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"} {
		if r, ok := auth.RuleFor(m); !ok || !r.Public {
			t.Errorf("RuleFor(%s) = %+v, %v; want public", m, r, ok)
		}
	}
	if _, ok := auth.RuleFor("/sopilot.api.v1.RunService/DeleteEverything"); ok {
		t.Error("an unknown method has a rule")
	}
}

// call invokes r with an empty message and returns the status code; an
// allowed call reaches an Unimplemented stub.
func call(ctx context.Context, conn *grpc.ClientConn, r rpc) codes.Code {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if r.stream == nil {
		return status.Code(conn.Invoke(ctx, r.method, &emptypb.Empty{}, &emptypb.Empty{}))
	}
	cs, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: r.stream.ServerStreams, ClientStreams: r.stream.ClientStreams}, r.method)
	if err != nil {
		return status.Code(err)
	}
	if err := cs.SendMsg(&emptypb.Empty{}); err != nil && err.Error() != "EOF" {
		return status.Code(err)
	}
	_ = cs.CloseSend()
	return status.Code(cs.RecvMsg(&emptypb.Empty{}))
}

// TestPolicyMatrix calls every RPC as every kind of caller through a real
// gRPC server over TLS and checks exactly who gets through.
func TestPolicyMatrix(t *testing.T) {
	ca := tlstest.NewCA(t)
	tf, err := auth.NewTokenFile(writeTokenFile(t), auth.TokenFileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	logger, logs := newLogger()
	a, err := auth.New(auth.Config{Tokens: tf, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	addr := startServer(t, a, ca, stubs{})
	agentPair := ca.Agent(t, "worker-0")
	plainPair := ca.Client(t, "alice")
	anon := dial(t, addr, ca, nil)
	agentConn := dial(t, addr, ca, &agentPair)
	plainConn := dial(t, addr, ca, &plainPair)

	type caller struct {
		name  string
		conn  *grpc.ClientConn
		token string
		role  auth.Role // for users
		agent bool
	}
	callers := []caller{
		{name: "unauthenticated", conn: anon},
		{name: "non-agent client certificate", conn: plainConn},
		{name: "unknown token", conn: anon, token: "unknown-token-0123456789abcdefghijklmnop"},
		{name: "agent", conn: agentConn, agent: true},
	}
	for _, r := range []auth.Role{auth.RoleViewer, auth.RoleSubmitter, auth.RoleOperator, auth.RoleAdmin} {
		callers = append(callers, caller{name: r.String(), conn: anon, token: roleTokens[r], role: r})
		// A token wins over the agent certificate on the same connection.
		callers = append(callers, caller{name: r.String() + " on an agent connection", conn: agentConn, token: roleTokens[r], role: r})
	}
	roleOf := map[string]auth.Role{"viewer": auth.RoleViewer, "submitter": auth.RoleSubmitter, "operator": auth.RoleOperator}
	for _, c := range callers {
		for _, r := range allRPCs() {
			need := expected[r.method]
			var want codes.Code
			switch {
			case c.token == "" && !c.agent:
				want = codes.Unauthenticated
			case c.token != "" && c.role == auth.RoleNone:
				want = codes.Unauthenticated
			case c.agent && c.token == "":
				want = map[bool]codes.Code{true: codes.Unimplemented, false: codes.PermissionDenied}[need == "agent"]
			case need == "agent":
				want = codes.PermissionDenied
			default:
				want = map[bool]codes.Code{true: codes.Unimplemented, false: codes.PermissionDenied}[c.role >= roleOf[need] || c.role == auth.RoleAdmin]
			}
			ctx := ctxWithCancel(t)
			if c.token != "" {
				ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+c.token)
			}
			if got := call(ctx, c.conn, r); got != want {
				t.Errorf("%s calling %s: code %v, want %v", c.name, r.method, got, want)
			}
		}
	}
	// Health is public.
	resp, err := healthpb.NewHealthClient(anon).Check(ctxWithCancel(t), &healthpb.HealthCheckRequest{})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("unauthenticated health check = %v, %v; want SERVING", resp, err)
	}
	for _, tok := range roleTokens {
		if s := logs.String(); containsToken(s, tok) {
			t.Errorf("log output contains a token:\n%s", s)
		}
	}
}

func containsToken(s, token string) bool {
	return strings.Contains(s, token) || strings.Contains(s, token[:16])
}

func TestErrorMessagesSayWhatToDo(t *testing.T) {
	ca := tlstest.NewCA(t)
	a := tokenAuthorizer(t, auth.Config{Logger: discard()})
	addr := startServer(t, a, ca, stubs{})
	conn := dial(t, addr, ca, nil)
	runs := apipb.NewRunServiceClient(conn)
	nodes := apipb.NewNodeServiceClient(conn)

	_, err := runs.ListRuns(ctxWithCancel(t), &apipb.ListRunsRequest{})
	wantStatus(t, err, codes.Unauthenticated, "send 'authorization: Bearer <token>'")

	ctx := metadata.AppendToOutgoingContext(ctxWithCancel(t), "authorization", "Basic dXNlcjpwYXNz")
	_, err = runs.ListRuns(ctx, &apipb.ListRunsRequest{})
	wantStatus(t, err, codes.Unauthenticated, "not a bearer token; send 'authorization: Bearer <token>'")

	ctx = metadata.AppendToOutgoingContext(ctxWithCancel(t), "authorization", "Bearer "+roleTokens[auth.RoleViewer])
	_, err = nodes.DrainNode(ctx, &apipb.DrainNodeRequest{})
	wantStatus(t, err, codes.PermissionDenied, fmt.Sprintf("%s requires role operator; caller \"viewer-user\" has role viewer", apipb.NodeService_DrainNode_FullMethodName))
	if strings.Contains(err.Error(), roleTokens[auth.RoleViewer]) {
		t.Errorf("error contains the token: %v", err)
	}

	stream, err := agentpb.NewAgentServiceClient(conn).Connect(ctxWithCancel(t))
	if err == nil {
		_, err = stream.Recv()
	}
	wantStatus(t, err, codes.Unauthenticated, "no agent credentials; node agents must send their pod's service account token")
}

func wantStatus(t *testing.T, err error, code codes.Code, msg string) {
	t.Helper()
	st := status.Convert(err)
	if st.Code() != code || st.Message() != msg && !strings.Contains(st.Message(), msg) {
		t.Errorf("status = %v %q; want %v containing %q", st.Code(), st.Message(), code, msg)
	}
}
