package fleet

import (
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sopilot/sopilot/internal/run"
	"github.com/sopilot/sopilot/internal/telemetry"
)

// Usage is the ledger of runs' GPU usage: the fleet adds what agents
// report, the run service takes a run's total when it ends (RunUsage). It
// is built before both, so neither needs the other to exist.
type Usage struct {
	mu   sync.Mutex
	runs map[string]*usageAcc
}

// NewUsage returns an empty ledger.
func NewUsage() *Usage { return &Usage{runs: map[string]*usageAcc{}} }

// usageAcc accumulates one run's GPU usage. Utilisation goes into a
// histogram of whole percent, so the p95 is exact to 1 % in constant memory
// however long the run.
type usageAcc struct {
	hist      [101]int64
	n         int64
	sum       float64
	memPeak   int64
	energyMJ  uint64
	gpus      map[string]struct{} // "node/index"
	xids      map[int32]struct{}
	simulated bool
	lastSeen  time.Time
	// progress rate for the ETA
	lastStep int64
	lastTime time.Time
	rate     float64 // steps per second, smoothed
}

// accumulate adds a batch's GPU samples of the machine to the runs that own
// the GPUs; a GPU is recorded under the Slurm node its job runs on
// (jobNode), else the machine's name. n.mu is held by the caller.
func (u *Usage) accumulate(machine string, jobNode map[string]string, simulated bool, b *telemetry.Batch, jobToRun map[string]string, lastEnergy map[int]uint64) {
	if len(jobToRun) == 0 {
		for _, g := range b.GPUSamples {
			if g.EnergyMillijoules != nil {
				lastEnergy[g.Index] = *g.EnergyMillijoules
			}
		}
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, g := range b.GPUSamples {
		prevEnergy, hadEnergy := lastEnergy[g.Index]
		if g.EnergyMillijoules != nil {
			lastEnergy[g.Index] = *g.EnergyMillijoules
		}
		runID := jobToRun[g.SlurmJobID]
		if runID == "" {
			continue
		}
		acc := u.runs[runID]
		if acc == nil {
			acc = &usageAcc{gpus: map[string]struct{}{}, xids: map[int32]struct{}{}}
			u.runs[runID] = acc
		}
		node := jobNode[g.SlurmJobID]
		if node == "" {
			node = machine
		}
		acc.gpus[node+"/"+strconv.Itoa(g.Index)] = struct{}{}
		acc.lastSeen = time.Now()
		acc.simulated = acc.simulated || simulated
		if g.SMUtilizationPercent != nil {
			util := *g.SMUtilizationPercent
			acc.hist[int(util+0.5)]++
			acc.n++
			acc.sum += util
		}
		if g.MemoryUsedBytes != nil {
			acc.memPeak = max(acc.memPeak, *g.MemoryUsedBytes)
		}
		if g.EnergyMillijoules != nil && hadEnergy && *g.EnergyMillijoules > prevEnergy {
			acc.energyMJ += *g.EnergyMillijoules - prevEnergy
		}
	}
	for _, e := range b.Events {
		if e.Kind != telemetry.KindXID {
			continue
		}
		idx, ok := strings.CutPrefix(e.Component, "gpu")
		if !ok {
			continue
		}
		i, err := strconv.Atoi(idx)
		if err != nil {
			continue
		}
		// The run on that GPU per the latest sample before this batch.
		for _, g := range b.GPUSamples {
			if g.Index == i {
				if acc := u.runs[jobToRun[g.SlurmJobID]]; acc != nil {
					acc.xids[int32(e.Code)] = struct{}{}
				}
			}
		}
	}
}

// RunUsage returns the run's aggregated GPU usage (nil when no agent saw its
// GPUs busy). With final it also forgets the accumulator. gpuHours is the
// allocation's GPU-hours from Slurm's times, computed by the caller.
func (u *Usage) RunUsage(runID string, final bool) *run.Usage {
	u.mu.Lock()
	defer u.mu.Unlock()
	acc := u.runs[runID]
	if acc == nil {
		return nil
	}
	if final {
		delete(u.runs, runID)
	}
	if acc.n == 0 && acc.energyMJ == 0 {
		return nil
	}
	out := &run.Usage{
		GPUCount:        len(acc.gpus),
		MemoryPeakBytes: acc.memPeak,
		EnergyJoules:    float64(acc.energyMJ) / 1000,
		Samples:         acc.n,
		Simulated:       acc.simulated,
	}
	if acc.n > 0 {
		out.UtilizationMean = acc.sum / float64(acc.n)
		rank := int64(float64(acc.n)*0.95 + 0.5)
		var c int64
		for pct, k := range acc.hist {
			c += k
			if c >= rank {
				out.UtilizationP95 = float64(pct)
				break
			}
		}
	}
	for x := range acc.xids {
		out.XIDs = append(out.XIDs, x)
	}
	slices.Sort(out.XIDs)
	return out
}

// withETA fills in the progress's ETA from the run's smoothed step rate.
func (u *Usage) withETA(id string, p run.Progress) run.Progress {
	u.mu.Lock()
	defer u.mu.Unlock()
	acc := u.runs[id]
	if acc == nil {
		acc = &usageAcc{gpus: map[string]struct{}{}, xids: map[int32]struct{}{}}
		u.runs[id] = acc
	}
	if !acc.lastTime.IsZero() && p.UpdateTime.After(acc.lastTime) && p.Step > acc.lastStep {
		r := float64(p.Step-acc.lastStep) / p.UpdateTime.Sub(acc.lastTime).Seconds()
		if acc.rate == 0 {
			acc.rate = r
		} else {
			acc.rate = 0.7*acc.rate + 0.3*r
		}
	}
	if p.Step >= acc.lastStep {
		acc.lastStep, acc.lastTime = p.Step, p.UpdateTime
	}
	if acc.rate > 0 && p.TotalSteps > p.Step {
		p.ETA = time.Duration(float64(p.TotalSteps-p.Step) / acc.rate * float64(time.Second)).Round(time.Second)
	}
	return p
}
