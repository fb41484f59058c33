package remediation_test

import (
	"context"
	"errors"
	"testing"

	"github.com/sopilot/sopilot/internal/remediation"
)

func TestHoldForCheck(t *testing.T) {
	ctx := context.Background()
	const hold = "[sopilot] nccl check in progress"
	t.Run("idle node held, then released", func(t *testing.T) {
		e := newEnv(t, remediation.Config{}, "n1", "n2")
		release, err := e.eng.HoldForCheck(ctx, "n1")
		if err != nil {
			t.Fatal(err)
		}
		if n := e.slurm.node("n1"); !n.Drained() || n.Reason != hold {
			t.Fatalf("held node = %s %q", n.StateString(), n.Reason)
		}
		// A job cannot start on it (the fake, like Slurm, places none on a
		// drained node); Step leaves it alone, even with evidence.
		if ds := e.step(node{name: "n1", result: xid79(1), incident: "I1"}); len(ds) != 0 {
			t.Errorf("step on a held node = %+v", ds)
		}
		if err := release(ctx); err != nil {
			t.Fatal(err)
		}
		if n := e.slurm.node("n1"); n.Drained() || n.Reason != "" {
			t.Errorf("released node = %s %q", n.StateString(), n.Reason)
		}
	})
	t.Run("a job running (soperator's nccl_test): not held", func(t *testing.T) {
		e := newEnv(t, remediation.Config{}, "n1=ALLOCATED", "n2")
		if _, err := e.eng.HoldForCheck(ctx, "n1"); !errors.Is(err, remediation.ErrNodeInUse) {
			t.Errorf("err = %v, want ErrNodeInUse", err)
		}
		if n := e.slurm.node("n1"); n.Drained() {
			t.Errorf("busy node drained: %s %q", n.StateString(), n.Reason)
		}
	})
	t.Run("a job slips in before the drain: given back", func(t *testing.T) {
		e := newEnv(t, remediation.Config{}, "n1", "n2")
		e.slurm.beforeMutation = func(op, node string) {
			if op == "drain" {
				e.slurm.mu.Lock()
				e.slurm.nodes[node].State = "ALLOCATED"
				e.slurm.mu.Unlock()
			}
		}
		if _, err := e.eng.HoldForCheck(ctx, "n1"); !errors.Is(err, remediation.ErrNodeInUse) {
			t.Errorf("err = %v, want ErrNodeInUse", err)
		}
		if n := e.slurm.node("n1"); n.Drained() {
			t.Errorf("node left drained: %s %q", n.StateString(), n.Reason)
		}
	})
	t.Run("someone else's drain and a hand-off: not held", func(t *testing.T) {
		e := newEnv(t, handoffCfg(), "n1", "n2")
		e.slurm.humanDrain("n1", "bad PSU", "alice")
		e.slurm.humanDrain("n2", "[node_problem] sopilot: gpu0 fell off the bus", "root")
		for _, n := range []string{"n1", "n2"} {
			if _, err := e.eng.HoldForCheck(ctx, n); !errors.Is(err, remediation.ErrForeign) {
				t.Errorf("%s: err = %v, want ErrForeign", n, err)
			}
			if got := e.slurm.node(n).ReasonUser; got == "" {
				t.Errorf("%s: reason user lost", n)
			}
		}
		if got := e.slurm.node("n1").Reason; got != "bad PSU" {
			t.Errorf("n1 reason = %q, want the person's kept", got)
		}
	})
	t.Run("dry-run holds nothing", func(t *testing.T) {
		e := newEnv(t, remediation.Config{DryRun: true}, "n1", "n2")
		if _, err := e.eng.HoldForCheck(ctx, "n1"); !errors.Is(err, remediation.ErrNoHold) {
			t.Errorf("err = %v, want ErrNoHold", err)
		}
		if n := e.slurm.node("n1"); n.Drained() {
			t.Errorf("dry-run drained %s", n.StateString())
		}
	})
	t.Run("a hold is not a drain for the breaker", func(t *testing.T) {
		e := newEnv(t, remediation.Config{}, "n1", "n2", "n3", "n4")
		release, err := e.eng.HoldForCheck(ctx, "n1")
		if err != nil {
			t.Fatal(err)
		}
		defer release(ctx)
		d := only(t, e.step(node{name: "n2", result: xid79(1), incident: "I2"}))
		if d.Kind != remediation.KindDrain {
			t.Errorf("decision = %+v, want n2 drained despite the hold on n1", d)
		}
	})
}
