package auth_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/sopilot/sopilot/internal/auth"
	"github.com/sopilot/sopilot/internal/tlsutil/tlstest"
	"github.com/sopilot/sopilot/pkg/agentpb"
)

func bearer(tok string) context.Context {
	return metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+tok))
}

func TestRateLimitPerIdentity(t *testing.T) {
	tf, err := auth.NewTokenFile(writeTokenFile(t), auth.TokenFileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	a, err := auth.New(auth.Config{Tokens: tf, RateLimit: auth.RateLimit{Rate: 1, Burst: 2}, Logger: discard(), Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	const m = "/sopilot.api.v1.RunService/GetRun"
	viewer, admin := roleTokens[auth.RoleViewer], roleTokens[auth.RoleAdmin]
	for i := range 2 {
		if _, err := a.Authorize(bearer(viewer), m); err != nil {
			t.Fatalf("call %d: %v", i+1, err)
		}
	}
	_, err = a.Authorize(bearer(viewer), m)
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), `rate limit exceeded for "viewer-user" (1 calls/s, burst 2;`) {
		t.Fatalf("3rd call: %v; want ResourceExhausted", err)
	}
	if _, err := a.Authorize(bearer(admin), m); err != nil {
		t.Fatalf("another identity is limited by the first's bucket: %v", err)
	}
	now = now.Add(time.Second)
	if _, err := a.Authorize(bearer(viewer), m); err != nil {
		t.Fatalf("after refill: %v", err)
	}
	// Public methods are never limited.
	for range 5 {
		if _, err := a.Authorize(context.Background(), "/grpc.health.v1.Health/Check"); err != nil {
			t.Fatalf("health check: %v", err)
		}
	}
	if _, err := auth.New(auth.Config{Tokens: tf, RateLimit: auth.RateLimit{Rate: -1}}); err == nil {
		t.Error("negative rate accepted")
	}
}

// TestRateLimitCostWeighted: an expensive method takes more of the
// caller's budget than a cheap one, and the refusal says when to retry.
func TestRateLimitCostWeighted(t *testing.T) {
	tf, err := auth.NewTokenFile(writeTokenFile(t), auth.TokenFileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	a, err := auth.New(auth.Config{Tokens: tf, RateLimit: auth.RateLimit{Rate: 1, Burst: 12}, Logger: discard(), Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	const (
		list = "/sopilot.api.v1.NodeService/ListNodes"
		get  = "/sopilot.api.v1.RunService/GetRun"
	)
	viewer, operator := roleTokens[auth.RoleViewer], roleTokens[auth.RoleOperator]
	if _, err := a.Authorize(bearer(viewer), list); err != nil {
		t.Fatalf("first ListNodes: %v", err)
	}
	_, err = a.Authorize(bearer(viewer), list)
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("second ListNodes at once: %v; want ResourceExhausted (cost 10 of a burst of 12)", err)
	}
	var retry *errdetails.RetryInfo
	for _, d := range status.Convert(err).Details() {
		if r, ok := d.(*errdetails.RetryInfo); ok {
			retry = r
		}
	}
	if retry == nil || retry.GetRetryDelay().AsDuration() != 8*time.Second {
		t.Fatalf("retry info %v; want 8s (8 tokens missing at 1/s)", retry)
	}
	if !strings.Contains(err.Error(), "ListNodes costs 10") {
		t.Errorf("message does not name the cost: %v", err)
	}
	for i := range 2 {
		if _, err := a.Authorize(bearer(viewer), get); err != nil {
			t.Fatalf("cheap call %d with 2 tokens left: %v", i+1, err)
		}
	}
	if _, err := a.Authorize(bearer(operator), list); err != nil {
		t.Fatalf("another identity is limited by the first's expensive calls: %v", err)
	}
	now = now.Add(10 * time.Second)
	if _, err := a.Authorize(bearer(viewer), list); err != nil {
		t.Fatalf("ListNodes after 10 s: %v", err)
	}
}

func TestAuthorizeEdgeCases(t *testing.T) {
	tf, err := auth.NewTokenFile(writeTokenFile(t), auth.TokenFileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	logger, logs := newLogger()
	a, err := auth.New(auth.Config{Tokens: tf, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	admin := roleTokens[auth.RoleAdmin]
	_, err = a.Authorize(bearer(admin), "/sopilot.api.v1.RunService/DeleteEverything")
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "has no authorization rule") {
		t.Fatalf("unknown method as admin: %v", err)
	}
	two := metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+admin, "authorization", "Bearer "+admin))
	if _, err := a.Authorize(two, "/sopilot.api.v1.RunService/GetRun"); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("two authorization headers: %v", err)
	}
	lower := metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "bearer   "+admin+" "))
	ctx, err := a.Authorize(lower, "/sopilot.api.v1.RunService/GetRun")
	if err != nil {
		t.Fatalf("lower-case scheme: %v", err)
	}
	if id, ok := auth.FromContext(ctx); !ok || id.Name != "admin-user" || id.Role != auth.RoleAdmin || id.Kind == auth.KindAgent {
		t.Fatalf("identity %+v, %v", id, ok)
	}
	for _, v := range []string{"Bearer", "Bearer ", "Token " + admin, admin} {
		md := metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", v))
		if _, err := a.Authorize(md, "/sopilot.api.v1.RunService/GetRun"); status.Code(err) != codes.Unauthenticated {
			t.Errorf("authorization %q: %v; want Unauthenticated", v[:min(len(v), 6)], err)
		}
	}
	if strings.Contains(logs.String(), admin) {
		t.Fatalf("log holds a token:\n%s", logs.String())
	}
	if _, err := auth.New(auth.Config{}); err == nil || !strings.Contains(err.Error(), "NewInsecure") {
		t.Errorf("New without authenticators: %v", err)
	}
}

func TestInsecure(t *testing.T) {
	logger, logs := newLogger()
	a := auth.NewInsecure(logger)
	if got := strings.Count(logs.String(), "level=WARN"); got != 1 || !strings.Contains(logs.String(), "INSECURE MODE") {
		t.Fatalf("want one loud warning, got:\n%s", logs.String())
	}
	for _, m := range []string{"/sopilot.api.v1.NodeService/DrainNode", agentpb.AgentService_Connect_FullMethodName, "/x.Y/NotInTheTable"} {
		ctx, err := a.Authorize(context.Background(), m)
		if err != nil {
			t.Fatalf("%s: %v", m, err)
		}
		id, _ := auth.FromContext(ctx)
		if id.Kind != auth.KindInsecure || id.Role != auth.RoleAdmin {
			t.Fatalf("identity %+v", id)
		}
		if err := auth.CheckAgentNode(ctx, "any-node"); err != nil {
			t.Fatalf("insecure agent binding: %v", err)
		}
	}
	if strings.Count(logs.String(), "level=WARN") != 1 {
		t.Fatalf("calls logged more warnings:\n%s", logs.String())
	}
}

// TestCheckRunWrite is the ownership rule by itself: who may write a run
// that owner created, for every kind of caller.
func TestCheckRunWrite(t *testing.T) {
	const method = "/sopilot.api.v1.RunService/CancelRun"
	rule, ok := auth.RuleFor(method)
	if !ok {
		t.Fatal("CancelRun has no rule")
	}
	user := func(name string, r auth.Role) auth.Identity {
		return auth.Identity{Name: name, Kind: auth.KindUser, Role: r, Source: "token-file"}
	}
	tests := []struct {
		name   string
		caller auth.Identity
		owner  string
		want   codes.Code
		msg    string
	}{
		{"submitter, own run", user("alice", auth.RoleSubmitter), "alice", codes.OK, ""},
		{"submitter, another's run", user("alice", auth.RoleSubmitter), "bob", codes.PermissionDenied,
			`run r-1 belongs to "bob"; caller "alice" (role submitter) may write only its own runs (role operator may write any)`},
		{"submitter, run with no owner", user("alice", auth.RoleSubmitter), "", codes.PermissionDenied,
			`run r-1 was created with no owner; only role operator may write it`},
		{"submitter named like nobody, run with no owner", user("", auth.RoleSubmitter), "", codes.PermissionDenied, "no owner"},
		{"viewer, own run", user("alice", auth.RoleViewer), "alice", codes.PermissionDenied, "requires role submitter"},
		{"no role", user("alice", auth.RoleNone), "alice", codes.PermissionDenied, "requires role submitter"},
		{"operator, another's run", user("olga", auth.RoleOperator), "bob", codes.OK, ""},
		{"operator, run with no owner", user("olga", auth.RoleOperator), "", codes.OK, ""},
		{"admin, another's run", user("ada", auth.RoleAdmin), "bob", codes.OK, ""},
		{"agent named like the owner", auth.Identity{Name: "agent:worker-0", Kind: auth.KindAgent, Node: "worker-0"}, "agent:worker-0", codes.PermissionDenied, "requires role submitter"},
		{"agent claiming a role", auth.Identity{Name: "agent:worker-0", Kind: auth.KindAgent, Role: auth.RoleAdmin, Node: "worker-0"}, "bob", codes.PermissionDenied, "requires role submitter"},
		{"insecure", auth.Identity{Name: "insecure", Kind: auth.KindInsecure, Role: auth.RoleAdmin}, "bob", codes.OK, ""},
		{"no identity", auth.Identity{}, "", codes.PermissionDenied, "requires role submitter"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := auth.CheckRunWrite(tt.caller, rule, method, "r-1", tt.owner)
			if status.Code(err) != tt.want || !strings.Contains(status.Convert(err).Message(), tt.msg) {
				t.Errorf("CheckRunWrite = %v; want %v containing %q", err, tt.want, tt.msg)
			}
		})
	}
	// A rule that is not a run write, or one without an ownership rule,
	// is a bug in the table: refused for everyone.
	read, _ := auth.RuleFor("/sopilot.api.v1.RunService/GetRun")
	noOwnership := rule
	noOwnership.AnyRun = rule.Role
	for _, r := range []auth.Rule{read, noOwnership} {
		if err := auth.CheckRunWrite(user("ada", auth.RoleAdmin), r, method, "r-1", "ada"); status.Code(err) != codes.Internal {
			t.Errorf("CheckRunWrite with rule %+v = %v; want Internal", r, err)
		}
	}
}

// TestAgentNodeBinding runs Connect over mutual TLS: the handler's
// CheckAgentNode accepts a Hello for the certificate's node and refuses
// one for another node; an agent without certificate, with an expired one
// or one from another CA does not get through.
func TestAgentNodeBinding(t *testing.T) {
	ca := tlstest.NewCA(t)
	a := tokenAuthorizer(t, auth.Config{Logger: discard()})
	addr := startServer(t, a, ca, stubs{agent: bindingAgent{}})
	nodeA := ca.Agent(t, "worker-0")
	expired := ca.Expired(t, "worker-0")
	foreign := tlstest.NewCA(t).Agent(t, "worker-0")

	hello := func(client *tlstest.Pair, node string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return sendHello(ctx, dial(t, addr, ca, client), node)
	}
	if err := hello(&nodeA, "worker-0"); status.Code(err) != codes.OK && err.Error() != "EOF" {
		t.Errorf("node A as node A: %v; want the stream to end cleanly", err)
	}
	err := hello(&nodeA, "worker-1")
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), `agent certificate is for node "worker-0", not for node "worker-1"`) {
		t.Errorf("node A as node B: %v", err)
	}
	if err := hello(nil, "worker-0"); status.Code(err) != codes.Unauthenticated {
		t.Errorf("no client certificate: %v; want Unauthenticated", err)
	}
	if err := hello(&expired, "worker-0"); status.Code(err) != codes.Unavailable {
		t.Errorf("expired certificate: %v; want the handshake refused (Unavailable)", err)
	}
	if err := hello(&foreign, "worker-0"); status.Code(err) != codes.Unavailable {
		t.Errorf("certificate from another CA: %v; want the handshake refused (Unavailable)", err)
	}
}

func TestCheckAgentNodeWithoutAgent(t *testing.T) {
	user := auth.NewContext(context.Background(), auth.Identity{Name: "alice", Kind: auth.KindUser, Role: auth.RoleAdmin})
	if err := auth.CheckAgentNode(user, "worker-0"); status.Code(err) != codes.PermissionDenied {
		t.Errorf("user: %v", err)
	}
	if err := auth.CheckAgentNode(context.Background(), "worker-0"); status.Code(err) != codes.Unauthenticated {
		t.Errorf("nobody: %v", err)
	}
	agent := auth.NewContext(context.Background(), auth.Identity{Name: "agent:worker-0", Kind: auth.KindAgent, Node: "worker-0"})
	if err := auth.CheckAgentNode(agent, "worker-0"); err != nil {
		t.Errorf("agent for its own node: %v", err)
	}
	if err := auth.CheckAgentNode(agent, "worker-1"); status.Code(err) != codes.PermissionDenied {
		t.Errorf("agent for another node: %v", err)
	}
}
