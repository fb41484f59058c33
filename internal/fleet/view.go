package fleet

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sort"
	"time"

	"github.com/sopilot/sopilot/internal/scheduler"
	"github.com/sopilot/sopilot/internal/telemetry"
	"github.com/sopilot/sopilot/pkg/agentpb"
)

// NodeView is a consistent snapshot of one node: a Slurm node with what
// the agent of its machine reports, or a machine whose agent reports but
// that no Slurm node maps to (Unmapped; see internal/identity). The
// inventory and the samples' optional fields are shared with the fleet and
// must not be modified.
type NodeView struct {
	// Name is the Slurm node's name, or an unmapped machine's.
	Name string
	// Machine is the machine the node runs on, as its agent names it:
	// the Kubernetes node (Slurm's instance id) or, on a plain host, the
	// host's name. Empty when Slurm maps the node to no machine.
	Machine string
	// Unmapped: an agent reports for this machine, but no Slurm node is on
	// it. Such a node is shown, never drained.
	Unmapped     bool
	BootID       string
	AgentVersion string
	Connected    bool
	// Silent: no batch for longer than Options.Silence (or never).
	Silent    bool
	LastSeen  time.Time
	Inventory telemetry.Inventory
	GPUs      []telemetry.GPUSample    // by index
	IBPorts   []telemetry.IBPortSample // by device/port
	Slurm     *scheduler.NodeStatus
	Verdict   Verdict
	RunIDs    []string
	Sequence  uint64 // highest batch sequence applied
	Durable   uint64 // highest batch sequence durable
	Version   uint64
}

// Snapshots returns every Slurm node and every unmapped machine whose
// agent is reporting, by name. An unmapped machine whose agent is silent
// (a machine left behind when Soperator replaced its node, say) drops out
// of the list; Snapshot still finds it by name.
func (f *Fleet) Snapshots() []NodeView {
	f.mu.RLock()
	names := make(map[string]struct{}, len(f.nodes)+len(f.slurm))
	for n := range f.nodes {
		if f.agentOnlyLocked(n) {
			names[n] = struct{}{}
		}
	}
	for n := range f.slurm {
		names[n] = struct{}{}
	}
	f.mu.RUnlock()
	out := make([]NodeView, 0, len(names))
	for name := range names {
		if v, ok := f.Snapshot(name); ok && !(v.Unmapped && v.Silent) {
			out = append(out, v)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// viewLocked finds what a node's view is made of: its Slurm record, its
// machine and the agent of that machine (nil when none reported). ok is
// false for a name that is neither a Slurm node nor an unmapped machine.
// f.mu is held.
func (f *Fleet) viewLocked(name string) (v NodeView, n *node, ok bool) {
	v = NodeView{Name: name, Silent: true}
	if sl, inSlurm := f.slurm[name]; inSlurm {
		v.Slurm = &sl
		if machine, mapped := f.ids.Machine(name); mapped {
			v.Machine, n = machine, f.nodes[machine]
		}
		return v, n, true
	}
	if n = f.nodes[name]; n != nil && f.agentOnlyLocked(name) {
		v.Machine, v.Unmapped = name, f.ids != nil
		return v, n, true
	}
	return NodeView{}, nil, false
}

// agentOnlyLocked reports whether the machine's agent has a view of its
// own: the machine is unmapped, or no node listing was read yet (then
// every machine stands for the Slurm node of its name). f.mu is held.
func (f *Fleet) agentOnlyLocked(machine string) bool {
	if f.ids == nil {
		return true
	}
	_, inSlurm := f.slurm[machine]
	return !inSlurm && !f.ids.Mapped(machine)
}

// Snapshot returns one node by its Slurm name (or an unmapped machine's
// name); false when neither Slurm nor an unmapped agent knows it.
func (f *Fleet) Snapshot(name string) (NodeView, bool) {
	f.mu.RLock()
	v, n, ok := f.viewLocked(name)
	verdict, hasVerdict := f.verdicts[name]
	f.mu.RUnlock()
	if !ok {
		return NodeView{}, false
	}
	if n != nil {
		now := f.opts.Now()
		n.mu.Lock()
		v.BootID, v.AgentVersion, v.Connected, v.LastSeen = n.bootID, n.agentVersion, n.session != nil, n.lastSeen
		v.Silent = n.lastBatch.IsZero() || now.Sub(n.lastBatch) > f.opts.Silence
		v.Inventory = n.inventory
		v.Sequence, v.Durable, v.Version = n.seq, n.durable, n.version
		for _, g := range n.gpus {
			v.GPUs = append(v.GPUs, g)
		}
		for _, p := range n.ib {
			v.IBPorts = append(v.IBPorts, p)
		}
		v.RunIDs = runsOn(v, n)
		n.mu.Unlock()
		sort.Slice(v.GPUs, func(i, j int) bool { return v.GPUs[i].Index < v.GPUs[j].Index })
		sort.Slice(v.IBPorts, func(i, j int) bool {
			a, b := v.IBPorts[i], v.IBPorts[j]
			return a.Device < b.Device || a.Device == b.Device && a.Port < b.Port
		})
	}
	v.Verdict = verdictOf(v, verdict, hasVerdict, f.opts.Silence)
	return v, true
}

// verdictOf is the verdict shown for v: the monitor's, unless the agent is
// silent.
func verdictOf(v NodeView, verdict Verdict, hasVerdict bool, silence time.Duration) Verdict {
	switch {
	case v.Silent:
		// Silence is not evidence of a fault.
		return Verdict{Verdict: "UNKNOWN", Reasons: []string{silenceReason(v, silence)}}
	case hasVerdict:
		return verdict
	default:
		return Verdict{Verdict: "HEALTHY"}
	}
}

// Index is every node as Summaries has it (no telemetry), with its
// verdict, in name order: what a page of a listing or a watcher's pass
// needs to choose nodes, before Snapshot fetches the chosen ones whole.
func (f *Fleet) Index() []NodeView {
	out := f.Summaries()
	f.mu.RLock()
	for i := range out {
		verdict, ok := f.verdicts[out[i].Name]
		out[i].Verdict = verdictOf(out[i], verdict, ok, f.opts.Silence)
	}
	f.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func silenceReason(v NodeView, d time.Duration) string {
	if v.LastSeen.IsZero() {
		return "agent: never reported"
	}
	return fmt.Sprintf("agent: no report for more than %s (last %s)", d, v.LastSeen.UTC().Format(time.RFC3339))
}

// RunCommand sends a command to the agent of the node's machine (name is a
// Slurm node, or an unmapped machine) and waits for its result.
func (f *Fleet) RunCommand(ctx context.Context, name, kind string, args map[string]string) (*agentpb.CommandResult, error) {
	f.mu.RLock()
	var n *node
	if machine, ok := f.ids.Machine(name); ok {
		n = f.nodes[machine]
	} else if f.agentOnlyLocked(name) {
		n = f.nodes[name] // an unmapped machine
	}
	f.mu.RUnlock()
	if n == nil {
		return nil, fmt.Errorf("%w: %s", ErrUnknownNode, name)
	}
	n.mu.Lock()
	s := n.session
	n.mu.Unlock()
	if s == nil {
		return nil, fmt.Errorf("%w: %s", ErrNotConnected, name)
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	ch := make(chan *agentpb.CommandResult, 1)
	f.mu.Lock()
	f.commands[id] = ch
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		delete(f.commands, id)
		f.mu.Unlock()
	}()
	s.send(&agentpb.ConnectResponse{Message: &agentpb.ConnectResponse_Command{Command: &agentpb.Command{CommandId: id, Kind: kind, Args: args}}})
	select {
	case r := <-ch:
		return r, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (f *Fleet) deliverCommandResult(r *agentpb.CommandResult) {
	f.mu.RLock()
	ch := f.commands[r.GetCommandId()]
	f.mu.RUnlock()
	if ch != nil {
		select {
		case ch <- r:
		default:
		}
	}
}

// Summaries is Snapshots without the telemetry (GPUs, IB ports, inventory)
// and in no particular order: what a once-a-second pass over every node
// needs, at a fraction of the cost.
func (f *Fleet) Summaries() []NodeView {
	now := f.opts.Now()
	f.mu.RLock()
	out := make([]NodeView, 0, len(f.nodes)+len(f.slurm))
	for name := range f.slurm {
		v, n, _ := f.viewLocked(name)
		if n == nil {
			out = append(out, v)
			continue
		}
		out = append(out, summarize(v, n, now, f.opts.Silence))
	}
	for name, n := range f.nodes {
		if !f.agentOnlyLocked(name) {
			continue
		}
		v, _, _ := f.viewLocked(name)
		out = append(out, summarize(v, n, now, f.opts.Silence))
	}
	f.mu.RUnlock()
	return out
}

// summarize fills v from its machine's agent, without telemetry.
func summarize(v NodeView, n *node, now time.Time, silence time.Duration) NodeView {
	{
		n.mu.Lock()
		v.Connected, v.LastSeen = n.session != nil, n.lastSeen
		v.Silent = n.lastBatch.IsZero() || now.Sub(n.lastBatch) > silence
		v.Sequence, v.Durable, v.Version = n.seq, n.durable, n.version
		v.RunIDs = runsOn(v, n)
		n.mu.Unlock()
	}
	return v
}

// runsOn lists the runs of the machine n that have a job on the view's
// node (all of them for an unmapped machine). n.mu is held.
func runsOn(v NodeView, n *node) []string {
	var ids []string
	for _, a := range n.assigned {
		if v.Slurm == nil || n.jobNode[a.JobID] == v.Name {
			ids = append(ids, a.RunID)
		}
	}
	return ids
}
