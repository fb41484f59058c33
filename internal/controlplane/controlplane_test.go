package controlplane_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/sopilot/sopilot/internal/controlplane"
	"github.com/sopilot/sopilot/internal/health"
	"github.com/sopilot/sopilot/internal/scheduler/slurmcli"
	"github.com/sopilot/sopilot/internal/slurmtest"
	"github.com/sopilot/sopilot/pkg/apipb"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// config is a controller on loopback ports against the local cluster.
func config(t *testing.T, env slurmtest.Env) controlplane.Config {
	t.Helper()
	th, err := health.DefaultThresholds("h100")
	if err != nil {
		t.Fatal(err)
	}
	cfg := controlplane.Config{
		GRPCAddr:      "127.0.0.1:0",
		MetricsAddr:   "127.0.0.1:0",
		DBPath:        filepath.Join(t.TempDir(), "state", "controller.db"),
		Scheduler:     controlplane.SchedulerCLI,
		SlurmCLI:      slurmcli.Config{SlurmConf: env.SlurmConf, Timeout: 30 * time.Second},
		Security:      controlplane.Security{Insecure: true},
		ShutdownGrace: time.Second,
	}
	cfg.Runs.DefaultWorkDir = env.WorkDir
	cfg.Monitor.Thresholds = th
	cfg.Remediation.DryRun = true
	return cfg
}

func TestRunServesEveryServiceAndStopsWithItsContext(t *testing.T) {
	env := slurmtest.Require(t)
	logger := slog.New(slog.DiscardHandler)
	c, err := controlplane.New(config(t, env), logger)
	if err != nil {
		t.Fatal(err)
	}
	if c.MetricsAddr() == nil {
		t.Error("MetricsAddr = nil with a metrics address configured")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()

	conn, err := grpc.NewClient(c.GRPCAddr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	call, stop := context.WithTimeout(context.Background(), 30*time.Second)
	defer stop()
	hc := healthpb.NewHealthClient(conn)
	for {
		r, err := hc.Check(call, &healthpb.HealthCheckRequest{})
		if err == nil && r.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			break
		}
		if call.Err() != nil {
			t.Fatalf("health never SERVING: %v %v", r, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := apipb.NewRunServiceClient(conn).ListRuns(call, &apipb.ListRunsRequest{}); err != nil {
		t.Errorf("ListRuns: %v", err)
	}
	if _, err := apipb.NewNodeServiceClient(conn).ListIncidents(call, &apipb.ListIncidentsRequest{}); err != nil {
		t.Errorf("ListIncidents (needs the monitor wired in): %v", err)
	}
	// The local cluster's backend changes node state, so remediation is
	// built (dry-run here): a drain of a node no agent reported gets past
	// the "no remediation" refusal to remediation's own answer.
	_, err = apipb.NewNodeServiceClient(conn).DrainNode(call, &apipb.DrainNodeRequest{Name: "no-such-node-x", Reason: "test"})
	if st := status.Convert(err); st.Code() != codes.NotFound {
		t.Errorf("DrainNode of an unknown node: %v, want NotFound from remediation", err)
	}
	lintMetrics(t, "http://"+c.MetricsAddr().String()+"/metrics")

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v, want nil after its context ends", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	// Run released the store: a second controller opens the same file.
	cfg := config(t, env)
	c2, err := controlplane.New(cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	if err := c2.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

func TestNewReportsBadSettingsAsConfigErrors(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*controlplane.Config)
	}{
		{name: "unknown scheduler", modify: func(c *controlplane.Config) { c.Scheduler = "pbs" }},
		{name: "slurmrestd without a URL", modify: func(c *controlplane.Config) { c.Scheduler = controlplane.SchedulerREST }},
		{name: "remediation share out of range", modify: func(c *controlplane.Config) { c.Remediation.MaxDrainShare = 2 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := config(t, slurmtest.Env{SlurmConf: "/nonexistent/slurm.conf", WorkDir: t.TempDir()})
			tt.modify(&cfg)
			c, err := controlplane.New(cfg, slog.New(slog.DiscardHandler))
			var ce *controlplane.ConfigError
			if !errors.As(err, &ce) {
				if c != nil {
					_ = c.Close()
				}
				t.Fatalf("New = %v, want a ConfigError", err)
			}
		})
	}
}

func TestNewReleasesWhatItOpenedOnFailure(t *testing.T) {
	cfg := config(t, slurmtest.Env{SlurmConf: "/nonexistent/slurm.conf", WorkDir: t.TempDir()})
	cfg.GRPCAddr = "256.0.0.1:0" // fails after the store is open
	if _, err := controlplane.New(cfg, slog.New(slog.DiscardHandler)); err == nil {
		t.Fatal("New with an address that cannot be bound succeeded")
	}
	cfg.GRPCAddr = "127.0.0.1:0"
	c, err := controlplane.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("New after a failed New on the same store: %v (store left open?)", err)
	}
	_ = c.Close()
}

// lintMetrics scrapes url and fails the test on every problem `promtool
// check metrics` would report (promlint is its implementation).
func lintMetrics(t *testing.T, url string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: %s", url, resp.Status)
	}
	problems, err := promlint.New(resp.Body).Lint()
	if err != nil {
		t.Fatalf("parse %s: %v", url, err)
	}
	for _, p := range problems {
		t.Errorf("promtool check metrics: %s: %s", p.Metric, p.Text)
	}
}
