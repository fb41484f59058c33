package auth_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/sopilot/sopilot/internal/auth"
	"github.com/sopilot/sopilot/internal/tlsutil/tlstest"
	"github.com/sopilot/sopilot/pkg/apipb"
)

const agentUser = "system:serviceaccount:soperator:sopilot-agent"

var agentSA = auth.ServiceAccount{Namespace: "soperator", Name: "sopilot-agent"}

// reviewAPIServer answers TokenReviews from a table of tokens the test
// fills and changes (revocation), with the JSON a Kubernetes API server
// sends: status.user.extra as k8s.io/apiserver's ServiceAccountInfo.UserInfo
// builds it (pod name and uid when bound to a pod, node name and uid when
// ServiceAccountTokenPodNodeInfo put them into the token, the credential
// id from the token's jti).
type reviewAPIServer struct {
	*httptest.Server
	requests atomic.Int32

	mu     sync.Mutex
	status map[string]string // token -> the status object, JSON
}

func newReviewAPIServer(t *testing.T) *reviewAPIServer {
	f := &reviewAPIServer{status: map[string]string{}}
	f.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.requests.Add(1)
		if r.Method != http.MethodPost || r.URL.Path != "/apis/authentication.k8s.io/v1/tokenreviews" || r.Header.Get("Authorization") != "Bearer "+saToken {
			http.Error(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","code":403}`, http.StatusForbidden)
			return
		}
		var in struct {
			Spec struct {
				Token     string   `json:"token"`
				Audiences []string `json:"audiences"`
			} `json:"spec"`
		}
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		st, ok := f.status[in.Spec.Token]
		f.mu.Unlock()
		if !ok {
			st = `{"authenticated":false,"user":{},"error":"[invalid bearer token, service account token has been invalidated]"}`
		}
		spec, _ := json.Marshal(in.Spec)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_, _ = fmt.Fprintf(w, `{"kind":"TokenReview","apiVersion":"authentication.k8s.io/v1","metadata":{"creationTimestamp":null},"spec":%s,"status":%s}`, spec, st)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *reviewAPIServer) set(token, status string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.status[token] = status
}

func (f *reviewAPIServer) revoke(token string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.status, token)
}

// Review statuses as a Kubernetes 1.31 API server writes them.
const (
	podBoundWithNode = `{"authenticated":true,"user":{"username":"system:serviceaccount:soperator:sopilot-agent","uid":"5a1f9c2d-7e33-4a88-b2c4-6f9d0e1a3b57",
	  "groups":["system:serviceaccounts","system:serviceaccounts:soperator","system:authenticated"],
	  "extra":{"authentication.kubernetes.io/credential-id":["JTI=8f4c1a7e-2b90-4b3d-9d6a-1c0f5b7e4a11"],
	    "authentication.kubernetes.io/node-name":["gpu-node-a1"],"authentication.kubernetes.io/node-uid":["b0c1e6f2-9a44-4b1f-8f0a-7d2c3e5a9b10"],
	    "authentication.kubernetes.io/pod-name":["sopilot-agent-x7k2p"],"authentication.kubernetes.io/pod-uid":["c7d2a1b3-55e6-4f77-9a01-3b8e2f6d4c99"]}},
	  "audiences":["sopilot"]}`
	// Kubernetes 1.29 (or the feature turned off): bound to the pod, no node.
	podBoundNoNode = `{"authenticated":true,"user":{"username":"system:serviceaccount:soperator:sopilot-agent","uid":"5a1f9c2d-7e33-4a88-b2c4-6f9d0e1a3b57",
	  "groups":["system:serviceaccounts","system:serviceaccounts:soperator","system:authenticated"],
	  "extra":{"authentication.kubernetes.io/pod-name":["sopilot-agent-x7k2p"],"authentication.kubernetes.io/pod-uid":["c7d2a1b3-55e6-4f77-9a01-3b8e2f6d4c99"]}},
	  "audiences":["sopilot"]}`
	// kubectl create token soperator/sopilot-agent: bound to nothing.
	unbound = `{"authenticated":true,"user":{"username":"system:serviceaccount:soperator:sopilot-agent","uid":"5a1f9c2d-7e33-4a88-b2c4-6f9d0e1a3b57",
	  "groups":["system:serviceaccounts","system:serviceaccounts:soperator","system:authenticated"],
	  "extra":{"authentication.kubernetes.io/credential-id":["JTI=1d6c9a52-7b0e-4f3a-8c21-5e9f0a4b7d36"]}},"audiences":["sopilot"]}`
	// kubectl create token --bound-object-kind Node: a node, but no pod.
	nodeBound = `{"authenticated":true,"user":{"username":"system:serviceaccount:soperator:sopilot-agent","uid":"5a1f9c2d-7e33-4a88-b2c4-6f9d0e1a3b57",
	  "groups":["system:serviceaccounts","system:serviceaccounts:soperator","system:authenticated"],
	  "extra":{"authentication.kubernetes.io/node-name":["gpu-node-a1"],"authentication.kubernetes.io/node-uid":["b0c1e6f2-9a44-4b1f-8f0a-7d2c3e5a9b10"]}},"audiences":["sopilot"]}`
	// A training pod's token: another service account, also bound to a node.
	trainerPod = `{"authenticated":true,"user":{"username":"system:serviceaccount:ml:trainer","uid":"42",
	  "groups":["system:serviceaccounts","system:serviceaccounts:ml","system:authenticated"],
	  "extra":{"authentication.kubernetes.io/node-name":["gpu-node-a1"],"authentication.kubernetes.io/pod-name":["train-0"],"authentication.kubernetes.io/pod-uid":["7"]}},"audiences":["sopilot"]}`
)

// jwtToken returns a JWT-shaped token expiring at exp (its signature is
// never checked here: the API server checks it).
func jwtToken(t *testing.T, subject string, exp time.Time) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.RegisteredClaims{Subject: subject, ExpiresAt: jwt.NewNumericDate(exp)}).SignedString([]byte("test-key"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func agentReview(t *testing.T, f *reviewAPIServer, now func() time.Time) *auth.TokenReview {
	t.Helper()
	r, err := auth.NewTokenReview(auth.TokenReviewConfig{
		URL: f.URL, Audience: "sopilot", TokenFile: writeFile(t, saToken),
		Users:    map[string]auth.Role{"system:serviceaccount:ml:trainer": auth.RoleSubmitter},
		Agents:   []auth.ServiceAccount{agentSA},
		CacheTTL: 10 * time.Second, HTTPClient: f.Client(), Logger: discard(), Now: now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestAgentTokenReview(t *testing.T) {
	f := newReviewAPIServer(t)
	r := agentReview(t, f, nil)
	tests := []struct {
		name    string
		status  string
		want    auth.Identity
		wantErr string
	}{
		{name: "pod-bound token with node", status: podBoundWithNode,
			want: auth.Identity{Name: "agent:gpu-node-a1", Kind: auth.KindAgent, Node: "gpu-node-a1", Pod: "soperator/sopilot-agent-x7k2p", Source: "tokenreview"}},
		{name: "pod-bound token without node (Kubernetes before 1.30)", status: podBoundNoNode,
			wantErr: `token of agent service account soperator/sopilot-agent: the token is bound to pod "sopilot-agent-x7k2p" but names no node (user.extra authentication.kubernetes.io/node-name): the API server needs Kubernetes 1.30+ with the ServiceAccountTokenPodNodeInfo feature on`},
		{name: "token bound to nothing", status: unbound,
			wantErr: "the token is bound to no pod and names no node (user.extra authentication.kubernetes.io/node-name): mount a projected service account token into the agent pod"},
		{name: "token bound to a node, not a pod", status: nodeBound,
			wantErr: `the token names node "gpu-node-a1" but is bound to no pod`},
		{name: "another service account's pod token is a user", status: trainerPod,
			want: auth.Identity{Name: "system:serviceaccount:ml:trainer", Kind: auth.KindUser, Role: auth.RoleSubmitter, Source: "tokenreview"}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := fmt.Sprintf("agent-token-%d", i)
			f.set(tok, tt.status)
			id, err := r.Authenticate(context.Background(), tok)
			if tt.wantErr != "" {
				if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Authenticate = %+v, %v; want Unauthenticated containing %q", id, err, tt.wantErr)
				}
				return
			}
			if err != nil || id != tt.want {
				t.Fatalf("Authenticate = %+v, %v; want %+v", id, err, tt.want)
			}
		})
	}
}

// TestAgentTokenOnConnect: over a real TLS gRPC server, an agent's token
// opens AgentService/Connect for its own Kubernetes node only, and opens
// nothing else; a user's token does not open Connect.
func TestAgentTokenOnConnect(t *testing.T) {
	f := newReviewAPIServer(t)
	f.set("agent-a1", podBoundWithNode)
	f.set("agent-old-cluster", podBoundNoNode)
	f.set("trainer", trainerPod)
	logger, logs := newLogger()
	a, err := auth.New(auth.Config{TokenReview: agentReview(t, f, nil), Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	ca := tlstest.NewCA(t)
	conn := dial(t, startServer(t, a, ca, stubs{agent: bindingAgent{}}), ca, nil)
	with := func(tok string) context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		t.Cleanup(cancel)
		return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok)
	}
	hello := func(tok, node string) error { return sendHello(with(tok), conn, node) }
	if err := hello("agent-a1", "gpu-node-a1"); status.Code(err) != codes.OK && err.Error() != "EOF" {
		t.Errorf("agent of gpu-node-a1 as gpu-node-a1: %v; want the stream to end cleanly", err)
	}
	wantStatus(t, hello("agent-a1", "gpu-node-b7"), codes.PermissionDenied,
		`agent service account token is bound to pod soperator/sopilot-agent-x7k2p on node "gpu-node-a1", not to node "gpu-node-b7"`)
	wantStatus(t, hello("agent-old-cluster", "gpu-node-a1"), codes.Unauthenticated, "names no node")
	wantStatus(t, hello("trainer", "gpu-node-a1"), codes.PermissionDenied, "is for node agents only")
	_, err = apipb.NewRunServiceClient(conn).ListRuns(with("agent-a1"), &apipb.ListRunsRequest{})
	wantStatus(t, err, codes.PermissionDenied, `is denied to node agents (caller "agent:gpu-node-a1")`)
	if s := logs.String(); strings.Contains(s, "agent-a1") || strings.Contains(s, "agent-old-cluster") {
		t.Errorf("log holds a token:\n%s", s)
	}
}

// TestAgentTokenCache: a review's answer lives at most CacheTTL, and never
// past the token's own expiry, so neither a revoked token (its pod deleted)
// nor an expired one is accepted once that time has passed.
func TestAgentTokenCache(t *testing.T) {
	f := newReviewAPIServer(t)
	now := time.Unix(1_800_000_000, 0)
	r := agentReview(t, f, func() time.Time { return now })
	ctx := context.Background()

	revoked := jwtToken(t, agentUser, now.Add(time.Hour))
	f.set(revoked, podBoundWithNode)
	if _, err := r.Authenticate(ctx, revoked); err != nil {
		t.Fatal(err)
	}
	f.revoke(revoked) // the agent pod is deleted
	now = now.Add(9 * time.Second)
	if _, err := r.Authenticate(ctx, revoked); err != nil || f.requests.Load() != 1 {
		t.Fatalf("within CacheTTL: %v after %d reviews; want the cached answer", err, f.requests.Load())
	}
	now = now.Add(time.Second)
	if _, err := r.Authenticate(ctx, revoked); status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "invalidated") {
		t.Fatalf("revoked token at CacheTTL: %v; want it refused", err)
	}

	short := jwtToken(t, agentUser, now.Add(3*time.Second))
	f.set(short, podBoundWithNode)
	if _, err := r.Authenticate(ctx, short); err != nil {
		t.Fatal(err)
	}
	f.set(short, `{"authenticated":false,"user":{},"error":"[invalid bearer token, service account token has expired]"}`)
	before := f.requests.Load()
	now = now.Add(3 * time.Second)
	if _, err := r.Authenticate(ctx, short); status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "expired") || f.requests.Load() != before+1 {
		t.Fatalf("token at its expiry, inside CacheTTL: %v (%d new reviews); want a new review that refuses it", err, f.requests.Load()-before)
	}
}

func TestAgentServiceAccountConfig(t *testing.T) {
	f := newReviewAPIServer(t)
	base := auth.TokenReviewConfig{URL: f.URL, Audience: "sopilot", HTTPClient: f.Client()}
	cfg := base
	cfg.Agents = []auth.ServiceAccount{agentSA}
	cfg.Users = map[string]auth.Role{agentUser: auth.RoleAdmin}
	if _, err := auth.NewTokenReview(cfg); err == nil || !strings.Contains(err.Error(), "soperator/sopilot-agent is an agent service account and cannot also have a user role") {
		t.Errorf("agent account with a user role: %v", err)
	}
	cfg = base
	cfg.Agents = []auth.ServiceAccount{{Namespace: "Soperator", Name: "x"}}
	if _, err := auth.NewTokenReview(cfg); !errors.Is(err, auth.ErrBadServiceAccount) {
		t.Errorf("bad agent account: %v; want ErrBadServiceAccount", err)
	}
}

func TestParseServiceAccount(t *testing.T) {
	tests := []struct {
		in   string
		want auth.ServiceAccount
		ok   bool
	}{
		{"soperator/sopilot-agent", agentSA, true},
		{" ml/trainer.v2 ", auth.ServiceAccount{Namespace: "ml", Name: "trainer.v2"}, true},
		{"sopilot-agent", auth.ServiceAccount{}, false},
		{"/sopilot-agent", auth.ServiceAccount{}, false},
		{"soperator/", auth.ServiceAccount{}, false},
		{"soperator/a/b", auth.ServiceAccount{}, false},
		{"Soperator/agent", auth.ServiceAccount{}, false},
		{"system:serviceaccount:soperator:agent", auth.ServiceAccount{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := auth.ParseServiceAccount(tt.in)
			if tt.ok != (err == nil) || got != tt.want {
				t.Fatalf("ParseServiceAccount(%q) = %+v, %v", tt.in, got, err)
			}
			if err != nil && !errors.Is(err, auth.ErrBadServiceAccount) {
				t.Fatalf("error %v is not ErrBadServiceAccount", err)
			}
			if err == nil && got.Username() != "system:serviceaccount:"+got.Namespace+":"+got.Name {
				t.Fatalf("Username() = %q", got.Username())
			}
		})
	}
}
