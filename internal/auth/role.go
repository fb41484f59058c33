package auth

import (
	"context"
	"fmt"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Role is a caller's level of access. Each role includes the ones below
// it: RoleAdmin ⊃ RoleOperator ⊃ RoleSubmitter ⊃ RoleViewer.
type Role int

const (
	// RoleNone grants nothing: an authenticated caller with no role mapped.
	RoleNone Role = iota
	// RoleViewer reads runs, nodes, incidents and comparisons.
	RoleViewer
	// RoleSubmitter also creates runs, and cancels and reports results
	// for the runs it created.
	RoleSubmitter
	// RoleOperator also drains and undrains nodes and runs node checks,
	// and cancels and reports results for anyone's runs.
	RoleOperator
	// RoleAdmin may call every user-facing RPC.
	RoleAdmin
)

var roleNames = [...]string{RoleNone: "none", RoleViewer: "viewer", RoleSubmitter: "submitter", RoleOperator: "operator", RoleAdmin: "admin"}

// String returns the role's name as written in token files.
func (r Role) String() string {
	if r < 0 || int(r) >= len(roleNames) {
		return fmt.Sprintf("Role(%d)", int(r))
	}
	return roleNames[r]
}

// Includes reports whether r grants everything that need grants.
func (r Role) Includes(need Role) bool { return r >= need && need >= RoleNone && r <= RoleAdmin }

// ParseRole parses "viewer", "submitter", "operator" or "admin"
// (case-insensitive).
func ParseRole(s string) (Role, error) {
	for r := RoleViewer; r <= RoleAdmin; r++ {
		if strings.EqualFold(s, roleNames[r]) {
			return r, nil
		}
	}
	return RoleNone, fmt.Errorf("unknown role %q (want viewer, submitter, operator or admin)", s)
}

// Kind says what sort of caller an Identity is.
type Kind int

const (
	// KindUser is a person or automation authenticated by a bearer token.
	KindUser Kind = iota + 1
	// KindAgent is a node agent, authenticated by its client certificate
	// or by the service account token of its pod (TokenReview).
	KindAgent
	// KindInsecure is any caller of a server in insecure mode (every
	// caller is an admin and may also act as an agent for any node).
	KindInsecure
)

// String returns "user", "agent" or "insecure".
func (k Kind) String() string {
	switch k {
	case KindUser:
		return "user"
	case KindAgent:
		return "agent"
	case KindInsecure:
		return "insecure"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Identity is an authenticated caller. It never holds the credential.
type Identity struct {
	// Name is the caller's name: the name column of the token file, the
	// Kubernetes user name, or "agent:<node>" for an agent. Rate limits
	// and run ownership are keyed by it.
	Name string
	// Kind is the sort of caller.
	Kind Kind
	// Role is the caller's role; RoleNone for agents.
	Role Role
	// Node is the node an agent speaks for: the one its certificate names,
	// or the Kubernetes node its pod's token is bound to; empty otherwise.
	Node string
	// Pod is "<namespace>/<pod>" of an agent authenticated by its pod's
	// service account token; empty otherwise.
	Pod string
	// Source names the authenticator: "token-file", "tokenreview",
	// "client-certificate" or "insecure".
	Source string
}

type identityKey struct{}

// NewContext returns ctx carrying id. The interceptors do this for every
// authenticated call; handler tests use it directly.
func NewContext(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// FromContext returns the caller identity the interceptors put into the
// context of an authorized call. Handlers use it for decisions the policy
// table cannot make, such as the node an agent may speak for.
func FromContext(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(Identity)
	return id, ok
}

// CheckAgentNode is the node binding of AgentService: it returns nil when
// the caller may speak for node (its certificate names node, its pod's
// token is bound to Kubernetes node node, or the server is in insecure
// mode), and a PermissionDenied status error otherwise. The Connect
// handler calls it with Hello.node_name.
func CheckAgentNode(ctx context.Context, node string) error {
	id, ok := FromContext(ctx)
	switch {
	case !ok:
		return status.Error(codes.Unauthenticated, "no authenticated caller")
	case id.Kind == KindInsecure:
		return nil
	case id.Kind != KindAgent:
		return status.Errorf(codes.PermissionDenied, "caller %q is not a node agent", id.Name)
	case id.Node != node && id.Source == "tokenreview":
		return status.Errorf(codes.PermissionDenied, "agent service account token is bound to pod %s on node %q, not to node %q", id.Pod, id.Node, node)
	case id.Node != node:
		return status.Errorf(codes.PermissionDenied, "agent certificate is for node %q, not for node %q", id.Node, node)
	}
	return nil
}

// CheckRunWrite decides whether caller id may call method, whose rule is
// a RunWrite rule, on run runID that owner created: callers with
// rule.AnyRun write any run, callers with rule.Role only runs whose owner
// is their own name. A run created with no owner ("") is nobody's own. It
// returns nil or a PermissionDenied status error. The Authorizer's
// interceptors call it for every RunWrite method; handlers need not.
func CheckRunWrite(id Identity, rule Rule, method, runID, owner string) error {
	switch {
	case rule.Runs != RunWrite:
		return status.Errorf(codes.Internal, "%s is not a run write in the authorization policy", method)
	case rule.AnyRun <= rule.Role:
		return status.Errorf(codes.Internal, "%s has no ownership rule in the authorization policy", method)
	case mayWriteAnyRun(id, rule):
		return nil
	case id.Kind != KindUser || !id.Role.Includes(rule.Role):
		return status.Errorf(codes.PermissionDenied, "%s requires role %s; caller %q has role %s", method, rule.Role, id.Name, id.Role)
	case owner == "":
		return status.Errorf(codes.PermissionDenied, "%s: run %s was created with no owner; only role %s may write it (caller %q has role %s)", method, runID, rule.AnyRun, id.Name, id.Role)
	case id.Name != owner:
		return status.Errorf(codes.PermissionDenied, "%s: run %s belongs to %q; caller %q (role %s) may write only its own runs (role %s may write any)", method, runID, owner, id.Name, id.Role, rule.AnyRun)
	}
	return nil
}

// mayWriteAnyRun reports whether id may write runs it did not create under
// the RunWrite rule.
func mayWriteAnyRun(id Identity, rule Rule) bool {
	return id.Kind == KindInsecure || id.Kind == KindUser && rule.AnyRun > rule.Role && id.Role.Includes(rule.AnyRun)
}
