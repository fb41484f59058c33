package monitor

import (
	"time"
	"unique"

	"github.com/sopilot/sopilot/internal/telemetry"
)

// The hour of evidence the rate rules read, per GPU and per IB port, is
// kept compact: at 10,000 nodes of 8 GPUs and 8 ports, an hour of full
// samples one a minute was ~300 KB a node (3 GB). A point holds only what
// the rules read of past samples, and a run of equal points (a healthy
// GPU's error counters stand still all day) is kept as its first and last
// point: the rules sum increases and take rates between consecutive
// samples, and a run's inner points add no increase, so the sums, the
// peak rates (the pair around a change is the same) and the downtime (from
// a point to the next) come out as from every point. The newest sample is
// kept whole beside its history.

// point is one kept sample of a history: when, and the values the rules
// read.
type point[V comparable] struct {
	at int64 // Unix nanoseconds
	v  V
}

// history is an hour of points, one per Config.SampleEvery at most, and
// the newest sample as it arrived.
type history[S any, V comparable] struct {
	kept      []point[V]
	latest    S
	hasLatest bool
}

// observe makes s the newest sample. The previous newest becomes a point
// of the history when it is at least every after the last point.
func (h *history[S, V]) observe(s S, at func(S) time.Time, compact func(S) V, now time.Time, every time.Duration) {
	if h.hasLatest {
		t := at(h.latest)
		if n := len(h.kept); n == 0 || t.Sub(time.Unix(0, h.kept[n-1].at)) >= every {
			h.kept = keepPoint(h.kept, point[V]{at: t.UnixNano(), v: compact(h.latest)}, now)
		}
	}
	h.latest, h.hasLatest = s, true
}

// keepPoint appends p, or moves the end of a run of points equal to p
// forward to p, and drops the points the hour before now no longer needs:
// each whose successor is also more than an hour old. (The oldest point
// kept may be older than the hour: the rules clip to the hour, and a link
// down since before it is down for the whole hour.)
func keepPoint[V comparable](ps []point[V], p point[V], now time.Time) []point[V] {
	if n := len(ps); n >= 2 && ps[n-1].v == p.v && ps[n-2].v == p.v {
		ps[n-1].at = p.at
	} else {
		ps = append(ps, p)
	}
	cutoff := now.Add(-time.Hour).UnixNano()
	i := 0
	for i+1 < len(ps) && ps[i+1].at < cutoff {
		i++
	}
	if i > 0 {
		ps = append(ps[:0], ps[i:]...)
	}
	return ps
}

// gpuValues is what the hourly GPU rules read of a past sample.
type gpuValues struct {
	ecc, pcie, nvlink uint64
	has               uint8 // gpuHas* bits: which of them the sample carried
}

const (
	gpuHasECC = 1 << iota
	gpuHasPCIe
	gpuHasNVLink
)

type gpuHistory = history[telemetry.GPUSample, gpuValues]

func gpuTime(s telemetry.GPUSample) time.Time { return s.Time }

func compactGPU(s telemetry.GPUSample) gpuValues {
	var v gpuValues
	if s.ECCVolatileCorrected != nil {
		v.ecc, v.has = *s.ECCVolatileCorrected, v.has|gpuHasECC
	}
	if s.PCIeReplayCount != nil {
		v.pcie, v.has = *s.PCIeReplayCount, v.has|gpuHasPCIe
	}
	if s.NVLinkErrorCount != nil {
		v.nvlink, v.has = *s.NVLinkErrorCount, v.has|gpuHasNVLink
	}
	return v
}

// appendGPU appends GPU index's history to dst as samples, oldest first,
// the newest whole. The samples point into h: use them before h changes.
func appendGPU(dst []telemetry.GPUSample, index int, h *gpuHistory) []telemetry.GPUSample {
	for i := range h.kept {
		p := &h.kept[i]
		s := telemetry.GPUSample{Time: time.Unix(0, p.at).UTC(), Index: index}
		if p.v.has&gpuHasECC != 0 {
			s.ECCVolatileCorrected = &p.v.ecc
		}
		if p.v.has&gpuHasPCIe != 0 {
			s.PCIeReplayCount = &p.v.pcie
		}
		if p.v.has&gpuHasNVLink != 0 {
			s.NVLinkErrorCount = &p.v.nvlink
		}
		dst = append(dst, s)
	}
	if h.hasLatest {
		dst = append(dst, h.latest)
	}
	return dst
}

// ibValues is what the IB rules read of a past sample. The port states
// are interned: a few distinct strings across the fleet.
type ibValues struct {
	c                telemetry.IBCounters
	state, physState string
}

type ibHistory = history[telemetry.IBPortSample, ibValues]

func ibTime(s telemetry.IBPortSample) time.Time { return s.Time }

func compactIB(s telemetry.IBPortSample) ibValues {
	return ibValues{c: s.Counters, state: unique.Make(s.State).Value(), physState: unique.Make(s.PhysState).Value()}
}

// appendIB appends port k's history to dst as samples, oldest first, the
// newest whole.
func appendIB(dst []telemetry.IBPortSample, k ibKey, h *ibHistory) []telemetry.IBPortSample {
	for _, p := range h.kept {
		dst = append(dst, telemetry.IBPortSample{Time: time.Unix(0, p.at).UTC(), Device: k.device, Port: int(k.port),
			State: p.v.state, PhysState: p.v.physState, Counters: p.v.c})
	}
	if h.hasLatest {
		dst = append(dst, h.latest)
	}
	return dst
}
