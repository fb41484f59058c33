package monitor

import (
	"context"
	"crypto/rand"
	"slices"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/sopilot/sopilot/internal/store"
)

// incKey is an incident's identity: identical evidence (one rule on one
// component of a node) is one incident, however often it repeats.
type incKey struct{ node, component, rule string }

// The rules the monitor judges itself, outside health.Evaluate. Their
// incidents close on their own terms (progress resuming, a check passing),
// never because telemetry evidence cleared.
const (
	ruleProgressStalled = "progress_stalled"
	ruleNCCLBusBW       = "nccl_busbw"
)

func keyOf(inc *store.Incident) incKey { return incKey{inc.Node, inc.Component, inc.Rule} }

// stallKey is the incident of a run whose progress stopped.
func stallKey(node, runID string) incKey { return incKey{node, "run:" + runID, ruleProgressStalled} }

// ncclKey is the incident of a node's failed NCCL check.
func ncclKey(node string) incKey { return incKey{node, "nccl", ruleNCCLBusBW} }

// closedByEvidence: the rule is health.Evaluate's, so its incident is
// resolved when the evidence clears.
func (k incKey) closedByEvidence() bool {
	return k.rule != ruleProgressStalled && k.rule != ruleNCCLBusBW
}

// openLocked opens the incident k first seen at now, marks runIDs with it,
// and returns it for the caller to fill in. This is the one place incident
// ids are made. m.mu is held.
func (m *Monitor) openLocked(k incKey, now time.Time, runIDs []string) *store.Incident {
	inc := &store.Incident{
		ID:   "inc-" + strings.ToLower(ulid.MustNew(ulid.Timestamp(now), rand.Reader).String()),
		Node: k.node, Component: k.component, Rule: k.rule, FirstSeen: now, Action: "none", RunIDs: slices.Clone(runIDs),
	}
	m.open[k] = inc
	m.metrics.Opened.WithLabelValues(k.rule).Inc()
	m.attachLocked(inc)
	return inc
}

// attachLocked marks the incident's runs with it, in the background: the
// caller holds m.mu and may be on an agent's stream.
func (m *Monitor) attachLocked(inc *store.Incident) {
	if m.runs == nil || len(inc.RunIDs) == 0 {
		return
	}
	ids, id := slices.Clone(inc.RunIDs), inc.ID
	m.tasks.Go(func(ctx context.Context) {
		if err := m.runs.AttachIncident(ctx, ids, id); err != nil {
			m.log.Warn("mark runs with incident", "incident", id, "err", err)
		}
	})
}

func (m *Monitor) persist(ctx context.Context, incs []*store.Incident) error {
	if len(incs) == 0 {
		return nil
	}
	m.mu.Lock()
	copies := make([]*store.Incident, 0, len(incs))
	seen := make(map[*store.Incident]bool, len(incs))
	for _, inc := range incs {
		if seen[inc] {
			continue
		}
		seen[inc] = true
		c := *inc
		c.RunIDs = append([]string(nil), inc.RunIDs...)
		copies = append(copies, &c)
	}
	m.mu.Unlock()
	return m.store.PutIncidents(ctx, copies)
}
