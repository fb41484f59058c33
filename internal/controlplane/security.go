package controlplane

import (
	"fmt"
	"log/slog"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/sopilot/sopilot/internal/auth"
	"github.com/sopilot/sopilot/internal/tlsutil"
)

// Security is the API's transport and authentication. Either Insecure is
// set, or TLS (TLSCertFile and TLSKeyFile) and at least one bearer-token
// authenticator (TokenFile, TokenReviewAudience) are.
type Security struct {
	// Insecure serves plaintext with no authentication: every caller gets
	// the insecure identity (an admin that may also act as any node's
	// agent), and the controller logs a warning saying so at start.
	Insecure bool
	// TLSCertFile and TLSKeyFile are the server's certificate and key
	// (reloaded when they change); TLSClientCAFile signs node agents'
	// client certificates.
	TLSCertFile, TLSKeyFile, TLSClientCAFile string
	// TokenFile holds "token,name,role" lines (reloaded when it changes).
	TokenFile string
	// TokenReviewAudience, when set, also accepts Kubernetes
	// service-account tokens for it, reviewed at TokenReviewURL (default:
	// in-cluster) and mapped to roles by user and group.
	TokenReviewAudience, TokenReviewURL string
	TokenReviewUsers, TokenReviewGroups map[string]auth.Role
	// TokenReviewCAFile and TokenReviewTokenFile are the API server's CA
	// and the controller's own token (defaults: the pod's service account
	// files), for pointing the controller at an API server from outside.
	TokenReviewCAFile, TokenReviewTokenFile string
	// AgentServiceAccounts are the node agents' service accounts: their
	// pod-bound tokens authenticate agents, each bound to its pod's
	// Kubernetes node. They need TokenReviewAudience.
	AgentServiceAccounts []auth.ServiceAccount
	// RateLimit limits calls per caller; zero disables it.
	RateLimit auth.RateLimit
}

// serverOptions builds the gRPC transport and the authorization
// interceptors (run after the metrics, logging and recovery ones), which
// read run owners from owners for the ownership rule. Every
// call that reaches a handler carries an auth.Identity: handlers deny
// calls without one, which only a server built without these options
// would make.
func (s Security) serverOptions(logger *slog.Logger, owners auth.RunOwners) ([]grpc.ServerOption, error) {
	var a *auth.Authorizer
	var opts []grpc.ServerOption
	if s.Insecure {
		a = auth.NewInsecure(logger)
	} else {
		tc, err := tlsutil.ServerConfig(s.TLSCertFile, s.TLSKeyFile, s.TLSClientCAFile, false)
		if err != nil {
			return nil, fmt.Errorf("TLS: %w", err)
		}
		opts = append(opts, grpc.Creds(limitHandshakes(credentials.NewTLS(tc), 0)),
			// No read buffer of gRPC's own under TLS: the TLS connection
			// already holds a whole decrypted record, so the HTTP/2 framer
			// reads from memory either way, and each agent's connection is
			// 8 KiB smaller (80 MiB at 10,000 agents).
			grpc.ReadBufferSize(0))
		cfg := auth.Config{Logger: logger, RateLimit: s.RateLimit, Runs: owners}
		if s.TokenFile != "" {
			if cfg.Tokens, err = auth.NewTokenFile(s.TokenFile, auth.TokenFileOptions{Logger: logger}); err != nil {
				return nil, fmt.Errorf("--token-file: %w", err)
			}
		}
		if s.TokenReviewAudience != "" {
			if cfg.TokenReview, err = auth.NewTokenReview(auth.TokenReviewConfig{
				URL: s.TokenReviewURL, Audience: s.TokenReviewAudience, Users: s.TokenReviewUsers, Groups: s.TokenReviewGroups,
				CAFile: s.TokenReviewCAFile, TokenFile: s.TokenReviewTokenFile, Agents: s.AgentServiceAccounts, Logger: logger,
			}); err != nil {
				return nil, fmt.Errorf("--tokenreview-*: %w", err)
			}
		} else if len(s.AgentServiceAccounts) > 0 {
			return nil, fmt.Errorf("agent service accounts %v need a TokenReview audience", s.AgentServiceAccounts)
		}
		if a, err = auth.New(cfg); err != nil {
			return nil, err
		}
	}
	return append(opts, a.ServerOptions()...), nil
}
