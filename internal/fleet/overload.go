package fleet

import (
	"context"
	"math"
	"runtime/metrics"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
)

// Overload control. When the controller is short of CPU (a neighbour on
// its core, more agents than it can decode), goroutines wait to run: the
// reader of every stream, the sender of every ack. Left alone, acks trail
// by seconds, agents time out their handshakes and reconnect, and the
// reconnects (TLS handshakes, hellos) cost more CPU still. Instead the
// controller measures how long runnable goroutines wait (the runtime's
// /sched/latencies:seconds histogram) and, while its p99 over a second is
// above Options.OverloadSchedLatency (default 100 ms), doubles a factor (up to MaxOverloadFactor):
//
//   - every ack carries min_sample_interval = factor × the agents' sample
//     interval, and agents sample and send telemetry that much less often
//     (health events still go at once);
//   - telemetry-only batches of a node seen by the health monitor less
//     than factor × 1 s ago are applied but not shown to the monitor
//     (sopilot_agent_telemetry_coarsened_total), since the monitor judges
//     every 5 s anyway; batches with health events or progress always are.
//
// The factor halves after 10 s in a row with the p99 under a quarter of
// the threshold, so that it neither oscillates nor stays up.

const (
	// DefaultOverloadSchedLatency is the goroutine scheduling latency p99
	// above which the controller counts as short of CPU: a tenth of the
	// 1 s within which agents' batches should be acked.
	DefaultOverloadSchedLatency = 100 * time.Millisecond
	// MaxOverloadFactor bounds how much agents are asked to slow down.
	MaxOverloadFactor   = 8
	overloadCalmSeconds = 10
)

// overload holds the current factor; the zero value is "not overloaded".
type overload struct {
	threshold time.Duration // 0: never overloaded
	factor    atomic.Int32  // 0 or 1: normal
	// hints[f] is the ack field for factor f, shared by every ack (never
	// modified once built).
	hints [MaxOverloadFactor + 1]*durationpb.Duration
}

func newOverload(threshold, sampleInterval time.Duration) *overload {
	o := &overload{threshold: max(threshold, 0)}
	for f := 2; f <= MaxOverloadFactor; f++ {
		o.hints[f] = durationpb.New(time.Duration(f) * sampleInterval)
	}
	return o
}

// Factor is how many times slower than their own interval agents are
// asked to sample now (1: not at all).
func (o *overload) Factor() int { return max(int(o.factor.Load()), 1) }

// hint is the ack's min_sample_interval now, nil when not overloaded.
func (o *overload) hint() *durationpb.Duration { return o.hints[min(o.Factor(), MaxOverloadFactor)] }

// step updates the factor from one second's scheduling latency p99 and
// the count of calm seconds before it; it returns the new count.
func (o *overload) step(p99 time.Duration, calm int) int {
	f := o.Factor()
	switch {
	case o.threshold == 0:
		return 0
	case p99 > o.threshold:
		o.factor.Store(int32(min(2*f, MaxOverloadFactor)))
		return 0
	case p99 < o.threshold/4 && f > 1:
		calm++
		if calm >= overloadCalmSeconds {
			o.factor.Store(int32(f / 2))
			return 0
		}
		return calm
	}
	return 0
}

// watchOverload samples the scheduling latency every second until ctx
// ends.
func (f *Fleet) watchOverload(ctx context.Context) {
	if f.overload.threshold == 0 {
		return
	}
	sample := []metrics.Sample{{Name: "/sched/latencies:seconds"}}
	metrics.Read(sample)
	if sample[0].Value.Kind() != metrics.KindFloat64Histogram {
		f.log.Warn("runtime has no scheduling latency histogram; overload control off")
		return
	}
	prev := cloneCounts(sample[0].Value.Float64Histogram())
	t := time.NewTicker(time.Second)
	defer t.Stop()
	calm := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		metrics.Read(sample)
		h := sample[0].Value.Float64Histogram()
		p99 := deltaQuantile(h, prev, 0.99)
		prev = cloneCounts(h)
		before := f.overload.Factor()
		calm = f.overload.step(p99, calm)
		if after := f.overload.Factor(); after != before {
			f.log.Warn("controller short of CPU: agents asked to sample less often", "factor", after, "sched_latency_p99", p99)
			f.metrics.OverloadFactor.Set(float64(after))
		}
	}
}

type histCounts struct {
	counts []uint64
}

func cloneCounts(h *metrics.Float64Histogram) histCounts {
	return histCounts{counts: append([]uint64(nil), h.Counts...)}
}

// deltaQuantile is quantile q of the samples h gained since prev, as the
// upper bound of the bucket it falls in.
func deltaQuantile(h *metrics.Float64Histogram, prev histCounts, q float64) time.Duration {
	var total uint64
	delta := make([]uint64, len(h.Counts))
	for i, c := range h.Counts {
		if i < len(prev.counts) {
			c -= prev.counts[i]
		}
		delta[i] = c
		total += c
	}
	if total == 0 {
		return 0
	}
	want := uint64(math.Ceil(q * float64(total)))
	var seen uint64
	for i, c := range delta {
		seen += c
		if seen >= want {
			hi := h.Buckets[i+1]
			if math.IsInf(hi, 1) {
				hi = h.Buckets[i]
			}
			return time.Duration(hi * float64(time.Second))
		}
	}
	return 0
}
