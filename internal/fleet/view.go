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

// NodeView is a consistent snapshot of one node. The inventory and the
// samples' optional fields are shared with the fleet and must not be
// modified.
type NodeView struct {
	Name         string
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

// Snapshots returns every node the fleet or Slurm knows, by name.
func (f *Fleet) Snapshots() []NodeView {
	f.mu.RLock()
	names := make(map[string]struct{}, len(f.nodes)+len(f.slurm))
	for n := range f.nodes {
		names[n] = struct{}{}
	}
	for n := range f.slurm {
		names[n] = struct{}{}
	}
	f.mu.RUnlock()
	out := make([]NodeView, 0, len(names))
	for name := range names {
		if v, ok := f.Snapshot(name); ok {
			out = append(out, v)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Snapshot returns one node; false when neither an agent nor Slurm knows it.
func (f *Fleet) Snapshot(name string) (NodeView, bool) {
	f.mu.RLock()
	n := f.nodes[name]
	sl, inSlurm := f.slurm[name]
	verdict, hasVerdict := f.verdicts[name]
	f.mu.RUnlock()
	if n == nil && !inSlurm {
		return NodeView{}, false
	}
	v := NodeView{Name: name, Silent: true}
	if inSlurm {
		v.Slurm = &sl
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
		for _, a := range n.assigned {
			v.RunIDs = append(v.RunIDs, a.RunID)
		}
		n.mu.Unlock()
		sort.Slice(v.GPUs, func(i, j int) bool { return v.GPUs[i].Index < v.GPUs[j].Index })
		sort.Slice(v.IBPorts, func(i, j int) bool {
			a, b := v.IBPorts[i], v.IBPorts[j]
			return a.Device < b.Device || a.Device == b.Device && a.Port < b.Port
		})
	}
	switch {
	case v.Silent:
		// Silence is not evidence of a fault.
		v.Verdict = Verdict{Verdict: "UNKNOWN", Reasons: []string{silenceReason(v, f.opts.Silence)}}
	case hasVerdict:
		v.Verdict = verdict
	default:
		v.Verdict = Verdict{Verdict: "HEALTHY"}
	}
	return v, true
}

func silenceReason(v NodeView, d time.Duration) string {
	if v.LastSeen.IsZero() {
		return "agent: never reported"
	}
	return fmt.Sprintf("agent: no report for more than %s (last %s)", d, v.LastSeen.UTC().Format(time.RFC3339))
}

// Watch calls send with every matching node now, then with each node whose
// state changed, checking once a second, until ctx ends or send fails.
func (f *Fleet) Watch(ctx context.Context, names []string, send func(NodeView) error) error {
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	type key struct {
		version uint64
		silent  bool
		slurm   string
		verdict string
	}
	seen := map[string]key{}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		for _, v := range f.Snapshots() {
			if len(want) > 0 && !want[v.Name] {
				continue
			}
			k := key{version: v.Version, silent: v.Silent, verdict: v.Verdict.Verdict + fmt.Sprint(v.Verdict.Reasons)}
			if v.Slurm != nil {
				k.slurm = v.Slurm.StateString() + v.Slurm.Reason
			}
			if old, ok := seen[v.Name]; ok && old == k {
				continue
			}
			seen[v.Name] = k
			if err := send(v); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// RunCommand sends a command to the node's agent and waits for its result.
func (f *Fleet) RunCommand(ctx context.Context, node, kind string, args map[string]string) (*agentpb.CommandResult, error) {
	f.mu.RLock()
	n := f.nodes[node]
	f.mu.RUnlock()
	if n == nil {
		return nil, fmt.Errorf("%w: %s", ErrUnknownNode, node)
	}
	n.mu.Lock()
	s := n.session
	n.mu.Unlock()
	if s == nil {
		return nil, fmt.Errorf("%w: %s", ErrNotConnected, node)
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
	for name, n := range f.nodes {
		v := NodeView{Name: name}
		if sl, ok := f.slurm[name]; ok {
			v.Slurm = &sl
		}
		n.mu.Lock()
		v.Connected, v.LastSeen = n.session != nil, n.lastSeen
		v.Silent = n.lastBatch.IsZero() || now.Sub(n.lastBatch) > f.opts.Silence
		v.Sequence, v.Durable, v.Version = n.seq, n.durable, n.version
		if len(n.assigned) > 0 {
			v.RunIDs = make([]string, len(n.assigned))
			for i, a := range n.assigned {
				v.RunIDs[i] = a.RunID
			}
		}
		n.mu.Unlock()
		out = append(out, v)
	}
	for name, sl := range f.slurm {
		if _, ok := f.nodes[name]; !ok {
			sl := sl
			out = append(out, NodeView{Name: name, Slurm: &sl, Silent: true})
		}
	}
	f.mu.RUnlock()
	return out
}
