package monitor_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sopilot/sopilot/internal/agent/uplink"
	"github.com/sopilot/sopilot/internal/fleet"
	"github.com/sopilot/sopilot/internal/fleet/fleettest"
	"github.com/sopilot/sopilot/internal/health"
	"github.com/sopilot/sopilot/internal/monitor"
	"github.com/sopilot/sopilot/internal/remediation"
	"github.com/sopilot/sopilot/internal/scheduler"
	"github.com/sopilot/sopilot/internal/store"
	"github.com/sopilot/sopilot/internal/testclock"
	"github.com/sopilot/sopilot/internal/testwait"
	"github.com/sopilot/sopilot/pkg/agentpb"
)

// t0 is when every test's clock starts.
var t0 = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

// call is one NodeBackend mutation the fake saw.
type call struct{ Op, Node, Reason string }

// fakeSlurm behaves like slurmctld for the calls remediation makes: a drain
// sets DRAIN and the reason, a resume clears them and fails on a node that
// is not drained.
type fakeSlurm struct {
	mu    sync.Mutex
	nodes map[string]*scheduler.NodeStatus
	calls []call
	now   func() time.Time
}

func (f *fakeSlurm) Nodes(context.Context) ([]scheduler.NodeStatus, error) {
	return f.snapshot(), nil
}

func (f *fakeSlurm) snapshot() []scheduler.NodeStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]scheduler.NodeStatus, 0, len(f.nodes))
	for _, n := range f.nodes {
		c := *n
		c.Flags = slices.Clone(n.Flags)
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (f *fakeSlurm) Drain(_ context.Context, node, reason string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call{"drain", node, reason})
	n, ok := f.nodes[node]
	if !ok {
		return fmt.Errorf("%w: Invalid node name specified", scheduler.ErrRejected)
	}
	if !n.Drained() {
		n.Flags = append(n.Flags, "DRAIN")
	}
	n.Reason, n.ReasonUser, n.ReasonTime = reason, "slurm", f.now()
	return nil
}

func (f *fakeSlurm) Resume(_ context.Context, node string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call{"resume", node, ""})
	n, ok := f.nodes[node]
	if !ok {
		return fmt.Errorf("%w: Invalid node name specified", scheduler.ErrRejected)
	}
	if !n.Drained() {
		return fmt.Errorf("%w: Invalid node state specified", scheduler.ErrRejected)
	}
	n.Flags = slices.DeleteFunc(n.Flags, func(s string) bool { return s == "DRAIN" })
	n.Reason, n.ReasonUser, n.ReasonTime = "", "", time.Time{}
	return nil
}

func (f *fakeSlurm) ops() []call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func (f *fakeSlurm) node(name string) scheduler.NodeStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := *f.nodes[name]
	c.Flags = slices.Clone(c.Flags)
	return c
}

// mark is one AttachIncident call.
type mark struct {
	runIDs   []string
	incident string
}

// runMarks is a RunIncidents that records its calls.
type runMarks struct {
	mu    sync.Mutex
	marks []mark
	// block makes AttachIncident wait for its context; ended gets its
	// error.
	block chan struct{}
	ended chan error
}

func (r *runMarks) AttachIncident(ctx context.Context, runIDs []string, id string) error {
	if r.block != nil {
		close(r.block)
		<-ctx.Done()
		r.ended <- ctx.Err()
		return ctx.Err()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.marks = append(r.marks, mark{slices.Clone(runIDs), id})
	return nil
}

func (r *runMarks) of(id string) [][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out [][]string
	for _, m := range r.marks {
		if m.incident == id {
			out = append(out, m.runIDs)
		}
	}
	return out
}

// lateMonitor is the monitor as the fleet and remediation reach it before
// it is built.
type lateMonitor struct{ *monitor.Monitor }

// env is a controller's monitoring path: a fleet served over loopback TCP
// with a bbolt store, a monitor, and a remediation engine over a fake
// Slurm, all on one settable clock.
type env struct {
	t     *testing.T
	clock *testclock.Clock
	st    *store.Store
	fl    *fleet.Fleet
	slurm *fakeSlurm
	mon   *monitor.Monitor
	runs  *runMarks
	as    *fleettest.Assignments
	reg   *prometheus.Registry
	addr  string
	stop  func()
	seen  *observedFleet
}

// observedFleet is the fleet as the monitor sees it. It counts the
// monitor's passes (each starts with one Summaries call) and the commands
// it has in flight, so that a test waits for the monitor to have looked at
// the state as it is now instead of sleeping.
type observedFleet struct {
	*fleet.Fleet
	passes   atomic.Int64
	commands atomic.Int64
}

func (f *observedFleet) Summaries() []fleet.NodeView {
	f.passes.Add(1)
	return f.Fleet.Summaries()
}

func (f *observedFleet) RunCommand(ctx context.Context, node, kind string, args map[string]string) (*agentpb.CommandResult, error) {
	f.commands.Add(1)
	defer f.commands.Add(-1)
	return f.Fleet.RunCommand(ctx, node, kind, args)
}

// settle waits until the monitor has made two full passes that began after
// the call, and no command it started is still running: whatever the state
// now makes it do has been done.
func (e *env) settle() {
	e.t.Helper()
	start := e.seen.passes.Load()
	// Pass start+1 begins after the call; start+3 begins once start+2,
	// the second whole pass, has ended.
	testwait.For(e.t, "two monitor passes", func() bool { return e.seen.passes.Load() >= start+3 && e.seen.commands.Load() == 0 })
}

const silence = 30 * time.Second

func newEnv(t *testing.T, dbPath string, clk *testclock.Clock, tune ...func(*monitor.Config)) *env {
	t.Helper()
	st, err := store.Open(dbPath, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	e := &env{t: t, clock: clk, st: st, runs: &runMarks{}, as: &fleettest.Assignments{}, reg: prometheus.NewPedanticRegistry()}
	late := &lateMonitor{} // as the controller's assembly does
	fl, err := fleet.New(st, log, nil, fleet.Options{Silence: silence, Now: clk.Now, CommitInterval: 5 * time.Millisecond, AssignmentInterval: 10 * time.Millisecond,
		Assignments: e.as, Events: late, Observer: late, Replacements: late})
	if err != nil {
		t.Fatal(err)
	}
	e.fl = fl
	e.slurm = &fakeSlurm{nodes: map[string]*scheduler.NodeStatus{}, now: clk.Now}
	for _, n := range []string{"worker-0", "worker-1"} {
		e.slurm.nodes[n] = &scheduler.NodeStatus{Name: n, State: "IDLE", GPUs: 8}
	}
	fl.SetSlurmNodes(context.Background(), e.slurm.snapshot())
	eng, err := remediation.New(remediation.Config{ClearFor: 2 * time.Minute, MaxDrainShare: 1, MaxDrainsPerWindow: 100}, e.slurm, late, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	th, err := health.DefaultThresholds("h100")
	if err != nil {
		t.Fatal(err)
	}
	cfg := monitor.Config{Thresholds: th, EventWindow: 15 * time.Minute, StallAfter: 10 * time.Minute, Interval: 5 * time.Millisecond, Now: clk.Now,
		RefreshSlurm: func() { fl.SetSlurmNodes(context.Background(), e.slurm.snapshot()) }}
	for _, f := range tune {
		f(&cfg)
	}
	e.seen = &observedFleet{Fleet: fl}
	e.mon, err = monitor.New(cfg, e.seen, st, eng, e.runs, log, monitor.NewMetrics(e.reg))
	if err != nil {
		t.Fatal(err)
	}
	late.Monitor = e.mon

	srv := fleettest.Serve(t, fl, fleettest.Options{Also: []func(context.Context) error{e.mon.Run}})
	e.addr = srv.Addr
	var once sync.Once
	e.stop = func() {
		once.Do(func() {
			srv.Stop()
			if err := st.Close(); err != nil {
				t.Error(err)
			}
		})
	}
	t.Cleanup(e.stop)
	return e
}

// handler answers the controller's commands like a node agent: nccl_check
// reports the bus bandwidth it measured (a sound run), or a failure.
type handler struct {
	mu      sync.Mutex
	failure string
	busbw   float64
	checks  int
	args    map[string]string
}

func (*handler) Config(*agentpb.AgentConfig)         {}
func (*handler) Assignments(*agentpb.RunAssignments) {}
func (h *handler) Command(_ context.Context, c *agentpb.Command) *agentpb.CommandResult {
	h.mu.Lock()
	defer h.mu.Unlock()
	if c.GetKind() != "nccl_check" {
		return &agentpb.CommandResult{CommandId: c.GetCommandId(), Output: "unknown command"}
	}
	h.checks++
	h.args = c.GetArgs()
	if h.failure != "" {
		return &agentpb.CommandResult{CommandId: c.GetCommandId(), Output: h.failure}
	}
	return &agentpb.CommandResult{CommandId: c.GetCommandId(), Success: true, BusBandwidthGbps: h.busbw,
		Output: fmt.Sprintf("busbw %.1f GB/s at 16 GiB", h.busbw)}
}

// set makes the next checks sound runs at busbw GB/s.
func (h *handler) set(busbw float64) {
	h.mu.Lock()
	h.failure, h.busbw = "", busbw
	h.mu.Unlock()
}

func (h *handler) fail(output string) {
	h.mu.Lock()
	h.failure = output
	h.mu.Unlock()
}

func (h *handler) lastArgs() map[string]string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.args
}

func (h *handler) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.checks
}

// agent is an uplink client with two GPUs and one IB port.
type agent struct {
	t     *testing.T
	e     *env
	node  string
	buf   *uplink.Buffer
	h     *handler
	sent  uint64
	stopF func()
}

func (e *env) agent(node string) *agent {
	e.t.Helper()
	conn, err := grpc.NewClient(e.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		e.t.Fatal(err)
	}
	a := &agent{t: e.t, e: e, node: node, buf: uplink.NewBuffer(uplink.BufferOptions{}), h: &handler{busbw: 480}}
	hello := func() *agentpb.Hello {
		return &agentpb.Hello{NodeName: node, BootId: "boot-" + node, AgentVersion: "test", Inventory: &agentpb.Inventory{
			Gpus:    []*agentpb.GpuInfo{{Index: 0, Uuid: "GPU-0"}, {Index: 1, Uuid: "GPU-1"}},
			IbPorts: []*agentpb.IbPortInfo{{Device: "mlx5_0", Port: 1, RateGbps: 400}},
		}}
	}
	client := uplink.NewClient(conn, hello, a.buf, a.h, slog.New(slog.DiscardHandler), uplink.Options{MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = client.Run(ctx); close(done) }()
	var once sync.Once
	a.stopF = func() { once.Do(func() { cancel(); <-done; _ = conn.Close() }) }
	e.t.Cleanup(a.stopF)
	// node is the agent's machine: a Slurm node's name on a plain host, a
	// Kubernetes node's name that Slurm's instance ids map.
	testwait.For(e.t, node+" connected", func() bool {
		for _, v := range e.fl.Snapshots() {
			if v.Machine == node && v.Connected {
				return true
			}
		}
		return false
	})
	return a
}

func ptr[T any](v T) *T { return &v }

// batch is a healthy batch at the clock's time: both GPUs busy with job
// (none when ""), the IB port ACTIVE, plus extra.
func (a *agent) batch(job string, extra func(b *agentpb.Batch)) *agentpb.Batch {
	now := timestamppb.New(a.e.clock.Now())
	b := &agentpb.Batch{CreateTime: now}
	for i := range 2 {
		g := &agentpb.GpuSample{SampleTime: now, Index: int32(i), Uuid: fmt.Sprintf("GPU-%d", i),
			SmUtilizationPercent: ptr(90.0), TemperatureCelsius: ptr(60.0), MemoryUsedBytes: ptr(int64(80 << 30))}
		if job != "" {
			g.Processes = []*agentpb.GpuProcess{{Pid: int32(4000 + i), SlurmJobId: job}}
		}
		b.GpuSamples = append(b.GpuSamples, g)
	}
	b.IbSamples = []*agentpb.IbSample{{SampleTime: now, Device: "mlx5_0", Port: 1, State: "ACTIVE", PhysState: "LinkUp", RateGbps: 400}}
	if extra != nil {
		extra(b)
	}
	return b
}

// send queues b and waits until the controller acked it: its health events
// are then evaluated and their incidents durable.
func (a *agent) send(b *agentpb.Batch) {
	a.t.Helper()
	a.sent++
	a.buf.Add(b)
	testwait.For(a.t, fmt.Sprintf("%s batch %d acked", a.node, a.sent), func() bool { return a.buf.Stats().Buffered == 0 })
}

// healthy sends a healthy batch.
func (a *agent) healthy() { a.t.Helper(); a.send(a.batch("", nil)) }

// run lets d pass the way a live agent does: a healthy batch every 10 s of
// the clock, so the node never looks silent.
func (a *agent) run(d time.Duration) {
	a.t.Helper()
	for d > 0 {
		step := min(d, 10*time.Second)
		a.e.clock.Advance(step)
		a.healthy()
		d -= step
	}
}

// events sends a healthy batch carrying n identical events.
func (a *agent) events(comp, kind string, code int64, n int) {
	a.t.Helper()
	a.send(a.batch("", func(b *agentpb.Batch) {
		at := timestamppb.New(a.e.clock.Now())
		for range n {
			b.HealthEvents = append(b.HealthEvents, &agentpb.HealthEvent{EventTime: at, Component: comp, Kind: kind, Code: code, Message: "NVRM: Xid"})
		}
	}))
}

// incidents lists the node's incidents, newest first.
func (e *env) incidents(q store.IncidentQuery) []*store.Incident {
	e.t.Helper()
	incs, _, err := e.st.ListIncidents(context.Background(), q)
	if err != nil {
		e.t.Fatal(err)
	}
	return incs
}

// only returns the single incident of the node with the rule.
func (e *env) only(node, rule string) *store.Incident {
	e.t.Helper()
	var found []*store.Incident
	for _, inc := range e.incidents(store.IncidentQuery{Node: node}) {
		if inc.Rule == rule {
			found = append(found, inc)
		}
	}
	if len(found) != 1 {
		e.t.Fatalf("%s: %d incidents with rule %s, want 1: %s", node, len(found), rule, dump(found))
	}
	return found[0]
}

func (e *env) waitIncident(node, rule string, cond func(*store.Incident) bool) *store.Incident {
	e.t.Helper()
	var inc *store.Incident
	testwait.For(e.t, node+" "+rule+" incident", func() bool {
		for _, i := range e.incidents(store.IncidentQuery{Node: node}) {
			if i.Rule == rule && cond(i) {
				inc = i
				return true
			}
		}
		return false
	})
	return inc
}

func dump(incs []*store.Incident) string {
	var b strings.Builder
	for _, i := range incs {
		fmt.Fprintf(&b, "\n  %+v", *i)
	}
	return b.String()
}

// setSlurm changes the node as Slurm reports it and hands the fleet the
// new listing.
func (e *env) setSlurm(node string, change func(*scheduler.NodeStatus)) {
	e.slurm.mu.Lock()
	change(e.slurm.nodes[node])
	e.slurm.mu.Unlock()
	e.fl.SetSlurmNodes(context.Background(), e.slurm.snapshot())
}

func (e *env) drains(node string) []call {
	var out []call
	for _, c := range e.slurm.ops() {
		if c.Node == node && c.Op == "drain" {
			out = append(out, c)
		}
	}
	return out
}

func (e *env) verdict(node string) fleet.Verdict {
	v, _ := e.fl.Snapshot(node)
	return v.Verdict
}

// gauge reads one series of a monitor metric.
func (e *env) metric(name, label, value string) float64 {
	e.t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		e.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label && lp.GetValue() == value {
					if m.Counter != nil {
						return m.Counter.GetValue()
					}
					return m.Gauge.GetValue()
				}
			}
		}
	}
	return 0
}

func open(i *store.Incident) bool { return i.Open() }

// An XID 79 makes the node UNHEALTHY at once, opens one durable xid_drain
// incident and drains the node with our prefix and the incident's id. Once
// the evidence is older than EventWindow the incident resolves; after
// ClearFor and a passing NCCL check through the agent, the node is resumed.
func TestXID79DrainsThenVerifiedResume(t *testing.T) {
	e := newEnv(t, filepath.Join(t.TempDir(), "db"), testclock.New(t0))
	a := e.agent("worker-0")
	a.healthy()
	a.events("gpu1", "xid", 79, 1)

	// Durable before the ack.
	inc := e.only("worker-0", "xid_drain")
	if inc.Component != "gpu1" || inc.Severity != "UNHEALTHY" || inc.Count != 1 || !inc.Open() ||
		inc.Summary != "xid 79 (drain) on gpu1" || !inc.FirstSeen.Equal(t0) || !strings.HasPrefix(inc.ID, "inc-") {
		t.Errorf("incident = %+v", *inc)
	}
	if v := e.verdict("worker-0"); v.Verdict != "UNHEALTHY" || !slices.Contains(v.Reasons, "gpu1: xid 79 (drain) on gpu1") {
		t.Errorf("verdict = %+v", v)
	}
	testwait.For(t, "drain", func() bool { return len(e.drains("worker-0")) > 0 })
	ds := e.drains("worker-0")
	want := "[sopilot] xid 79 (drain) on gpu1 incident=" + inc.ID
	if len(ds) != 1 || ds[0].Reason != want {
		t.Fatalf("drains = %+v, want one with reason %q", ds, want)
	}
	if n := e.slurm.node("worker-0"); !n.Drained() || n.Reason != want {
		t.Errorf("slurm node = %+v", n)
	}
	e.waitIncident("worker-0", "xid_drain", func(i *store.Incident) bool { return i.Action == "drained" })
	testwait.For(t, "fleet sees the drain", func() bool {
		v, _ := e.fl.Snapshot("worker-0")
		return v.Slurm != nil && v.Slurm.Drained()
	})
	if got := e.metric("sopilot_incidents_opened_total", "rule", "xid_drain"); got != 1 {
		t.Errorf("incidents opened = %v", got)
	}

	// Still inside the event window: nothing changes.
	a.run(14 * time.Minute)
	e.settle()
	if inc := e.only("worker-0", "xid_drain"); !inc.Open() {
		t.Fatalf("incident resolved inside the event window: %+v", *inc)
	}

	// The evidence expires: the incident resolves, the verdict is HEALTHY.
	a.run(time.Minute + 10*time.Second)
	inc = e.waitIncident("worker-0", "xid_drain", func(i *store.Incident) bool { return !i.Open() })
	if inc.ResolvedBy != "evidence cleared" || inc.Count != 1 {
		t.Errorf("resolved incident = %+v", *inc)
	}
	testwait.For(t, "HEALTHY verdict", func() bool { return e.verdict("worker-0").Verdict == "HEALTHY" })
	e.settle()
	if got := e.slurm.ops(); len(got) != 1 || a.h.count() != 0 {
		t.Fatalf("before ClearFor: slurm calls %+v, %d checks; want only the drain", got, a.h.count())
	}

	// Healthy for ClearFor: verified through the agent, then resumed.
	a.run(2*time.Minute + 10*time.Second)
	testwait.For(t, "resume", func() bool { return len(e.slurm.ops()) == 2 })
	if got := e.slurm.ops()[1]; got != (call{"resume", "worker-0", ""}) {
		t.Errorf("second slurm call = %+v", got)
	}
	if a.h.count() != 1 {
		t.Errorf("nccl checks = %d, want 1", a.h.count())
	}
	if n := e.slurm.node("worker-0"); n.Drained() || n.Reason != "" {
		t.Errorf("slurm node after resume = %+v", n)
	}
	inc = e.waitIncident("worker-0", "xid_drain", func(i *store.Incident) bool { return strings.Contains(i.Action, "resumed") })
	if want := "drained; resumed after verification: busbw 480.0 GB/s at 16 GiB ≥ 460 (ok)"; inc.Action != want {
		t.Errorf("action = %q, want %q", inc.Action, want)
	}
	if got := e.drains("worker-1"); len(got) != 0 {
		t.Errorf("worker-1 (no agent) drained: %+v", got)
	}
}

// 5,000 identical XIDs in several batches are one incident with count
// 5,000 and one drain.
func TestXIDStormIsOneIncident(t *testing.T) {
	e := newEnv(t, filepath.Join(t.TempDir(), "db"), testclock.New(t0))
	a := e.agent("worker-0")
	a.healthy()
	for range 5 {
		a.events("gpu1", "xid", 79, 1000)
		e.clock.Advance(time.Second)
	}
	incs := e.incidents(store.IncidentQuery{Node: "worker-0"})
	if len(incs) != 1 {
		t.Fatalf("incidents = %s", dump(incs))
	}
	inc := incs[0]
	if inc.Count != 5000 || inc.Rule != "xid_drain" || inc.Summary != "xid 79 (drain) on gpu1 x5000" ||
		!inc.FirstSeen.Equal(t0) || !inc.LastSeen.Equal(t0.Add(4*time.Second)) {
		t.Errorf("incident = %+v", *inc)
	}
	testwait.For(t, "drain", func() bool { return len(e.drains("worker-0")) == 1 })
	e.settle()
	if got := e.drains("worker-0"); len(got) != 1 {
		t.Errorf("drains = %+v, want 1", got)
	}
	if got := e.metric("sopilot_health_events_total", "kind", "xid"); got != 5000 {
		t.Errorf("events counted = %v", got)
	}
}

// An application XID is recorded against the run on the GPU; the node is
// not drained. The same XID from a second job is a node problem.
func TestApplicationXIDRecordedAgainstRun(t *testing.T) {
	e := newEnv(t, filepath.Join(t.TempDir(), "db"), testclock.New(t0))
	e.as.Set(fleet.Assignment{RunID: "r-1", JobID: "77", Nodes: []string{"worker-0"}, GPUsPerNode: 2})
	a := e.agent("worker-0")
	testwait.For(t, "assignment", func() bool { v, _ := e.fl.Snapshot("worker-0"); return slices.Equal(v.RunIDs, []string{"r-1"}) })
	a.send(a.batch("77", nil))
	a.send(a.batch("77", func(b *agentpb.Batch) {
		b.HealthEvents = []*agentpb.HealthEvent{{EventTime: timestamppb.New(t0), Component: "gpu0", Kind: "xid", Code: 13}}
	}))
	inc := e.only("worker-0", "xid_application")
	if inc.Component != "gpu0" || inc.Action != "none" || !slices.Equal(inc.RunIDs, []string{"r-1"}) || inc.Count != 1 || !inc.Open() ||
		inc.Summary != "xid 13 (application) on gpu0" {
		t.Errorf("incident = %+v", *inc)
	}
	byRun := e.incidents(store.IncidentQuery{RunID: "r-1"})
	if len(byRun) != 1 || byRun[0].ID != inc.ID {
		t.Errorf("incidents of run r-1 = %s", dump(byRun))
	}
	testwait.For(t, "run marked", func() bool { return len(e.runs.of(inc.ID)) == 1 })
	if got := e.runs.of(inc.ID)[0]; !slices.Equal(got, []string{"r-1"}) {
		t.Errorf("AttachIncident runs = %v", got)
	}
	if v := e.verdict("worker-0"); v.Verdict != "HEALTHY" || !slices.Contains(v.Reasons, "gpu0: xid 13 (application) on gpu0") {
		t.Errorf("verdict = %+v", v)
	}
	e.clock.Advance(10 * time.Second)
	a.send(a.batch("77", nil))
	e.settle()
	if got := e.slurm.ops(); len(got) != 0 {
		t.Fatalf("slurm calls after an application XID: %+v", got)
	}

	// The next job on the GPU hits the same XID: the GPU, not the code.
	e.as.Set(fleet.Assignment{RunID: "r-2", JobID: "78", Nodes: []string{"worker-0"}, GPUsPerNode: 2})
	testwait.For(t, "assignment r-2", func() bool { v, _ := e.fl.Snapshot("worker-0"); return slices.Equal(v.RunIDs, []string{"r-2"}) })
	a.send(a.batch("78", func(b *agentpb.Batch) {
		b.HealthEvents = []*agentpb.HealthEvent{{EventTime: timestamppb.New(e.clock.Now()), Component: "gpu0", Kind: "xid", Code: 13}}
	}))
	rep := e.only("worker-0", "xid_application_repeated")
	if rep.Severity != "UNHEALTHY" || !slices.Equal(rep.RunIDs, []string{"r-2"}) || rep.Summary != "xid 13 (application) on gpu0 x2 across 2 jobs (77,78)" {
		t.Errorf("repeated incident = %+v", *rep)
	}
	testwait.For(t, "drain", func() bool { return len(e.drains("worker-0")) == 1 })
	if r := e.drains("worker-0")[0].Reason; !strings.HasPrefix(r, "[sopilot] ") || !strings.HasSuffix(r, " incident="+rep.ID) {
		t.Errorf("drain reason = %q", r)
	}
}

// Marking a run with an incident is the monitor's background work: it is
// cancelled and waited for when Run returns (goleak checks nothing is left).
func TestBackgroundWorkStopsWithRun(t *testing.T) {
	e := newEnv(t, filepath.Join(t.TempDir(), "db"), testclock.New(t0))
	e.runs.block, e.runs.ended = make(chan struct{}), make(chan error, 1)
	e.as.Set(fleet.Assignment{RunID: "r-1", JobID: "77", Nodes: []string{"worker-0"}, GPUsPerNode: 2})
	a := e.agent("worker-0")
	testwait.For(t, "assignment", func() bool { v, _ := e.fl.Snapshot("worker-0"); return slices.Equal(v.RunIDs, []string{"r-1"}) })
	a.send(a.batch("77", func(b *agentpb.Batch) {
		b.HealthEvents = []*agentpb.HealthEvent{{EventTime: timestamppb.New(t0), Component: "gpu0", Kind: "xid", Code: 13}}
	}))
	select {
	case <-e.runs.block:
	case <-time.After(10 * time.Second):
		t.Fatal("runs never marked")
	}
	a.stopF()
	e.stop()
	select {
	case err := <-e.runs.ended:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("AttachIncident ended with %v, want context.Canceled", err)
		}
	default:
		t.Fatal("Run returned with AttachIncident still running")
	}
}

// A port going DOWN opens ib_link_down on the port and drains the node.
func TestIBPortDown(t *testing.T) {
	e := newEnv(t, filepath.Join(t.TempDir(), "db"), testclock.New(t0))
	a := e.agent("worker-0")
	a.healthy()
	down := func(b *agentpb.Batch) {
		b.IbSamples[0].State, b.IbSamples[0].PhysState = "DOWN", "Disabled"
		b.IbSamples[0].Counters = &agentpb.IbCounters{LinkDowned: 1}
	}
	// Samples are judged every EvaluateEvery (5 s) of the clock.
	for range 2 {
		e.clock.Advance(10 * time.Second)
		a.send(a.batch("", down))
	}
	inc := e.waitIncident("worker-0", "ib_link_down", open)
	if inc.Component != "ib:mlx5_0/1" || inc.Severity != "UNHEALTHY" || inc.Summary != "ib:mlx5_0/1: port DOWN/Disabled" {
		t.Errorf("incident = %+v", *inc)
	}
	// link_downed rose between the two samples too.
	if ld := e.only("worker-0", "ib_link_downed"); ld.Summary != "ib:mlx5_0/1: link_downed increased by 1" {
		t.Errorf("link_downed incident = %+v", *ld)
	}
	testwait.For(t, "drain", func() bool { return len(e.drains("worker-0")) == 1 })
	if r := e.drains("worker-0")[0].Reason; !strings.HasPrefix(r, "[sopilot] ib:mlx5_0/1: ") {
		t.Errorf("drain reason = %q", r)
	}
	if v := e.verdict("worker-0"); v.Verdict != "UNHEALTHY" {
		t.Errorf("verdict = %+v", v)
	}
}

// A silent node is UNKNOWN: its incidents stay open however old their
// evidence, it is neither drained nor resumed; once it reports again, the
// expired evidence resolves them.
func TestSilentNodeUnknownNeverDrainedIncidentsKept(t *testing.T) {
	e := newEnv(t, filepath.Join(t.TempDir(), "db"), testclock.New(t0))
	a := e.agent("worker-0")
	a.healthy()
	a.events("gpu0", "xid", 13, 1) // recorded, not drained
	inc := e.only("worker-0", "xid_application")
	a.stopF()
	testwait.For(t, "disconnected", func() bool { v, _ := e.fl.Snapshot("worker-0"); return !v.Connected })

	e.clock.Advance(silence + time.Second)
	testwait.For(t, "UNKNOWN", func() bool { return e.verdict("worker-0").Verdict == "UNKNOWN" })
	testwait.For(t, "UNKNOWN counted", func() bool { return e.metric("sopilot_node_verdicts", "verdict", "UNKNOWN") == 2 })
	// Far past the event window and ClearFor.
	for range 5 {
		e.clock.Advance(5 * time.Minute)
		e.settle()
	}
	if got := e.only("worker-0", "xid_application"); !got.Open() || got.ID != inc.ID {
		t.Errorf("incident of a silent node = %+v, want it open", *got)
	}
	if v := e.verdict("worker-0"); v.Verdict != "UNKNOWN" || len(v.Reasons) != 1 || !strings.Contains(v.Reasons[0], "no report for more than 30s") {
		t.Errorf("verdict = %+v", v)
	}
	if got := e.slurm.ops(); len(got) != 0 {
		t.Errorf("slurm calls for silent nodes: %+v", got)
	}

	// Back: the old evidence no longer holds.
	b := e.agent("worker-0")
	b.healthy()
	b.run(10 * time.Second)
	got := e.waitIncident("worker-0", "xid_application", func(i *store.Incident) bool { return !i.Open() })
	if got.ResolvedBy != "evidence cleared" {
		t.Errorf("resolved = %+v", *got)
	}
	testwait.For(t, "HEALTHY", func() bool { return e.verdict("worker-0").Verdict == "HEALTHY" })
}

// Progress that stops moving for StallAfter while the run is assigned is a
// suspected hang, marked on the run; it resolves when the step moves.
func TestProgressStall(t *testing.T) {
	e := newEnv(t, filepath.Join(t.TempDir(), "db"), testclock.New(t0))
	e.as.Set(fleet.Assignment{RunID: "r-1", JobID: "77", Nodes: []string{"worker-0"}, GPUsPerNode: 2})
	a := e.agent("worker-0")
	testwait.For(t, "assignment", func() bool { v, _ := e.fl.Snapshot("worker-0"); return slices.Equal(v.RunIDs, []string{"r-1"}) })
	at := func(step int64) func(*agentpb.Batch) {
		return func(b *agentpb.Batch) {
			b.Progress = []*agentpb.ProgressUpdate{{RunId: "r-1", Step: step, TotalSteps: 1000, UpdateTime: timestamppb.New(e.clock.Now())}}
		}
	}
	a.send(a.batch("77", at(10)))
	for range 20 { // 10 minutes at step 10: not yet
		e.clock.Advance(30 * time.Second)
		a.send(a.batch("77", at(10)))
	}
	e.settle()
	if incs := e.incidents(store.IncidentQuery{RunID: "r-1"}); len(incs) != 0 {
		t.Fatalf("stalled after exactly StallAfter: %s", dump(incs))
	}
	e.clock.Advance(5 * time.Second)
	a.send(a.batch("77", at(10)))
	inc := e.waitIncident("worker-0", "progress_stalled", open)
	if inc.Component != "run:r-1" || !slices.Equal(inc.RunIDs, []string{"r-1"}) || inc.Severity != "DEGRADED" ||
		inc.Summary != "suspected hang: run r-1 has been at step 10 for 10m5s while Slurm says it runs" {
		t.Errorf("incident = %+v", *inc)
	}
	testwait.For(t, "run marked", func() bool { return len(e.runs.of(inc.ID)) == 1 })
	if got := e.runs.of(inc.ID)[0]; !slices.Equal(got, []string{"r-1"}) {
		t.Errorf("AttachIncident runs = %v", got)
	}
	if got := e.slurm.ops(); len(got) != 0 {
		t.Errorf("a hang drained: %+v", got)
	}

	e.clock.Advance(5 * time.Second)
	a.send(a.batch("77", at(11)))
	got := e.waitIncident("worker-0", "progress_stalled", func(i *store.Incident) bool { return !i.Open() })
	if got.ID != inc.ID || got.ResolvedBy != "progress resumed" {
		t.Errorf("resolved = %+v", *got)
	}

	// Stalled again, then the run leaves the node.
	for range 21 {
		e.clock.Advance(30 * time.Second)
		a.send(a.batch("77", at(11)))
	}
	second := e.waitIncident("worker-0", "progress_stalled", open)
	if second.ID == inc.ID {
		t.Fatalf("second stall reused the first incident's id")
	}
	e.as.Set()
	testwait.For(t, "unassigned", func() bool { v, _ := e.fl.Snapshot("worker-0"); return len(v.RunIDs) == 0 })
	got = e.waitIncident("worker-0", "progress_stalled", func(i *store.Incident) bool { return i.ID == second.ID && !i.Open() })
	if got.ResolvedBy != "run no longer running" {
		t.Errorf("resolved = %+v", *got)
	}
}

// Check runs the NCCL check through the agent: a failure is an nccl_busbw
// incident that ticks do not resolve; a pass resolves it.
func TestNCCLCheck(t *testing.T) {
	e := newEnv(t, filepath.Join(t.TempDir(), "db"), testclock.New(t0))
	a := e.agent("worker-0")
	a.healthy()
	ctx := context.Background()

	a.h.set(310)
	r, err := e.mon.Check(ctx, "worker-0", "")
	if err != nil || r.Passed || r.BusBWGBps != 310 || r.Summary != "busbw 310.0 GB/s at 16 GiB < 460" {
		t.Fatalf("Check = %+v, %v", r, err)
	}
	inc := e.only("worker-0", "nccl_busbw")
	if inc.Component != "nccl" || inc.Severity != "DEGRADED" || inc.Count != 1 || !inc.Open() ||
		inc.Summary != "NCCL check failed: busbw 310.0 GB/s at 16 GiB < 460" {
		t.Errorf("incident = %+v", *inc)
	}
	a.h.set(300)
	if r, err := e.mon.Check(ctx, "worker-0", "nccl"); err != nil || r.Passed {
		t.Fatalf("second Check = %+v, %v", r, err)
	}
	inc = e.only("worker-0", "nccl_busbw")
	if inc.Count != 2 || inc.Evidence != "busbw 300.0 GB/s at 16 GiB < 460" {
		t.Errorf("after a second failure = %+v", *inc)
	}
	// Healthy telemetry does not clear a failed check.
	a.run(20 * time.Second)
	e.settle()
	if inc := e.only("worker-0", "nccl_busbw"); !inc.Open() {
		t.Fatalf("telemetry resolved a failed check: %+v", *inc)
	}

	a.h.set(480)
	if r, err := e.mon.Check(ctx, "worker-0", "nccl"); err != nil || !r.Passed || r.BusBWGBps != 480 {
		t.Fatalf("passing Check = %+v, %v", r, err)
	}
	inc = e.only("worker-0", "nccl_busbw")
	if inc.Open() || inc.ResolvedBy != "check passed: busbw 480.0 GB/s at 16 GiB ≥ 460 (ok)" {
		t.Errorf("after a pass = %+v", *inc)
	}
	if got := e.metric("sopilot_node_checks_total", "result", "failed"); got != 2 {
		t.Errorf("failed checks = %v", got)
	}

	if _, err := e.mon.Check(ctx, "worker-0", "dcgm"); !errors.Is(err, monitor.ErrUnknownCheck) || !strings.Contains(err.Error(), `"dcgm"`) {
		t.Errorf("unknown check: %v", err)
	}
	if _, err := e.mon.Check(ctx, "worker-1", "nccl"); !errors.Is(err, fleet.ErrUnknownNode) {
		t.Errorf("check of a node without an agent: %v", err)
	}
	a.stopF()
	testwait.For(t, "disconnected", func() bool { v, _ := e.fl.Snapshot("worker-0"); return !v.Connected })
	if _, err := e.mon.Check(ctx, "worker-0", "nccl"); !errors.Is(err, fleet.ErrNotConnected) {
		t.Errorf("check of a disconnected node: %v", err)
	}
	if got := e.metric("sopilot_node_checks_total", "result", "error"); got != 2 {
		t.Errorf("check errors = %v", got)
	}
}

// The controller judges an NCCL check against its own thresholds
// (--platform, --thresholds-file), whatever platform the agent was started
// with: the agent measures at the controller's message size and reports.
func TestNCCLCheckJudgedByControllerThresholds(t *testing.T) {
	th, err := health.ParseThresholds([]byte(`{"version": 1, "platform": "h200", "nccl_min_busbw_gbps": 470, "nccl_message_bytes": 8589934592}`))
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, filepath.Join(t.TempDir(), "db"), testclock.New(t0), func(c *monitor.Config) { c.Thresholds = th })
	a := e.agent("worker-0")
	a.healthy()
	ctx := context.Background()

	// Above the floor of either platform's defaults (H100 460, H200 431),
	// below the controller's file.
	a.h.set(465)
	r, err := e.mon.Check(ctx, "worker-0", "nccl")
	if err != nil || r.Passed || r.BusBWGBps != 465 || r.Summary != "busbw 465.0 GB/s at 16 GiB < 470" {
		t.Fatalf("Check at 465 GB/s against a 470 floor = %+v, %v", r, err)
	}
	if got := a.h.lastArgs()["message_bytes"]; got != "8589934592" {
		t.Errorf("message_bytes sent to the agent = %q, want the controller's 8589934592", got)
	}
	if inc := e.only("worker-0", "nccl_busbw"); !inc.Open() {
		t.Errorf("incident = %+v", *inc)
	}
	a.h.set(475)
	if r, err := e.mon.Check(ctx, "worker-0", "nccl"); err != nil || !r.Passed || r.Summary != "busbw 475.0 GB/s at 16 GiB ≥ 470 (ok)" {
		t.Fatalf("Check at 475 GB/s = %+v, %v", r, err)
	}
	// An unsound run fails whatever bandwidth it reached.
	a.h.fail("nccl error: unhandled cuda error")
	if r, err := e.mon.Check(ctx, "worker-0", "nccl"); err != nil || r.Passed || r.Summary != "nccl error: unhandled cuda error" {
		t.Fatalf("unsound Check = %+v, %v", r, err)
	}
}

// A failing verification keeps the node drained and is recorded on the
// incident.
func TestVerificationFailureKeepsDrained(t *testing.T) {
	e := newEnv(t, filepath.Join(t.TempDir(), "db"), testclock.New(t0))
	a := e.agent("worker-0")
	a.healthy()
	a.events("gpu1", "xid", 79, 1)
	inc := e.only("worker-0", "xid_drain")
	testwait.For(t, "drain", func() bool { return len(e.drains("worker-0")) == 1 })
	a.h.set(200)
	a.run(16 * time.Minute)
	e.waitIncident("worker-0", "xid_drain", func(i *store.Incident) bool { return !i.Open() })
	a.run(2*time.Minute + 10*time.Second)
	testwait.For(t, "verification", func() bool { return a.h.count() == 1 })
	e.waitIncident("worker-0", "nccl_busbw", open)
	want := "[sopilot] verify failed: busbw 200.0 GB/s at 16 GiB < 460 incident=" + inc.ID
	testwait.For(t, "reason updated", func() bool { return e.slurm.node("worker-0").Reason == want })
	if n := e.slurm.node("worker-0"); !n.Drained() {
		t.Errorf("node resumed after a failed verification: %+v", n)
	}
	for _, c := range e.slurm.ops() {
		if c.Op == "resume" {
			t.Errorf("resumed: %+v", c)
		}
	}
}

// A GPU that falls off the bus: the gpu_lost event and the bare sample
// (one GPU fewer than the inventory) are two incidents, and the node is
// drained once.
func TestGPULost(t *testing.T) {
	e := newEnv(t, filepath.Join(t.TempDir(), "db"), testclock.New(t0))
	a := e.agent("worker-0")
	a.healthy()
	a.send(a.batch("", func(b *agentpb.Batch) {
		b.GpuSamples[1] = &agentpb.GpuSample{SampleTime: b.GpuSamples[1].GetSampleTime(), Index: 1, Uuid: "GPU-1"}
		b.HealthEvents = []*agentpb.HealthEvent{{EventTime: timestamppb.New(t0), Component: "gpu1", Kind: "gpu_lost", Message: "NVML reports GPU 1 lost"}}
	}))
	lost := e.only("worker-0", "gpu_lost")
	count := e.only("worker-0", "gpu_count")
	if lost.Component != "gpu1" || lost.Summary != "gpu1 fell off the bus" || lost.Severity != "UNHEALTHY" {
		t.Errorf("gpu_lost = %+v", *lost)
	}
	if count.Component != "node" || count.Summary != "1 GPUs visible, inventory expects 2" {
		t.Errorf("gpu_count = %+v", *count)
	}
	testwait.For(t, "drain", func() bool { return len(e.drains("worker-0")) == 1 })
	e.settle()
	if got := e.drains("worker-0"); len(got) != 1 || !strings.HasPrefix(got[0].Reason, "[sopilot] ") || !strings.Contains(got[0].Reason, " incident=inc-") {
		t.Errorf("drains = %+v", got)
	}
}

// A node drained by us that goes silent is not resumed while silent, however
// long ago its evidence was; once it reports again, the usual path resumes
// it.
func TestSilentDrainedNodeNotResumed(t *testing.T) {
	e := newEnv(t, filepath.Join(t.TempDir(), "db"), testclock.New(t0))
	a := e.agent("worker-0")
	a.healthy()
	a.events("gpu1", "xid", 79, 1)
	testwait.For(t, "drain", func() bool { return len(e.drains("worker-0")) == 1 })
	a.stopF()
	for range 8 {
		e.clock.Advance(5 * time.Minute)
		e.settle()
	}
	if got := e.slurm.ops(); len(got) != 1 || a.h.count() != 0 {
		t.Fatalf("40 minutes of silence: slurm calls %+v, %d checks; want only the drain", got, a.h.count())
	}
	if inc := e.only("worker-0", "xid_drain"); !inc.Open() {
		t.Fatalf("incident of a silent node resolved: %+v", *inc)
	}
	b := e.agent("worker-0")
	b.run(20 * time.Second)
	e.waitIncident("worker-0", "xid_drain", func(i *store.Incident) bool { return !i.Open() })
	b.run(2*time.Minute + 10*time.Second)
	testwait.For(t, "resume", func() bool { return len(e.slurm.ops()) == 2 })
	if c := e.slurm.ops()[1]; c.Op != "resume" || b.h.count() != 1 {
		t.Errorf("after the node returned: %+v, %d checks", c, b.h.count())
	}
}

// With CheckInterval, idle undrained nodes with an agent get the NCCL check
// on schedule; a failing one opens nccl_busbw.
func TestScheduledChecks(t *testing.T) {
	e := newEnv(t, filepath.Join(t.TempDir(), "db"), testclock.New(t0), func(c *monitor.Config) { c.CheckInterval = 10 * time.Minute })
	a := e.agent("worker-0")
	a.healthy()
	// Not at once: an interval after the node was first seen.
	e.settle()
	if n := a.h.count(); n != 0 {
		t.Fatalf("%d checks as soon as the node appeared, want 0", n)
	}
	a.run(10 * time.Minute)
	testwait.For(t, "first scheduled check", func() bool { return a.h.count() == 1 })
	a.run(9 * time.Minute)
	e.settle()
	if n := a.h.count(); n != 1 {
		t.Fatalf("%d checks within the interval, want 1", n)
	}
	a.h.set(120)
	a.run(time.Minute)
	testwait.For(t, "second scheduled check", func() bool { return a.h.count() == 2 })
	inc := e.waitIncident("worker-0", "nccl_busbw", open)
	if inc.Summary != "NCCL check failed: busbw 120.0 GB/s at 16 GiB < 460" {
		t.Errorf("incident = %+v", *inc)
	}
	// A busy node is not checked.
	e.setSlurm("worker-0", func(n *scheduler.NodeStatus) { n.State = "ALLOCATED" })
	a.run(20 * time.Minute)
	e.settle()
	if n := a.h.count(); n != 2 {
		t.Errorf("%d checks, want none on an allocated node", n)
	}
}

// The controller passes a nil *remediation.Engine when remediation is off:
// the monitor has no remediator then, and says so.
func TestRemediationDisabled(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "db"), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	th, err := health.DefaultThresholds("h100")
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	fl, err := fleet.New(st, log, nil, fleet.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var engine *remediation.Engine
	mon, err := monitor.New(monitor.Config{Thresholds: th}, fl, st, engine, nil, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mon.Drain(context.Background(), "worker-0", "test", "me"); err == nil || !strings.Contains(err.Error(), "remediation is disabled") {
		t.Errorf("Drain without remediation = %v", err)
	}
}

// TestReplacedNodeStartsFresh: a Kubernetes node carrying worker-0 (an
// agent reporting as gpu-node-0, mapped through the instance id) earns an
// XID 79 drain; Soperator replaces the machine (worker-0's instance id
// becomes gpu-node-9). The new machine's agent reports healthy: worker-0's
// open incident is resolved as replaced, its verdict is the new machine's,
// and its history (the incident, the drain record in it) stays under
// worker-0.
func TestReplacedNodeStartsFresh(t *testing.T) {
	e := newEnv(t, filepath.Join(t.TempDir(), "db"), testclock.New(t0))
	e.setSlurm("worker-0", func(n *scheduler.NodeStatus) { n.InstanceID = "gpu-node-0" })
	old := e.agent("gpu-node-0")
	old.healthy()
	old.events("gpu1", "xid", 79, 1)
	inc := e.only("worker-0", "xid_drain")
	testwait.For(t, "drain", func() bool { return len(e.drains("worker-0")) > 0 })
	e.waitIncident("worker-0", "xid_drain", func(i *store.Incident) bool { return i.Action == "drained" })
	if v := e.verdict("worker-0"); v.Verdict != "UNHEALTHY" {
		t.Fatalf("verdict before the replacement = %+v", v)
	}
	if got := e.incidents(store.IncidentQuery{Node: "gpu-node-0"}); len(got) != 0 {
		t.Errorf("incidents under the machine's name: %+v", got)
	}

	e.setSlurm("worker-0", func(n *scheduler.NodeStatus) { n.InstanceID = "gpu-node-9" })
	fresh := e.agent("gpu-node-9")
	fresh.healthy()

	resolved := e.waitIncident("worker-0", "xid_drain", func(i *store.Incident) bool { return !i.Open() })
	if resolved.ID != inc.ID || !strings.HasPrefix(resolved.ResolvedBy, "node replaced: worker-0 now runs on gpu-node-9, not gpu-node-0") ||
		resolved.Action != "drained" {
		t.Errorf("old machine's incident after the replacement = %+v", *resolved)
	}
	testwait.For(t, "the new machine's verdict", func() bool {
		v, _ := e.fl.Snapshot("worker-0")
		return v.Machine == "gpu-node-9" && v.Connected && v.Verdict.Verdict == "HEALTHY"
	})
	if v, _ := e.fl.Snapshot("gpu-node-0"); !v.Unmapped {
		t.Errorf("the old machine's agent = %+v, want unmapped", v)
	}
}
