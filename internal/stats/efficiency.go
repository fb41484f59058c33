package stats

import (
	"fmt"
	"time"
)

// Workload is what one run cost: its GPU count, its wall time and, when
// known, how many units of work (training samples, tokens, steps) it
// completed.
type Workload struct {
	GPUs int
	Wall time.Duration
	// Work is the units completed; 0 means unknown, and then both runs are
	// assumed to have done the same work.
	Work float64
}

// WorkloadCost is one run's derived cost.
type WorkloadCost struct {
	GPUHours float64 // GPUs × wall hours
	// Throughput is Work per wall-clock second and PerGPUThroughput per
	// GPU-second; both 0 when Work is unknown.
	Throughput       float64
	PerGPUThroughput float64
}

// Efficiency compares the cost of a candidate run with a baseline run,
// typically the same job on more GPUs (16 against 8).
type Efficiency struct {
	Baseline, Candidate WorkloadCost
	// Speedup is how many times faster the candidate gets the work done:
	// the throughput ratio when both runs report Work, otherwise
	// baseline wall / candidate wall (same work assumed). SpeedupBasis
	// says which.
	Speedup      float64
	SpeedupBasis string
	// GPURatio is candidate GPUs / baseline GPUs.
	GPURatio float64
	// ScalingEfficiency is Speedup / GPURatio: 1 is linear scaling, 0.8
	// means 20 % of the added GPUs' time was lost (communication, stalls).
	ScalingEfficiency float64
}

// CompareEfficiency derives GPU-hours, throughput, speedup and scaling
// efficiency. GPUs and wall times must be positive; Work must be ≥ 0 and
// either set on both runs or on neither.
func CompareEfficiency(baseline, candidate Workload) (Efficiency, error) {
	for _, w := range []struct {
		name string
		w    Workload
	}{{"baseline", baseline}, {"candidate", candidate}} {
		switch {
		case w.w.GPUs <= 0:
			return Efficiency{}, fmt.Errorf("%s GPUs %d: must be positive: %w", w.name, w.w.GPUs, ErrInvalidRun)
		case w.w.Wall <= 0:
			return Efficiency{}, fmt.Errorf("%s wall time %v: must be positive: %w", w.name, w.w.Wall, ErrInvalidRun)
		case !(w.w.Work >= 0) || w.w.Work > 1e300:
			return Efficiency{}, fmt.Errorf("%s work %v: must be finite and ≥ 0: %w", w.name, w.w.Work, ErrInvalidRun)
		}
	}
	if (baseline.Work == 0) != (candidate.Work == 0) {
		return Efficiency{}, fmt.Errorf("work known for one run only: %w", ErrInvalidRun)
	}
	e := Efficiency{
		Baseline:  cost(baseline),
		Candidate: cost(candidate),
		GPURatio:  float64(candidate.GPUs) / float64(baseline.GPUs),
	}
	if baseline.Work > 0 {
		e.Speedup = e.Candidate.Throughput / e.Baseline.Throughput
		e.SpeedupBasis = "throughput ratio (work per wall-clock second)"
	} else {
		e.Speedup = baseline.Wall.Seconds() / candidate.Wall.Seconds()
		e.SpeedupBasis = "wall-time ratio (same work assumed)"
	}
	e.ScalingEfficiency = e.Speedup / e.GPURatio
	return e, nil
}

func cost(w Workload) WorkloadCost {
	s := w.Wall.Seconds()
	c := WorkloadCost{GPUHours: float64(w.GPUs) * s / 3600}
	if w.Work > 0 {
		c.Throughput = w.Work / s
		c.PerGPUThroughput = c.Throughput / float64(w.GPUs)
	}
	return c
}
