package monitor

import (
	"fmt"
	"time"

	"github.com/sopilot/sopilot/internal/fleet"
	"github.com/sopilot/sopilot/internal/store"
)

// stallsLocked flags runs whose step stopped moving while they run.
func (m *Monitor) stallsLocked(now time.Time, views []fleet.NodeView) []*store.Incident {
	if m.cfg.StallAfter < 0 {
		return nil
	}
	running := map[string]bool{}
	for _, v := range views {
		for _, r := range v.RunIDs {
			running[r] = true
		}
	}
	var changed []*store.Incident
	for id, rp := range m.progress {
		k := stallKey(rp.node, id)
		inc := m.open[k]
		stalled := running[id] && now.Sub(rp.changed) > m.cfg.StallAfter
		switch {
		case stalled && inc == nil:
			inc = m.openLocked(k, now, []string{id})
			inc.Severity, inc.Count, inc.LastSeen = "DEGRADED", 1, now
			inc.Summary = fmt.Sprintf("suspected hang: run %s has been at step %d for %s while Slurm says it runs", id, rp.step, now.Sub(rp.changed).Round(time.Second))
			inc.Evidence = inc.Summary
			changed = append(changed, inc)
			m.log.Warn("run progress stalled", "run_id", id, "step", rp.step, "since", rp.changed)
		case !stalled && inc != nil:
			inc.ResolveTime, inc.LastSeen = now, now
			inc.ResolvedBy = "progress resumed"
			if !running[id] {
				inc.ResolvedBy = "run no longer running"
			}
			delete(m.open, k)
			changed = append(changed, inc)
		}
		if !running[id] && now.Sub(rp.lastReport) > time.Hour {
			delete(m.progress, id)
		}
	}
	return changed
}
