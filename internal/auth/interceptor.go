package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/sopilot/sopilot/internal/tlsutil"
)

// Config configures an Authorizer. At least one of Tokens and TokenReview
// is required.
type Config struct {
	// Tokens authenticates bearer tokens from a token file.
	Tokens *TokenFile
	// TokenReview authenticates bearer tokens Tokens does not know with
	// the Kubernetes API server.
	TokenReview *TokenReview
	// RateLimit limits calls per identity name; zero disables it.
	RateLimit RateLimit
	// Runs tells the ownership check of RunWrite methods who created a
	// run. Without it only callers with the rule's AnyRun role may call
	// those methods.
	Runs RunOwners
	// Logger receives authentication and authorization failures (never
	// credentials); default slog.Default().
	Logger *slog.Logger
	// Now is the rate limiter's clock; default time.Now.
	Now func() time.Time
}

// RunOwners tells the Authorizer who created a run.
type RunOwners interface {
	// RunOwner returns the Identity.Name recorded when run runID was
	// created, or "" for a run created with none. Its errors reach the
	// caller unchanged, so they should be gRPC status errors (NotFound
	// for no such run).
	RunOwner(ctx context.Context, runID string) (string, error)
}

// Authorizer authenticates gRPC callers, authorizes them by the policy
// table (RuleFor), checks the ownership of the run a RunWrite method
// names, rate-limits callers per identity and puts their Identity into the
// call's context. Install its interceptors on the server.
type Authorizer struct {
	tokens   *TokenFile
	review   *TokenReview
	runs     RunOwners
	limiter  *limiter
	rate     RateLimit
	log      *slog.Logger
	insecure bool
}

// New returns an Authorizer enforcing cfg.
func New(cfg Config) (*Authorizer, error) {
	if cfg.Tokens == nil && cfg.TokenReview == nil {
		return nil, errors.New("auth: no bearer token authenticator configured (token file or Kubernetes TokenReview); for local development only, use NewInsecure")
	}
	if cfg.RateLimit.Rate < 0 || cfg.RateLimit.Burst < 0 {
		return nil, fmt.Errorf("auth: rate limit: rate %g and burst %d must not be negative", cfg.RateLimit.Rate, cfg.RateLimit.Burst)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Authorizer{
		tokens:  cfg.Tokens,
		review:  cfg.TokenReview,
		runs:    cfg.Runs,
		limiter: newLimiter(cfg.RateLimit, cfg.Now),
		rate:    cfg.RateLimit,
		log:     cfg.Logger.With("component", "auth"),
	}, nil
}

// NewInsecure returns an Authorizer for local development that lets every
// caller do everything: each is an admin, may act as the agent of any node,
// and may call methods the policy table does not list. It logs a warning
// saying so. Never use it on a network others can reach.
func NewInsecure(logger *slog.Logger) *Authorizer {
	if logger == nil {
		logger = slog.Default()
	}
	logger = logger.With("component", "auth")
	logger.Warn("INSECURE MODE: authentication and authorization are OFF; every caller is an admin and may act as any node's agent. Use only for local development.")
	return &Authorizer{log: logger, insecure: true}
}

var insecureIdentity = Identity{Name: "insecure", Kind: KindInsecure, Role: RoleAdmin, Source: "insecure"}

// ServerOptions installs a's interceptors on a gRPC server. Every call
// that reaches a handler then carries an Identity (or is public);
// handlers refuse calls without one.
func (a *Authorizer) ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(a.UnaryServerInterceptor()),
		grpc.ChainStreamInterceptor(a.StreamServerInterceptor()),
	}
}

// UnaryServerInterceptor returns the interceptor for unary calls.
func (a *Authorizer) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, err := a.Authorize(ctx, info.FullMethod)
		if err != nil {
			return nil, err
		}
		if check := a.runWriteCheck(ctx, info.FullMethod); check != nil {
			if err := check(req); err != nil {
				return nil, err
			}
		}
		return handler(ctx, req)
	}
}

// StreamServerInterceptor returns the interceptor for streaming calls; a
// stream is authorized and rate-limited once, when it opens. On a
// RunWrite method every received message that names a run other than the
// last one checked is checked for ownership before the handler sees it.
func (a *Authorizer) StreamServerInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx, err := a.Authorize(ss.Context(), info.FullMethod)
		if err != nil {
			return err
		}
		return handler(srv, &contextStream{ServerStream: ss, ctx: ctx, check: a.runWriteCheck(ctx, info.FullMethod)})
	}
}

type contextStream struct {
	grpc.ServerStream
	ctx context.Context
	// check, when set, is the ownership check of a RunWrite method.
	check func(msg any) error
}

func (s *contextStream) Context() context.Context { return s.ctx }

func (s *contextStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	if s.check != nil {
		return s.check(m)
	}
	return nil
}

// runNamer is a request that names the run it acts on: every RunWrite
// method's request message (a test checks the generated ones).
type runNamer interface{ GetRunId() string }

// runWriteCheck returns the ownership check of the RunWrite method
// fullMethod for the caller in ctx, or nil when there is nothing to check:
// the method writes no run, or the caller may write anyone's runs. The
// check looks up the owner of each run a message names, once per run id
// in a row; an empty run_id names no run and is left to the handler,
// which refuses it.
func (a *Authorizer) runWriteCheck(ctx context.Context, fullMethod string) func(msg any) error {
	rule, ok := RuleFor(fullMethod)
	if !ok || rule.Runs != RunWrite {
		return nil
	}
	id, ok := FromContext(ctx)
	if ok && mayWriteAnyRun(id, rule) {
		return nil
	}
	var checked string
	return func(msg any) error {
		named, ok := msg.(runNamer)
		if !ok {
			a.log.ErrorContext(ctx, "a run-writing method's request names no run; denied", "method", fullMethod, "type", fmt.Sprintf("%T", msg))
			return status.Errorf(codes.Internal, "%s: request names no run, so its ownership cannot be checked", fullMethod)
		}
		runID := named.GetRunId()
		if runID == "" || runID == checked {
			return nil
		}
		if a.runs == nil {
			return status.Errorf(codes.PermissionDenied, "%s: this server cannot look up run owners; only role %s may write runs", fullMethod, rule.AnyRun)
		}
		owner, err := a.runs.RunOwner(ctx, runID)
		if err != nil {
			if _, isStatus := status.FromError(err); isStatus {
				return err
			}
			a.log.ErrorContext(ctx, "look up run owner", "method", fullMethod, "run_id", runID, "err", err)
			return status.Errorf(codes.Internal, "%s: cannot look up the owner of run %s", fullMethod, runID)
		}
		if err := CheckRunWrite(id, rule, fullMethod, runID, owner); err != nil {
			a.log.InfoContext(ctx, "permission denied: not the run's owner", "method", fullMethod, "run_id", runID, "owner", owner, "caller", id.Name, "role", id.Role.String())
			return err
		}
		checked = runID
		return nil
	}
}

// Authorize authenticates the caller of fullMethod from ctx (incoming
// metadata and peer), checks the policy table and the rate limit, and
// returns ctx carrying the caller's Identity. Errors are gRPC status
// errors: Unauthenticated, PermissionDenied, ResourceExhausted, or
// Unavailable when the Kubernetes API server cannot review a token.
// Public methods return ctx unchanged.
func (a *Authorizer) Authorize(ctx context.Context, fullMethod string) (context.Context, error) {
	if a.insecure {
		return NewContext(ctx, insecureIdentity), nil
	}
	rule, ok := RuleFor(fullMethod)
	if !ok {
		a.log.WarnContext(ctx, "denied a method missing from the authorization policy", "method", fullMethod, "peer", peerAddr(ctx))
		return nil, status.Errorf(codes.PermissionDenied, "method %s has no authorization rule and is denied", fullMethod)
	}
	if rule.Public {
		return ctx, nil
	}
	id, err := a.authenticate(ctx, rule)
	if err != nil {
		a.log.InfoContext(ctx, "authentication failed", "method", fullMethod, "peer", peerAddr(ctx), "code", status.Code(err).String(), "reason", status.Convert(err).Message())
		return nil, err
	}
	if err := authorize(id, rule, fullMethod); err != nil {
		a.log.InfoContext(ctx, "permission denied", "method", fullMethod, "caller", id.Name, "role", id.Role.String(), "kind", id.Kind.String())
		return nil, err
	}
	if ok, wait := a.limiter.allow(id.Name, rule.Cost); !ok {
		return nil, rateLimited(id.Name, fullMethod, max(rule.Cost, 1), a.rate, wait)
	}
	return NewContext(ctx, id), nil
}

const howToAuthenticate = "send 'authorization: Bearer <token>' metadata over TLS"

func (a *Authorizer) authenticate(ctx context.Context, rule Rule) (Identity, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	if vals := md.Get("authorization"); len(vals) > 0 {
		if len(vals) > 1 {
			return Identity{}, status.Errorf(codes.Unauthenticated, "%d authorization headers; %s", len(vals), howToAuthenticate)
		}
		token, ok := bearerToken(vals[0])
		if !ok {
			return Identity{}, status.Errorf(codes.Unauthenticated, "authorization header is not a bearer token; %s", howToAuthenticate)
		}
		if a.tokens != nil {
			if id, ok := a.tokens.Authenticate(token); ok {
				return id, nil
			}
		}
		if a.review != nil {
			return a.review.Authenticate(ctx, token)
		}
		return Identity{}, status.Errorf(codes.Unauthenticated, "bearer token not recognized; %s with a valid token", howToAuthenticate)
	}
	if node, ok := agentCertNode(ctx); ok {
		return Identity{Name: "agent:" + node, Kind: KindAgent, Node: node, Source: "client-certificate"}, nil
	}
	if rule.AgentOnly {
		return Identity{}, status.Errorf(codes.Unauthenticated, "no agent credentials; node agents must send their pod's service account token ('authorization: Bearer <token>', an agent service account of the controller) or present a client certificate from the agent CA with URI SAN spiffe://%s/agent/<node>", tlsutil.AgentTrustDomain)
	}
	return Identity{}, status.Errorf(codes.Unauthenticated, "no credentials; %s", howToAuthenticate)
}

func authorize(id Identity, rule Rule, method string) error {
	switch {
	case id.Kind == KindAgent && !rule.AgentOnly:
		return status.Errorf(codes.PermissionDenied, "%s is denied to node agents (caller %q); agents may call only AgentService/Connect", method, id.Name)
	case rule.AgentOnly && id.Kind != KindAgent:
		return status.Errorf(codes.PermissionDenied, "%s is for node agents only (an agent service account token or client certificate); caller %q has role %s", method, id.Name, id.Role)
	case rule.AgentOnly:
		return nil
	case !id.Role.Includes(rule.Role) || rule.Role == RoleNone:
		return status.Errorf(codes.PermissionDenied, "%s requires role %s; caller %q has role %s", method, rule.Role, id.Name, id.Role)
	}
	return nil
}

// bearerToken extracts the token of an "authorization: Bearer <token>"
// value; the scheme is case-insensitive.
func bearerToken(v string) (string, bool) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(v), " ")
	if !ok || !strings.EqualFold(scheme, "bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// agentCertNode returns the node of the caller's verified agent
// certificate. Only verified chains count: with tls.VerifyClientCertIfGiven
// a certificate that is presented has been verified against the client CA.
func agentCertNode(ctx context.Context) (string, bool) {
	p, ok := peer.FromContext(ctx)
	if !ok || p.AuthInfo == nil {
		return "", false
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(ti.State.VerifiedChains) == 0 || len(ti.State.VerifiedChains[0]) == 0 {
		return "", false
	}
	return tlsutil.AgentNodeFromCert(ti.State.VerifiedChains[0][0])
}

func peerAddr(ctx context.Context) string {
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		return p.Addr.String()
	}
	return ""
}

// rateLimited is the ResourceExhausted status of a call over its caller's
// rate limit, with a RetryInfo detail saying when enough tokens will be
// there for it.
func rateLimited(name, method string, cost int, rl RateLimit, wait time.Duration) error {
	st := status.Newf(codes.ResourceExhausted, "rate limit exceeded for %q (%g calls/s, burst %d; %s costs %d); retry in %v",
		name, rl.Rate, rl.Burst, method, cost, wait.Round(time.Millisecond))
	if d, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(wait)}); err == nil {
		st = d
	}
	return st.Err()
}
