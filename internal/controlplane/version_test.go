package controlplane_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sopilot/sopilot/internal/controlplane"
	"github.com/sopilot/sopilot/internal/version"
)

// TestBuildInfoInMetricsAndProbes: the controller's build is the gauge
// sopilot_build_info{version,commit} 1 on /metrics, and /healthz and
// /readyz name it.
func TestBuildInfoInMetricsAndProbes(t *testing.T) {
	v := version.Info{Version: "0.1.0", Commit: "4366ca8e1f0b", Date: "2026-05-01T10:00:00Z", GoVersion: "go1.26.8"}
	c, err := controlplane.New(controlplane.Config{
		GRPCAddr: "127.0.0.1:0", MetricsAddr: "127.0.0.1:0",
		DBPath:    filepath.Join(t.TempDir(), "controller.db"),
		Backend:   controlplane.NoSlurm{},
		NoMonitor: true,
		Security:  controlplane.Security{Insecure: true}, ShutdownGrace: time.Second,
		Version: v,
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	base := "http://" + c.MetricsAddr().String()
	get := func(path string) string {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			resp, err := http.Get(base + path)
			if err == nil {
				b, rerr := io.ReadAll(resp.Body)
				resp.Body.Close()
				if rerr != nil {
					t.Fatal(rerr)
				}
				return string(b)
			}
			if time.Now().After(deadline) {
				t.Fatalf("GET %s: %v", path, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	const line = "controller 0.1.0 (commit 4366ca8e1f0b, built 2026-05-01T10:00:00Z, go1.26.8)"
	if got := get("/healthz"); got != "ok\n"+line+"\n" {
		t.Errorf("/healthz = %q", got)
	}
	if got := get("/readyz"); !strings.HasSuffix(got, "\n"+line+"\n") {
		t.Errorf("/readyz = %q, want it to end with the build", got)
	}
	if got := get("/metrics"); !strings.Contains(got, "\nsopilot_build_info{commit=\"4366ca8e1f0b\",version=\"0.1.0\"} 1\n") {
		t.Errorf("/metrics lacks sopilot_build_info:\n%s", got)
	}
}
