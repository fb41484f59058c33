package slurmrest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/sopilot/sopilot/internal/scheduler"
)

// versionServer is a slurmrestd that serves some API versions: /openapi/v3
// lists their paths (or answers openapiStatus), /slurm/{v}/... of a served
// version answers ping and jobs, anything else 404 as slurmrestd does.
type versionServer struct {
	mu            sync.Mutex
	served        []string
	openapiStatus int // 0: serve the document
	paths         []string
	srv           *httptest.Server
}

func newVersionServer(t *testing.T, served ...string) *versionServer {
	t.Helper()
	s := &versionServer{served: served}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *versionServer) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.paths = append(s.paths, r.Method+" "+r.URL.Path)
	status := s.openapiStatus
	s.mu.Unlock()
	if r.Header.Get("X-SLURM-USER-TOKEN") == "" {
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, "Authentication failure")
		return
	}
	if r.URL.Path == "/openapi/v3" {
		if status != 0 {
			w.WriteHeader(status)
			fmt.Fprint(w, "nope")
			return
		}
		var paths []string
		for _, v := range s.served {
			paths = append(paths, fmt.Sprintf(`"/slurm/%s/jobs/":{},"/slurm/%s/ping/":{}`, v, v))
		}
		paths = append(paths, `"/slurmdb/v0.0.99/jobs/":{}`, `"/openapi/v3":{}`)
		fmt.Fprintf(w, `{"openapi":"3.0.2","paths":{%s}}`, strings.Join(paths, ","))
		return
	}
	for _, v := range s.served {
		if strings.HasPrefix(r.URL.Path, "/slurm/"+v+"/") {
			fmt.Fprint(w, `{"jobs":[],"pings":[],"errors":[],"warnings":[]}`)
			return
		}
	}
	w.WriteHeader(http.StatusNotFound)
	fmt.Fprint(w, "Unable find requested URL. Please view /openapi/v3 for API reference.")
}

func (s *versionServer) requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.paths)
}

func TestNegotiate(t *testing.T) {
	tests := []struct {
		name          string
		served        []string
		openapiStatus int
		want          string
		wantPaths     []string
	}{
		{name: "22.05", served: []string{"v0.0.38"}, want: "v0.0.38",
			wantPaths: []string{"GET /openapi/v3"}},
		{name: "24.11", served: []string{"v0.0.40", "v0.0.41", "v0.0.42"}, want: "v0.0.42",
			wantPaths: []string{"GET /openapi/v3"}},
		{name: "26.05", served: []string{"v0.0.42", "v0.0.43", "v0.0.44", "v0.0.45"}, want: "v0.0.45",
			wantPaths: []string{"GET /openapi/v3"}},
		{name: "a newer Slurm: the newest this package speaks", served: []string{"v0.0.44", "v0.0.45", "v0.0.46"}, want: "v0.0.45",
			wantPaths: []string{"GET /openapi/v3"}},
		{name: "document hidden: probe from the newest down", served: []string{"v0.0.40", "v0.0.41", "v0.0.42"}, openapiStatus: 404, want: "v0.0.42",
			wantPaths: []string{"GET /openapi/v3", "GET /slurm/v0.0.45/ping", "GET /slurm/v0.0.44/ping", "GET /slurm/v0.0.43/ping", "GET /slurm/v0.0.42/ping"}},
		{name: "document refused: probe", served: []string{"v0.0.45"}, openapiStatus: 403, want: "v0.0.45",
			wantPaths: []string{"GET /openapi/v3", "GET /slurm/v0.0.45/ping"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newVersionServer(t, tt.served...)
			s.openapiStatus = tt.openapiStatus
			b := newTestBackend(t, Config{BaseURL: s.srv.URL, APIVersion: "auto"})
			if got := b.APIVersion(); got != "" {
				t.Fatalf("APIVersion before negotiation = %q", got)
			}
			got, err := b.Negotiate(context.Background())
			if err != nil || got != tt.want || b.APIVersion() != tt.want {
				t.Fatalf("Negotiate = %q, %v; APIVersion %q; want %q", got, err, b.APIVersion(), tt.want)
			}
			if !slices.Equal(s.requests(), tt.wantPaths) {
				t.Fatalf("requests %q, want %q", s.requests(), tt.wantPaths)
			}
			// Settled: requests go to the version, nothing is asked again.
			if _, err := b.Jobs(context.Background(), []string{"1"}); err != nil {
				t.Fatal(err)
			}
			if _, err := b.Negotiate(context.Background()); err != nil {
				t.Fatal(err)
			}
			reqs := s.requests()
			if len(reqs) != len(tt.wantPaths)+1 || reqs[len(reqs)-1] != "GET /slurm/"+tt.want+"/jobs" {
				t.Fatalf("requests after negotiation %q", reqs)
			}
		})
	}
}

// TestNegotiate_FirstRequest: without Negotiate, the first request
// negotiates, once, however many run at the same time.
func TestNegotiate_FirstRequest(t *testing.T) {
	s := newVersionServer(t, "v0.0.40", "v0.0.41", "v0.0.42")
	b := newTestBackend(t, Config{BaseURL: s.srv.URL, APIVersion: "AUTO"})
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := b.Jobs(context.Background(), []string{"1"}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	n := 0
	for _, p := range s.requests() {
		switch p {
		case "GET /openapi/v3":
			n++
		case "GET /slurm/v0.0.42/jobs":
		default:
			t.Errorf("request %s", p)
		}
	}
	if n != 1 {
		t.Fatalf("%d negotiations", n)
	}
}

func TestNegotiate_Failures(t *testing.T) {
	t.Run("no version this package speaks", func(t *testing.T) {
		s := newVersionServer(t, "v0.0.46", "v0.0.47")
		b := newTestBackend(t, Config{BaseURL: s.srv.URL, APIVersion: "auto"})
		_, err := b.Negotiate(context.Background())
		if !errors.Is(err, ErrNotServed) || !errors.Is(err, scheduler.ErrMisconfigured) || errors.Is(err, scheduler.ErrRejected) ||
			!strings.Contains(err.Error(), "v0.0.46, v0.0.47") {
			t.Fatalf("err = %v", err)
		}
		// Every operation says so, never "rejected".
		if _, err := b.Submit(context.Background(), seedSpec()); !errors.Is(err, ErrNotServed) || errors.Is(err, scheduler.ErrRejected) {
			t.Fatalf("Submit: %v", err)
		}
		if err := b.Cancel(context.Background(), "5"); !errors.Is(err, ErrNotServed) {
			t.Fatalf("Cancel: %v", err)
		}
		if err := b.Drain(context.Background(), "worker-1", "[sopilot] x"); !errors.Is(err, ErrNotServed) {
			t.Fatalf("Drain: %v", err)
		}
	})
	t.Run("nothing answers: probed down to v0.0.38", func(t *testing.T) {
		s := newVersionServer(t)
		s.openapiStatus = 404
		b := newTestBackend(t, Config{BaseURL: s.srv.URL, APIVersion: "auto"})
		if _, err := b.Negotiate(context.Background()); !errors.Is(err, ErrNotServed) {
			t.Fatalf("err = %v", err)
		}
		if n := len(s.requests()); n != 1+newestSupported-oldestSupported+1 {
			t.Fatalf("%d requests: %q", n, s.requests())
		}
	})
	t.Run("unreachable: ErrUnavailable, not remembered", func(t *testing.T) {
		s := newVersionServer(t, "v0.0.42")
		url := s.srv.URL
		s.srv.Close()
		b := newTestBackend(t, Config{BaseURL: url, APIVersion: "auto"})
		if _, err := b.Negotiate(context.Background()); !errors.Is(err, scheduler.ErrUnavailable) {
			t.Fatalf("err = %v", err)
		}
		if b.APIVersion() != "" {
			t.Fatalf("version %q after a failed negotiation", b.APIVersion())
		}
	})
	t.Run("fixed version: nothing sent", func(t *testing.T) {
		s := newVersionServer(t, "v0.0.42")
		b := newTestBackend(t, Config{BaseURL: s.srv.URL, APIVersion: "v0.0.41"})
		if v, err := b.Negotiate(context.Background()); err != nil || v != "v0.0.41" || len(s.requests()) != 0 {
			t.Fatalf("Negotiate = %q, %v; requests %q", v, err, s.requests())
		}
	})
}

// TestServedVersions reads every captured OpenAPI document.
func TestServedVersions(t *testing.T) {
	tests := []struct {
		file string
		want []int
	}{
		{"slurm-22.05-v0.0.38/openapi-v3.json", []int{38}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got := ServedVersions(readFixture(t, filepath.Join("testdata", tt.file)))
			if !slices.Equal(got, tt.want) {
				t.Fatalf("ServedVersions = %v, want %v", got, tt.want)
			}
		})
	}
	for _, in := range []string{``, `null`, `[]`, `{"paths":[]}`, `{"paths":{"/slurm/v0.0.x/jobs":{}}}`, `{"paths":{"/slurm/v0.0.99999/jobs":{}}}`} {
		if got := ServedVersions([]byte(in)); got != nil {
			t.Errorf("ServedVersions(%s) = %v", in, got)
		}
	}
}
