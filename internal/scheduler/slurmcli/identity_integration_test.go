package slurmcli

import (
	"context"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/sopilot/sopilot/internal/identity"
)

// TestLiveInstanceIDs: on the local cluster, slurmd runs with
// --instance-id as Soperator starts it (24.11 and later; cluster.sh's
// SOPILOT_SLURM_INSTANCES says which), the node listing carries the ids,
// and identity maps each Kubernetes-like machine to its worker. On 22.05
// (no instance ids) each worker is a plain host: its own machine.
func TestLiveInstanceIDs(t *testing.T) {
	b, env := liveBackend(t)
	nodes, err := b.Nodes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{} // Slurm node -> instance id
	if env.AtLeast("24.11") {
		spec := os.Getenv("SOPILOT_SLURM_INSTANCES")
		if spec == "" {
			t.Fatal("SOPILOT_SLURM_INSTANCES is empty on Slurm 24.11 or later: run eval \"$(hack/slurm/cluster.sh --slurm VERSION env)\"")
		}
		for _, pair := range strings.Split(spec, ",") {
			node, inst, ok := strings.Cut(pair, "=")
			if !ok {
				t.Fatalf("SOPILOT_SLURM_INSTANCES %q: %q is not NODE=INSTANCE", spec, pair)
			}
			want[node] = inst
		}
	}
	ids := identity.New(nodes)
	for _, n := range nodes {
		if n.InstanceID != want[n.Name] {
			t.Errorf("%s: instance %q, want %q", n.Name, n.InstanceID, want[n.Name])
		}
		machine := want[n.Name]
		if machine == "" {
			machine = n.Name // a plain host
		}
		if got := ids.SlurmNodes(machine); !reflect.DeepEqual(got, []string{n.Name}) {
			t.Errorf("machine %s maps to %q, want [%s]", machine, got, n.Name)
		}
	}
}
