package remediation_test

import (
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sopilot/sopilot/internal/health"
	"github.com/sopilot/sopilot/internal/remediation"
	"github.com/sopilot/sopilot/internal/scheduler"
	"github.com/sopilot/sopilot/internal/scheduler/slurmcli"
	"github.com/sopilot/sopilot/internal/slurmtest"
	"github.com/sopilot/sopilot/internal/testclock"
)

const liveNode = "worker-1"

func slurmCmd(t *testing.T, env slurmtest.Env, name string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = env.Environ()
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// liveBackend is the real Slurm CLI backend of env and a reader of its
// nodes by name; the test is Unavailable when liveNode is already drained,
// and otherwise resumes liveNode when it ends.
func liveBackend(ctx context.Context, t *testing.T, env slurmtest.Env) (*slurmcli.Backend, func() map[string]scheduler.NodeStatus) {
	t.Helper()
	backend := slurmcli.New(slurmcli.Config{SlurmConf: env.SlurmConf, Timeout: time.Minute}, nil)
	current := func() map[string]scheduler.NodeStatus {
		t.Helper()
		nodes, err := backend.Nodes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		m := make(map[string]scheduler.NodeStatus)
		for _, n := range nodes {
			m[n.Name] = n
		}
		return m
	}
	if n := current()[liveNode]; n.Drained() || n.Reason != "" {
		slurmtest.Unavailable(t, "%s is in use (%s, reason %q)", liveNode, n.StateString(), n.Reason)
	}
	t.Cleanup(func() {
		if out, err := slurmCmd(t, env, "scontrol", "update", "NodeName="+liveNode, "State=RESUME"); err != nil && !strings.Contains(out, "Invalid node state") {
			t.Errorf("cleanup: resume: %v: %s", err, out)
		}
	})
	return backend, current
}

// liveInputs returns the engine's inputs over current()'s nodes: each
// healthy for an hour by now(), except liveNode, which has result r,
// healthy since since, and incident.
func liveInputs(current func() map[string]scheduler.NodeStatus, now func() time.Time, incident string) func(r health.Result, since time.Time) []remediation.NodeInput {
	return func(r health.Result, since time.Time) []remediation.NodeInput {
		var in []remediation.NodeInput
		for name, st := range current() {
			ni := remediation.NodeInput{Name: name, Result: healthy(), Slurm: st, HealthySince: now().Add(-time.Hour)}
			if name == liveNode {
				ni.Result, ni.HealthySince, ni.IncidentID = r, since, incident
			}
			in = append(in, ni)
		}
		return in
	}
}

// TestExclusiveLiveEngine runs the engine over the real Slurm CLI backend: an
// automatic drain of a node with a job running, someone else's drain left
// alone, and an operator's drain and verified undrain.
func TestExclusiveLiveEngine(t *testing.T) {
	env := slurmtest.RequireExclusive(t)
	ctx := context.Background()
	backend, current := liveBackend(ctx, t, env)
	var job string
	t.Cleanup(func() { // before liveBackend's resume
		if job != "" {
			if out, err := slurmCmd(t, env, "scancel", job); err != nil {
				t.Errorf("cleanup: scancel %s: %v: %s", job, err, out)
			}
		}
	})
	out, err := slurmCmd(t, env, "sbatch", "--parsable", "-w", liveNode, "--gres=gpu:8", "--time=3", "--job-name=remediation-live",
		"--chdir="+env.WorkDir, "--output="+filepath.Join(env.WorkDir, "remediation-live-%j.out"), "--wrap", "sleep 120")
	if err != nil {
		t.Fatalf("sbatch: %v: %s", err, out)
	}
	job = strings.Split(out, ";")[0]
	jobState := func() string {
		out, _ := slurmCmd(t, env, "squeue", "-h", "-j", job, "-o", "%T")
		return out
	}
	for deadline := time.Now().Add(time.Minute); jobState() != "RUNNING"; time.Sleep(time.Second) {
		if time.Now().After(deadline) {
			t.Fatalf("job %s not running: %q", job, jobState())
		}
	}

	clock := testclock.New(time.Now())
	verifier := &fakeVerifier{}
	eng, err := remediation.New(remediation.Config{}, backend, verifier, clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	inputs := liveInputs(current, clock.Now, "01JLIVETEST")

	// Automatic drain with the job running: the job keeps running.
	ds := eng.Step(ctx, inputs(xid79(3), time.Time{}))
	want := "[sopilot] xid 79 (drain) on gpu3 incident=01JLIVETEST"
	if d := only(t, ds); d.Kind != remediation.KindDrain || d.Reason != want || d.Action != "drained (running job allowed to finish)" || d.Err != nil {
		t.Fatalf("decision = %+v", d)
	}
	n := current()[liveNode]
	if !n.Drained() || !n.Allocated() || n.Reason != want {
		t.Fatalf("%s = %s reason %q", liveNode, n.StateString(), n.Reason)
	}
	t.Logf("after the drain: %s, reason %q by %s", n.StateString(), n.Reason, n.ReasonUser)
	time.Sleep(2 * time.Second)
	if st := jobState(); st != "RUNNING" {
		t.Fatalf("job %s is %q after the drain, want RUNNING", job, st)
	}
	if ds := eng.Step(ctx, inputs(xid79(3), time.Time{})); len(ds) != 0 {
		t.Fatalf("repeat step = %+v", ds)
	}

	// Someone else takes the node over: nothing the engine does touches it.
	if out, err := slurmCmd(t, env, "scontrol", "update", "NodeName="+liveNode, "State=DRAIN", "Reason=maintenance by a person"); err != nil {
		t.Fatalf("scontrol: %v: %s", err, out)
	}
	clock.Advance(time.Hour)
	if ds := eng.Step(ctx, inputs(healthy(), clock.Now().Add(-time.Hour))); len(ds) != 0 {
		t.Fatalf("step on someone else's drain = %+v", ds)
	}
	if _, err := eng.Undrain(ctx, liveNode, true, "tester"); !errors.Is(err, remediation.ErrForeign) {
		t.Fatalf("Undrain = %v, want ErrForeign", err)
	}
	if _, err := eng.Drain(ctx, liveNode, "x", "tester"); !errors.Is(err, remediation.ErrForeign) {
		t.Fatalf("Drain = %v, want ErrForeign", err)
	}
	if n := current()[liveNode]; n.Reason != "maintenance by a person" || !n.Drained() {
		t.Fatalf("someone else's drain changed: %s reason %q", n.StateString(), n.Reason)
	}
	if verifier.count() != 0 {
		t.Fatal("verified someone else's node")
	}

	// Back to the operator through the engine: drain, verify, undrain.
	if out, err := slurmCmd(t, env, "scontrol", "update", "NodeName="+liveNode, "State=RESUME"); err != nil {
		t.Fatalf("scontrol: %v: %s", err, out)
	}
	d, err := eng.Drain(ctx, liveNode, "reseat NIC\nnow", "tester")
	if err != nil || d.Reason != "[sopilot] manual: reseat NIC now (by tester)" {
		t.Fatalf("Drain = %+v, %v", d, err)
	}
	if n := current()[liveNode]; n.Reason != d.Reason || !n.Drained() {
		t.Fatalf("%s reason %q", n.StateString(), n.Reason)
	}
	d, err = eng.Undrain(ctx, liveNode, false, "tester")
	if err != nil || d.Kind != remediation.KindResume || verifier.count() != 1 {
		t.Fatalf("Undrain = %+v, %v", d, err)
	}
	n = current()[liveNode]
	if n.Drained() || n.Reason != "" {
		t.Fatalf("after Undrain: %s reason %q", n.StateString(), n.Reason)
	}
	t.Logf("after the undrain: %s", n.StateString())
	if st := jobState(); st != "RUNNING" {
		t.Fatalf("job %s is %q at the end, want RUNNING", job, st)
	}
}

// TestExclusiveLiveHandoff runs hand-off mode over the real Slurm CLI
// backend: a hardware fault drains the node with Soperator's
// "[node_problem]" reason, stored byte for byte; sopilot then leaves the
// node alone (no verification, no resume, no rewrite, no operator's drain
// or undrain through it); once the node is resumed in Slurm, as Soperator
// does after replacing the machine, the engine takes it up as new.
func TestExclusiveLiveHandoff(t *testing.T) {
	env := slurmtest.RequireExclusive(t)
	ctx := context.Background()
	backend, current := liveBackend(ctx, t, env)

	clock := testclock.New(time.Now())
	verifier := &fakeVerifier{}
	eng, err := remediation.New(remediation.Config{Handoff: remediation.HandoffSoperator, MaxDrainShare: 1}, backend, verifier, clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	inputs := liveInputs(current, clock.Now, "01JLIVEHANDOFF")

	ds := eng.Step(ctx, inputs(xid79(3), time.Time{}))
	want := "[node_problem] sopilot: xid 79 (drain) on gpu3 incident=01JLIVEHANDOFF"
	if d := only(t, ds); d.Kind != remediation.KindDrain || !d.Handoff || d.Reason != want || d.Err != nil {
		t.Fatalf("decision = %+v", d)
	}
	n := current()[liveNode]
	if !n.Drained() || n.Reason != want {
		t.Fatalf("%s = %s reason %q, want drained with %q", liveNode, n.StateString(), n.Reason, want)
	}
	t.Logf("handed off: %s, reason %q by %s", n.StateString(), n.Reason, n.ReasonUser)

	// The evidence clears and stays clear: sopilot does not verify, resume
	// or rewrite the node, and does not let an operator do so through it.
	clock.Advance(time.Hour)
	for range 2 {
		if ds := eng.Step(ctx, inputs(healthy(), clock.Now().Add(-time.Hour))); len(ds) != 0 {
			t.Fatalf("step on the handed-off node = %+v", ds)
		}
	}
	if _, err := eng.Undrain(ctx, liveNode, true, "tester"); !errors.Is(err, remediation.ErrForeign) {
		t.Fatalf("Undrain = %v, want ErrForeign", err)
	}
	if _, err := eng.Drain(ctx, liveNode, "x", "tester"); !errors.Is(err, remediation.ErrForeign) {
		t.Fatalf("Drain = %v, want ErrForeign", err)
	}
	if d := only(t, eng.Step(ctx, inputs(xid79(5), time.Time{}))); d.Kind != remediation.KindSkip || !d.Handoff {
		t.Fatalf("new evidence on the handed-off node: %+v", d)
	}
	if n := current()[liveNode]; n.Reason != want || !n.Drained() {
		t.Fatalf("the hand-off changed: %s reason %q", n.StateString(), n.Reason)
	}
	if verifier.count() != 0 {
		t.Fatal("verified a handed-off node")
	}

	// Soperator resumes the node once its worker runs on a new machine.
	if out, err := slurmCmd(t, env, "scontrol", "update", "NodeName="+liveNode, "State=RESUME"); err != nil {
		t.Fatalf("scontrol: %v: %s", err, out)
	}
	if d := only(t, eng.Step(ctx, inputs(healthy(), clock.Now()))); d.Kind != remediation.KindReturned || d.Node != liveNode {
		t.Fatalf("after the resume: %+v, want the node returned", d)
	}
	if ds := eng.Step(ctx, inputs(healthy(), clock.Now())); len(ds) != 0 {
		t.Fatalf("step after the return = %+v", ds)
	}
	if n := current()[liveNode]; n.Drained() || n.Reason != "" {
		t.Fatalf("after the return: %s reason %q", n.StateString(), n.Reason)
	}
}
