package monitor

import (
	"context"
	"errors"
	"log/slog"
	"strings"

	"github.com/sopilot/sopilot/internal/health"
	"github.com/sopilot/sopilot/internal/remediation"
	"github.com/sopilot/sopilot/internal/store"
)

// worstIncidentLocked is the open incident behind the node's worst finding.
func (m *Monitor) worstIncidentLocked(node string, res health.Result) string {
	for _, f := range res.Findings {
		if inc := m.open[incKey{node, f.Component, f.Rule}]; inc != nil {
			return inc.ID
		}
	}
	return ""
}

// drainIncidentLocked is the incident a drained node was drained for
// ("" when unknown), from the drains this monitor decided.
func (m *Monitor) drainIncidentLocked(node string) string { return m.drainedFor[node] }

// learnDrains finds, for drained nodes this monitor has not seen drained
// (after a restart), the incident they were drained for: the newest of the
// node's incidents whose recorded action holds the node drained. Slurm's
// reason text is not read: it is for people, and they may edit it.
func (m *Monitor) learnDrains(ctx context.Context, nodes []string) map[string]string {
	found := map[string]string{}
	for _, node := range nodes {
		incs, _, err := m.store.ListIncidents(ctx, store.IncidentQuery{Node: node, PageSize: 100})
		if err != nil {
			m.log.Warn("find the incident of a drain", "node", node, "err", err)
			continue
		}
		for _, inc := range incs {
			if remediation.HoldsDrain(inc.Action) {
				found[node] = inc.ID
				break
			}
		}
	}
	return found
}

// record writes remediation decisions into their incidents.
func (m *Monitor) record(ctx context.Context, ds []remediation.Decision) {
	if len(ds) == 0 {
		return
	}
	var changed []*store.Incident
	var faults []remediation.Decision
	acted := false
	m.mu.Lock()
	for _, d := range ds {
		m.metrics.Decisions.WithLabelValues(string(d.Kind)).Inc()
		lvl := slog.LevelInfo
		if d.Err != nil || d.Kind == remediation.KindAlert {
			lvl = slog.LevelWarn
		}
		m.log.Log(ctx, lvl, "remediation", "node", d.Node, "kind", d.Kind, "action", d.Action, "reason", d.Reason, "err", d.Err)
		if d.Kind == remediation.KindDrain || d.Kind == remediation.KindResume {
			acted = acted || !d.DryRun
		}
		id := d.IncidentID
		switch {
		case d.Kind == remediation.KindDrain && d.Err == nil && id != "":
			m.drainedFor[d.Node] = id
			if !d.DryRun && !d.Manual {
				faults = append(faults, d)
			}
		case d.Kind == remediation.KindResume && d.Err == nil, d.Kind == remediation.KindReturned:
			// A node back from a hand-off is a new node: no drain of
			// ours is left on it.
			delete(m.drainedFor, d.Node)
		}
		for _, inc := range m.open {
			if inc.Node == d.Node && (id == "" || inc.ID == id) && inc.Action != d.Action {
				inc.Action = d.Action
				changed = append(changed, inc)
			}
		}
		if (d.Kind == remediation.KindResume || d.Kind == remediation.KindReturned) && id != "" {
			// The incident closed when its evidence cleared; note the resume.
			if inc, err := m.store.GetIncident(ctx, id); err == nil && !strings.Contains(inc.Action, "resumed") {
				inc.Action = strings.TrimSpace(inc.Action + "; " + d.Action)
				changed = append(changed, inc)
			}
		}
	}
	m.mu.Unlock()
	if err := m.persist(ctx, changed); err != nil {
		m.log.Error("store incident actions", "err", err)
	}
	if acted {
		m.cfg.RefreshSlurm()
	}
	// Runs on a node drained (or handed off) for its evidence end their
	// attempt there and, with a retry policy, start the next elsewhere.
	if rf, ok := m.runs.(RunFaults); ok {
		for _, d := range faults {
			if err := rf.NodeFault(ctx, d.Node, d.IncidentID); err != nil {
				m.log.Warn("retry the runs of a drained node", "node", d.Node, "incident_id", d.IncidentID, "err", err)
			}
		}
	}
}

// RetriesPaused says whether the remediation breaker is open: many nodes
// failed at once, so runs are not retried onto the rest of the cluster
// (the controller's RetryGate).
func (m *Monitor) RetriesPaused() (bool, string) {
	paused, why, _, ok := m.AutomaticDrains()
	return ok && paused, why
}

// Drain is an operator's drain.
func (m *Monitor) Drain(ctx context.Context, node, reason, who string) (remediation.Decision, error) {
	if m.engine == nil {
		return remediation.Decision{}, errors.New("remediation is disabled on this controller")
	}
	d, err := m.engine.Drain(ctx, node, reason, who)
	if err == nil {
		m.cfg.RefreshSlurm()
	}
	return d, err
}

// Undrain is an operator's undrain.
func (m *Monitor) Undrain(ctx context.Context, node string, skipVerification bool, who string) (remediation.Decision, error) {
	if m.engine == nil {
		return remediation.Decision{}, errors.New("remediation is disabled on this controller")
	}
	d, err := m.engine.Undrain(ctx, node, skipVerification, who)
	if err == nil {
		m.cfg.RefreshSlurm()
	}
	return d, err
}

// AutomaticDrains says whether automatic drains are paused by the circuit
// breaker and why, and whether remediation is a dry run; ok is false when
// this controller runs no remediation.
func (m *Monitor) AutomaticDrains() (paused bool, why string, dryRun bool, ok bool) {
	e, isEngine := m.engine.(*remediation.Engine)
	if m.engine == nil || !isEngine || e == nil {
		return false, "", false, false
	}
	paused, why = e.Breaker()
	return paused, why, e.Config().DryRun, true
}
