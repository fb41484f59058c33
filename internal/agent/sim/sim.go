// Package sim is the agent's simulated node, chosen once at start
// (node-agent --nvml sim, --nccl sim) beside the real collectors: GPUs
// (nvmlsim) that show the Slurm jobs assigned to this node busy, with
// their real processes; all_reduce_perf output at a settable bus
// bandwidth; and faults injected when the agent starts. The agent core
// knows none of it: it calls a SampleHook and an NCCL.
package sim

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sopilot/sopilot/internal/agent"
	"github.com/sopilot/sopilot/internal/agent/attrib"
	"github.com/sopilot/sopilot/internal/agent/nvmlsim"
	"github.com/sopilot/sopilot/internal/nccl"
)

// GPUs makes simulated GPUs follow the jobs that Slurm runs on this node.
type GPUs struct {
	Sim *nvmlsim.Sim
	// ProcRoot is where the jobs' processes are looked up ("" = /proc).
	ProcRoot string
	// StartFaults are injected by Run.
	StartFaults []nvmlsim.Fault
	Logger      *slog.Logger

	lastRefresh time.Time // only touched by BeforeSample, on the agent's sampling goroutine
}

var _ agent.SampleHook = (*GPUs)(nil)

// Run injects the start faults a second after it starts (started beside
// agent.Run): after the agent enumerated the GPUs (a GPU lost before that
// would not be enumerated at all) and registered for events (an XID before
// that would reach no event set), as on a real node. It returns once they
// are in, or when ctx ends.
func (g *GPUs) Run(ctx context.Context) error {
	if len(g.StartFaults) == 0 {
		return nil
	}
	t := time.NewTimer(time.Second)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return nil
	case <-t.C:
	}
	for _, f := range g.StartFaults {
		if err := g.Sim.Inject(f); err != nil && g.Logger != nil {
			g.Logger.Error("--sim-fault", "fault", f.String(), "err", err)
		}
	}
	return nil
}

// BeforeSample marks the simulated GPUs that Slurm jobs hold on this node
// busy, with the jobs' real processes on them, so attribution, utilisation
// and usage aggregates follow what really runs. It looks at /proc at most
// every 2 s, right before a sample, so that sample already shows the jobs.
func (g *GPUs) BeforeSample(now time.Time, jobs []agent.Job, procs *attrib.Resolver) {
	if now.Sub(g.lastRefresh) < 2*time.Second {
		return
	}
	g.lastRefresh = now
	if len(jobs) == 0 {
		g.Sim.SetAllocation(nil)
		return
	}
	byJob := g.jobProcesses(procs)
	alloc := map[int][]int32{}
	next := 0
	n := g.Sim.GPUCount()
	slices.SortFunc(jobs, func(x, y agent.Job) int { return strings.Compare(x.SlurmJobID, y.SlurmJobID) })
	for _, j := range jobs {
		pids := byJob[j.SlurmJobID]
		if len(pids) == 0 {
			continue // not started here yet, or already gone
		}
		for i := 0; i < j.GPUsPerNode && next < n; i++ {
			alloc[next] = []int32{pids[i%len(pids)]}
			next++
		}
	}
	g.Sim.SetAllocation(alloc)
	alive := map[int32]bool{}
	for _, v := range byJob {
		for _, p := range v {
			alive[p] = true
		}
	}
	procs.Forget(alive)
}

// jobProcesses lists this node's processes by Slurm job, newest process
// last; shells and Slurm's own helpers are left out when the job has other
// processes (they would never hold a GPU).
func (g *GPUs) jobProcesses(procs *attrib.Resolver) map[string][]int32 {
	root := g.ProcRoot
	if root == "" {
		root = "/proc"
	}
	ents, err := os.ReadDir(root)
	if err != nil {
		return nil
	}
	var pids []int32
	for _, e := range ents {
		if p, err := strconv.ParseInt(e.Name(), 10, 32); err == nil && p > 1 {
			pids = append(pids, int32(p))
		}
	}
	out := map[string][]int32{}
	helpers := map[string][]int32{}
	for pid, job := range procs.JobsOf(pids) {
		comm, _ := os.ReadFile(filepath.Join(root, strconv.Itoa(int(pid)), "comm"))
		switch strings.TrimSpace(string(comm)) {
		case "bash", "sh", "srun", "slurm_script", "sleep", "slurmstepd", "tail", "cat":
			helpers[job] = append(helpers[job], pid)
		default:
			out[job] = append(out[job], pid)
		}
	}
	for job, hs := range helpers {
		if len(out[job]) == 0 {
			out[job] = hs
		}
	}
	for job := range out {
		slices.Sort(out[job])
	}
	return out
}

// NCCL is simulated all_reduce_perf output (nccl.SimulatedOutput) at a
// settable bus bandwidth.
type NCCL struct {
	mu   sync.Mutex
	peak float64
}

var _ agent.NCCL = (*NCCL)(nil)

// NewNCCL simulates a bus bandwidth of peak GB/s (480 when not positive).
func NewNCCL(peak float64) *NCCL {
	if peak <= 0 {
		peak = 480
	}
	return &NCCL{peak: peak}
}

// SetPeak changes the simulated bus bandwidth.
func (n *NCCL) SetPeak(gbps float64) {
	n.mu.Lock()
	n.peak = gbps
	n.mu.Unlock()
}

// Run prints and parses the output of a run on gpus GPUs of model.
func (n *NCCL) Run(_ context.Context, gpus int, model string) (nccl.Result, string, error) {
	n.mu.Lock()
	peak := n.peak
	n.mu.Unlock()
	r, err := nccl.Parse(bytes.NewReader(nccl.SimulatedOutput(max(gpus, 1), model, peak)))
	return r, "simulated", err
}
