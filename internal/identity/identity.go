// Package identity maps the machines node agents run on to the Slurm nodes
// on them. It owns that one translation; everything else speaks either
// machines (an agent's stream and telemetry) or Slurm nodes (node rows,
// drains, runs, incidents).
//
// A node agent names its machine in Hello.node_name: on Kubernetes the
// Kubernetes node it runs on (spec.nodeName), on a plain Slurm host the
// host's Slurm node name. Slurm says which machine each Slurm node runs
// on: Soperator starts slurmd with --instance-id <Kubernetes node name>,
// and Slurm reports it as the node's instance id (scheduler.NodeStatus
// .InstanceID). A machine's Slurm nodes are, in this order:
//
//  1. the Slurm nodes whose instance id is the machine's name (several
//     when several Slurm nodes share a Kubernetes node);
//  2. else the Slurm node of exactly that name if it has no instance id
//     (a plain host; Slurm 22.05, which has no instance ids);
//  3. else none: the machine is unmapped. Its agent is shown, and its
//     evidence kept, under the machine's name, but nothing about it ever
//     reaches Slurm (it is never drained).
//
// The map is rebuilt from every node listing, so a Slurm node that moves to
// another machine (Soperator replaced its Kubernetes node) follows at the
// next poll; ReplacedSince says which nodes moved, so that their live health
// state can start fresh.
package identity

import (
	"slices"
	"strings"

	"github.com/sopilot/sopilot/internal/scheduler"
)

// Map is one node listing's machine ↔ Slurm node mapping. It is immutable;
// a nil *Map maps every machine to the Slurm node of its own name (no
// listing read yet, or a Slurm backend that cannot list nodes).
type Map struct {
	nodes    map[string][]string // machine -> Slurm nodes, sorted
	machine  map[string]string   // Slurm node -> machine (mapped ones only)
	instance map[string]string   // Slurm node -> instance id as listed
}

// New builds the map of one node listing.
func New(listing []scheduler.NodeStatus) *Map {
	m := &Map{
		nodes:    map[string][]string{},
		machine:  make(map[string]string, len(listing)),
		instance: make(map[string]string, len(listing)),
	}
	for _, n := range listing {
		m.instance[n.Name] = n.InstanceID
		if n.InstanceID != "" && n.InstanceID != scheduler.InstanceIDInvalid {
			m.nodes[n.InstanceID] = append(m.nodes[n.InstanceID], n.Name)
		}
	}
	// A plain host is its own machine, unless a Slurm node elsewhere
	// names it as its instance (rule 1 wins).
	for name, inst := range m.instance {
		if inst == "" {
			if _, taken := m.nodes[name]; !taken {
				m.nodes[name] = []string{name}
			}
		}
	}
	for machine, names := range m.nodes {
		slices.Sort(names)
		for _, n := range names {
			m.machine[n] = machine
		}
	}
	return m
}

// SlurmNodes returns the Slurm nodes on the machine, sorted; nil when the
// machine is unmapped. The slice must not be modified.
func (m *Map) SlurmNodes(machine string) []string {
	if m == nil {
		return []string{machine}
	}
	return m.nodes[machine]
}

// Machine returns the machine the Slurm node runs on; false when the node
// is mapped to no machine (Slurm does not list it, or its instance id is a
// machine whose name is taken by another rule; see the package comment).
func (m *Map) Machine(node string) (string, bool) {
	if m == nil {
		return node, true
	}
	machine, ok := m.machine[node]
	return machine, ok
}

// Mapped reports whether the machine has Slurm nodes.
func (m *Map) Mapped(machine string) bool { return len(m.SlurmNodes(machine)) > 0 }

// Replacement is a Slurm node that runs on another machine than in the
// previous listing.
type Replacement struct {
	Node     string
	Old, New string // instance ids
}

// Instances returns the listing's instance ids by Slurm node, for the
// nodes listed with one.
func (m *Map) Instances() map[string]string {
	out := make(map[string]string, len(m.instance))
	for node, id := range m.instance {
		if id != "" {
			out[node] = id
		}
	}
	return out
}

// ReplacedSince lists the Slurm nodes of next whose instance id differs
// from the last one known for them (last: node → instance id, as kept
// across listings and restarts), by name. A node with no last id, or
// listed without one, is not replaced.
func ReplacedSince(last map[string]string, next *Map) []Replacement {
	if next == nil {
		return nil
	}
	var out []Replacement
	for node, now := range next.instance {
		was := last[node]
		if was != "" && now != "" && was != now {
			out = append(out, Replacement{Node: node, Old: was, New: now})
		}
	}
	slices.SortFunc(out, func(a, b Replacement) int { return strings.Compare(a.Node, b.Node) })
	return out
}
