// Package auth authenticates and authorizes callers of the controller's
// gRPC API.
//
// # Who calls, and how they prove it
//
// People, CI systems and in-cluster workloads send a bearer token in the
// "authorization: Bearer <token>" metadata, over TLS. Tokens come from a
// static token file (TokenFile: "token,name,role" lines, reloaded when the
// file changes, only SHA-256 digests kept in memory, compared in constant
// time) or are reviewed by the Kubernetes API server (TokenReview:
// authentication.k8s.io/v1 TokenReview with a configured audience, user
// names and groups mapped to roles, answers cached briefly). Bearer tokens
// suit people: they are easy to issue per person with a role, and revoked
// by deleting a line or a RoleBinding.
//
// Node agents run unattended on every node, and their credential must bind
// each one to its node. In Kubernetes an agent sends its pod's projected
// service account token as its bearer token. TokenReviewConfig.Agents
// names the agents' service accounts; the review of such a token is a
// node agent's Identity bound to the node the API server names in the
// review's user.extra (ExtraNodeName: the pod's spec.nodeName, written
// into the token when the kubelet requested it for the pod; Kubernetes
// 1.30+). A token of that account that is not bound to a pod, or names no
// node, is refused with an error saying why. Hosts outside Kubernetes
// present a client certificate instead (mutual TLS; see package tlsutil
// for the TLS configuration and the naming scheme: URI SAN
// spiffe://sopilot/agent/<node>). Either way the Identity's Node is the
// node the credential is bound to and CheckAgentNode refuses a Hello for
// any other node. A bearer token, when sent, takes precedence over a client
// certificate.
//
// Why a bound service account token rather than a certificate per node:
// a certificate must be issued for each node before its agent can connect,
// and Kubernetes has no way to hand each pod of a DaemonSet a Secret of
// its own, so per-node certificates came from the host's disk or from one
// DaemonSet per node of a static map, and both broke when Soperator
// replaced a node. The projected token needs no issuing: the kubelet asks
// for it when it starts the pod and replaces it before it expires, the API
// server (not the agent) says which node the pod was scheduled to, and a
// review fails once the pod is deleted. A replaced node's new agent pod
// is admitted with no step by hand. The cost is one TokenReview per token
// per CacheTTL, and the trust boundary: whoever may run pods as the agents'
// service account in its namespace may speak for the node such a pod runs
// on, as whoever could mount a node's host path could read its key
// before. docs/design.md records the decision.
//
// A stream is authorized when it opens. A review's answer is cached for
// CacheTTL, never past the token's expiry, so a revoked or expired token
// opens no stream after that; a stream already open runs on (the agent
// of a deleted pod ends with its pod).
//
// # Roles and the policy table
//
// Roles are ordered: admin ⊃ operator ⊃ submitter ⊃ viewer. Viewers read;
// submitters create runs, and cancel and report results only for runs they
// created; operators drain and undrain nodes, run node checks, and cancel
// and report results for anyone's runs; admins may call every user-facing
// RPC. Agents hold no role and may call only AgentService/Connect, which
// no user may call.
//
// Every RPC's full method name maps to a Rule in one table (RuleFor). The
// interceptors deny any method missing from it, and a test walks the
// generated service descriptors so that a new RPC without a rule fails the
// build's tests. Health checks and server reflection are public.
//
// # Run ownership
//
// A run's owner is the Identity.Name of the user who created it; runs
// created in insecure mode, or before owners were recorded, have none.
// The table says, for every method whose request names runs, what it does
// to them (Rule.Runs): reads them, writes the run its run_id names
// (RunWrite, with Rule.AnyRun, the least role that writes runs it does not
// own), or, for the agent stream, writes progress only of runs assigned to
// the agent's node. For RunWrite methods the interceptors look the owner
// up (Config.Runs) and apply CheckRunWrite before the handler sees the
// request, or, on a stream, each message naming a run: the owner with the
// method's Role, or any caller with AnyRun, may write; a run with no owner
// only AnyRun. Handlers need no ownership code, so a new write method is
// covered by its table entry alone, and a test walks the generated
// request messages so that a method naming a run without saying what it
// does to it, or a non-read without an ownership rule, fails.
//
// The interceptors (Authorizer.UnaryServerInterceptor and
// StreamServerInterceptor) run, per call or stream: authenticate (else
// Unauthenticated, saying what to send), authorize by the table (else
// PermissionDenied naming the required and the caller's role), rate-limit
// per identity name with a token bucket (else ResourceExhausted), put the
// Identity into the context, and for RunWrite methods check ownership
// (else PermissionDenied naming the run's owner, or NotFound). Handlers
// read the Identity with FromContext.
//
// # What handlers must still check
//
// The AgentService Connect handler calls CheckAgentNode with
// Hello.node_name: an agent's token or certificate binds it to one node.
//
// # Secrets
//
// Tokens are never logged nor put in error messages; the package's tests
// capture its log output and errors to check this.
//
// # Insecure mode
//
// NewInsecure, for local development, makes every caller an admin that may
// also act as any node's agent, and logs a warning saying so. The runs
// they create have no owner: once authentication is on, only operators
// and admins write them.
package auth
