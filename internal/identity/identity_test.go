package identity

import (
	"reflect"
	"testing"

	"github.com/sopilot/sopilot/internal/scheduler"
)

func node(name, instance string) scheduler.NodeStatus {
	return scheduler.NodeStatus{Name: name, State: "IDLE", InstanceID: instance}
}

func TestMap_SlurmNodes(t *testing.T) {
	m := New([]scheduler.NodeStatus{
		node("worker-0", "gpu-node-0"),
		// Two Slurm nodes (two nodesets) on one Kubernetes node.
		node("b-1", "gpu-node-1"), node("a-3", "gpu-node-1"),
		// A plain host: no instance id, its own machine.
		node("host-7", ""),
		// A plain-host name that another node claims as its instance:
		// rule 1 wins, host-8 is on no machine.
		node("host-8", ""), node("worker-5", "host-8"),
		// An instance id that is not a name matches no machine.
		node("weird", scheduler.InstanceIDInvalid),
	})
	tests := []struct {
		machine string
		want    []string
	}{
		{"gpu-node-0", []string{"worker-0"}},
		{"gpu-node-1", []string{"a-3", "b-1"}},
		{"host-7", []string{"host-7"}},
		{"host-8", []string{"worker-5"}},
		// The Slurm node's own name is not its machine once it has an
		// instance id: an agent saying "worker-0" is unmapped.
		{"worker-0", nil},
		{"weird", nil},
		{scheduler.InstanceIDInvalid, nil},
		{"gpu-node-9", nil},
	}
	for _, tt := range tests {
		t.Run(tt.machine, func(t *testing.T) {
			if got := m.SlurmNodes(tt.machine); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("SlurmNodes(%q) = %q, want %q", tt.machine, got, tt.want)
			}
			if got := m.Mapped(tt.machine); got != (len(tt.want) > 0) {
				t.Errorf("Mapped(%q) = %v", tt.machine, got)
			}
		})
	}
	machines := []struct {
		node, machine string
		ok            bool
	}{
		{"worker-0", "gpu-node-0", true},
		{"a-3", "gpu-node-1", true},
		{"b-1", "gpu-node-1", true},
		{"host-7", "host-7", true},
		{"worker-5", "host-8", true},
		{"host-8", "", false},
		{"weird", "", false},
		{"nosuch", "", false},
	}
	for _, tt := range machines {
		if got, ok := m.Machine(tt.node); got != tt.machine || ok != tt.ok {
			t.Errorf("Machine(%q) = %q, %v; want %q, %v", tt.node, got, ok, tt.machine, tt.ok)
		}
	}
}

// TestMap_Nil: before a listing, every machine is the Slurm node of its
// name (a backend that cannot list nodes).
func TestMap_Nil(t *testing.T) {
	var m *Map
	if got := m.SlurmNodes("n1"); !reflect.DeepEqual(got, []string{"n1"}) {
		t.Errorf("SlurmNodes = %q", got)
	}
	if got, ok := m.Machine("n1"); got != "n1" || !ok {
		t.Errorf("Machine = %q, %v", got, ok)
	}
}

func TestReplaced(t *testing.T) {
	prev := New([]scheduler.NodeStatus{
		node("worker-0", "gpu-node-0"), node("worker-1", "gpu-node-1"), node("worker-2", "gpu-node-2"),
		node("worker-3", ""), node("worker-4", "gpu-node-4"), node("gone", "gpu-node-5"),
	})
	next := New([]scheduler.NodeStatus{
		node("worker-0", "gpu-node-0"), // unchanged
		node("worker-1", "gpu-node-9"), // replaced
		node("worker-2", ""),           // re-registering: not shown to have moved
		node("worker-3", "gpu-node-3"), // first instance id: not a replacement
		node("worker-4", "gpu-node-1"), // moved onto worker-1's old machine
		node("new", "gpu-node-6"),      // not in the previous listing
	})
	want := []Replacement{{"worker-1", "gpu-node-1", "gpu-node-9"}, {"worker-4", "gpu-node-4", "gpu-node-1"}}
	if got := ReplacedSince(prev.Instances(), next); !reflect.DeepEqual(got, want) {
		t.Errorf("ReplacedSince = %+v, want %+v", got, want)
	}
	if got := next.SlurmNodes("gpu-node-1"); !reflect.DeepEqual(got, []string{"worker-4"}) {
		t.Errorf("the old machine now holds %q, want worker-4", got)
	}
	if got := next.SlurmNodes("gpu-node-9"); !reflect.DeepEqual(got, []string{"worker-1"}) {
		t.Errorf("the new machine holds %q, want worker-1", got)
	}
}

// TestReplacedSince: the last ids known (from earlier listings or from the
// store after a restart) against a listing; a node that lost its id in
// between keeps its last one, so moving on from there still counts.
func TestReplacedSince(t *testing.T) {
	last := map[string]string{"worker-0": "gpu-node-0", "worker-1": "gpu-node-1", "worker-2": "gpu-node-2"}
	next := New([]scheduler.NodeStatus{
		node("worker-0", "gpu-node-0"), // unchanged
		node("worker-1", "gpu-node-9"), // replaced while nobody watched
		node("worker-2", ""),           // re-registering: not shown to have moved
		node("worker-3", "gpu-node-3"), // never seen before
	})
	want := []Replacement{{"worker-1", "gpu-node-1", "gpu-node-9"}}
	if got := ReplacedSince(last, next); !reflect.DeepEqual(got, want) {
		t.Errorf("ReplacedSince = %+v, want %+v", got, want)
	}
	if got := ReplacedSince(nil, next); got != nil {
		t.Errorf("ReplacedSince with nothing known = %+v", got)
	}
	wantIDs := map[string]string{"worker-0": "gpu-node-0", "worker-1": "gpu-node-9", "worker-3": "gpu-node-3"}
	if got := next.Instances(); !reflect.DeepEqual(got, wantIDs) {
		t.Errorf("Instances = %v, want %v (nodes without an id left out)", got, wantIDs)
	}
}
