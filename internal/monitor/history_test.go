package monitor

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/sopilot/sopilot/internal/health"
	"github.com/sopilot/sopilot/internal/telemetry"
)

// The compact history judges like every sample it stands for. For three
// hours of one GPU and one IB port whose error counters mostly stand still
// and sometimes jump, and whose link sometimes goes down for a while, the
// rules see at every step the same findings from the compact history as
// from every sample kept one a minute (the reference, trimmed the same
// way).
func TestCompactHistoryJudgesLikeEverySample(t *testing.T) {
	th, err := health.DefaultThresholds("h100")
	if err != nil {
		t.Fatal(err)
	}
	// Low enough that the jumps below make findings.
	th.ECCCorrectedPerHour, th.PCIeReplayPerHour, th.NVLinkErrorsPerHour = 20, 20, 5
	th.IBSymbolErrorsPerHourFatal, th.IBSymbolErrorsPerSecDegraded, th.IBPortRcvErrorsPerSecDegraded = 400, 0.5, 0.5
	const every = time.Minute
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 42))
		start := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
		var gh gpuHistory
		var ih ibHistory
		key := ibKey{"mlx5_0", 1}
		var refGPU []telemetry.GPUSample
		var refIB []telemetry.IBPortSample
		var ecc, pcie, nvl uint64
		var c telemetry.IBCounters
		downFor := 0
		findings, points, samples := 0, 0, 0
		for step := range 3 * 360 { // 10 s apart
			now := start.Add(time.Duration(step) * 10 * time.Second)
			jump := func(p float64, n int) uint64 {
				if rng.Float64() < p {
					return uint64(1 + rng.IntN(n))
				}
				return 0
			}
			ecc, pcie, nvl = ecc+jump(0.02, 8), pcie+jump(0.02, 8), nvl+jump(0.005, 3)
			c.SymbolError += jump(0.03, 100)
			c.PortRcvErrors += jump(0.02, 60)
			c.LinkDowned += jump(0.002, 1)
			c.ExcessiveBufferOverrunErrors += jump(0.001, 1)
			if downFor == 0 && rng.Float64() < 0.01 {
				downFor = 1 + rng.IntN(40)
			}
			state, phys := "ACTIVE", "LinkUp"
			if downFor > 0 {
				state, phys = "DOWN", "Polling"
				downFor--
			}
			g := telemetry.GPUSample{Time: now, Index: 3, ECCVolatileCorrected: ptr(ecc), PCIeReplayCount: ptr(pcie), NVLinkErrorCount: ptr(nvl)}
			p := telemetry.IBPortSample{Time: now, Device: key.device, Port: int(key.port), State: state, PhysState: phys, Counters: c}

			// The reference: the previous newest sample joins the kept
			// ones when it is a minute after the last kept one.
			refGPU = refKeep(refGPU, now, every, func(s telemetry.GPUSample) time.Time { return s.Time })
			refIB = refKeep(refIB, now, every, func(s telemetry.IBPortSample) time.Time { return s.Time })
			refGPU, refIB = append(refGPU, g), append(refIB, p)
			gh.observe(g, gpuTime, compactGPU, now, every)
			ih.observe(p, ibTime, compactIB, now, every)

			want := health.Evaluate(now, health.Evidence{Node: "n", LastReport: now, ExpectedGPUs: 1, ObservedGPUs: 1, GPUSamples: refGPU, IBPorts: refIB}, th)
			got := health.Evaluate(now, health.Evidence{Node: "n", LastReport: now, ExpectedGPUs: 1, ObservedGPUs: 1,
				GPUSamples: appendGPU(nil, 3, &gh), IBPorts: appendIB(nil, key, &ih)}, th)
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("seed %d, %s in: compact history judged\n%v\nevery sample\n%v", seed, now.Sub(start), got, want)
			}
			findings += len(want.Findings)
			points += len(gh.kept) + len(ih.kept)
			samples += len(refGPU) + len(refIB) - 2
		}
		if findings == 0 {
			t.Fatalf("seed %d: no findings in three hours; the test judges nothing", seed)
		}
		if points >= samples {
			t.Errorf("seed %d: the compact history kept %d points where every sample is %d", seed, points, samples)
		}
	}
}

// refKeep is the history the compact one replaces: the newest sample (the
// last of ss) stays a kept sample only when it is at least every after
// the kept one before it, and samples are dropped once their successor is
// more than an hour old.
func refKeep[S any](ss []S, now time.Time, every time.Duration, at func(S) time.Time) []S {
	if n := len(ss); n >= 2 && at(ss[n-1]).Sub(at(ss[n-2])) < every {
		ss = ss[:n-1]
	}
	cutoff := now.Add(-time.Hour)
	i := 0
	for i+1 < len(ss) && at(ss[i+1]).Before(cutoff) {
		i++
	}
	return ss[i:]
}

func ptr[T any](v T) *T { return &v }
