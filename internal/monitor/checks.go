package monitor

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/sopilot/sopilot/internal/fleet"
	"github.com/sopilot/sopilot/internal/nccl"
	"github.com/sopilot/sopilot/internal/remediation"
	"github.com/sopilot/sopilot/internal/store"
)

// CheckResult is the outcome of a node check.
type CheckResult struct {
	Passed    bool
	Summary   string
	BusBWGBps float64
}

// ErrUnknownCheck: a check name other than "nccl".
var ErrUnknownCheck = errors.New("unknown check")

// Check runs an active check on the node through its agent and records a
// failure as an incident (resolved by the next pass).
//
// The check runs outside Slurm, so Slurm alone would start jobs on the
// node during it: a user's, or Soperator's NCCL benchmark (srun jobs named
// nccl_test, one per node, all its GPUs) and active checks (sbatch jobs in
// the hidden partition, per node with --nodelist). So that it never
// overlaps any of them, the remediation engine first holds the node
// (remediation.Engine.HoldForCheck): it drains the IDLE node with
// "[sopilot] nccl check in progress", reads Slurm again and resumes it at
// once if a job got there first. Slurm starts no job on a drained node,
// and Soperator's check runner skips drained nodes, so from the hold
// until the release nothing else runs there; a job of theirs pending for
// the node waits for the release. A node running jobs, or drained by
// someone else, is not checked now (the check is "postponed"). Without a
// remediation engine, or in dry-run (which changes nothing in Slurm), the
// check runs unheld.
func (m *Monitor) Check(ctx context.Context, node, check string) (CheckResult, error) {
	if check == "" {
		check = "nccl"
	}
	if check != "nccl" {
		return CheckResult{}, fmt.Errorf("%w %q (known: nccl)", ErrUnknownCheck, check)
	}
	if m.engine != nil {
		release, err := m.engine.HoldForCheck(ctx, node)
		switch {
		case errors.Is(err, remediation.ErrNoHold):
		case err != nil:
			m.metrics.Checks.WithLabelValues("postponed").Inc()
			return CheckResult{}, fmt.Errorf("nccl check on %s not started: %w", node, err)
		default:
			m.cfg.RefreshSlurm()
			defer func() {
				if err := release(context.WithoutCancel(ctx)); err != nil {
					m.log.Warn("release the node after its nccl check", "node", node, "err", err)
				}
				m.cfg.RefreshSlurm()
			}()
		}
	}
	return m.runCheck(ctx, node)
}

// runCheck runs the NCCL check through the node's agent and records it.
func (m *Monitor) runCheck(ctx context.Context, node string) (CheckResult, error) {
	m.mu.Lock()
	m.lastCheck[node] = m.cfg.Now()
	m.mu.Unlock()
	th := m.cfg.Thresholds
	res, err := m.fleet.RunCommand(ctx, node, "nccl_check", map[string]string{"message_bytes": strconv.FormatInt(th.NCCLMessageBytes, 10)})
	if err != nil {
		m.metrics.Checks.WithLabelValues("error").Inc()
		return CheckResult{}, err
	}
	// The agent reports what it measured; the floor is the controller's.
	v := nccl.Judge(nccl.Reading{Sound: res.GetSuccess(), BusBWGBps: res.GetBusBandwidthGbps(), Summary: res.GetOutput()}, th.NCCLMinBusBandwidthGBps)
	out := CheckResult{Passed: v.Passed, Summary: v.Summary, BusBWGBps: v.BusBWGBps}
	now := m.cfg.Now()
	k := ncclKey(node)
	m.mu.Lock()
	inc := m.open[k]
	var changed []*store.Incident
	switch {
	case !out.Passed && inc == nil:
		inc = m.openLocked(k, now, nil)
		inc.Severity, inc.Count, inc.LastSeen = "DEGRADED", 1, now
		inc.Summary, inc.Evidence = "NCCL check failed: "+out.Summary, out.Summary
		changed = append(changed, inc)
	case !out.Passed:
		inc.Count++
		inc.LastSeen, inc.Evidence = now, out.Summary
		changed = append(changed, inc)
	case inc != nil:
		inc.ResolveTime, inc.LastSeen, inc.ResolvedBy = now, now, "check passed: "+out.Summary
		delete(m.open, k)
		changed = append(changed, inc)
	}
	m.mu.Unlock()
	result := "passed"
	if !out.Passed {
		result = "failed"
	}
	m.metrics.Checks.WithLabelValues(result).Inc()
	return out, m.persist(ctx, changed)
}

// Verify is remediation's verification before an undrain: the NCCL check.
func (m *Monitor) Verify(ctx context.Context, node string) (bool, string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	// The node is drained by remediation: no job starts there.
	r, err := m.runCheck(ctx, node)
	if err != nil {
		return false, "", err
	}
	return r.Passed, r.Summary, nil
}

func (m *Monitor) scheduleChecks(views []fleet.NodeView, now time.Time) {
	if m.cfg.CheckInterval <= 0 {
		return
	}
	for _, v := range views {
		if !v.Connected || v.Slurm == nil || v.Slurm.State != "IDLE" || len(v.Slurm.Flags) > 0 {
			continue
		}
		m.mu.Lock()
		last, seen := m.lastCheck[v.Name]
		if !seen {
			// A node's first check comes an interval after it was first
			// seen, not all at once when the controller starts.
			m.lastCheck[v.Name], last = now, now
		}
		due := now.Sub(last) >= m.cfg.CheckInterval
		if due {
			m.lastCheck[v.Name] = now
		}
		m.mu.Unlock()
		if due {
			name := v.Name
			m.tasks.Go(func(ctx context.Context) {
				ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
				defer cancel()
				if _, err := m.Check(ctx, name, "nccl"); err != nil {
					m.log.Warn("scheduled nccl check", "node", name, "err", err)
				}
			})
		}
	}
}
