package slurmcli

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sopilot/sopilot/internal/scheduler"
	"github.com/sopilot/sopilot/internal/slurmtest"
)

// liveNode is the only node the tests drain. Other tests share the
// cluster, so it is resumed at the end of every test whatever happens.
const liveNode = "worker-1"

// holdNode returns a backend and makes sure liveNode is resumed and the
// test's jobs are cancelled when the test ends.
func holdNode(t *testing.T) (*Backend, slurmtest.Env, *[]string) {
	t.Helper()
	slurmtest.RequireExclusive(t) // drains a node
	b, env := liveBackend(t)
	var jobs []string
	t.Cleanup(func() {
		if len(jobs) > 0 {
			cmd := exec.Command("scancel", jobs...)
			cmd.Env = env.Environ()
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("cleanup: scancel %v: %v: %s", jobs, err, out)
			}
		}
		cmd := exec.Command("scontrol", "update", "NodeName="+liveNode, "State=RESUME")
		cmd.Env = env.Environ()
		if out, err := cmd.CombinedOutput(); err != nil && !isNothingToResume(string(out)) {
			t.Errorf("cleanup: resume %s: %v: %s", liveNode, err, out)
		}
	})
	return b, env, &jobs
}

// nodeNamed lists the nodes and returns one.
func nodeNamed(t *testing.T, b *Backend, name string) scheduler.NodeStatus {
	t.Helper()
	nodes, err := b.Nodes(context.Background())
	if err != nil {
		t.Fatalf("Nodes: %v", err)
	}
	for _, n := range nodes {
		if n.Name == name {
			return n
		}
	}
	t.Fatalf("node %s not in %+v", name, nodes)
	return scheduler.NodeStatus{}
}

func currentUser(t *testing.T) string {
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	return u.Username
}

func TestLiveNodes(t *testing.T) {
	b, _ := liveBackend(t)
	nodes, err := b.Nodes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]scheduler.NodeStatus{}
	for _, n := range nodes {
		names[n.Name] = n
	}
	for _, name := range []string{"worker-0", "worker-1"} {
		n, ok := names[name]
		if !ok || n.GPUs != 8 || n.State == "" || n.State == "UNKNOWN" {
			t.Errorf("node %s: %+v", name, n)
		}
	}
}

func TestExclusiveDrainWeirdReason(t *testing.T) {
	b, _, _ := holdNode(t)
	reason := fmt.Sprintf(`[sopilot] test %d: a=b c]d [x@y] "q" 'single'  two  spaces Reason=z [root@2020-01-01T00:00:00]`, time.Now().UnixNano())
	before := time.Now().Add(-2 * time.Second).Truncate(time.Second)
	if err := b.Drain(context.Background(), liveNode, reason); err != nil {
		t.Fatalf("Drain: %v", err)
	}
	n := nodeNamed(t, b, liveNode)
	if !n.Drained() || n.Reason != reason || n.ReasonUser != currentUser(t) {
		t.Fatalf("after Drain: %+v, want DRAIN, reason %q, user %s", n, reason, currentUser(t))
	}
	if n.ReasonTime.Before(before) || n.ReasonTime.After(time.Now().Add(2*time.Second)) {
		t.Errorf("reason time %v, drained at about %v", n.ReasonTime, before)
	}
	if err := b.Resume(context.Background(), liveNode); err != nil {
		t.Fatalf("Resume: %v", err)
	}
	n = nodeNamed(t, b, liveNode)
	if n.Drained() || n.Reason != "" {
		t.Fatalf("after Resume: %+v (%s)", n, n.StateString())
	}
	// Nothing left to resume: not an error.
	if err := b.Resume(context.Background(), liveNode); err != nil {
		t.Fatalf("second Resume: %v", err)
	}
}

func TestExclusiveDrainRunningJob(t *testing.T) {
	b, env, jobs := holdNode(t)
	cmd := exec.Command("sbatch", "--parsable", "-w", liveNode, "--gres=gpu:8", "--time=3",
		"--job-name=slurmcli-drain-test", "--comment=slurmcli-test:"+t.Name(),
		"--chdir="+env.WorkDir, "--output="+filepath.Join(env.WorkDir, "slurmcli-drain-%j.out"), "--wrap", "sleep 60")
	cmd.Env = env.Environ()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("sbatch: %v", err)
	}
	id, err := parseSbatch(out)
	if err != nil {
		t.Fatal(err)
	}
	*jobs = append(*jobs, id)
	waitFor(t, b, id, 2*time.Minute, func(st scheduler.JobStatus) bool { return st.State == "RUNNING" })

	if err := b.Drain(context.Background(), liveNode, "[sopilot] drain with a job running"); err != nil {
		t.Fatalf("Drain: %v", err)
	}
	n := nodeNamed(t, b, liveNode)
	if !n.Drained() || !n.Allocated() || (n.State != "MIXED" && n.State != "ALLOCATED") {
		t.Fatalf("draining node: %+v (%s), want MIXED or ALLOCATED with DRAIN", n, n.StateString())
	}
	time.Sleep(2 * time.Second)
	st, err := b.Jobs(context.Background(), []string{id})
	if err != nil || len(st) != 1 || st[0].State != "RUNNING" {
		t.Fatalf("job on the draining node: %+v, %v", st, err)
	}
	if err := b.Resume(context.Background(), liveNode); err != nil {
		t.Fatalf("Resume: %v", err)
	}
	n = nodeNamed(t, b, liveNode)
	if n.Drained() || !n.Allocated() {
		t.Fatalf("after Resume: %+v (%s)", n, n.StateString())
	}
}

func TestLiveNodeRejections(t *testing.T) {
	b, _ := liveBackend(t)
	err := b.Drain(context.Background(), "sopilot-no-such-node", "[sopilot] x")
	if !errors.Is(err, scheduler.ErrRejected) || !strings.Contains(err.Error(), "Invalid node name specified") {
		t.Errorf("Drain(unknown) = %v", err)
	}
	err = b.Resume(context.Background(), "sopilot-no-such-node")
	if !errors.Is(err, scheduler.ErrRejected) || !strings.Contains(err.Error(), "Invalid node name specified") {
		t.Errorf("Resume(unknown) = %v", err)
	}
}
