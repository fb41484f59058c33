// Package sim is the agent's simulated node, chosen once at start
// (node-agent --nvml sim, --nccl sim) beside the real collectors: GPUs
// (nvmlsim) that show the Slurm jobs assigned to this node busy, with their
// real processes; all_reduce_perf output at a settable bus bandwidth; and
// faults injected when the agent starts. The agent core knows none of it.
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
	"github.com/sopilot/sopilot/internal/agent/nvmlsim"
	"github.com/sopilot/sopilot/internal/nccl"
	"github.com/sopilot/sopilot/pkg/agentpb"
)

// GPUs makes simulated GPUs follow the jobs that Slurm runs on this node.
type GPUs struct {
	Sim *nvmlsim.Sim
	// ProcRoot is where the jobs' processes are looked up ("" = /proc).
	ProcRoot string
	// StartFaults are injected a second after Run starts: after the agent
	// enumerated the GPUs (a GPU lost before that would not be enumerated
	// at all) and registered for events (an XID before that would reach no
	// event set), as on a real node.
	StartFaults []nvmlsim.Fault
	Logger      *slog.Logger
}

// Run refreshes the allocation every 2 s, and injects the start faults,
// until ctx ends.
func (g *GPUs) Run(ctx context.Context, a *agent.Agent) error {
	faults := time.NewTimer(time.Second)
	defer faults.Stop()
	if len(g.StartFaults) == 0 {
		faults.Stop()
	}
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for {
		g.refresh(a)
		select {
		case <-ctx.Done():
			return nil
		case <-faults.C:
			for _, f := range g.StartFaults {
				if err := g.Sim.Inject(f); err != nil && g.Logger != nil {
					g.Logger.Error("--sim-fault", "fault", f.String(), "err", err)
				}
			}
			continue
		case <-tick.C:
		}
	}
}

// refresh marks the simulated GPUs that Slurm jobs hold on this node busy,
// with the jobs' real processes on them, so attribution, utilisation and
// usage aggregates follow what really runs.
func (g *GPUs) refresh(a *agent.Agent) {
	as := a.Runs()
	if len(as) == 0 {
		g.Sim.SetAllocation(nil)
		return
	}
	byJob := g.jobProcesses(a)
	alloc := map[int][]int32{}
	next := 0
	n := g.Sim.GPUCount()
	slices.SortFunc(as, func(x, y *agentpb.RunAssignment) int { return strings.Compare(x.GetSlurmJobId(), y.GetSlurmJobId()) })
	for _, r := range as {
		pids := byJob[r.GetSlurmJobId()]
		if len(pids) == 0 {
			continue // not started here yet, or already gone
		}
		k := int(r.GetGpusPerNode())
		for i := 0; i < k && next < n; i++ {
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
	a.Attribution().Forget(alive)
}

// jobProcesses lists this node's processes by Slurm job, newest process
// last; shells and Slurm's own helpers are left out when the job has other
// processes (they would never hold a GPU).
func (g *GPUs) jobProcesses(a *agent.Agent) map[string][]int32 {
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
	jobs := a.Attribution().JobsOf(pids)
	out := map[string][]int32{}
	helpers := map[string][]int32{}
	for pid, job := range jobs {
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
