package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sopilot/sopilot/internal/agent/attrib"
	"github.com/sopilot/sopilot/internal/agent/gpu"
	"github.com/sopilot/sopilot/internal/agent/ib"
	"github.com/sopilot/sopilot/internal/agent/progress"
	"github.com/sopilot/sopilot/internal/agent/uplink"
	"github.com/sopilot/sopilot/internal/nccl"
	"github.com/sopilot/sopilot/internal/run"
	"github.com/sopilot/sopilot/pkg/agentpb"
)

// Config is everything an Agent needs. NodeName, BootID, NVML and Conn are
// required.
type Config struct {
	NodeName string
	BootID   string
	Version  string
	// NVML is the library; SimulatedGPUs labels it not real hardware (in
	// the inventory and the metrics).
	NVML          nvml.Interface
	SimulatedGPUs bool
	// NoIB: the node has no InfiniBand, and the agent runs no IB collector.
	NoIB bool
	// IB reads the InfiniBand ports (nil: sysfs under IBRoot, "" = /sys);
	// SimulatedIB labels it not real hardware.
	IB          IBCollector
	IBRoot      string
	SimulatedIB bool
	// ProcRoot is where processes are looked up ("" = /proc).
	ProcRoot string
	// GPUJobDir, when set, holds Soperator's GPU→job files (one per GPU
	// index, written by its prolog): the first source of a GPU's job. Its
	// processes are looked up under ProcRoot only for GPUs without a file.
	GPUJobDir string
	// Interval between samples (default 1 s).
	Interval time.Duration
	// Conn reaches the controller.
	Conn grpc.ClientConnInterface
	// Buffer bounds what waits for the controller.
	Buffer uplink.BufferOptions
	// NCCL runs all_reduce_perf for checks (nil: NCCLTests{}).
	NCCL NCCL
	// BeforeSample, when set, is called before each sample.
	BeforeSample SampleHook
	// NCCLMessageBytes is the message size the check is measured at when
	// the controller does not say (platform thresholds).
	NCCLMessageBytes int64
	Logger           *slog.Logger
}

// Agent samples the node and streams to the controller.
type Agent struct {
	cfg     Config
	log     *slog.Logger
	gpus    *gpu.Collector
	ibc     IBCollector // nil: no InfiniBand
	attrib  *attrib.Resolver
	gpuJobs *attrib.GPUJobs // nil: no GPU→job files
	buf     *uplink.Buffer
	client  *uplink.Client
	metrics *Metrics

	inv   gpu.Inventory
	ports []ib.PortInfo
	// gpuJobsFailing: the last read of the GPU→job files failed (logged
	// once per failure streak). Used by the sampling goroutine only.
	gpuJobsFailing bool

	mu          sync.Mutex
	interval    time.Duration
	assignments []*agentpb.RunAssignment
	tailers     map[string]*progress.Tailer // run id → tailer of its progress file
	// ended: runs no longer assigned, and since when; their files are
	// read while run.AcceptsProgress (a job's last lines come late).
	ended      map[string]time.Time
	lastSample time.Time
}

// IBCollector reads the node's InfiniBand ports: sysfs (ib.Collector) or
// a simulated tree (ib.SimCollector), chosen once at start.
type IBCollector interface {
	Inventory() ([]ib.PortInfo, error)
	Sample(now time.Time) ([]ib.Sample, error)
}

// New opens NVML and reads the inventory.
func New(ctx context.Context, cfg Config) (*Agent, error) {
	if cfg.NodeName == "" || cfg.BootID == "" || cfg.NVML == nil || cfg.Conn == nil {
		return nil, errors.New("agent: NodeName, BootID, NVML and Conn are required")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.NCCL == nil {
		cfg.NCCL = NCCLTests{}
	}
	a := &Agent{
		cfg:      cfg,
		log:      cfg.Logger.With("component", "agent"),
		attrib:   attrib.New(cfg.ProcRoot),
		buf:      uplink.NewBuffer(cfg.Buffer),
		interval: cfg.Interval,
		tailers:  map[string]*progress.Tailer{},
		ended:    map[string]time.Time{},
	}
	if cfg.GPUJobDir != "" {
		a.gpuJobs = attrib.NewGPUJobs(cfg.GPUJobDir)
	}
	col, err := gpu.New(cfg.NVML, cfg.Logger, gpu.Options{})
	if err != nil {
		return nil, fmt.Errorf("open nvml: %w", err)
	}
	a.gpus = col
	if a.inv, err = col.Inventory(ctx); err != nil {
		_ = col.Close()
		return nil, fmt.Errorf("read gpu inventory: %w", err)
	}
	a.inv.Simulated = cfg.SimulatedGPUs
	switch {
	case cfg.NoIB:
	case cfg.IB != nil:
		a.ibc = cfg.IB
	default:
		a.ibc = ib.New(cfg.IBRoot)
	}
	if a.ibc != nil {
		if a.ports, err = a.ibc.Inventory(); err != nil {
			a.log.Warn("read infiniband inventory", "err", err)
		}
	}
	a.metrics = newMetrics(a)
	a.client = uplink.NewClient(cfg.Conn, a.hello, a.buf, a, cfg.Logger, uplink.Options{ReconnectSpread: uplink.DefaultReconnectSpread})
	return a, nil
}

// Metrics is the agent's Prometheus collector (register it on a registry).
func (a *Agent) Metrics() *Metrics { return a.metrics }

// Buffer is the agent's send buffer (for status and tests).
func (a *Agent) Buffer() *uplink.Buffer { return a.buf }

// Close releases NVML.
func (a *Agent) Close() error { return a.gpus.Close() }

func (a *Agent) hello() *agentpb.Hello {
	inv := &agentpb.Inventory{
		DriverVersion: a.inv.DriverVersion,
		CudaVersion:   a.inv.CUDADriverVersion,
		Simulated:     a.inv.Simulated,
	}
	for _, g := range a.inv.GPUs {
		inv.Gpus = append(inv.Gpus, &agentpb.GpuInfo{Index: int32(g.Index), Uuid: g.UUID, Model: g.Model, MemoryTotalBytes: g.MemoryTotalBytes, PciBusId: g.PCIBusID})
	}
	for _, p := range a.ports {
		inv.IbPorts = append(inv.IbPorts, &agentpb.IbPortInfo{Device: p.Device, Port: int32(p.Port), RateGbps: p.RateGbps, LinkLayer: p.LinkLayer})
	}
	return &agentpb.Hello{NodeName: a.cfg.NodeName, BootId: a.cfg.BootID, AgentVersion: a.cfg.Version, Inventory: inv}
}

// Run samples and streams until ctx ends.
func (a *Agent) Run(ctx context.Context) error {
	events := make(chan gpu.HealthEvent, 1024)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := a.gpus.RunEvents(ctx, events); err != nil && ctx.Err() == nil {
			a.log.Warn("gpu health events unavailable; relying on sampling", "err", err)
		}
	}()
	go func() {
		defer wg.Done()
		_ = a.client.Run(ctx)
	}()
	// Health events go out at once, on their own goroutine: never with the
	// next sample, and never behind a sample stuck in a slow NVML call.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case e := <-events:
				a.sendEvents(e, events)
			}
		}
	}()
	defer wg.Wait()

	a.log.Info("agent started", "node", a.cfg.NodeName, "gpus", len(a.inv.GPUs), "ib_ports", len(a.ports),
		"simulated_gpus", a.cfg.SimulatedGPUs, "simulated_ib", a.cfg.SimulatedIB)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		now := time.Now()
		if a.cfg.BeforeSample != nil {
			a.cfg.BeforeSample.BeforeSample(now, a.jobs(), a.attrib)
		}
		a.sample(ctx, now)
		a.lastSample = now
		a.mu.Lock()
		iv := a.interval
		a.mu.Unlock()
		// A controller short of CPU asks for fewer samples.
		iv = max(iv, a.client.MinSampleInterval())
		timer.Reset(max(time.Until(now.Add(iv)), 10*time.Millisecond))
	}
}

// sendEvents queues a batch of the health events waiting now.
func (a *Agent) sendEvents(first gpu.HealthEvent, events <-chan gpu.HealthEvent) {
	b := &agentpb.Batch{CreateTime: timestamppb.Now(), HealthEvents: []*agentpb.HealthEvent{first.ToProto()}}
	for len(b.HealthEvents) < 1000 {
		select {
		case e := <-events:
			b.HealthEvents = append(b.HealthEvents, e.ToProto())
			continue
		default:
		}
		break
	}
	a.metrics.observe(nil, nil, b.HealthEvents)
	a.buf.Add(b)
}

// sample builds and queues one batch.
func (a *Agent) sample(ctx context.Context, now time.Time) {
	b := &agentpb.Batch{CreateTime: timestamppb.New(now)}
	samples, lost, err := a.gpus.Sample(ctx)
	if err != nil {
		a.log.Warn("gpu sample incomplete", "err", err)
		a.metrics.sampleErrors.Inc()
	}
	for _, e := range lost {
		b.HealthEvents = append(b.HealthEvents, e.ToProto())
	}
	gpuJobs := a.readGPUJobs()
	var pids []int32
	for _, s := range samples {
		if gpuJobs[s.Index] != "" {
			continue // the GPU→job file answers for these processes
		}
		for _, p := range s.Processes {
			pids = append(pids, p.PID)
		}
	}
	jobs := a.attrib.JobsOf(pids)
	seen := map[int]bool{}
	for _, s := range samples {
		seen[s.Index] = true
		b.GpuSamples = append(b.GpuSamples, gpuSampleToProto(s, jobs, gpuJobs[s.Index]))
	}
	// A GPU that did not answer (fell off the bus) is reported bare, so the
	// controller stops showing its last good values.
	for _, g := range a.inv.GPUs {
		if !seen[g.Index] {
			b.GpuSamples = append(b.GpuSamples, &agentpb.GpuSample{SampleTime: timestamppb.New(now), Index: int32(g.Index), Uuid: g.UUID})
		}
	}
	var ibs []ib.Sample
	if a.ibc != nil {
		if ibs, err = a.ibc.Sample(now); err != nil {
			a.log.Warn("infiniband sample", "err", err)
		}
	}
	for _, s := range ibs {
		b.IbSamples = append(b.IbSamples, ibSampleToProto(s))
	}
	b.Progress = a.pollProgress(now)
	a.metrics.observe(samples, ibs, b.HealthEvents)
	a.buf.Add(b)
}

// readGPUJobs reads Soperator's GPU→job files (GPU index → job id); nil
// when they are not configured or cannot be read, so that attribution
// falls back to the processes' cgroups.
func (a *Agent) readGPUJobs() map[int]string {
	if a.gpuJobs == nil {
		return nil
	}
	jobs, err := a.gpuJobs.Read()
	if err != nil {
		if !a.gpuJobsFailing {
			a.log.Warn("read gpu job files; attributing by process instead", "dir", a.gpuJobs.Dir(), "err", err)
		}
		a.gpuJobsFailing = true
		return nil
	}
	if a.gpuJobsFailing {
		a.log.Info("gpu job files readable again", "dir", a.gpuJobs.Dir())
	}
	a.gpuJobsFailing = false
	return jobs
}

func (a *Agent) pollProgress(now time.Time) []*agentpb.ProgressUpdate {
	a.mu.Lock()
	tailers := make(map[string]*progress.Tailer, len(a.tailers))
	for id, t := range a.tailers {
		tailers[id] = t
	}
	a.mu.Unlock()
	var out []*agentpb.ProgressUpdate
	for id, t := range tailers {
		ups, rejected, err := t.Poll(now)
		if err != nil {
			a.log.Warn("read progress file", "run_id", id, "path", t.Path(), "err", err)
		}
		for _, r := range rejected {
			a.log.Warn("progress line rejected", "run_id", id, "err", r)
			a.metrics.progressRejected.Inc()
		}
		// Progress is latest-wins; the controller derives the rate from
		// consecutive updates. The newest checkpoint line of the poll
		// travels with it, even when plain lines followed it.
		if u, ok := progress.Latest(ups); ok {
			p := progressToProto(id, u)
			if c, ok := progress.LatestCheckpoint(ups); ok {
				p.Checkpoint = checkpointToProto(c)
			}
			out = append(out, p)
		}
	}
	a.mu.Lock()
	for id, end := range a.ended {
		if !run.AcceptsProgress(end, now) {
			delete(a.tailers, id)
			delete(a.ended, id)
		}
	}
	a.mu.Unlock()
	slices.SortFunc(out, func(x, y *agentpb.ProgressUpdate) int { return strings.Compare(x.GetRunId(), y.GetRunId()) })
	return out
}

// Config applies the controller's settings (uplink.Handler).
func (a *Agent) Config(c *agentpb.AgentConfig) {
	if d := c.GetSampleInterval().AsDuration(); d >= 100*time.Millisecond && d <= time.Minute {
		a.mu.Lock()
		a.interval = d
		a.mu.Unlock()
	}
}

// Assignments records which runs have jobs here and tails the progress
// files of those whose rank 0 runs here (uplink.Handler).
func (a *Agent) Assignments(as *agentpb.RunAssignments) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.assignments = as.GetRuns()
	keep := map[string]bool{}
	for _, r := range as.GetRuns() {
		p := r.GetProgressPath()
		if p == "" || !filepath.IsAbs(p) {
			continue
		}
		keep[r.GetRunId()] = true
		delete(a.ended, r.GetRunId())
		if t, ok := a.tailers[r.GetRunId()]; !ok || t.Path() != p {
			a.tailers[r.GetRunId()] = progress.NewTailer(p, progress.TailOptions{})
		}
	}
	for id := range a.tailers {
		if _, ok := a.ended[id]; !ok && !keep[id] {
			a.ended[id] = time.Now() // its last lines are still read
		}
	}
}

// Command runs a controller command (uplink.Handler).
func (a *Agent) Command(ctx context.Context, c *agentpb.Command) *agentpb.CommandResult {
	res := &agentpb.CommandResult{CommandId: c.GetCommandId()}
	switch c.GetKind() {
	case "nccl_check", "nccl":
		model := ""
		if len(a.inv.GPUs) > 0 {
			model = a.inv.GPUs[0].Model
		}
		r, note, err := a.cfg.NCCL.Run(ctx, len(a.inv.GPUs), model)
		// The agent measures; the controller holds the bandwidth against
		// its own floor (CommandResult.success says the run was sound).
		m := nccl.Measure(r, messageBytes(c.GetArgs(), a.cfg.NCCLMessageBytes))
		res.Success = m.Sound && err == nil
		res.BusBandwidthGbps = m.BusBWGBps
		res.Output = m.Summary
		if note != "" {
			res.Output = note + ": " + res.Output
		}
		if err != nil {
			res.Output += "; " + err.Error()
		}
	default:
		res.Output = fmt.Sprintf("unknown command %q", c.GetKind())
	}
	return res
}

// messageBytes is the size the controller asked the check to be measured
// at (args["message_bytes"]), or def.
func messageBytes(args map[string]string, def int64) int64 {
	if n, err := strconv.ParseInt(args["message_bytes"], 10, 64); err == nil && n > 0 {
		return n
	}
	return def
}

// NCCL runs the check's all_reduce_perf on gpus GPUs of model; note, when
// not empty, heads the check's output (a simulation says so).
type NCCL interface {
	Run(ctx context.Context, gpus int, model string) (r nccl.Result, note string, err error)
}

// NCCLTests runs nccl-tests' all_reduce_perf on this node.
type NCCLTests struct{ nccl.Runner }

var _ NCCL = NCCLTests{}

func (n NCCLTests) Run(ctx context.Context, _ int, _ string) (nccl.Result, string, error) {
	r, _, err := n.Runner.Run(ctx)
	return r, "", err
}

// SampleHook is told, right before each sample, which Slurm jobs are
// assigned to this node, with the resolver of processes to jobs (a
// simulated node shows those jobs on its GPUs). It is called on the
// sampling goroutine and should return quickly.
type SampleHook interface {
	BeforeSample(now time.Time, jobs []Job, procs *attrib.Resolver)
}

// Job is a Slurm job that the controller assigned to this node.
type Job struct {
	SlurmJobID  string
	GPUsPerNode int
}

func (a *Agent) jobs() []Job {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]Job, len(a.assignments))
	for i, r := range a.assignments {
		out[i] = Job{SlurmJobID: r.GetSlurmJobId(), GPUsPerNode: int(r.GetGpusPerNode())}
	}
	return out
}
