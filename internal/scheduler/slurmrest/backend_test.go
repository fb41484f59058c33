package slurmrest

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/sopilot/sopilot/internal/scheduler"
	"github.com/sopilot/sopilot/internal/testclock"
)

// recorded is one request the fake slurmrestd saw.
type recorded struct {
	Method string
	Path   string
	Query  string
	Header http.Header
	Body   []byte
}

// fakeREST is an httptest slurmrestd that answers every request with the
// same status and body, and records the requests.
type fakeREST struct {
	mu       sync.Mutex
	requests []recorded
	status   int
	body     []byte
	delay    time.Duration
	srv      *httptest.Server
}

func newFakeREST(t *testing.T, status int, body []byte) *fakeREST {
	t.Helper()
	f := &fakeREST{status: status, body: body}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

// newFakeRESTCase is a table case's fake: fixture (under fixtures2205),
// its status overridden when status is set, or else status and body.
func newFakeRESTCase(t *testing.T, fixture string, status int, body string) *fakeREST {
	t.Helper()
	if fixture == "" {
		return newFakeREST(t, status, []byte(body))
	}
	f := newFakeRESTFixture(t, filepath.Join(fixtures2205, fixture))
	if status != 0 {
		f.status = status
	}
	return f
}

// newFakeRESTFixture answers with a captured or written fixture and the
// status recorded next to it (NAME.status; 200 when absent).
func newFakeRESTFixture(t *testing.T, path string) *fakeREST {
	t.Helper()
	status := http.StatusOK
	if s, err := os.ReadFile(path + ".status"); err == nil {
		n, err := strconv.Atoi(strings.TrimSpace(string(s)))
		if err != nil {
			t.Fatalf("bad status file for %s: %v", path, err)
		}
		status = n
	}
	return newFakeREST(t, status, readFixture(t, path))
}

func (f *fakeREST) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.requests = append(f.requests, recorded{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Header: r.Header.Clone(), Body: body})
	status, resp, delay := f.status, f.body, f.delay
	f.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(resp)
}

func (f *fakeREST) calls() []recorded {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]recorded(nil), f.requests...)
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func newTestBackend(t *testing.T, cfg Config) *Backend {
	t.Helper()
	if cfg.Token == "" && cfg.JWTKeyFile == "" {
		cfg.Token = "static-token"
	}
	if cfg.UserName == "" {
		cfg.UserName = "sopilot"
	}
	b, err := New(cfg, testLogger(t))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return b
}

func TestNew_Config(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "jwt.key")
	if err := os.WriteFile(keyFile, []byte("k"), 0o600); err != nil {
		t.Fatal(err)
	}
	emptyKey := filepath.Join(t.TempDir(), "empty.key")
	if err := os.WriteFile(emptyKey, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{name: "static token", cfg: Config{BaseURL: "http://127.0.0.1:6820", Token: "t", UserName: "u"}},
		{name: "static token without user (Slurm 23.02+)", cfg: Config{BaseURL: "http://h:1", Token: "t"}},
		{name: "key file", cfg: Config{BaseURL: "http://h:1", JWTKeyFile: keyFile, UserName: "u"}},
		{name: "unix socket", cfg: Config{BaseURL: "unix:///run/slurmrestd.sock", Token: "t"}},
		{name: "https with prefix", cfg: Config{BaseURL: "https://proxy/slurmrest/", Token: "t", APIVersion: "v0.0.41"}},
		{name: "no URL", cfg: Config{Token: "t"}, wantErr: "base URL is empty"},
		{name: "bad scheme", cfg: Config{BaseURL: "ftp://h", Token: "t"}, wantErr: "scheme"},
		{name: "no host", cfg: Config{BaseURL: "http:///x", Token: "t"}, wantErr: "no host"},
		{name: "query", cfg: Config{BaseURL: "http://h/?a=b", Token: "t"}, wantErr: "query"},
		{name: "relative unix path", cfg: Config{BaseURL: "unix://run/x.sock", Token: "t"}, wantErr: "unix:///absolute/path"},
		{name: "no credentials", cfg: Config{BaseURL: "http://h:1"}, wantErr: "no credentials"},
		{name: "both credentials", cfg: Config{BaseURL: "http://h:1", Token: "t", JWTKeyFile: keyFile, UserName: "u"}, wantErr: "use one"},
		{name: "key file without user", cfg: Config{BaseURL: "http://h:1", JWTKeyFile: keyFile}, wantErr: "user name is required"},
		{name: "missing key file", cfg: Config{BaseURL: "http://h:1", JWTKeyFile: keyFile + ".nope", UserName: "u"}, wantErr: "read JWT key"},
		{name: "empty key file", cfg: Config{BaseURL: "http://h:1", JWTKeyFile: emptyKey, UserName: "u"}, wantErr: "empty"},
		{name: "header injection", cfg: Config{BaseURL: "http://h:1", Token: "t\r\nX: y"}, wantErr: "line breaks"},
		{name: "short token lifetime", cfg: Config{BaseURL: "http://h:1", JWTKeyFile: keyFile, UserName: "u", TokenLifetime: time.Second}, wantErr: "shorter"},
		{name: "old API version", cfg: Config{BaseURL: "http://h:1", Token: "t", APIVersion: "v0.0.37"}, wantErr: "not supported"},
		{name: "unix socket with foreign transport", cfg: Config{BaseURL: "unix:///x.sock", Token: "t",
			HTTPClient: &http.Client{Transport: roundTripFunc(nil)}}, wantErr: "needs an *http.Transport"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := New(tt.cfg, nil)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				if b.Name() != "rest" {
					t.Errorf("Name() = %q", b.Name())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestRequests_HeadersAndPaths(t *testing.T) {
	f := newFakeRESTFixture(t, filepath.Join(fixtures2205, "submit-success.json"))
	b := newTestBackend(t, Config{BaseURL: f.srv.URL + "/prefix/", Token: "tok-123", UserName: "alice"})
	ctx := context.Background()

	if _, err := b.Submit(ctx, seedSpec()); err != nil {
		t.Fatalf("Submit: %v", err)
	}
	_, _ = b.Jobs(ctx, []string{"1"}) // the body is a submit answer; only the request matters
	_ = b.Cancel(ctx, "42")

	calls := f.calls()
	if len(calls) != 3 {
		t.Fatalf("got %d requests, want 3", len(calls))
	}
	want := []struct{ method, path string }{
		{http.MethodPost, "/prefix/slurm/v0.0.38/job/submit"},
		{http.MethodGet, "/prefix/slurm/v0.0.38/jobs"},
		{http.MethodDelete, "/prefix/slurm/v0.0.38/job/42"},
	}
	for i, c := range calls {
		if c.Method != want[i].method || c.Path != want[i].path {
			t.Errorf("request %d: %s %s, want %s %s", i, c.Method, c.Path, want[i].method, want[i].path)
		}
		if got := c.Header.Get("X-SLURM-USER-NAME"); got != "alice" {
			t.Errorf("request %d: X-SLURM-USER-NAME = %q", i, got)
		}
		if got := c.Header.Get("X-SLURM-USER-TOKEN"); got != "tok-123" {
			t.Errorf("request %d: X-SLURM-USER-TOKEN = %q", i, got)
		}
		if got := c.Header.Get("Accept"); got != "application/json" {
			t.Errorf("request %d: Accept = %q", i, got)
		}
		if c.Query != "" {
			t.Errorf("request %d: query %q, want none (slurmrestd defaults to SIGKILL)", i, c.Query)
		}
	}
	if got := calls[0].Header.Get("Content-Type"); got != "application/json" {
		t.Errorf("submit Content-Type = %q", got)
	}
	wantBody, err := submitBody(mustVersion(t, "v0.0.38"), seedSpec())
	if err != nil {
		t.Fatal(err)
	}
	if !jsonEqual(t, calls[0].Body, wantBody) {
		t.Errorf("submit body %s, want %s", calls[0].Body, wantBody)
	}
}

func TestRequests_NewerVersionPath(t *testing.T) {
	f := newFakeRESTFixture(t, "testdata/slurm-24.11-v0.0.41/submit-success.json")
	b := newTestBackend(t, Config{BaseURL: f.srv.URL, APIVersion: "v0.0.41"})
	id, err := b.Submit(context.Background(), seedSpec())
	if err != nil || id != "13" {
		t.Fatalf("Submit = %q, %v", id, err)
	}
	c := f.calls()[0]
	if c.Path != "/slurm/v0.0.41/job/submit" {
		t.Errorf("path %s", c.Path)
	}
	var body struct {
		Script *string `json:"script"`
		Job    struct {
			Script      string   `json:"script"`
			Environment []string `json:"environment"`
		} `json:"job"`
	}
	if err := json.Unmarshal(c.Body, &body); err != nil {
		t.Fatal(err)
	}
	if body.Script != nil || body.Job.Script == "" || len(body.Job.Environment) == 0 {
		t.Errorf("v0.0.41 body should carry job.script and an environment array: %s", c.Body)
	}
}

// writeKey writes an HS256 key the way cluster scripts do (random bytes,
// here fixed) and returns its path.
func writeKey(t *testing.T, key []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "jwt_hs256.key")
	if err := os.WriteFile(p, key, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestMintedToken_ClaimsAndRenewal(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef\n") // trailing newline is part of the key
	keyFile := writeKey(t, key)
	f := newFakeREST(t, http.StatusOK, []byte(`{"jobs":[],"errors":[]}`))
	clock := testclock.New(time.Unix(1800000000, 0))
	cfg := Config{BaseURL: f.srv.URL, JWTKeyFile: keyFile, UserName: "sopilot", TokenLifetime: 9 * time.Minute, now: clock.Now}
	b := newTestBackend(t, cfg)
	ctx := context.Background()

	tokenOf := func(i int) string { return f.calls()[i].Header.Get("X-SLURM-USER-TOKEN") }
	decode := func(tok string, k []byte) jwt.MapClaims {
		t.Helper()
		claims := jwt.MapClaims{}
		_, err := jwt.NewParser(jwt.WithValidMethods([]string{"HS256"}), jwt.WithoutClaimsValidation()).
			ParseWithClaims(tok, claims, func(*jwt.Token) (any, error) { return k, nil })
		if err != nil {
			t.Fatalf("minted token does not verify with the key file's bytes: %v", err)
		}
		return claims
	}

	if _, err := b.Jobs(ctx, []string{"1"}); err != nil {
		t.Fatal(err)
	}
	claims := decode(tokenOf(0), key)
	if claims["sun"] != "sopilot" {
		t.Errorf("sun = %v", claims["sun"])
	}
	iat, _ := claims["iat"].(float64)
	exp, _ := claims["exp"].(float64)
	if int64(iat) != 1800000000 || int64(exp) != 1800000000+9*60 {
		t.Errorf("iat = %v, exp = %v", claims["iat"], claims["exp"])
	}
	if len(claims) != 3 {
		t.Errorf("claims = %v, want exactly iat, exp, sun", claims)
	}
	// Slurm reads exp and iat with jwt_get_grant_int: they must be integers.
	payload := strings.Split(tokenOf(0), ".")[1]
	if raw, err := jwt.NewParser().DecodeSegment(payload); err != nil || strings.Contains(string(raw), ".") {
		t.Errorf("payload %s: times must be whole numbers (%v)", raw, err)
	}
	if got := f.calls()[0].Header.Get("X-SLURM-USER-NAME"); got != "sopilot" {
		t.Errorf("X-SLURM-USER-NAME = %q", got)
	}

	// Reused while more than a third of the lifetime is left.
	clock.Advance(5 * time.Minute)
	if _, err := b.Jobs(ctx, []string{"1"}); err != nil {
		t.Fatal(err)
	}
	if tokenOf(1) != tokenOf(0) {
		t.Error("token renewed too early")
	}

	// Renewed after two thirds, with a rotated key read from the file.
	newKey := []byte("another key")
	if err := os.WriteFile(keyFile, newKey, 0o600); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Minute + time.Second)
	if _, err := b.Jobs(ctx, []string{"1"}); err != nil {
		t.Fatal(err)
	}
	if tokenOf(2) == tokenOf(1) {
		t.Fatal("token not renewed")
	}
	claims = decode(tokenOf(2), newKey)
	if exp, _ := claims["exp"].(float64); int64(exp) != clock.Now().Add(9*time.Minute).Unix() {
		t.Errorf("renewed exp = %v", claims["exp"])
	}

	// A key file that disappears does not stop renewals.
	if err := os.Remove(keyFile); err != nil {
		t.Fatal(err)
	}
	clock.Advance(7 * time.Minute)
	if _, err := b.Jobs(ctx, []string{"1"}); err != nil {
		t.Fatalf("renewal with a vanished key file: %v", err)
	}
	decode(tokenOf(3), newKey)
}

func TestMintedToken_Concurrent(t *testing.T) {
	keyFile := writeKey(t, []byte("k"))
	var n atomic.Int32
	f := newFakeREST(t, http.StatusOK, []byte(`{"jobs":[]}`))
	b := newTestBackend(t, Config{BaseURL: f.srv.URL, JWTKeyFile: keyFile, UserName: "u"})
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := b.Jobs(context.Background(), []string{"1"}); err == nil {
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	if n.Load() != 8 {
		t.Errorf("%d of 8 concurrent calls succeeded", n.Load())
	}
}

func TestStaticToken_Expired(t *testing.T) {
	clock := testclock.New(time.Unix(1800000000, 0))
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"iat": int64(1799990000), "exp": int64(1800000000), "sun": "u",
	}).SignedString([]byte("k"))
	if err != nil {
		t.Fatal(err)
	}
	f := newFakeREST(t, http.StatusOK, []byte(`{"jobs":[]}`))
	b := newTestBackend(t, Config{BaseURL: f.srv.URL, Token: tok, UserName: "u", now: clock.Now})
	_, err = b.Submit(context.Background(), seedSpec())
	if !errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("err = %v, want ErrUnauthorized about expiry", err)
	}
	if len(f.calls()) != 0 {
		t.Error("an expired token was sent")
	}
	// A token that is not a JWT is sent as it is; slurmrestd decides.
	b = newTestBackend(t, Config{BaseURL: f.srv.URL, Token: "opaque", UserName: "u", now: clock.Now})
	if _, err := b.Jobs(context.Background(), []string{"1"}); err != nil {
		t.Fatalf("opaque token: %v", err)
	}
}

// sentinel names the class an error belongs to.
func sentinel(err error) string {
	switch {
	case err == nil:
		return "nil"
	case errors.Is(err, ErrUnauthorized):
		if !errors.Is(err, scheduler.ErrMisconfigured) || errors.Is(err, scheduler.ErrRejected) {
			return "unauthorized but not only misconfigured"
		}
		return "unauthorized"
	case errors.Is(err, ErrNotServed):
		if !errors.Is(err, scheduler.ErrMisconfigured) || errors.Is(err, scheduler.ErrRejected) {
			return "not served but not only misconfigured"
		}
		return "not served"
	case errors.Is(err, scheduler.ErrUnavailable):
		return "unavailable"
	case errors.Is(err, scheduler.ErrRejected):
		return "rejected"
	}
	return "other"
}

func TestErrorMapping(t *testing.T) {
	tests := []struct {
		name     string
		fixture  string // served with its .status
		status   int    // or this status and body
		body     string
		op       string // "submit", "jobs", "cancel"
		want     string
		wantText string
	}{
		{name: "401 no headers (22.05 capture)", fixture: "auth-no-headers.json", op: "jobs", want: "unauthorized", wantText: "Authentication failure"},
		// 22.05 answers a refused token and a stopped slurmctld alike on
		// GET /jobs: retryable, with a hint; Check tells them apart.
		{name: "bad token: 500 with SLURM_ERROR (22.05 capture)", fixture: "auth-bad-token.json", op: "jobs", want: "unavailable", wantText: "JWT"},
		{name: "expired token (22.05 capture)", fixture: "auth-expired-token.json", op: "jobs", want: "unavailable"},
		{name: "token for another user (22.05 capture)", fixture: "auth-user-mismatch.json", op: "jobs", want: "unavailable"},
		{name: "slurmctld down: listing (22.05 capture)", fixture: "controller-down-jobs.json", op: "jobs", want: "unavailable", wantText: "Unspecified error"},
		{name: "slurmctld down: submit (22.05 capture)", fixture: "controller-down-submit.json", op: "submit", want: "unavailable", wantText: "Unable to contact slurm controller"},
		{name: "slurmctld down: cancel (22.05 capture)", fixture: "controller-down-cancel.json", op: "cancel", want: "unavailable", wantText: "Unable to contact slurm controller"},
		{name: "SLURM_ERROR on submit is a refusal", status: 500, body: `{"errors":[{"error_code":-1,"error":"Unspecified error"}]}`, op: "submit", want: "rejected"},
		{name: "403", status: 403, body: `{"errors":[]}`, op: "jobs", want: "unauthorized"},
		{name: "auth error number", status: 500, body: `{"errors":[{"error_number":6000,"error":"Invalid authentication credential"}]}`, op: "submit", want: "unauthorized"},
		{name: "bad partition: 500 with 2000 (22.05 capture)", fixture: "submit-invalid-partition.json", op: "submit", want: "rejected", wantText: "Invalid partition name specified"},
		{name: "unknown key: 400 (22.05 capture)", fixture: "submit-unknown-key.json", op: "submit", want: "rejected", wantText: `Unknown key "tres_per_node"`},
		{name: "no script (22.05 capture)", fixture: "submit-no-script.json", op: "submit", want: "rejected", wantText: "Job script not specified"},
		{name: "malformed: 400 text (22.05 capture)", fixture: "submit-malformed.json", op: "submit", want: "rejected", wantText: "Unable to parse query"},
		{name: "bad partition (24.11 v0.0.41 capture)", fixture: "../slurm-24.11-v0.0.41/submit-invalid-partition.json", op: "submit", want: "rejected", wantText: "Invalid partition name specified"},
		{name: "bad partition: 422 (26.05 v0.0.45 capture)", fixture: "../slurm-26.05-v0.0.45/submit-invalid-partition.json", op: "submit", want: "rejected", wantText: "Invalid partition name specified"},
		{name: "slurmctld down: 502 listing (24.11 v0.0.40 capture)", fixture: "../slurm-24.11-v0.0.40/controller-down-jobs.json", op: "jobs", want: "unavailable", wantText: "Unable to contact slurm controller"},
		{name: "slurmctld down: cancel, 500 EPERM (24.11 v0.0.42 capture)", fixture: "../slurm-24.11-v0.0.42/controller-down-cancel.json", op: "cancel", want: "unavailable", wantText: "Operation not permitted"},
		{name: "slurmctld down: cancel, 403 EPERM (26.05 v0.0.45 capture)", fixture: "../slurm-26.05-v0.0.45/controller-down-cancel.json", op: "cancel", want: "unavailable", wantText: "Operation not permitted"},
		{name: "bad token on cancel: 511 with 1007 (26.05)", status: 511, body: `{"status":[],"errors":[{"description":"Signal request failed","error_number":1007,"error":"Protocol authentication error","source":"slurm_kill_jobs()"}]}`, op: "cancel", want: "unauthorized"},
		{name: "unknown URL on 26.05 (capture)", fixture: "../slurm-26.05-v0.0.45/unknown-path.json", op: "jobs", want: "not served", wantText: "Unable to find requested URL endpoint"},
		{name: "slurmctld down on submit", status: 500, body: `{"errors":[{"error_code":1001,"error":"Unable to contact slurm controller (connect failure)"}]}`, op: "submit", want: "unavailable"},
		{name: "zero bytes from slurmctld", status: 500, body: `{"errors":[{"error_code":5005,"error":"Zero Bytes were transmitted or received"}]}`, op: "submit", want: "unavailable", wantText: "JWT"},
		{name: "500 without body", status: 500, body: ``, op: "jobs", want: "unavailable"},
		{name: "502 from a proxy", status: 502, body: `<html>bad gateway</html>`, op: "submit", want: "unavailable", wantText: "bad gateway"},
		{name: "503", status: 503, body: ``, op: "cancel", want: "unavailable"},
		{name: "404 unknown URL: v0.0.42 asked of 22.05 (capture)", fixture: "unknown-version.json", op: "jobs", want: "not served", wantText: "Unable find requested URL"},
		{name: "404 unknown URL on submit is never a refusal", fixture: "unknown-version.json", op: "submit", want: "not served"},
		{name: "404 unknown URL on cancel is never success", fixture: "unknown-version.json", op: "cancel", want: "not served"},
		{name: "401 on submit", status: 401, body: `Authentication failure`, op: "submit", want: "unauthorized"},
		{name: "errors array in a 200 listing", status: 200, body: `{"jobs":[],"errors":[{"error_number":2017,"error":"Invalid job id specified"}]}`, op: "jobs", want: "unavailable"},
		{name: "unnumbered error in a 200 listing", status: 200, body: `{"jobs":[],"errors":[{"error":"Unspecified error"}]}`, op: "jobs", want: "unavailable"},
		{name: "cancel refused in status, HTTP 200", status: 200, body: `{"status":[{"error":{"string":"Access/permission denied","code":2002},"step_id":"batch","job_id":999999}],"errors":[],"warnings":[]}`, op: "cancel", want: "rejected", wantText: "Access/permission denied"},
		{name: "cancel of an unknown job in status, HTTP 200", status: 200, body: `{"status":[{"error":{"string":"Invalid job id specified","code":2017},"step_id":"batch","job_id":999999}],"errors":[]}`, op: "cancel", want: "nil"},
		{name: "cancel in status: slurmctld unreachable", status: 200, body: `{"status":[{"error":{"string":"Unable to contact slurm controller (connect failure)","code":1001}}],"errors":[]}`, op: "cancel", want: "unavailable"},
		{name: "cancel status success", status: 200, body: `{"status":[{"error":{"string":"No error","code":0},"step_id":"batch","job_id":999999}],"errors":[]}`, op: "cancel", want: "nil"},
		{name: "200 that is not JSON", status: 200, body: `hello`, op: "jobs", want: "other"},
		{name: "200 listing without jobs", status: 200, body: `{"errors":[]}`, op: "jobs", want: "other"},
		{name: "200 submit without job id", status: 200, body: `{"errors":[]}`, op: "submit", want: "other"},
		{name: "cancel of an unknown job: 500 with 2017 (22.05 capture)", fixture: "cancel-unknown.json", op: "cancel", want: "nil"},
		{name: "cancel of an unknown job: 404 with 2017", status: 404, body: `{"errors":[{"error_number":2017,"error":"Invalid job id specified"}]}`, op: "cancel", want: "nil"},
		{name: "cancel of an unknown job: 200, 2017 in status (24.11 v0.0.42 capture)", fixture: "../slurm-24.11-v0.0.42/cancel-unknown.json", op: "cancel", want: "nil"},
		{name: "cancel of an ended job: 200, 2021 in status (26.05 v0.0.45 capture)", fixture: "../slurm-26.05-v0.0.45/cancel-completed.json", op: "cancel", want: "nil"},
		{name: "cancel of an unknown job: 200 and nothing (24.11 v0.0.40 capture)", fixture: "../slurm-24.11-v0.0.40/cancel-unknown.json", op: "cancel", want: "nil"},
		{name: "cancel already done as error", status: 500, body: `{"errors":[{"error_number":2021,"error":"Job/step already completing or completed"}]}`, op: "cancel", want: "nil"},
		{name: "cancel (22.05 capture)", fixture: "cancel-job.json", op: "cancel", want: "nil"},
		{name: "cancel of a completed job (22.05 capture)", fixture: "cancel-completed.json", op: "cancel", want: "nil"},
		{name: "cancel refused", status: 500, body: `{"errors":[{"error_number":2002,"error":"Access/permission denied"}]}`, op: "cancel", want: "rejected"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeRESTCase(t, tt.fixture, tt.status, tt.body)
			b := newTestBackend(t, Config{BaseURL: f.srv.URL})
			var err error
			switch tt.op {
			case "submit":
				_, err = b.Submit(context.Background(), seedSpec())
			case "jobs":
				_, err = b.Jobs(context.Background(), []string{"1"})
			case "cancel":
				err = b.Cancel(context.Background(), "999999")
			}
			if got := sentinel(err); got != tt.want {
				t.Fatalf("err = %v (%s), want %s", err, got, tt.want)
			}
			if tt.wantText != "" && !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("err = %q, want it to contain %q", err, tt.wantText)
			}
			if err != nil {
				var apiErr *APIError
				if errors.As(err, &apiErr) && apiErr.StatusCode != f.status {
					t.Errorf("APIError.StatusCode = %d, want %d", apiErr.StatusCode, f.status)
				}
			}
		})
	}
}

func TestSubmit_JobCreatedDespiteError(t *testing.T) {
	// 22.05 answers 200 with job_id and error 2015 when the job exceeds a
	// partition limit: the job exists (pending, PartitionNodeLimit), as with
	// sbatch, so its id is returned rather than an error that would make the
	// controller submit it again.
	f := newFakeRESTFixture(t, filepath.Join(fixtures2205, "submit-too-many-nodes.json"))
	b := newTestBackend(t, Config{BaseURL: f.srv.URL})
	id, err := b.Submit(context.Background(), seedSpec())
	if err != nil || id != "15" {
		t.Fatalf("Submit = %q, %v; want 15, nil", id, err)
	}
	// Newer slurmrestd answers 500 in the same situation.
	f = newFakeREST(t, 500, []byte(`{"job_id":77,"step_id":"batch","errors":[{"error_number":2015,"error":"Requested partition configuration not available now"}]}`))
	b = newTestBackend(t, Config{BaseURL: f.srv.URL, APIVersion: "v0.0.42"})
	if id, err := b.Submit(context.Background(), seedSpec()); err != nil || id != "77" {
		t.Fatalf("Submit = %q, %v; want 77, nil", id, err)
	}
}

func TestTransportErrors(t *testing.T) {
	t.Run("connection refused", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		b := newTestBackend(t, Config{BaseURL: "http://" + addr})
		_, err = b.Submit(context.Background(), seedSpec())
		if !errors.Is(err, scheduler.ErrUnavailable) {
			t.Fatalf("err = %v, want ErrUnavailable", err)
		}
		if !strings.Contains(err.Error(), "refused") {
			t.Errorf("err = %v, want the dial error kept", err)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		f := newFakeREST(t, 200, []byte(`{"jobs":[]}`))
		f.delay = 2 * time.Second
		b := newTestBackend(t, Config{BaseURL: f.srv.URL, Timeout: 50 * time.Millisecond})
		start := time.Now()
		_, err := b.Jobs(context.Background(), []string{"1"})
		if !errors.Is(err, scheduler.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want ErrUnavailable and DeadlineExceeded", err)
		}
		if time.Since(start) > time.Second {
			t.Errorf("took %v", time.Since(start))
		}
	})
	t.Run("caller cancels", func(t *testing.T) {
		f := newFakeREST(t, 200, []byte(`{"jobs":[]}`))
		f.delay = 2 * time.Second
		b := newTestBackend(t, Config{BaseURL: f.srv.URL})
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(30*time.Millisecond, cancel)
		err := b.Cancel(ctx, "5")
		if !errors.Is(err, scheduler.ErrUnavailable) || !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want ErrUnavailable and Canceled", err)
		}
	})
	t.Run("server closes the connection", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
		}))
		t.Cleanup(srv.Close)
		b := newTestBackend(t, Config{BaseURL: srv.URL})
		if _, err := b.Jobs(context.Background(), []string{"1"}); !errors.Is(err, scheduler.ErrUnavailable) {
			t.Fatalf("err = %v, want ErrUnavailable", err)
		}
	})
}

func TestJobs_OneRequestFiltered(t *testing.T) {
	f := newFakeRESTFixture(t, filepath.Join(fixtures2205, "jobs.json"))
	b := newTestBackend(t, Config{BaseURL: f.srv.URL})
	ctx := context.Background()

	got, err := b.Jobs(ctx, nil)
	if err != nil || len(got) != 0 {
		t.Fatalf("Jobs(nil) = %v, %v", got, err)
	}
	if len(f.calls()) != 0 {
		t.Fatal("Jobs with no ids sent a request")
	}

	got, err = b.Jobs(ctx, []string{"2", " 4 ", "999999", "2"})
	if err != nil {
		t.Fatalf("Jobs: %v", err)
	}
	if len(f.calls()) != 1 {
		t.Fatalf("%d requests, want 1", len(f.calls()))
	}
	ids := map[string]scheduler.JobStatus{}
	for _, j := range got {
		ids[j.JobID] = j
	}
	if len(got) != 2 || ids["2"].State != "FAILED" || ids["2"].ExitCode != 3 || ids["4"].State != "COMPLETED" {
		t.Errorf("Jobs = %+v", got)
	}
}

func TestFindByComment(t *testing.T) {
	f := newFakeRESTFixture(t, "testdata/slurm-24.11-v0.0.41/jobs.json")
	b := newTestBackend(t, Config{BaseURL: f.srv.URL, APIVersion: "v0.0.41"})
	tests := []struct {
		name   string
		prefix string
		want   []string
	}{
		{name: "sopilot prefix", prefix: "sopilot:", want: []string{"2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14"}},
		{name: "prefix", prefix: "sopilot:fxr-", want: []string{"11", "12", "13", "14"}},
		{name: "exact comment", prefix: "sopilot:fxj-held-cancelled", want: []string{"8"}},
		{name: "no match", prefix: "nope", want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := b.FindByComment(context.Background(), tt.prefix)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, j := range got {
				ids = append(ids, j.JobID)
			}
			if strings.Join(ids, ",") != strings.Join(tt.want, ",") {
				t.Errorf("ids = %v, want %v", ids, tt.want)
			}
		})
	}
	if n := len(f.calls()); n != len(tests) {
		t.Errorf("%d requests for %d calls", n, len(tests))
	}
}

func TestCancel_InvalidID(t *testing.T) {
	f := newFakeREST(t, 200, []byte(`{"errors":[]}`))
	b := newTestBackend(t, Config{BaseURL: f.srv.URL})
	for _, id := range []string{"", "abc", "1/../2", "-1", "12_3"} {
		if err := b.Cancel(context.Background(), id); !errors.Is(err, scheduler.ErrRejected) {
			t.Errorf("Cancel(%q) = %v, want ErrRejected", id, err)
		}
	}
	if len(f.calls()) != 0 {
		t.Error("an invalid id was sent")
	}
}

func TestUnixSocket(t *testing.T) {
	dir, err := os.MkdirTemp("", "sr") // short: socket paths are limited to ~107 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "rest.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeREST{status: 200, body: readFixture(t, filepath.Join(fixtures2205, "jobs.json"))}
	srv := &http.Server{Handler: http.HandlerFunc(f.serve)}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })

	injected := &http.Client{}
	b := newTestBackend(t, Config{BaseURL: "unix://" + sock, HTTPClient: injected})
	got, err := b.Jobs(context.Background(), []string{"4"})
	if err != nil || len(got) != 1 || got[0].JobID != "4" {
		t.Fatalf("Jobs over a unix socket = %+v, %v", got, err)
	}
	if c := f.calls(); len(c) != 1 || c[0].Path != "/slurm/v0.0.38/jobs" {
		t.Errorf("requests = %+v", c)
	}
	if injected.Transport != nil {
		t.Error("the injected client was modified")
	}
}

func TestInjectedHTTPClient(t *testing.T) {
	var seen atomic.Int32
	client := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		seen.Add(1)
		return &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader(`{"jobs":[]}`)), Header: http.Header{}}, nil
	})}
	b := newTestBackend(t, Config{BaseURL: "http://slurmrestd.invalid:6820", HTTPClient: client})
	if _, err := b.Jobs(context.Background(), []string{"1"}); err != nil {
		t.Fatal(err)
	}
	if seen.Load() != 1 {
		t.Error("the injected client was not used")
	}
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name    string
		fixture string
		status  int
		body    string
		want    string
	}{
		{name: "credentials accepted (22.05: invalid job id)", status: 500,
			body: `{"errors":[{"description":"unable to kill JobId=2147483647 with signal 9: Invalid job id specified","error_number":2017,"error":"Invalid job id specified","source":"slurm_kill_job"}]}`, want: "nil"},
		{name: "credentials accepted (24.11 v0.0.42: 2017 in status)", fixture: "../slurm-24.11-v0.0.42/cancel-unknown.json", want: "nil"},
		{name: "slurmctld down (26.05 v0.0.45: 403 EPERM)", fixture: "../slurm-26.05-v0.0.45/controller-down-cancel.json", want: "unavailable"},
		{name: "token refused (22.05: zero bytes)", status: 500,
			body: `{"errors":[{"description":"unable to kill JobId=2147483647 with signal 9: Zero Bytes were transmitted or received","error_number":5005,"error":"Zero Bytes were transmitted or received","source":"slurm_kill_job"}]}`, want: "unauthorized"},
		{name: "no headers (22.05 capture)", fixture: "auth-no-headers.json", want: "unauthorized"},
		{name: "slurmctld down (22.05 capture)", fixture: "controller-down-cancel.json", want: "unavailable"},
		{name: "proxy error", status: 502, body: "", want: "unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeRESTCase(t, tt.fixture, tt.status, tt.body)
			b := newTestBackend(t, Config{BaseURL: f.srv.URL})
			err := b.Check(context.Background())
			if got := sentinel(err); got != tt.want {
				t.Fatalf("Check = %v (%s), want %s", err, got, tt.want)
			}
			if tt.want == "unauthorized" && errors.Is(err, scheduler.ErrUnavailable) {
				t.Errorf("Check = %v: wraps both sentinels", err)
			}
			c := f.calls()
			if len(c) != 1 || c[0].Method != http.MethodDelete || c[0].Path != "/slurm/v0.0.38/job/"+probeJobID {
				t.Errorf("requests = %+v", c)
			}
		})
	}
}
