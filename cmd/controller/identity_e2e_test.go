package main

// End-to-end test of node identity as on Soperator: agents name their
// Kubernetes-like machines, Slurm's instance ids map them to Slurm nodes,
// and a replaced machine starts fresh, with the controller running and
// while it is down.

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sopilot/sopilot/internal/slurmtest"
	"github.com/sopilot/sopilot/internal/store"
	"github.com/sopilot/sopilot/pkg/apipb"
)

// The node identity scenario on the local cluster (Slurm 24.11 and
// later, whose slurmd runs with --instance-id gpu-node-N like Soperator's):
//
//  1. Agents for gpu-node-0 and gpu-node-1 appear as worker-0 and worker-1.
//  2. An XID 79 on gpu-node-1 drains worker-1 in Slurm.
//  3. worker-1 moves to gpu-node-9 (cluster.sh replace-node) and an agent
//     starts there: worker-1 is HEALTHY on gpu-node-9, its incident is
//     resolved as replaced and still listed, gpu-node-1 is unmapped.
//  4. A fault on gpu-node-9 opens an incident; the controller is killed;
//     worker-1 moves back to gpu-node-1 meanwhile; the restarted controller
//     still sees the replacement (the last instance ids are in its store)
//     and resolves that incident too.
func TestExclusiveNodeIdentityReplacement(t *testing.T) {
	env := slurmtest.RequireExclusive(t)
	if !env.AtLeast("23.11") {
		t.Skipf("Slurm %s has no instance ids (slurmd --instance-id came in 23.11): agents here name Slurm nodes, the plain-host path", env.Version)
	}
	m0, m1 := env.Instances["worker-0"], env.Instances["worker-1"]
	if m0 == "" || m1 == "" {
		t.Fatalf("Slurm %s runs instance ids, but %s gives worker-0 %q and worker-1 %q: eval \"$(hack/slurm/cluster.sh --slurm %s env)\"",
			env.Version, slurmtest.InstancesEnvVar, m0, m1, env.Version)
	}
	const m9 = "gpu-node-9"
	if m1 == m9 || m0 == m9 {
		t.Fatalf("worker-1 already runs on %s (a replacement left behind): hack/slurm/cluster.sh --slurm %s replace-node worker-1 gpu-node-1", m9, env.Version)
	}
	scontrol := func(args ...string) {
		cmd := exec.Command("scontrol", args...)
		cmd.Env = env.Environ()
		if out, err := cmd.CombinedOutput(); err != nil && !strings.Contains(string(out), "Invalid node state") {
			t.Errorf("scontrol %v: %v: %s", args, err, out)
		}
	}
	// Registered first, so it runs last, after the agents and controllers
	// are gone: later tests find worker-1 on its machine again, undrained.
	t.Cleanup(func() {
		if err := env.ReplaceNode(context.Background(), "worker-1", m1); err != nil {
			t.Errorf("move worker-1 back to %s: %v", m1, err)
		}
		scontrol("update", "NodeName=worker-0,worker-1", "State=RESUME")
	})

	db := filepath.Join(t.TempDir(), "c.db")
	flags := []string{"--slurm-conf", env.SlurmConf, "--health-event-window", "3s", "--undrain-after", "1h",
		"--node-poll-interval", "1s", "--max-drain-share", "0.5", "--max-drains-per-window", "2"}
	p := startController(t, env, db, flags...)
	nodes := apipb.NewNodeServiceClient(p.conn)
	admin := map[string]string{}
	for _, m := range []string{m0, m1} {
		admin[m] = startAgent(t, p.addr, m)
	}

	// 1. Machines mapped to Slurm nodes through the instance ids.
	got := byName(waitNodes(t, nodes, "worker-0 and worker-1 on their machines", time.Minute, func(ns []*apipb.Node) bool {
		m := byName(ns)
		return m["worker-0"].GetMachine() == m0 && m["worker-0"].GetAgentConnected() && len(m["worker-0"].GetGpus()) == 8 &&
			m["worker-1"].GetMachine() == m1 && m["worker-1"].GetAgentConnected() && len(m["worker-1"].GetGpus()) == 8 &&
			m["worker-1"].GetSlurmState() == "IDLE"
	}))
	for _, name := range []string{m0, m1} {
		if n, ok := got[name]; ok {
			t.Errorf("machine %s listed as a node of its own: %v", name, n)
		}
	}
	for _, name := range []string{"worker-0", "worker-1"} {
		if n := got[name]; n.GetUnmapped() || n.GetVerdict() != apipb.HealthVerdict_HEALTH_VERDICT_HEALTHY {
			t.Errorf("%s: unmapped=%v verdict=%v, want mapped and HEALTHY", name, n.GetUnmapped(), n.GetVerdict())
		}
	}

	// 2. A fault on gpu-node-1 drains worker-1.
	inject(t, admin[m1], `{"gpu":3,"kind":"xid","code":79}`)
	waitNodes(t, nodes, "worker-1 drained by sopilot", 30*time.Second, func(ns []*apipb.Node) bool {
		n := byName(ns)["worker-1"]
		return strings.Contains(n.GetSlurmState(), "DRAIN") && strings.HasPrefix(n.GetSlurmReason(), "[sopilot] ") &&
			n.GetVerdict() == apipb.HealthVerdict_HEALTH_VERDICT_UNHEALTHY
	})
	ctx := context.Background()
	incs, err := nodes.ListIncidents(ctx, &apipb.ListIncidentsRequest{Node: "worker-1"})
	if err != nil || len(incs.GetIncidents()) != 1 || incs.GetIncidents()[0].GetResolveTime() != nil {
		t.Fatalf("worker-1's incidents = %v, %v; want one open", incs.GetIncidents(), err)
	}
	drainInc := incs.GetIncidents()[0].GetId()

	// 3. Soperator replaces worker-1's machine.
	if err := env.ReplaceNode(ctx, "worker-1", m9); err != nil {
		t.Fatal(err)
	}
	admin[m9] = startAgent(t, p.addr, m9)
	got = byName(waitNodes(t, nodes, "worker-1 fresh on "+m9, time.Minute, func(ns []*apipb.Node) bool {
		m := byName(ns)
		w1, old := m["worker-1"], m[m1]
		return w1.GetMachine() == m9 && w1.GetAgentConnected() && len(w1.GetGpus()) == 8 &&
			w1.GetVerdict() == apipb.HealthVerdict_HEALTH_VERDICT_HEALTHY && old.GetUnmapped() && old.GetAgentConnected()
	}))
	// The old machine, still faulty, is shown under its own name and never
	// reaches Slurm.
	if old := got[m1]; old.GetSlurmState() != "" || old.GetMachine() != m1 {
		t.Errorf("the old machine %s: slurm state %q, machine %q; want no Slurm node, itself", m1, old.GetSlurmState(), old.GetMachine())
	}
	if w0 := got["worker-0"]; w0.GetMachine() != m0 || strings.Contains(w0.GetSlurmState(), "DRAIN") {
		t.Errorf("worker-0 after worker-1's replacement: machine %q, state %q", w0.GetMachine(), w0.GetSlurmState())
	}
	incs, err = nodes.ListIncidents(ctx, &apipb.ListIncidentsRequest{Node: "worker-1"})
	if err != nil || len(incs.GetIncidents()) != 1 || incs.GetIncidents()[0].GetId() != drainInc ||
		incs.GetIncidents()[0].GetResolveTime() == nil || !strings.HasPrefix(incs.GetIncidents()[0].GetAction(), "drained") {
		t.Fatalf("worker-1's incidents after the replacement = %v, %v; want %s, resolved, its drain kept", incs.GetIncidents(), err, drainInc)
	}
	// The old agent's fault keeps coming; it judges only gpu-node-1.
	time.Sleep(4 * time.Second)
	if n := byName(waitNodes(t, nodes, "listing", time.Second, func([]*apipb.Node) bool { return true }))["worker-1"]; n.GetVerdict() != apipb.HealthVerdict_HEALTH_VERDICT_HEALTHY {
		t.Errorf("worker-1 became %v from the old machine's fault: %v", n.GetVerdict(), n.GetVerdictReasons())
	}

	// 4. A replacement while the controller is down. The old machine is
	// repaired (its fault cleared) and will take worker-1 back; the new
	// one gets a fault first, so worker-1 has an open incident.
	inject(t, admin[m1], "")
	inject(t, admin[m9], `{"gpu":5,"kind":"xid","code":79}`)
	var faultInc string
	for deadline := time.Now().Add(30 * time.Second); faultInc == ""; time.Sleep(100 * time.Millisecond) {
		incs, err = nodes.ListIncidents(ctx, &apipb.ListIncidentsRequest{Node: "worker-1"})
		if err != nil {
			t.Fatal(err)
		}
		if l := incs.GetIncidents(); len(l) == 2 && l[0].GetResolveTime() == nil && l[0].GetComponent() == "gpu5" {
			faultInc = l[0].GetId()
		} else if time.Now().After(deadline) {
			t.Fatalf("worker-1's incidents = %v; want a new open one on gpu5 and the old", l)
		}
	}
	p.kill9(t)
	if err := env.ReplaceNode(ctx, "worker-1", m1); err != nil {
		t.Fatal(err)
	}
	// On the same address, where the agents reconnect.
	p = startController(t, env, db, append(flags, "--grpc-addr", p.addr)...)
	nodes = apipb.NewNodeServiceClient(p.conn)
	waitNodes(t, nodes, "worker-1 fresh on "+m1+" after the restart", time.Minute, func(ns []*apipb.Node) bool {
		m := byName(ns)
		w1, old := m["worker-1"], m[m9]
		return w1.GetMachine() == m1 && w1.GetAgentConnected() && len(w1.GetGpus()) == 8 &&
			w1.GetVerdict() == apipb.HealthVerdict_HEALTH_VERDICT_HEALTHY && old.GetUnmapped()
	})
	incs, err = nodes.ListIncidents(ctx, &apipb.ListIncidentsRequest{Node: "worker-1"})
	if err != nil || len(incs.GetIncidents()) != 2 {
		t.Fatalf("worker-1's incidents after the restart = %v, %v; want both", incs.GetIncidents(), err)
	}
	for _, inc := range incs.GetIncidents() {
		if inc.GetResolveTime() == nil {
			t.Errorf("incident %s of worker-1 still open after the restart", inc.GetId())
		}
	}
	if log := p.stderr.String(); !strings.Contains(log, "slurm node moved to another machine") || !strings.Contains(log, "old_machine="+m9) {
		t.Errorf("the restarted controller did not log worker-1's move from %s", m9)
	}

	// The history says why each incident closed.
	p.kill9(t)
	st, err := store.Open(db, store.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	all, _, err := st.ListIncidents(ctx, store.IncidentQuery{Node: "worker-1"})
	if err != nil {
		t.Fatal(err)
	}
	why := map[string]string{}
	for _, inc := range all {
		why[inc.ID] = inc.ResolvedBy
	}
	for id, machine := range map[string]string{drainInc: m9, faultInc: m1} {
		if want := "node replaced: worker-1 now runs on " + machine; !strings.HasPrefix(why[id], want) {
			t.Errorf("incident %s resolved by %q, want %q…", id, why[id], want)
		}
	}
}
