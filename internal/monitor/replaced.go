package monitor

import (
	"context"
	"fmt"

	"github.com/sopilot/sopilot/internal/fleet"
	"github.com/sopilot/sopilot/internal/identity"
	"github.com/sopilot/sopilot/internal/store"
)

var _ fleet.ReplacementSink = (*Monitor)(nil)

// NodeReplaced starts the Slurm node's live health state afresh: it now
// runs on another machine (Soperator replaced its Kubernetes node), and
// nothing judged of the old machine applies to the new one. Its evidence,
// verdict, NCCL check schedule and what the monitor remembered of its
// drain are dropped, and its open incidents are resolved as "node
// replaced". Its history stays under its name: the incidents (resolved,
// not deleted), the drain records in them, and Slurm's own state (a drain
// the old machine earned stays in Slurm until remediation verifies the
// new machine and resumes it, or someone else does).
func (m *Monitor) NodeReplaced(ctx context.Context, r identity.Replacement) {
	now := m.cfg.Now()
	by := fmt.Sprintf("node replaced: %s now runs on %s, not %s", r.Node, r.New, r.Old)
	var changed []*store.Incident
	m.mu.Lock()
	delete(m.nodes, r.Node)
	delete(m.lastCheck, r.Node)
	delete(m.hold, r.Node)
	delete(m.drainedFor, r.Node)
	// Looked up already: a drain of the old machine is not this one's.
	m.looked[r.Node] = true
	for k, inc := range m.open {
		if k.node != r.Node {
			continue
		}
		inc.ResolveTime, inc.ResolvedBy = now, by
		delete(m.open, k)
		delete(m.restored, k)
		changed = append(changed, inc)
	}
	m.mu.Unlock()
	m.log.Warn("node replaced; its health state starts fresh", "node", r.Node, "old_machine", r.Old, "new_machine", r.New, "incidents_resolved", len(changed))
	if err := m.persist(ctx, changed); err != nil {
		m.log.Error("store incidents resolved by a node replacement", "node", r.Node, "err", err)
	}
	m.poke()
}
