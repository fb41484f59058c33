package agent_test

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/sopilot/sopilot/internal/agent"
	"github.com/sopilot/sopilot/internal/agent/ib"
	"github.com/sopilot/sopilot/internal/agent/nvmlsim"
	agentsim "github.com/sopilot/sopilot/internal/agent/sim"
	"github.com/sopilot/sopilot/internal/fleet"
	"github.com/sopilot/sopilot/internal/fleet/fleettest"
	"github.com/sopilot/sopilot/internal/health"
	"github.com/sopilot/sopilot/internal/run"
	"github.com/sopilot/sopilot/internal/store"
	"github.com/sopilot/sopilot/internal/telemetry"
	"github.com/sopilot/sopilot/internal/testwait"
)

const interval = 100 * time.Millisecond

// event is a health event as the controller made it durable.
type event struct {
	node, component, kind string
	code                  int64
	job                   string
	at                    time.Time
}

// sinks records what the fleet hands the controller: durable health events
// and progress, and when batches with health events were received.
type sinks struct {
	mu       sync.Mutex
	events   []event
	received []event // at ingest, before the commit
	progress map[string][]run.Progress
}

func (s *sinks) ObserveBatch(node string, _ int, b *telemetry.Batch, _ []string) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range b.Events {
		s.received = append(s.received, event{node, e.Component, e.Kind, e.Code, "", now})
	}
}

func (s *sinks) receivedAt(component, kind string, code int64) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.received {
		if e.component == component && e.kind == kind && e.code == code {
			return e.at
		}
	}
	return time.Time{}
}

func (s *sinks) RecordEvents(_ context.Context, node string, evs []telemetry.HealthEvent, jobs map[string]string) error {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range evs {
		s.events = append(s.events, event{node, e.Component, e.Kind, e.Code, jobs[e.Component], now})
	}
	return nil
}

func (s *sinks) ApplyProgress(_ context.Context, ups map[string]run.Progress) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, p := range ups {
		s.progress[id] = append(s.progress[id], p)
	}
	return nil
}

// find returns the first event of the kind on the component, and whether
// there is one.
func (s *sinks) find(component, kind string, code int64) (event, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.events {
		if e.component == component && e.kind == kind && e.code == code {
			return e, true
		}
	}
	return event{}, false
}

func (s *sinks) steps(runID string) []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []int64
	for _, p := range s.progress[runID] {
		out = append(out, p.Step)
	}
	return out
}

// node is a fleet served over loopback TCP and one agent on simulated
// NVML (8 GPUs), a simulated IB tree (8 ports) and a fake /proc.
type node struct {
	t     testing.TB
	fl    *fleet.Fleet
	sinks *sinks
	as    *fleettest.Assignments
	sim   *nvmlsim.Sim
	nccl  *agentsim.NCCL
	tree  *ib.SimTree
	proc  string
	agent *agent.Agent
}

func start(t testing.TB, tune ...func(*agent.Config)) *node {
	t.Helper()
	dir := t.TempDir()
	// Without fsync: the test is about the agent, not the disk.
	st, err := store.Open(filepath.Join(dir, "db"), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	n := &node{t: t, sinks: &sinks{progress: map[string][]run.Progress{}}, as: &fleettest.Assignments{}, proc: filepath.Join(dir, "proc")}
	fl, err := fleet.New(st, slog.New(slog.DiscardHandler), nil, fleet.Options{CommitInterval: 5 * time.Millisecond, AssignmentInterval: 20 * time.Millisecond,
		Assignments: n.as, Progress: n.sinks, Events: n.sinks, Observer: n.sinks})
	if err != nil {
		t.Fatal(err)
	}
	n.fl = fl
	srv := fleettest.Serve(t, fl, fleettest.Options{})

	if err := os.MkdirAll(n.proc, 0o755); err != nil {
		t.Fatal(err)
	}
	n.sim = nvmlsim.New(nvmlsim.Options{GPUs: 8, NodeName: "worker-0", Seed: 1})
	n.nccl = agentsim.NewNCCL(480)
	if n.tree, err = ib.NewSimTree(filepath.Join(dir, "ib"), 8); err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(srv.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	th, err := health.DefaultThresholds("h100")
	if err != nil {
		t.Fatal(err)
	}
	cfg := agent.Config{
		NodeName: "worker-0", BootID: "boot-1", Version: "test",
		NVML: n.sim, SimulatedGPUs: true, IBRoot: n.tree.Root(), IB: n.tree.Collector(), SimulatedIB: true, ProcRoot: n.proc,
		Interval: interval, Conn: conn, BeforeSample: &agentsim.GPUs{Sim: n.sim, ProcRoot: n.proc},
		NCCL: n.nccl, NCCLMessageBytes: th.NCCLMessageBytes,
	}
	for _, f := range tune {
		f(&cfg)
	}
	n.agent, err = agent.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	actx, acancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.agent.Run(actx) }()
	t.Cleanup(func() {
		acancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("agent.Run: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("agent.Run did not return within 5 s of its context ending")
		}
		if err := n.agent.Close(); err != nil {
			t.Errorf("agent.Close: %v", err)
		}
		_ = conn.Close()
		srv.Stop()
		if err := st.Close(); err != nil {
			t.Error(err)
		}
	})
	testwait.For(t, "first batch", func() bool { v, _ := fl.Snapshot("worker-0"); return v.Durable >= 1 && len(v.GPUs) == 8 })
	return n
}

func (n *node) view() fleet.NodeView {
	v, ok := n.fl.Snapshot("worker-0")
	if !ok {
		n.t.Fatal("worker-0 unknown to the fleet")
	}
	return v
}

// statLine is a /proc/<pid>/stat line with the given start time (field 22).
func statLine(pid int, comm string, start uint64) string {
	f := []string{strconv.Itoa(pid), "(" + comm + ")", "S", "1", strconv.Itoa(pid), strconv.Itoa(pid), "0", "-1",
		"4194560", "100", "0", "0", "0", "5", "3", "0", "0", "20", "0", "1", "0",
		strconv.FormatUint(start, 10), "12345678", "300", "18446744073709551615"}
	return strings.Join(f, " ") + "\n"
}

// process adds a process of the Slurm job to the fake /proc, attributed
// through its environment (no Slurm cgroup).
func (n *node) process(pid int, comm, job string) {
	n.t.Helper()
	dir := filepath.Join(n.proc, strconv.Itoa(pid))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		n.t.Fatal(err)
	}
	for name, data := range map[string]string{
		"stat":    statLine(pid, comm, uint64(1000+pid)),
		"comm":    comm + "\n",
		"cgroup":  "0::/user.slice/user-1000.slice/session-1.scope\n",
		"environ": "HOME=/home/alice\x00SLURM_JOB_ID=" + job + "\x00SLURM_PROCID=0\x00",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			n.t.Fatal(err)
		}
	}
}

func TestHelloInventoryAndBatchCadence(t *testing.T) {
	n := start(t)
	v := n.view()
	inv := v.Inventory
	if !v.Connected || v.BootID != "boot-1" || v.AgentVersion != "test" || !inv.Simulated || len(inv.GPUs) != 8 || len(inv.IBPorts) != 8 {
		t.Fatalf("view = connected %v boot %q version %q, inventory %v", v.Connected, v.BootID, v.AgentVersion, inv)
	}
	for i, g := range inv.GPUs {
		if g.Index != i || !strings.HasPrefix(g.UUID, "GPU-51m0") || !strings.Contains(g.Model, "(simulated)") ||
			g.MemoryTotalBytes != nvmlsim.DefaultMemoryTotalBytes {
			t.Errorf("gpu %d = %v", i, g)
		}
	}
	for i, p := range inv.IBPorts {
		if p.Device != fmt.Sprintf("mlx5_%d", i) || p.Port != 1 || p.RateGbps != 400 || p.LinkLayer != "InfiniBand" {
			t.Errorf("ib port %d = %v", i, p)
		}
	}
	if inv.DriverVersion != "570.00-sim" {
		t.Errorf("driver = %q", inv.DriverVersion)
	}

	// One batch per interval, never more (BenchmarkBatchCadence measures
	// the rate a loaded machine reaches).
	s0, began := n.view().Sequence, time.Now()
	testwait.For(t, "5 more batches", func() bool { return n.view().Sequence >= s0+5 })
	if took := time.Since(began); took < 4*interval {
		t.Errorf("5 batches in %v: more than one per %s interval", took, interval)
	}
	v = n.view()
	if len(v.GPUs) != 8 || len(v.IBPorts) != 8 {
		t.Fatalf("latest samples: %d GPUs, %d ports", len(v.GPUs), len(v.IBPorts))
	}
	for _, g := range v.GPUs {
		if g.SMUtilizationPercent == nil || *g.SMUtilizationPercent != 0 || g.TemperatureCelsius == nil || g.PowerMilliwatts == nil || *g.PowerMilliwatts == 0 {
			t.Errorf("idle gpu %d sample = %+v", g.Index, g)
		}
	}
	for _, p := range v.IBPorts {
		if p.State != "ACTIVE" || p.PhysState != "LinkUp" || p.RateGbps != 400 {
			t.Errorf("port %s/%d: state %s/%s, rate %d", p.Device, p.Port, p.State, p.PhysState, p.RateGbps)
		}
	}
}

// An XID goes out at once, not with the next sample: each op injects one and
// waits until the controller holds it durably, so ns/op is the latency
// (the goal: well under the interval); ms-to-controller is the time to
// reach the controller, before the commit.
func BenchmarkXIDLatency(b *testing.B) {
	n := start(b)
	// The event set registers while the agent starts; a fault before that
	// reaches nothing, as on hardware. Inject until one arrives.
	testwait.For(b, "event set registered", func() bool {
		if err := n.sim.Inject(nvmlsim.Fault{GPU: 2, Kind: nvmlsim.KindXID, Code: 31}); err != nil {
			b.Fatal(err)
		}
		deadline := time.Now().Add(50 * time.Millisecond)
		for time.Now().Before(deadline) {
			if _, ok := n.sinks.find("gpu2", "xid", 31); ok {
				return true
			}
			time.Sleep(time.Millisecond)
		}
		return false
	})
	code := int64(79)
	var ingest time.Duration
	for b.Loop() {
		code += 1000
		at := time.Now()
		if err := n.sim.Inject(nvmlsim.Fault{GPU: 3, Kind: nvmlsim.KindXID, Code: code}); err != nil {
			b.Fatal(err)
		}
		testwait.For(b, "xid event durable", func() bool { _, ok := n.sinks.find("gpu3", "xid", code); return ok })
		ingest += n.sinks.receivedAt("gpu3", "xid", code).Sub(at)
	}
	b.ReportMetric(float64(ingest)/float64(time.Millisecond)/float64(b.N), "ms-to-controller")
}

// BenchmarkBatchCadence: one op is one batch at the 100 ms interval, so
// ns/op near 1e8 means one batch per interval, on time.
func BenchmarkBatchCadence(b *testing.B) {
	n := start(b)
	last := n.view().Sequence
	for b.Loop() {
		testwait.For(b, "next batch", func() bool { return n.view().Sequence > last })
		last = n.view().Sequence
	}
}

// A lost GPU is reported bare (its last good values are not repeated) with
// one gpu_lost event.
func TestGPULost(t *testing.T) {
	n := start(t)
	if err := n.sim.Inject(nvmlsim.Fault{GPU: 5, Kind: nvmlsim.KindGPULost}); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, "gpu_lost event", func() bool { _, ok := n.sinks.find("gpu5", "gpu_lost", 0); return ok })
	testwait.For(t, "bare sample", func() bool {
		v := n.view()
		return len(v.GPUs) == 8 && v.GPUs[5].SMUtilizationPercent == nil
	})
	v := n.view()
	g := v.GPUs[5]
	if g.Index != 5 || g.UUID != v.Inventory.GPUs[5].UUID || g.TemperatureCelsius != nil || g.MemoryUsedBytes != nil ||
		g.PowerMilliwatts != nil || g.SlurmJobID != "" || g.Time.IsZero() {
		t.Errorf("lost gpu sample = %+v", g)
	}
	for _, other := range v.GPUs {
		if other.Index != 5 && other.SMUtilizationPercent == nil {
			t.Errorf("gpu %d reported bare too", other.Index)
		}
	}
	// One event, not one per sample.
	time.Sleep(5 * interval)
	n.sinks.mu.Lock()
	count := 0
	for _, e := range n.sinks.events {
		if e.kind == "gpu_lost" {
			count++
		}
	}
	n.sinks.mu.Unlock()
	if count != 1 {
		t.Errorf("%d gpu_lost events, want 1", count)
	}
}

// A run's job processes make its GPUs busy with their pids; samples carry
// the job; its progress file is tailed, and its last lines still arrive
// after the assignment is gone, within run.LateProgressWindow.
func TestAttributionAndProgress(t *testing.T) {
	n := start(t)
	n.process(1000, "bash", "4242")    // the batch script: never on a GPU
	n.process(1001, "python3", "4242") // the ranks
	n.process(1002, "python3", "4242")
	n.process(1003, "python3", "999") // another job, not assigned
	prog := filepath.Join(t.TempDir(), "r-1.progress.jsonl")
	if err := os.WriteFile(prog, []byte(`{"step": 10, "total_steps": 100, "loss": 2.5}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	n.as.Set(fleet.Assignment{RunID: "r-1", JobID: "4242", Nodes: []string{"worker-0"}, ProgressPath: prog, GPUsPerNode: 8})

	testwait.For(t, "simulated allocation", func() bool {
		st := n.sim.State()
		for _, g := range st.GPUs {
			if len(g.PIDs) != 1 {
				return false
			}
		}
		return true
	})
	for i, g := range n.sim.State().GPUs {
		if want := int32(1001 + i%2); g.PIDs[0] != want {
			t.Errorf("gpu %d pids = %v, want [%d]", i, g.PIDs, want)
		}
	}
	testwait.For(t, "attributed busy samples", func() bool {
		v := n.view()
		for _, g := range v.GPUs {
			if g.SlurmJobID != "4242" || g.SMUtilizationPercent == nil || *g.SMUtilizationPercent < 50 {
				return false
			}
		}
		return len(v.GPUs) == 8
	})

	testwait.For(t, "progress step 10", func() bool { return slices.Contains(n.sinks.steps("r-1"), 10) })
	f, err := os.OpenFile(prog, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(`{"step": 20, "total_steps": 100, "loss": 2.1}` + "\n"); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, "progress step 20", func() bool { return slices.Contains(n.sinks.steps("r-1"), 20) })
	n.sinks.mu.Lock()
	last := n.sinks.progress["r-1"][len(n.sinks.progress["r-1"])-1]
	n.sinks.mu.Unlock()
	if last.Step != 20 || last.TotalSteps != 100 || last.Loss != 2.1 {
		t.Errorf("progress = %+v", last)
	}

	// A checkpoint line and a plain line after it, in one write: the
	// checkpoint reaches the run's progress although it is not the newest
	// line.
	if _, err := f.WriteString(`{"step": 30, "total_steps": 100, "checkpoint": "/ckpt/r-1/step-30.pt"}` + "\n" + `{"step": 31, "total_steps": 100}` + "\n"); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, "progress step 31", func() bool { return slices.Contains(n.sinks.steps("r-1"), 31) })
	n.sinks.mu.Lock()
	var ck *run.Checkpoint
	for _, p := range n.sinks.progress["r-1"] {
		if p.Checkpoint != nil {
			ck = p.Checkpoint
		}
	}
	n.sinks.mu.Unlock()
	if ck == nil || ck.Step != 30 || ck.Path != "/ckpt/r-1/step-30.pt" || ck.Time.IsZero() {
		t.Errorf("checkpoint = %+v, want step 30 at /ckpt/r-1/step-30.pt", ck)
	}

	// The job's last line, then the run leaves the node at once.
	if _, err := f.WriteString(`{"step": 100, "total_steps": 100, "loss": 1.2}` + "\n"); err != nil {
		t.Fatal(err)
	}
	n.as.Set()
	testwait.For(t, "final progress", func() bool { return slices.Contains(n.sinks.steps("r-1"), 100) })
	testwait.For(t, "GPUs idle again", func() bool {
		for _, g := range n.sim.State().GPUs {
			if len(g.PIDs) != 0 {
				return false
			}
		}
		return true
	})
	// A line that shows up after the run left (a shared file system's
	// late write-back) is still read within run.LateProgressWindow, the
	// one rule the fleet and the run service apply too.
	if _, err := f.WriteString(`{"step": 101}` + "\n"); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, "late progress", func() bool { return slices.Contains(n.sinks.steps("r-1"), 101) })
}

// Without InfiniBand (--ib none) the agent runs no IB collector: no ports
// in its inventory, no IB samples, whatever IBRoot says.
func TestNoIB(t *testing.T) {
	n := start(t, func(c *agent.Config) { c.NoIB, c.IB = true, nil })
	testwait.For(t, "a few batches", func() bool { v, _ := n.fl.Snapshot("worker-0"); return v.Sequence >= 3 })
	v, _ := n.fl.Snapshot("worker-0")
	if len(v.IBPorts) != 0 || len(v.Inventory.IBPorts) != 0 || len(v.GPUs) != 8 {
		t.Errorf("without IB: %d IB samples, %d IB ports in the inventory, %d GPUs", len(v.IBPorts), len(v.Inventory.IBPorts), len(v.GPUs))
	}
}

func TestNCCLCheckCommand(t *testing.T) {
	n := start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := n.fl.RunCommand(ctx, "worker-0", "nccl_check", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !res.GetSuccess() || res.GetOutput() != fmt.Sprintf("simulated: busbw %.1f GB/s at 16 GiB", res.GetBusBandwidthGbps()) ||
		res.GetBusBandwidthGbps() < 460 || res.GetBusBandwidthGbps() > 480 {
		t.Errorf("nccl_check = success %v, busbw %v, output %q", res.GetSuccess(), res.GetBusBandwidthGbps(), res.GetOutput())
	}
	// Below the platform's floor: the agent reports what it measured, at
	// the size the controller asked for; the controller judges it.
	n.nccl.SetPeak(300)
	res, err = n.fl.RunCommand(ctx, "worker-0", "nccl_check", map[string]string{"message_bytes": strconv.Itoa(1 << 30)})
	if err != nil {
		t.Fatal(err)
	}
	if !res.GetSuccess() || res.GetOutput() != fmt.Sprintf("simulated: busbw %.1f GB/s at 1 GiB", res.GetBusBandwidthGbps()) ||
		res.GetBusBandwidthGbps() > 300 || res.GetBusBandwidthGbps() <= 0 {
		t.Errorf("slow nccl_check = success %v, busbw %v, output %q", res.GetSuccess(), res.GetBusBandwidthGbps(), res.GetOutput())
	}
	res, err = n.fl.RunCommand(ctx, "worker-0", "reboot", nil)
	if err != nil || res.GetSuccess() || res.GetOutput() != `unknown command "reboot"` {
		t.Errorf("unknown command = %v, %v", res, err)
	}
}

// The /metrics collector: per-GPU and per-port series, the simulation
// labelled, and nothing labelled by job or run.
func TestMetrics(t *testing.T) {
	n := start(t)
	n.process(1001, "python3", "4242")
	n.as.Set(fleet.Assignment{RunID: "r-metrics", JobID: "4242", Nodes: []string{"worker-0"}, GPUsPerNode: 2})
	testwait.For(t, "attributed samples", func() bool {
		v := n.view()
		return len(v.GPUs) == 8 && v.GPUs[0].SlurmJobID == "4242"
	})
	if err := n.sim.Inject(nvmlsim.Fault{GPU: 1, Kind: nvmlsim.KindECC, Code: 2}); err != nil {
		t.Fatal(err)
	}
	if err := n.tree.Inject("mlx5_3", 1, ib.FaultPortDown); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * interval)

	reg := prometheus.NewRegistry()
	reg.MustRegister(n.agent.Metrics())
	var mfs []*dto.MetricFamily
	testwait.For(t, "busy GPU, port down and ECC in the metrics", func() bool {
		var err error
		if mfs, err = reg.Gather(); err != nil {
			t.Fatal(err)
		}
		return value(mfs, "sopilot_gpu_utilization_percent", "gpu", "0") > 50 &&
			value(mfs, "sopilot_ib_port_up", "device", "mlx5_3", "port", "1") == 0 &&
			value(mfs, "sopilot_gpu_ecc_errors_total", "gpu", "1", "type", "uncorrected", "counter", "volatile") == 2
	})
	checks := []struct {
		name   string
		labels []string
		want   func(float64) bool
	}{
		{"sopilot_gpu_utilization_percent", []string{"gpu", "0"}, func(v float64) bool { return v > 50 && v <= 100 }},
		{"sopilot_gpu_utilization_percent", []string{"gpu", "7"}, func(v float64) bool { return v == 0 }},
		{"sopilot_gpu_processes", []string{"gpu", "0"}, func(v float64) bool { return v == 1 }},
		{"sopilot_gpu_memory_total_bytes", []string{"gpu", "3"}, func(v float64) bool { return v == nvmlsim.DefaultMemoryTotalBytes }},
		{"sopilot_gpu_info", []string{"gpu", "0", "simulated", "true"}, func(v float64) bool { return v == 1 }},
		{"sopilot_ib_port_up", []string{"device", "mlx5_0", "port", "1"}, func(v float64) bool { return v == 1 }},
		{"sopilot_ib_port_up", []string{"device", "mlx5_3", "port", "1"}, func(v float64) bool { return v == 0 }},
		{"sopilot_ib_port_errors_total", []string{"device", "mlx5_3", "port", "1", "counter", "link_downed"}, func(v float64) bool { return v == 1 }},
		{"sopilot_ib_port_rate_bytes_per_second", []string{"device", "mlx5_0", "port", "1"}, func(v float64) bool { return v == 400e9/8 }},
		{"sopilot_ib_port_receive_bytes_total", []string{"device", "mlx5_0", "port", "1"}, func(v float64) bool { return v >= 0 && math.Mod(v, 4) == 0 }},
		{"sopilot_ib_port_transmit_bytes_total", []string{"device", "mlx5_0", "port", "1"}, func(v float64) bool { return v >= 0 && math.Mod(v, 4) == 0 }},
		{"sopilot_gpu_clock_event_active", []string{"gpu", "7", "reason", "gpu_idle"}, func(v float64) bool { return v == 1 }},
		{"sopilot_gpu_clock_event_active", []string{"gpu", "0", "reason", "gpu_idle"}, func(v float64) bool { return v == 0 }},
		{"sopilot_gpu_clock_event_active", []string{"gpu", "0", "reason", "hw_thermal_slowdown"}, func(v float64) bool { return v == 0 }},
		{"sopilot_gpu_sm_clock_hertz", []string{"gpu", "0"}, func(v float64) bool { return v >= 1e8 && v < 1e10 }},
		{"sopilot_agent_simulated", []string{"source", "nvml"}, func(v float64) bool { return v == 1 }},
		{"sopilot_agent_simulated", []string{"source", "ib"}, func(v float64) bool { return v == 1 }},
		{"sopilot_agent_connected", nil, func(v float64) bool { return v == 1 }},
		{"sopilot_agent_connections_total", nil, func(v float64) bool { return v == 1 }},
		{"sopilot_gpu_health_events_total", []string{"kind", "ecc_uncorrected", "component", "gpu1"}, func(v float64) bool { return v >= 1 }},
	}
	for _, c := range checks {
		if v := value(mfs, c.name, c.labels...); !c.want(v) {
			t.Errorf("%s%v = %v", c.name, c.labels, v)
		}
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				name, val := lp.GetName(), lp.GetValue()
				if strings.Contains(name, "job") || strings.Contains(name, "run") || strings.Contains(val, "4242") || strings.Contains(val, "r-metrics") {
					t.Errorf("%s carries a job or run label %s=%q", mf.GetName(), name, val)
				}
			}
		}
	}
}

// value is the value of the series with the labels (NaN-free: -1 when
// absent).
func value(mfs []*dto.MetricFamily, name string, labels ...string) float64 {
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				if !slices.ContainsFunc(m.GetLabel(), func(lp *dto.LabelPair) bool { return lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] }) {
					continue series
				}
			}
			switch {
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Counter != nil:
				return m.Counter.GetValue()
			}
		}
	}
	return -1
}

// The collector's series are all described, so a pedantic registry (which
// checks every collected series against the descriptions) accepts it.
func TestMetricsPassPedanticRegistry(t *testing.T) {
	n := start(t)
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(n.agent.Metrics()); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		msg := err.Error()
		if i := strings.IndexByte(msg, '\n'); i > 0 {
			msg = msg[:min(len(msg), i+400)]
		}
		t.Fatalf("pedantic Gather: %s", msg)
	}
	if value(mfs, "sopilot_gpu_info", "gpu", "7") != 1 {
		t.Errorf("sopilot_gpu_info{gpu=\"7\"} missing")
	}
	// promlint is what `promtool check metrics` runs: names, types,
	// units and help text by Prometheus' conventions.
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promtool check metrics: %s: %s", p.Metric, p.Text)
	}
}

// Soperator's GPU→job files come first: a GPU with a file is the job's
// whatever its processes' /proc says, a GPU without one falls back to
// /proc, and an idle GPU's leftover file (Soperator 1.20's epilog does not
// remove them) names no job.
func TestAttributionFromGPUJobFiles(t *testing.T) {
	jobDir := t.TempDir()
	for i := range 4 {
		if err := os.WriteFile(filepath.Join(jobDir, strconv.Itoa(i)), []byte("5555"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	n := start(t, func(c *agent.Config) { c.GPUJobDir = jobDir })
	n.process(1001, "python3", "4242")
	n.process(1002, "python3", "4242")
	n.as.Set(fleet.Assignment{RunID: "r-1", JobID: "4242", Nodes: []string{"worker-0"}, GPUsPerNode: 8})
	want := func(i int) string {
		if i < 4 {
			return "5555"
		}
		return "4242"
	}
	testwait.For(t, "GPUs attributed by file, then by /proc", func() bool {
		v := n.view()
		for _, g := range v.GPUs {
			if g.SlurmJobID != want(g.Index) {
				return false
			}
		}
		return len(v.GPUs) == 8
	})

	n.as.Set()
	testwait.For(t, "GPUs idle, leftover files ignored", func() bool {
		v := n.view()
		for _, g := range v.GPUs {
			if g.SlurmJobID != "" {
				return false
			}
		}
		return len(v.GPUs) == 8
	})
}
