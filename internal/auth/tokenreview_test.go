package auth_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/sopilot/sopilot/internal/auth"
)

const (
	saToken      = "controller-service-account-token"
	goodToken    = "eyJhbGciOiJSUzI1NiJ9.good.signature"
	expiredToken = "eyJhbGciOiJSUzI1NiJ9.expired.signature"
	otherAudTok  = "eyJhbGciOiJSUzI1NiJ9.otheraudience.signature"
	nobodyToken  = "eyJhbGciOiJSUzI1NiJ9.nobody.signature"
)

// fakeAPIServer mimics the TokenReview endpoint of a Kubernetes API
// server. Its error for the expired token echoes the token, as a careless
// upstream might, to check that it is redacted.
type fakeAPIServer struct {
	*httptest.Server
	requests atomic.Int32
}

func newFakeAPIServer(t *testing.T) *fakeAPIServer {
	f := &fakeAPIServer{}
	f.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.requests.Add(1)
		if r.Method != http.MethodPost || r.URL.Path != "/apis/authentication.k8s.io/v1/tokenreviews" {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		if r.Header.Get("Authorization") != "Bearer "+saToken {
			http.Error(w, `{"kind":"Status","code":401}`, http.StatusUnauthorized)
			return
		}
		var in struct {
			APIVersion, Kind string
			Spec             struct {
				Token     string   `json:"token"`
				Audiences []string `json:"audiences"`
			} `json:"spec"`
		}
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.APIVersion != "authentication.k8s.io/v1" || in.Kind != "TokenReview" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		if len(in.Spec.Audiences) != 1 || in.Spec.Audiences[0] != "sopilot" {
			http.Error(w, "test expects audiences [sopilot]", http.StatusBadRequest)
			return
		}
		st := map[string]any{"authenticated": false}
		switch in.Spec.Token {
		case goodToken:
			st = map[string]any{"authenticated": true, "audiences": []string{"sopilot"}, "user": map[string]any{
				"username": "system:serviceaccount:ml:trainer", "uid": "42", "groups": []string{"system:serviceaccounts", "ml-team"}}}
		case nobodyToken:
			st = map[string]any{"authenticated": true, "audiences": []string{"sopilot"}, "user": map[string]any{"username": "system:serviceaccount:default:nobody"}}
		case otherAudTok:
			st = map[string]any{"authenticated": true, "audiences": []string{"vault"}, "user": map[string]any{"username": "x"}}
		case expiredToken:
			st = map[string]any{"authenticated": false, "error": "[invalid bearer token " + expiredToken + ", service account token has expired]"}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(map[string]any{"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "status": st})
	}))
	t.Cleanup(f.Close)
	return f
}

func newReview(t *testing.T, f *fakeAPIServer, now func() time.Time) *auth.TokenReview {
	t.Helper()
	dir := t.TempDir()
	tokFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokFile, []byte(saToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := auth.NewTokenReview(auth.TokenReviewConfig{
		URL:        f.URL,
		Audience:   "sopilot",
		TokenFile:  tokFile,
		Users:      map[string]auth.Role{"system:serviceaccount:ml:trainer": auth.RoleViewer},
		Groups:     map[string]auth.Role{"ml-team": auth.RoleSubmitter, "unused": auth.RoleAdmin},
		CacheTTL:   10 * time.Second,
		HTTPClient: f.Client(),
		Logger:     discard(),
		Now:        now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestTokenReview(t *testing.T) {
	f := newFakeAPIServer(t)
	now := time.Unix(1_800_000_000, 0)
	r := newReview(t, f, func() time.Time { return now })
	ctx := context.Background()

	id, err := r.Authenticate(ctx, goodToken)
	want := auth.Identity{Name: "system:serviceaccount:ml:trainer", Kind: auth.KindUser, Role: auth.RoleSubmitter, Source: "tokenreview"}
	if err != nil || id != want {
		t.Fatalf("Authenticate(good) = %+v, %v; want %+v (highest of user viewer and group submitter)", id, err, want)
	}
	if _, err := r.Authenticate(ctx, goodToken); err != nil || f.requests.Load() != 1 {
		t.Fatalf("second call: err %v, API requests %d; want a cache hit", err, f.requests.Load())
	}
	now = now.Add(11 * time.Second)
	if _, err := r.Authenticate(ctx, goodToken); err != nil || f.requests.Load() != 2 {
		t.Fatalf("after the TTL: err %v, API requests %d; want a new review", err, f.requests.Load())
	}

	_, err = r.Authenticate(ctx, expiredToken)
	if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "service account token has expired") {
		t.Fatalf("expired token: %v; want Unauthenticated saying it expired", err)
	}
	if strings.Contains(err.Error(), expiredToken) || !strings.Contains(err.Error(), "[REDACTED]") {
		t.Fatalf("expired token error does not redact the echoed token: %v", err)
	}
	_, err = r.Authenticate(ctx, otherAudTok)
	if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), `not for audience "sopilot"`) {
		t.Fatalf("other audience: %v", err)
	}
	id, err = r.Authenticate(ctx, nobodyToken)
	if err != nil || id.Role != auth.RoleNone || id.Name != "system:serviceaccount:default:nobody" {
		t.Fatalf("unmapped user = %+v, %v; want authenticated with no role", id, err)
	}
}

func TestTokenReviewAPIServerErrors(t *testing.T) {
	f := newFakeAPIServer(t)
	r := newReview(t, f, nil)
	// The controller's own token is wrong: the API server answers 401.
	bad, err := auth.NewTokenReview(auth.TokenReviewConfig{URL: f.URL, Audience: "sopilot", TokenFile: writeFile(t, "wrong"), HTTPClient: f.Client(), Logger: discard()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = bad.Authenticate(context.Background(), goodToken)
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "HTTP 401") {
		t.Fatalf("API server 401: %v; want Unavailable naming HTTP 401", err)
	}
	f.Close()
	_, err = r.Authenticate(context.Background(), goodToken)
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("API server down: %v; want Unavailable", err)
	}
	if _, err := auth.NewTokenReview(auth.TokenReviewConfig{URL: f.URL}); err == nil || !strings.Contains(err.Error(), "audience") {
		t.Errorf("missing audience: %v", err)
	}
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestTokenReviewThroughAuthorizer: an expired token is refused with
// Unauthenticated, and neither the error nor the log holds it.
func TestTokenReviewThroughAuthorizer(t *testing.T) {
	f := newFakeAPIServer(t)
	logger, logs := newLogger()
	a := tokenAuthorizer(t, auth.Config{TokenReview: newReview(t, f, nil), Logger: logger})
	in := func(tok string) context.Context {
		return metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+tok))
	}
	_, err := a.Authorize(in(expiredToken), "/sopilot.api.v1.RunService/ListRuns")
	if status.Code(err) != codes.Unauthenticated || strings.Contains(err.Error(), expiredToken) {
		t.Fatalf("expired token: %v", err)
	}
	ctx, err := a.Authorize(in(goodToken), "/sopilot.api.v1.RunService/CreateRun")
	if err != nil {
		t.Fatal(err)
	}
	if id, ok := auth.FromContext(ctx); !ok || id.Source != "tokenreview" || id.Role != auth.RoleSubmitter {
		t.Fatalf("identity = %+v, %v", id, ok)
	}
	_, err = a.Authorize(in(nobodyToken), "/sopilot.api.v1.RunService/GetRun")
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "requires role viewer; caller \"system:serviceaccount:default:nobody\" has role none") {
		t.Fatalf("unmapped user: %v", err)
	}
	// The token file still answers first.
	if _, err := a.Authorize(in(roleTokens[auth.RoleAdmin]), "/sopilot.api.v1.NodeService/DrainNode"); err != nil {
		t.Fatal(err)
	}
	if s := logs.String(); strings.Contains(s, expiredToken) || strings.Contains(s, nobodyToken) || strings.Contains(s, "signature") {
		t.Fatalf("log holds a token:\n%s", s)
	}
	if !strings.Contains(logs.String(), "authentication failed") {
		t.Fatalf("the refusal was not logged:\n%s", logs.String())
	}
}
