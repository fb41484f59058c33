package remediation_test

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sopilot/sopilot/internal/health"
	"github.com/sopilot/sopilot/internal/remediation"
	"github.com/sopilot/sopilot/internal/scheduler"
	"github.com/sopilot/sopilot/internal/testclock"
)

// call is one NodeBackend call the fake saw.
type call struct{ Op, Node, Reason string }

// fakeSlurm is an in-memory NodeBackend that behaves like slurmctld for the
// calls the engine makes: a drain sets DRAIN and the reason and leaves
// running jobs alone (ALLOCATED+DRAIN until the job ends, then
// IDLE+DRAIN); a resume clears DRAIN and the reason and fails on a node
// that is not drained ("Invalid node state specified"). It has no way to
// cancel a job.
type fakeSlurm struct {
	mu    sync.Mutex
	nodes map[string]*scheduler.NodeStatus
	jobs  map[string][]string
	calls []call
	now   func() time.Time

	failNodes, failDrain, failResume error
	// beforeMutation runs (unlocked) before a Drain or Resume is applied.
	beforeMutation func(op, node string)
}

func newFakeSlurm(now func() time.Time) *fakeSlurm {
	return &fakeSlurm{nodes: make(map[string]*scheduler.NodeStatus), jobs: make(map[string][]string), now: now}
}

// add creates a node in the given base state; ALLOCATED and MIXED nodes get
// a running job.
func (f *fakeSlurm) add(name, state string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nodes[name] = &scheduler.NodeStatus{Name: name, State: state, GPUs: 8}
	if state == "ALLOCATED" || state == "MIXED" {
		f.jobs[name] = []string{"job-" + name}
	}
}

// humanDrain is what `scontrol update state=drain` by a person does.
func (f *fakeSlurm) humanDrain(name, reason, user string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := f.nodes[name]
	if !slices.Contains(n.Flags, "DRAIN") {
		n.Flags = append(n.Flags, "DRAIN")
	}
	n.Reason, n.ReasonUser, n.ReasonTime = reason, user, f.now()
}

// finishJobs ends the node's jobs the way Slurm does: the node becomes
// IDLE, keeping its flags.
func (f *fakeSlurm) finishJobs(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.jobs, name)
	f.nodes[name].State = "IDLE"
}

func (f *fakeSlurm) Nodes(ctx context.Context) ([]scheduler.NodeStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call{Op: "nodes"})
	if f.failNodes != nil {
		return nil, f.failNodes
	}
	return f.snapshotLocked(), nil
}

func (f *fakeSlurm) snapshotLocked() []scheduler.NodeStatus {
	out := make([]scheduler.NodeStatus, 0, len(f.nodes))
	for _, n := range f.nodes {
		c := *n
		c.Flags = slices.Clone(n.Flags)
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (f *fakeSlurm) Drain(ctx context.Context, node, reason string) error {
	if f.beforeMutation != nil {
		f.beforeMutation("drain", node)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call{Op: "drain", Node: node, Reason: reason})
	if f.failDrain != nil {
		return f.failDrain
	}
	n, ok := f.nodes[node]
	if !ok {
		return fmt.Errorf("%w: Invalid node name specified", scheduler.ErrRejected)
	}
	if !slices.Contains(n.Flags, "DRAIN") {
		n.Flags = append(n.Flags, "DRAIN")
	}
	n.Reason, n.ReasonUser, n.ReasonTime = reason, "slurm", f.now()
	return nil
}

func (f *fakeSlurm) Resume(ctx context.Context, node string) error {
	if f.beforeMutation != nil {
		f.beforeMutation("resume", node)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call{Op: "resume", Node: node})
	if f.failResume != nil {
		return f.failResume
	}
	n, ok := f.nodes[node]
	if !ok {
		return fmt.Errorf("%w: Invalid node name specified", scheduler.ErrRejected)
	}
	if !slices.Contains(n.Flags, "DRAIN") {
		return fmt.Errorf("%w: Invalid node state specified", scheduler.ErrRejected)
	}
	n.Flags = slices.DeleteFunc(n.Flags, func(s string) bool { return s == "DRAIN" })
	n.Reason, n.ReasonUser, n.ReasonTime = "", "", time.Time{}
	return nil
}

// node returns the node's current state without recording a call.
func (f *fakeSlurm) node(name string) scheduler.NodeStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := *f.nodes[name]
	c.Flags = slices.Clone(c.Flags)
	return c
}

func (f *fakeSlurm) jobsOn(name string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.jobs[name])
}

// ops returns the calls seen so far of the given kinds (all when none).
func (f *fakeSlurm) ops(kinds ...string) []call {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []call
	for _, c := range f.calls {
		if len(kinds) == 0 || slices.Contains(kinds, c.Op) {
			out = append(out, c)
		}
	}
	return out
}

// mutations are the Drain and Resume calls seen so far.
func (f *fakeSlurm) mutations() []call { return f.ops("drain", "resume") }

func (f *fakeSlurm) resetCalls() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = nil
}

// fakeVerifier answers from a function and counts its calls.
type fakeVerifier struct {
	mu     sync.Mutex
	calls  []string
	answer func(node string) (bool, string, error)
}

func (v *fakeVerifier) Verify(ctx context.Context, node string) (bool, string, error) {
	v.mu.Lock()
	v.calls = append(v.calls, node)
	answer := v.answer
	v.mu.Unlock()
	if answer == nil {
		return true, "nccl all_reduce 480 GB/s", nil
	}
	return answer(node)
}

func (v *fakeVerifier) set(answer func(node string) (bool, string, error)) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.answer = answer
}

func (v *fakeVerifier) count() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.calls)
}

// env is an engine over a fake Slurm, a fake clock and a fake verifier.
type env struct {
	t     *testing.T
	slurm *fakeSlurm
	clock *testclock.Clock
	ver   *fakeVerifier
	reg   *prometheus.Registry
	m     *remediation.Metrics
	eng   *remediation.Engine
}

var t0 = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

// newEnv builds an env whose cluster has the given nodes, IDLE unless a
// state is given as "name=STATE".
func newEnv(t *testing.T, cfg remediation.Config, nodes ...string) *env {
	t.Helper()
	clock := testclock.New(t0)
	e := &env{t: t, slurm: newFakeSlurm(clock.Now), clock: clock, ver: &fakeVerifier{}, reg: prometheus.NewPedanticRegistry()}
	for _, n := range nodes {
		name, state := n, "IDLE"
		if i := strings.IndexByte(n, '='); i >= 0 {
			name, state = n[:i], n[i+1:]
		}
		e.slurm.add(name, state)
	}
	m, err := remediation.NewMetrics(e.reg)
	if err != nil {
		t.Fatal(err)
	}
	e.m = m
	cfg.Metrics = m
	eng, err := remediation.New(cfg, e.slurm, e.ver, clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	e.eng = eng
	return e
}

// node describes one node's evidence for a Step.
type node struct {
	name         string
	result       health.Result
	incident     string
	healthySince time.Time
}

// step runs Step with the fake's current state as the snapshot; nodes not
// listed are Healthy since t0.
func (e *env) step(ns ...node) []remediation.Decision {
	e.t.Helper()
	return e.eng.Step(context.Background(), e.inputs(ns...))
}

func (e *env) inputs(ns ...node) []remediation.NodeInput {
	byName := make(map[string]node)
	for _, n := range ns {
		byName[n.name] = n
	}
	e.slurm.mu.Lock()
	snap := e.slurm.snapshotLocked()
	e.slurm.mu.Unlock()
	var in []remediation.NodeInput
	for _, st := range snap {
		n, ok := byName[st.Name]
		if !ok {
			n = node{name: st.Name, result: healthy(), healthySince: t0}
		}
		in = append(in, remediation.NodeInput{Name: st.Name, Result: n.result, IncidentID: n.incident, Slurm: st, HealthySince: n.healthySince})
	}
	return in
}

func healthy() health.Result { return health.Result{Verdict: health.Healthy} }

// xid79 is what health.Evaluate makes of XID 79 on the given GPU.
func xid79(gpu int) health.Result {
	return health.Result{Verdict: health.Unhealthy, Action: health.ActionDrainNow, Findings: []health.Finding{{
		Component: fmt.Sprintf("gpu%d", gpu), Rule: "xid_drain", Verdict: health.Unhealthy, Action: health.ActionDrainNow,
		Reason: fmt.Sprintf("xid 79 (drain) on gpu%d", gpu),
	}}}
}

// eccAfterJob is an uncorrected ECC event: drain after the running job.
func eccAfterJob() health.Result {
	return health.Result{Verdict: health.Unhealthy, Action: health.ActionDrainAfterJob, Findings: []health.Finding{{
		Component: "gpu1", Rule: "ecc_uncorrected_event", Verdict: health.Unhealthy, Action: health.ActionDrainAfterJob,
		Reason: "uncorrected ECC error on gpu1",
	}}}
}

func silent() health.Result {
	return health.Result{Verdict: health.Unknown, Findings: []health.Finding{{
		Component: "agent", Rule: "agent_silent", Verdict: health.Unknown, Reason: "agent silent for 5m0s (limit 2m0s)",
	}}}
}

func (e *env) counter(name string, labels ...string) float64 {
	e.t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		e.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue metric
				}
			}
			if m.Counter != nil {
				return m.Counter.GetValue()
			}
			return m.Gauge.GetValue()
		}
	}
	e.t.Fatalf("metric %s%v not found", name, labels)
	return 0
}
