package slurmrest

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"

	"github.com/sopilot/sopilot/internal/scheduler"
)

func TestIntegration_Nodes(t *testing.T) {
	b, _, _ := itBackend(t)
	nodes, err := b.Nodes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, n := range nodes {
		seen[n.Name] = true
		if (n.Name == "worker-0" || n.Name == "worker-1") && (n.GPUs != 8 || n.State == "UNKNOWN") {
			t.Errorf("node %+v", n)
		}
	}
	if !seen["worker-0"] || !seen["worker-1"] {
		t.Fatalf("nodes %+v", nodes)
	}
}

// TestIntegration_NodeUpdateUnsupported checks both halves of the v0.0.38
// story on the live slurmrestd: the Backend refuses without sending
// anything, and the endpoint really is missing (HTTP 405).
func TestIntegration_NodeUpdateUnsupported(t *testing.T) {
	b, env, _ := itBackend(t)
	if v := b.version.Load(); v.minor >= nodeUpdateMinMinor {
		t.Skipf("cluster serves %s", v.name)
	}
	if err := b.Drain(context.Background(), "worker-1", "[sopilot] x"); !errors.Is(err, scheduler.ErrNodeUnsupported) {
		t.Fatalf("Drain = %v", err)
	}
	if err := b.Resume(context.Background(), "worker-1"); !errors.Is(err, scheduler.ErrNodeUnsupported) {
		t.Fatalf("Resume = %v", err)
	}
	t.Cleanup(func() {
		// Only if the POST took effect after all: never leave worker-1 drained.
		for _, n := range mustNodes(t, b) {
			if n.Name == "worker-1" && strings.Contains(n.Reason, "must not be applied") {
				cmd := exec.Command("scontrol", "update", "NodeName=worker-1", "State=RESUME")
				cmd.Env = env.Environ()
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Errorf("cleanup: resume worker-1: %v: %s", err, out)
				}
			}
		}
	})
	req, err := http.NewRequest(http.MethodPost, env.RESTURL+"/slurm/"+b.APIVersion()+"/node/worker-1",
		strings.NewReader(`{"state":["DRAIN"],"reason":"[sopilot] must not be applied"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-SLURM-USER-NAME", env.JWTUser)
	req.Header.Set("X-SLURM-USER-TOKEN", env.JWT)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST node: HTTP %d %s, want 405", resp.StatusCode, body)
	}
	for _, n := range mustNodes(t, b) {
		if n.Name == "worker-1" && strings.Contains(n.Reason, "must not be applied") {
			t.Fatalf("POST drained the node: %+v", n)
		}
	}
}

func mustNodes(t *testing.T, b *Backend) []scheduler.NodeStatus {
	t.Helper()
	nodes, err := b.Nodes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return nodes
}
