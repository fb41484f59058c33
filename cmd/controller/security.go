package main

import (
	"errors"
	"flag"
	"fmt"
	"strings"

	"github.com/sopilot/sopilot/internal/auth"
	"github.com/sopilot/sopilot/internal/controlplane"
)

// securityOptions are the transport and authentication flags.
type securityOptions struct {
	insecure                     bool
	tlsCert, tlsKey, tlsClientCA string
	tokenFile                    string
	reviewAudience, reviewURL    string
	reviewUsers, reviewGroups    roleMap
	reviewCAFile, reviewToken    string
	agentAccounts                serviceAccounts
	rateLimit                    float64
	rateBurst                    int
}

// roleMap is a repeatable NAME=ROLE flag.
type roleMap map[string]auth.Role

func (m *roleMap) String() string {
	if m == nil || *m == nil {
		return ""
	}
	var parts []string
	for k, v := range *m {
		parts = append(parts, k+"="+v.String())
	}
	return strings.Join(parts, ",")
}

func (m *roleMap) Set(s string) error {
	for _, part := range strings.Split(s, ",") {
		name, role, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || name == "" {
			return fmt.Errorf("want NAME=ROLE (role: viewer, submitter, operator, admin), got %q", part)
		}
		r, err := auth.ParseRole(role)
		if err != nil {
			return err
		}
		if *m == nil {
			*m = roleMap{}
		}
		(*m)[name] = r
	}
	return nil
}

// serviceAccounts is a repeatable NAMESPACE/NAME flag.
type serviceAccounts []auth.ServiceAccount

func (l *serviceAccounts) String() string {
	if l == nil {
		return ""
	}
	var parts []string
	for _, sa := range *l {
		parts = append(parts, sa.String())
	}
	return strings.Join(parts, ",")
}

func (l *serviceAccounts) Set(s string) error {
	for _, part := range strings.Split(s, ",") {
		sa, err := auth.ParseServiceAccount(part)
		if err != nil {
			return err
		}
		*l = append(*l, sa)
	}
	return nil
}

func (s *securityOptions) register(fs *flag.FlagSet) {
	fs.BoolVar(&s.insecure, "insecure", false, "serve plaintext gRPC with NO authentication (every caller is admin): local development only")
	fs.StringVar(&s.tlsCert, "tls-cert-file", "", "server certificate (PEM); reloaded when the file changes")
	fs.StringVar(&s.tlsKey, "tls-key-file", "", "server private key (PEM); reloaded when the file changes")
	fs.StringVar(&s.tlsClientCA, "tls-client-ca-file", "", "CA that signs node agents' client certificates (URI SAN spiffe://sopilot/agent/<node>); without it agents must send service account tokens (--agent-service-account)")
	fs.StringVar(&s.tokenFile, "token-file", "", "API bearer tokens: one 'token,name,role' per line (role: viewer, submitter, operator, admin); reloaded when it changes")
	fs.StringVar(&s.reviewAudience, "tokenreview-audience", "", "also accept Kubernetes service-account tokens for this audience (TokenReview); map them with --tokenreview-role / --tokenreview-group-role")
	fs.StringVar(&s.reviewURL, "tokenreview-url", "", "Kubernetes API server for TokenReview (default: the in-cluster address)")
	fs.StringVar(&s.reviewCAFile, "tokenreview-ca-file", "", "CA of the Kubernetes API server for TokenReview (default: the pod's "+auth.DefaultServiceAccountCAFile+")")
	fs.StringVar(&s.reviewToken, "tokenreview-token-file", "", "the controller's own token for the Kubernetes API server, allowed to create tokenreviews; re-read for every review (default: the pod's "+auth.DefaultServiceAccountTokenFile+")")
	fs.Var(&s.agentAccounts, "agent-service-account", "NAMESPACE/NAME of the node agents' service account (repeatable, or comma-separated): its pod-bound tokens, reviewed with --tokenreview-audience, authenticate node agents, each bound to the Kubernetes node its pod runs on (Kubernetes 1.30+)")
	fs.Var(&s.reviewUsers, "tokenreview-role", "Kubernetes user to role, USER=ROLE (repeatable, or comma-separated), e.g. system:serviceaccount:ml:trainer=submitter")
	fs.Var(&s.reviewGroups, "tokenreview-group-role", "Kubernetes group to role, GROUP=ROLE (repeatable, or comma-separated)")
	fs.Float64Var(&s.rateLimit, "rate-limit", 50, "API calls per second allowed per caller (0: unlimited)")
	fs.IntVar(&s.rateBurst, "rate-burst", 100, "burst of API calls allowed per caller")
}

func (s *securityOptions) validate() []error {
	var problems []error
	tls := s.tlsCert != "" || s.tlsKey != "" || s.tlsClientCA != ""
	authn := s.tokenFile != "" || s.reviewAudience != ""
	reviewFlags := s.reviewAudience != "" || s.reviewURL != "" || s.reviewCAFile != "" || s.reviewToken != "" || len(s.agentAccounts) > 0
	switch {
	case s.insecure && (tls || authn || reviewFlags):
		problems = append(problems, errors.New("--insecure turns TLS and authentication off: drop it, or drop the --tls-*/--token-file/--tokenreview-* flags"))
	case s.insecure:
	case s.tlsCert == "" || s.tlsKey == "":
		problems = append(problems, errors.New("the controller serves TLS: give --tls-cert-file and --tls-key-file (plus --tls-client-ca-file for node agents and --token-file for API users), or --insecure for local development"))
	case !authn:
		problems = append(problems, errors.New("API callers must authenticate: give --token-file and/or --tokenreview-audience (or --insecure for local development)"))
	}
	reviewSettings := s.reviewURL != "" || s.reviewCAFile != "" || s.reviewToken != "" || len(s.agentAccounts) > 0 || len(s.reviewUsers) > 0 || len(s.reviewGroups) > 0
	if !s.insecure && reviewSettings && s.reviewAudience == "" {
		problems = append(problems, errors.New("--tokenreview-url, --tokenreview-ca-file, --tokenreview-token-file, --tokenreview-role, --tokenreview-group-role and --agent-service-account need --tokenreview-audience (the audience agents' and users' Kubernetes tokens are issued for)"))
	}
	if s.rateLimit < 0 || s.rateBurst < 0 {
		problems = append(problems, errors.New("--rate-limit and --rate-burst must not be negative"))
	}
	return problems
}

// config is the assembly's view of the flags.
func (s *securityOptions) config() controlplane.Security {
	return controlplane.Security{
		Insecure:    s.insecure,
		TLSCertFile: s.tlsCert, TLSKeyFile: s.tlsKey, TLSClientCAFile: s.tlsClientCA,
		TokenFile:           s.tokenFile,
		TokenReviewAudience: s.reviewAudience, TokenReviewURL: s.reviewURL,
		TokenReviewUsers: s.reviewUsers, TokenReviewGroups: s.reviewGroups,
		TokenReviewCAFile: s.reviewCAFile, TokenReviewTokenFile: s.reviewToken,
		AgentServiceAccounts: s.agentAccounts,
		RateLimit:            auth.RateLimit{Rate: s.rateLimit, Burst: s.rateBurst},
	}
}
