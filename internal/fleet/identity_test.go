package fleet_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sopilot/sopilot/internal/fleet"
	"github.com/sopilot/sopilot/internal/identity"
	"github.com/sopilot/sopilot/internal/scheduler"
	"github.com/sopilot/sopilot/internal/store"
	"github.com/sopilot/sopilot/internal/telemetry"
	"github.com/sopilot/sopilot/internal/testclock"
	"github.com/sopilot/sopilot/internal/testwait"
	"github.com/sopilot/sopilot/pkg/agentpb"
)

// observed records which node names batches and replacements reached.
type observed struct {
	mu       sync.Mutex
	batches  map[string]int
	replaced []identity.Replacement
}

func (o *observed) ObserveBatch(node string, _ int, _ *telemetry.Batch, _ []string) {
	o.mu.Lock()
	o.batches[node]++
	o.mu.Unlock()
}

func (o *observed) NodeReplaced(_ context.Context, r identity.Replacement) {
	o.mu.Lock()
	o.replaced = append(o.replaced, r)
	o.mu.Unlock()
}

func (o *observed) get() (map[string]int, []identity.Replacement) {
	o.mu.Lock()
	defer o.mu.Unlock()
	b := map[string]int{}
	for k, v := range o.batches {
		b[k] = v
	}
	return b, slices.Clone(o.replaced)
}

func slurmNode(name, instance string) scheduler.NodeStatus {
	return scheduler.NodeStatus{Name: name, State: "IDLE", GPUs: 8, InstanceID: instance}
}

// TestFleet_Identity: agents name their machines (Kubernetes nodes);
// the fleet shows, judges and assigns by Slurm node through the
// listing's instance ids: two Slurm nodes on one machine, a plain host,
// an unmapped machine, and a Slurm node moving to another machine.
func TestFleet_Identity(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	obs := &observed{batches: map[string]int{}}
	ev := &events{codes: map[string][]int64{}}
	as := staticAssignments{{RunID: "r-a", JobID: "11", Nodes: []string{"a-1", "worker-0"}, ProgressPath: "/p"}}
	f, err := fleet.New(st, slog.New(slog.DiscardHandler), nil, fleet.Options{
		Observer: obs, Replacements: obs, Events: ev, Assignments: as,
		AssignmentInterval: 20 * time.Millisecond, CommitInterval: time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = f.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })

	f.SetSlurmNodes(ctx, []scheduler.NodeStatus{
		slurmNode("worker-0", "gpu-node-0"),
		slurmNode("a-1", "gpu-node-1"), slurmNode("b-1", "gpu-node-1"),
		slurmNode("host-7", ""),
	})
	now := time.Now()
	for i, machine := range []string{"gpu-node-0", "gpu-node-1", "host-7", "stray"} {
		ingest := f.IngestFunc(machine)
		b := healthyBatch(1, now)
		b.HealthEvents = []*agentpb.HealthEvent{{EventTime: timestamppb.New(now), Component: "gpu3", Kind: "xid", Code: int64(100 + i)}}
		if err := ingest(b); err != nil {
			t.Fatalf("ingest for %s: %v", machine, err)
		}
	}

	// Evidence of a machine reaches each of its Slurm nodes; an unmapped
	// machine's stays under its own name.
	batches, _ := obs.get()
	if want := map[string]int{"worker-0": 1, "a-1": 1, "b-1": 1, "host-7": 1, "stray": 1}; !reflect.DeepEqual(batches, want) {
		t.Errorf("batches observed %v, want %v", batches, want)
	}
	testwait.For(t, "health events durable", func() bool { return len(ev.get("stray")) == 1 })
	for node, code := range map[string]int64{"worker-0": 100, "a-1": 101, "b-1": 101, "host-7": 102, "stray": 103} {
		if got := ev.get(node); !reflect.DeepEqual(got, []int64{code}) {
			t.Errorf("events of %s: %v, want [%d]", node, got, code)
		}
	}
	for _, absent := range []string{"gpu-node-0", "gpu-node-1"} {
		if got := ev.get(absent); len(got) > 0 {
			t.Errorf("events recorded under the mapped machine %s: %v", absent, got)
		}
	}

	// Rows are Slurm nodes with their machine, plus the unmapped machine.
	type row struct {
		name, machine     string
		unmapped, inSlurm bool
		connected         bool
	}
	var rows []row
	for _, v := range f.Snapshots() {
		rows = append(rows, row{v.Name, v.Machine, v.Unmapped, v.Slurm != nil, v.Connected})
	}
	want := []row{
		{"a-1", "gpu-node-1", false, true, true},
		{"b-1", "gpu-node-1", false, true, true},
		{"host-7", "host-7", false, true, true},
		{"stray", "stray", true, false, true},
		{"worker-0", "gpu-node-0", false, true, true},
	}
	if !reflect.DeepEqual(rows, want) {
		t.Errorf("rows\n got %+v\nwant %+v", rows, want)
	}
	if _, ok := f.Snapshot("gpu-node-1"); ok {
		t.Error("a mapped machine has a row of its own")
	}

	// sopilot_node_info joins machines (the agents' series) to Slurm
	// nodes: one series per mapped machine, several nodes joined by
	// commas; the unmapped machine has none.
	const wantInfo = `
# HELP sopilot_node_info ` + nodeInfoHelp + `
# TYPE sopilot_node_info gauge
sopilot_node_info{machine="gpu-node-0",slurm_node="worker-0"} 1
sopilot_node_info{machine="gpu-node-1",slurm_node="a-1,b-1"} 1
sopilot_node_info{machine="host-7",slurm_node="host-7"} 1
`
	if err := testutil.CollectAndCompare(f.NodeInfo(), strings.NewReader(wantInfo)); err != nil {
		t.Errorf("sopilot_node_info: %v", err)
	}

	// A run on a-1 and worker-0 reaches gpu-node-1 and gpu-node-0, and is
	// shown on a-1 only of gpu-node-1's Slurm nodes.
	testwait.For(t, "assignments applied", func() bool {
		v, _ := f.Snapshot("a-1")
		return len(v.RunIDs) == 1
	})
	for node, want := range map[string][]string{"a-1": {"r-a"}, "b-1": nil, "worker-0": {"r-a"}, "host-7": nil} {
		if v, _ := f.Snapshot(node); !reflect.DeepEqual(v.RunIDs, want) {
			t.Errorf("runs on %s: %v, want %v", node, v.RunIDs, want)
		}
	}

	// worker-0 moves to gpu-node-9: its verdict goes, the sink hears it,
	// its row shows the new machine (whose agent has not reported), and
	// gpu-node-0's agent is now unmapped.
	f.SetVerdict("worker-0", fleet.Verdict{Verdict: "UNHEALTHY", Reasons: []string{"gpu3: xid 79"}})
	f.SetSlurmNodes(ctx, []scheduler.NodeStatus{
		slurmNode("worker-0", "gpu-node-9"),
		slurmNode("a-1", "gpu-node-1"), slurmNode("b-1", "gpu-node-1"),
		slurmNode("host-7", ""),
	})
	_, replaced := obs.get()
	if want := []identity.Replacement{{Node: "worker-0", Old: "gpu-node-0", New: "gpu-node-9"}}; !reflect.DeepEqual(replaced, want) {
		t.Errorf("replacements %+v, want %+v", replaced, want)
	}
	v, ok := f.Snapshot("worker-0")
	if !ok || v.Machine != "gpu-node-9" || v.Connected || v.Verdict.Verdict != "UNKNOWN" {
		t.Errorf("worker-0 after the replacement: %+v", v)
	}
	if v, ok := f.Snapshot("gpu-node-0"); !ok || !v.Unmapped || !v.Connected {
		t.Errorf("the old machine: %+v, %v; want an unmapped, connected row", v, ok)
	}
	// A second identical listing replaces nothing more.
	f.SetSlurmNodes(ctx, []scheduler.NodeStatus{slurmNode("worker-0", "gpu-node-9")})
	if _, replaced := obs.get(); len(replaced) != 1 {
		t.Errorf("replacements %+v after an unchanged listing", replaced)
	}
}

const nodeInfoHelp = "1 for each machine a node agent reported from, labelled with the Slurm node(s) on it as of the last node listing " +
	"(comma-separated and sorted when several share the machine; absent while the machine is unmapped). " +
	"Join: ... * on(machine) group_left(slurm_node) sopilot_node_info."

// TestFleet_ReplacedWhileDown: the last instance id of each Slurm node is
// kept in the store, so a node replaced while no controller ran is still
// recognised as replaced by the first listing after the restart, and once
// only.
func TestFleet_ReplacedWhileDown(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	ctx := context.Background()
	start := func() (*fleet.Fleet, *observed, *store.Store) {
		st, err := store.Open(path, store.Options{Timeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		obs := &observed{batches: map[string]int{}}
		f, err := fleet.New(st, slog.New(slog.DiscardHandler), nil, fleet.Options{Replacements: obs})
		if err != nil {
			t.Fatal(err)
		}
		return f, obs, st
	}
	f, obs, st := start()
	f.SetSlurmNodes(ctx, []scheduler.NodeStatus{slurmNode("worker-0", "gpu-node-0"), slurmNode("worker-1", "gpu-node-1")})
	// Listed without an id (slurmd re-registering): the last one is kept.
	f.SetSlurmNodes(ctx, []scheduler.NodeStatus{slurmNode("worker-0", "gpu-node-0"), slurmNode("worker-1", "")})
	if _, r := obs.get(); len(r) != 0 {
		t.Fatalf("replacements %+v before any", r)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	// Down: worker-1 moves to gpu-node-9. Up again.
	f, obs, st = start()
	t.Cleanup(func() { _ = st.Close() })
	listing := []scheduler.NodeStatus{slurmNode("worker-0", "gpu-node-0"), slurmNode("worker-1", "gpu-node-9")}
	f.SetSlurmNodes(ctx, listing)
	want := []identity.Replacement{{Node: "worker-1", Old: "gpu-node-1", New: "gpu-node-9"}}
	if _, r := obs.get(); !reflect.DeepEqual(r, want) {
		t.Fatalf("replacements after the restart %+v, want %+v", r, want)
	}
	f.SetSlurmNodes(ctx, listing)
	if _, r := obs.get(); len(r) != 1 {
		t.Errorf("replacements %+v after an unchanged listing, want the one", r)
	}
	if got, err := st.SlurmInstances(ctx); err != nil || got["worker-1"] != "gpu-node-9" || got["worker-0"] != "gpu-node-0" {
		t.Errorf("stored instance ids %v, %v; want worker-1 on gpu-node-9", got, err)
	}
	if v, ok := f.Snapshot("worker-1"); !ok || v.Machine != "gpu-node-9" {
		t.Errorf("worker-1's machine %q (%v), want gpu-node-9", v.Machine, ok)
	}
}

// An unmapped machine is listed while its agent reports; once it is silent
// (a machine left behind by a replacement) it drops out of the list, and
// GetNode still finds it by name.
func TestFleet_SilentUnmappedMachineLeavesTheList(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	clock := testclock.New(time.Now())
	f, err := fleet.New(st, slog.New(slog.DiscardHandler), nil, fleet.Options{Now: clock.Now, Silence: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	f.SetSlurmNodes(ctx, []scheduler.NodeStatus{slurmNode("worker-0", "gpu-node-0")})
	if err := f.IngestFunc("gpu-node-old")(healthyBatch(1, clock.Now())); err != nil {
		t.Fatal(err)
	}
	names := func() []string {
		var out []string
		for _, v := range f.Snapshots() {
			out = append(out, v.Name)
		}
		return out
	}
	if got := names(); !reflect.DeepEqual(got, []string{"gpu-node-old", "worker-0"}) {
		t.Errorf("listed %v, want the reporting unmapped machine too", got)
	}
	clock.Advance(2 * time.Minute)
	if got := names(); !reflect.DeepEqual(got, []string{"worker-0"}) {
		t.Errorf("listed %v after the unmapped machine went silent, want worker-0 only", got)
	}
	if v, ok := f.Snapshot("gpu-node-old"); !ok || !v.Unmapped || !v.Silent {
		t.Errorf("Snapshot of the silent unmapped machine = %+v, %v; want it found", v, ok)
	}
}
