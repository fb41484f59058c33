package auth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Default in-cluster paths of the pod's service account credentials.
const (
	DefaultServiceAccountTokenFile = "/var/run/secrets/kubernetes.io/serviceaccount/token"
	DefaultServiceAccountCAFile    = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
)

// TokenReviewConfig configures a TokenReview authenticator.
type TokenReviewConfig struct {
	// URL is the API server's base URL; default
	// https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT.
	URL string
	// Audience is required in the reviewed token's audiences (spec.audiences).
	Audience string
	// TokenFile holds the controller's own service account token, re-read
	// for every review since the kubelet rotates it; default
	// DefaultServiceAccountTokenFile.
	TokenFile string
	// CAFile holds the API server's CA; default DefaultServiceAccountCAFile.
	// Ignored when HTTPClient is set.
	CAFile string
	// Users maps Kubernetes user names (e.g.
	// "system:serviceaccount:ml:trainer") to roles.
	Users map[string]Role
	// Groups maps Kubernetes groups to roles. A caller gets the highest
	// role of its user name and its groups; none is RoleNone, which
	// authenticates but is allowed nothing.
	Groups map[string]Role
	// Agents are the service accounts of node agents. A token of one of
	// them is a node agent's identity (KindAgent, no role), bound to the
	// node the review's user.extra names; it must be a token bound to a
	// pod whose review carries the node (Kubernetes 1.30+), else it is
	// refused. These accounts must not also be in Users.
	Agents []ServiceAccount
	// CacheTTL is how long a review's answer is reused, and so how long a
	// revoked token (its pod or service account deleted) may still open
	// streams; default 10s. An answer is never reused past the token's
	// own expiry (its "exp" claim).
	CacheTTL time.Duration
	// Timeout bounds one review request; default 5s.
	Timeout time.Duration
	// HTTPClient replaces the client built from CAFile.
	HTTPClient *http.Client
	// Logger receives review failures; default slog.Default().
	Logger *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// TokenReview authenticates bearer tokens by asking the Kubernetes API
// server (authentication.k8s.io/v1 TokenReview), for service accounts and
// other identities the cluster issues tokens to.
type TokenReview struct {
	cfg    TokenReviewConfig
	url    string
	client *http.Client
	// agents maps the user names of Agents to them.
	agents map[string]ServiceAccount

	mu    sync.Mutex
	cache map[[sha256.Size]byte]reviewResult
}

type reviewResult struct {
	id      Identity
	ok      bool
	reason  string
	expires time.Time
}

const maxReviewCache = 4096

// NewTokenReview returns a TokenReview authenticator. Audience is
// required; outside a cluster URL must be set.
func NewTokenReview(cfg TokenReviewConfig) (*TokenReview, error) {
	if cfg.Audience == "" {
		return nil, errors.New("tokenreview: audience is required")
	}
	if cfg.URL == "" {
		host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
		if host == "" {
			return nil, errors.New("tokenreview: url not set and KUBERNETES_SERVICE_HOST is empty (not in a cluster)")
		}
		if port == "" {
			port = "443"
		}
		cfg.URL = "https://" + net.JoinHostPort(host, port)
	}
	if cfg.TokenFile == "" {
		cfg.TokenFile = DefaultServiceAccountTokenFile
	}
	if cfg.CAFile == "" {
		cfg.CAFile = DefaultServiceAccountCAFile
	}
	if cfg.CacheTTL <= 0 {
		cfg.CacheTTL = 10 * time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	agents := map[string]ServiceAccount{}
	for _, sa := range cfg.Agents {
		if _, err := ParseServiceAccount(sa.String()); err != nil {
			return nil, fmt.Errorf("tokenreview: agent service account: %w", err)
		}
		if _, ok := cfg.Users[sa.Username()]; ok {
			return nil, fmt.Errorf("tokenreview: %s is an agent service account and cannot also have a user role", sa)
		}
		agents[sa.Username()] = sa
	}
	client := cfg.HTTPClient
	if client == nil {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tokenreview: ca file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tokenreview: ca file %s: no PEM certificates", cfg.CAFile)
		}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		client = &http.Client{Transport: tr}
	}
	return &TokenReview{
		cfg:    cfg,
		url:    strings.TrimRight(cfg.URL, "/") + "/apis/authentication.k8s.io/v1/tokenreviews",
		client: client,
		agents: agents,
		cache:  map[[sha256.Size]byte]reviewResult{},
	}, nil
}

type tokenReviewObject struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Spec       tokenReviewSpec   `json:"spec"`
	Status     tokenReviewStatus `json:"status,omitempty"`
}

type tokenReviewSpec struct {
	Token     string   `json:"token"`
	Audiences []string `json:"audiences,omitempty"`
}

type tokenReviewStatus struct {
	Authenticated bool     `json:"authenticated"`
	User          userInfo `json:"user"`
	Audiences     []string `json:"audiences,omitempty"`
	Error         string   `json:"error,omitempty"`
}

type userInfo struct {
	Username string              `json:"username"`
	UID      string              `json:"uid"`
	Groups   []string            `json:"groups"`
	Extra    map[string][]string `json:"extra,omitempty"`
}

// Authenticate reviews token. An invalid or expired token, or one for
// another audience, or an agent's token without a node, is a
// codes.Unauthenticated status error; an API server that cannot answer is
// codes.Unavailable. Answers are cached for CacheTTL, keyed by the token's
// SHA-256, and never past the token's expiry.
func (r *TokenReview) Authenticate(ctx context.Context, token string) (Identity, error) {
	digest := sha256.Sum256([]byte(token))
	now := r.cfg.Now()
	r.mu.Lock()
	res, hit := r.cache[digest]
	r.mu.Unlock()
	if !hit || !now.Before(res.expires) {
		var err error
		res, err = r.review(ctx, token)
		if err != nil {
			return Identity{}, err
		}
		res.expires = now.Add(r.cfg.CacheTTL)
		if exp, ok := tokenExpiry(token); ok && exp.Before(res.expires) {
			res.expires = exp
		}
		r.store(digest, res, now)
	}
	if !res.ok {
		return Identity{}, status.Errorf(codes.Unauthenticated, "bearer token refused by Kubernetes TokenReview: %s", res.reason)
	}
	return res.id, nil
}

func (r *TokenReview) store(digest [sha256.Size]byte, res reviewResult, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.cache) >= maxReviewCache {
		for k, v := range r.cache {
			if !now.Before(v.expires) {
				delete(r.cache, k)
			}
		}
		if len(r.cache) >= maxReviewCache {
			clear(r.cache)
		}
	}
	r.cache[digest] = res
}

func (r *TokenReview) review(ctx context.Context, token string) (reviewResult, error) {
	own, err := os.ReadFile(r.cfg.TokenFile)
	if err != nil {
		r.cfg.Logger.Error("tokenreview: cannot read the service account token", "err", err)
		return reviewResult{}, status.Error(codes.Unavailable, "token review unavailable: the controller cannot read its service account token")
	}
	body, err := json.Marshal(tokenReviewObject{
		APIVersion: "authentication.k8s.io/v1",
		Kind:       "TokenReview",
		Spec:       tokenReviewSpec{Token: token, Audiences: []string{r.cfg.Audience}},
	})
	if err != nil {
		return reviewResult{}, status.Error(codes.Internal, "encode token review")
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.url, bytes.NewReader(body))
	if err != nil {
		return reviewResult{}, status.Errorf(codes.Internal, "token review request: %v", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(own)))
	resp, err := r.client.Do(req)
	if err != nil {
		// Transport errors do not carry request headers or bodies.
		r.cfg.Logger.Warn("tokenreview: request failed", "url", r.url, "err", redact(err.Error(), token))
		return reviewResult{}, status.Error(codes.Unavailable, "token review unavailable: Kubernetes API server unreachable")
	}
	defer func() { _ = resp.Body.Close() }()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return reviewResult{}, status.Error(codes.Unavailable, "token review unavailable: reading the answer failed")
	}
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		r.cfg.Logger.Warn("tokenreview: API server refused the review", "url", r.url, "http_status", resp.StatusCode, "body", truncate(redact(string(data), token), 512))
		return reviewResult{}, status.Errorf(codes.Unavailable, "token review unavailable: Kubernetes API server answered HTTP %d (does the controller's service account have create on tokenreviews?)", resp.StatusCode)
	}
	var out tokenReviewObject
	if err := json.Unmarshal(data, &out); err != nil {
		return reviewResult{}, status.Error(codes.Unavailable, "token review unavailable: undecodable answer")
	}
	st := out.Status
	if !st.Authenticated {
		reason := "not authenticated"
		if st.Error != "" {
			reason = truncate(redact(st.Error, token), 200)
		}
		return reviewResult{reason: reason}, nil
	}
	if len(st.Audiences) > 0 && !contains(st.Audiences, r.cfg.Audience) {
		return reviewResult{reason: fmt.Sprintf("token is not for audience %q", r.cfg.Audience)}, nil
	}
	if st.User.Username == "" {
		return reviewResult{reason: "review names no user"}, nil
	}
	if sa, ok := r.agents[st.User.Username]; ok {
		node, pod, err := agentBinding(st.User.Extra)
		if err != nil {
			r.cfg.Logger.Warn("tokenreview: refused a token of the agent service account", "service_account", sa.String(), "err", err)
			return reviewResult{reason: fmt.Sprintf("token of agent service account %s: %v", sa, err)}, nil
		}
		r.cfg.Logger.Debug("tokenreview: node agent authenticated", "service_account", sa.String(), "node", node, "pod", pod)
		return reviewResult{ok: true, id: Identity{Name: "agent:" + node, Kind: KindAgent, Node: node, Pod: sa.Namespace + "/" + pod, Source: "tokenreview"}}, nil
	}
	role := r.cfg.Users[st.User.Username]
	for _, g := range st.User.Groups {
		if gr := r.cfg.Groups[g]; gr > role {
			role = gr
		}
	}
	return reviewResult{ok: true, id: Identity{Name: st.User.Username, Kind: KindUser, Role: role, Source: "tokenreview"}}, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// redact removes token from s, should an upstream message echo it.
func redact(s, token string) string {
	if token == "" {
		return s
	}
	return strings.ReplaceAll(s, token, "[REDACTED]")
}
