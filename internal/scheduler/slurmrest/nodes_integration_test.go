package slurmrest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/sopilot/sopilot/internal/scheduler"
	"github.com/sopilot/sopilot/internal/slurmtest"
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

// TestExclusiveDrainResume drains and resumes worker-1 through slurmrestd
// (v0.0.40 and later: Slurm 24.11 and 26.05 here) and checks what Nodes
// reports at each step. It resumes the node at the end whatever happens.
func TestExclusiveDrainResume(t *testing.T) {
	slurmtest.RequireExclusive(t)
	b, env, _ := itBackend(t)
	if v := b.version.Load(); v.minor < nodeUpdateMinMinor {
		t.Skipf("cluster serves %s, which cannot change nodes", v.name)
	}
	ctx := context.Background()
	t.Cleanup(func() {
		cmd := exec.Command("scontrol", "update", "NodeName=worker-1", "State=RESUME")
		cmd.Env = env.Environ()
		if out, err := cmd.CombinedOutput(); err != nil && !strings.Contains(string(out), "Invalid node state specified") && !strings.Contains(string(out), "Invalid node state transition") {
			t.Errorf("cleanup: resume worker-1: %v: %s", err, out)
		}
	})
	reason := fmt.Sprintf(`[sopilot] rest test %d: a=b "q" [x@y]`, time.Now().UnixNano())
	if err := b.Drain(ctx, "worker-1", reason); err != nil {
		t.Fatalf("Drain: %v", err)
	}
	n := nodeNamed(t, b, "worker-1")
	if !n.Drained() || n.Reason != reason || n.ReasonTime.IsZero() || n.GPUs != 8 {
		t.Fatalf("after Drain: %+v", n)
	}
	t.Logf("drained: %+v (%s)", n, n.StateString())
	if err := b.Resume(ctx, "worker-1"); err != nil {
		t.Fatalf("Resume: %v", err)
	}
	if n := nodeNamed(t, b, "worker-1"); n.Drained() || n.Reason != "" {
		t.Fatalf("after Resume: %+v", n)
	}
	if err := b.Resume(ctx, "worker-1"); err != nil {
		t.Errorf("Resume of a node with nothing to resume: %v", err)
	}
	if err := b.Drain(ctx, "nosuch-node", "[sopilot] x"); !errors.Is(err, scheduler.ErrRejected) {
		t.Errorf("Drain of an unknown node = %v, want ErrRejected", err)
	}
}

func nodeNamed(t *testing.T, b *Backend, name string) scheduler.NodeStatus {
	t.Helper()
	for _, n := range mustNodes(t, b) {
		if n.Name == name {
			return n
		}
	}
	t.Fatalf("no node %s", name)
	return scheduler.NodeStatus{}
}
