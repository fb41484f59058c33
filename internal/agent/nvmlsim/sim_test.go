package nvmlsim

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"go.uber.org/goleak"

	"github.com/sopilot/sopilot/internal/agent/gpu"
	"github.com/sopilot/sopilot/internal/telemetry"
	"github.com/sopilot/sopilot/internal/testclock"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// newClock is a settable clock for the Sim and the collector.
func newClock() *testclock.Clock { return testclock.New(time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)) }

func newSim(t *testing.T, clk *testclock.Clock) *Sim {
	t.Helper()
	return New(Options{Seed: 7, Now: clk.Now, NodeName: "worker-0"})
}

func newCollector(t *testing.T, s *Sim, clk *testclock.Clock) *gpu.Collector {
	t.Helper()
	c, err := gpu.New(s, slog.New(slog.DiscardHandler), gpu.Options{Now: clk.Now, EventWaitTimeout: 10 * time.Millisecond})
	if err != nil {
		t.Fatalf("gpu.New: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return c
}

func sample(t *testing.T, c *gpu.Collector) ([]gpu.Sample, []gpu.HealthEvent) {
	t.Helper()
	samples, events, err := c.Sample(context.Background())
	if err != nil {
		t.Fatalf("Sample: %v", err)
	}
	for _, s := range samples {
		if len(s.FieldErrors) != 0 {
			t.Errorf("gpu %d FieldErrors = %v", s.Index, s.FieldErrors)
		}
	}
	return samples, events
}

// settle advances the clock by d in one-second steps, sampling each step
// as a sampling loop would.
func settle(t *testing.T, c *gpu.Collector, clk *testclock.Clock, d time.Duration) []gpu.Sample {
	t.Helper()
	var samples []gpu.Sample
	for elapsed := time.Duration(0); elapsed < d; elapsed += time.Second {
		clk.Advance(time.Second)
		samples, _ = sample(t, c)
	}
	return samples
}

func TestInventory(t *testing.T) {
	clk := newClock()
	s := newSim(t, clk)
	c := newCollector(t, s, clk)
	inv, err := c.Inventory(context.Background())
	if err != nil {
		t.Fatalf("Inventory: %v", err)
	}
	if inv.DriverVersion != "570.00-sim" || inv.NVMLVersion != "12.570.00-sim" || inv.CUDADriverVersion != "12.8" {
		t.Errorf("versions = %q %q %q", inv.DriverVersion, inv.NVMLVersion, inv.CUDADriverVersion)
	}
	if len(inv.FieldErrors) != 0 {
		t.Errorf("FieldErrors = %v", inv.FieldErrors)
	}
	if len(inv.GPUs) != 8 {
		t.Fatalf("got %d GPUs, want 8", len(inv.GPUs))
	}
	uuids := map[string]bool{}
	buses := map[string]bool{}
	for i, g := range inv.GPUs {
		if g.Index != i || g.Model != "NVIDIA H200 (simulated)" || g.MemoryTotalBytes != 143771*mib {
			t.Errorf("GPU %d = %+v", i, g)
		}
		if !strings.HasPrefix(g.UUID, "GPU-51m0") || len(g.UUID) != len("GPU-00000000-0000-0000-0000-000000000000") {
			t.Errorf("GPU %d UUID %q is not a simulated UUID", i, g.UUID)
		}
		uuids[g.UUID] = true
		buses[g.PCIBusID] = true
	}
	if len(uuids) != 8 || len(buses) != 8 {
		t.Errorf("UUIDs %v / bus ids %v are not distinct", uuids, buses)
	}
	if got := inv.GPUs[0].PCIBusID; got != "00005151:18:00.0" {
		t.Errorf("GPU 0 bus id = %q, want 00005151:18:00.0", got)
	}
	if got := inv.GPUs[3].UUID; !strings.HasSuffix(got, "-000000000003") {
		t.Errorf("GPU 3 UUID = %q, want the index at the end", got)
	}

	// UUIDs are stable per node and distinct between nodes.
	again := New(Options{NodeName: "worker-0"})
	other := New(Options{NodeName: "worker-1"})
	for i := range 8 {
		if again.gpus[i].uuid != s.gpus[i].uuid {
			t.Errorf("GPU %d UUID changed between Sims of one node: %q, %q", i, s.gpus[i].uuid, again.gpus[i].uuid)
		}
		if other.gpus[i].uuid == s.gpus[i].uuid {
			t.Errorf("GPU %d UUID %q is the same on two nodes", i, s.gpus[i].uuid)
		}
	}
}

func TestOptions(t *testing.T) {
	s := New(Options{GPUs: 2, Model: "Test GPU", MemoryTotalBytes: 80 << 30, PowerLimitMilliwatts: 400_000})
	clk := newClock()
	s.opts.Now = clk.Now
	c := newCollector(t, s, clk)
	inv, err := c.Inventory(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.GPUs) != 2 || inv.GPUs[1].Model != "Test GPU" || inv.GPUs[1].MemoryTotalBytes != 80<<30 {
		t.Errorf("inventory = %+v", inv.GPUs)
	}
	samples, _ := sample(t, c)
	if got := *samples[0].PowerLimitMilliwatts; got != 400_000 {
		t.Errorf("power limit = %d, want 400000", got)
	}
}

type span struct{ lo, hi float64 }

func (r span) has(v float64) bool { return v >= r.lo && v <= r.hi }

func checkIn(t *testing.T, gpuIdx int, field string, v float64, r span) {
	t.Helper()
	if !r.has(v) {
		t.Errorf("gpu %d %s = %v, want in [%v, %v]", gpuIdx, field, v, r.lo, r.hi)
	}
}

func checkIdle(t *testing.T, s gpu.Sample) {
	t.Helper()
	i := s.Index
	checkIn(t, i, "sm util", *s.SMUtilizationPercent, span{0, 0})
	checkIn(t, i, "mem util", *s.MemoryUtilizationPercent, span{0, 0})
	checkIn(t, i, "mem used MiB", float64(*s.MemoryUsedBytes)/mib, span{490, 550})
	checkIn(t, i, "power W", float64(*s.PowerMilliwatts)/1000, span{70, 90})
	checkIn(t, i, "temp", *s.TemperatureCelsius, span{30, 36})
	checkIn(t, i, "hbm temp", *s.MemoryTemperatureCelsius-*s.TemperatureCelsius, span{2, 7})
	if *s.SMClockMHz != 345 || *s.MemoryClockMHz != 3201 {
		t.Errorf("gpu %d clocks = %d/%d, want idle 345/3201", i, *s.SMClockMHz, *s.MemoryClockMHz)
	}
	if *s.ThrottleReasons != nvml.ClocksEventReasonGpuIdle {
		t.Errorf("gpu %d throttle = %#x, want GpuIdle", i, *s.ThrottleReasons)
	}
	if s.Processes == nil || len(s.Processes) != 0 {
		t.Errorf("gpu %d processes = %#v, want empty", i, s.Processes)
	}
}

func checkBusy(t *testing.T, s gpu.Sample, pids []int32) {
	t.Helper()
	i := s.Index
	checkIn(t, i, "sm util", *s.SMUtilizationPercent, span{85, 99})
	checkIn(t, i, "mem util", *s.MemoryUtilizationPercent, span{40, 60})
	checkIn(t, i, "mem used fraction", float64(*s.MemoryUsedBytes)/float64(*s.MemoryTotalBytes), span{0.60, 0.75})
	checkIn(t, i, "power W", float64(*s.PowerMilliwatts)/1000, span{550, 680})
	checkIn(t, i, "temp", *s.TemperatureCelsius, span{60, 75})
	checkIn(t, i, "hbm temp", *s.MemoryTemperatureCelsius-*s.TemperatureCelsius, span{2, 7})
	if *s.SMClockMHz != 1980 {
		t.Errorf("gpu %d SM clock = %d, want 1980", i, *s.SMClockMHz)
	}
	if *s.ThrottleReasons != 0 {
		t.Errorf("gpu %d throttle = %#x, want 0", i, *s.ThrottleReasons)
	}
	if len(s.Processes) != len(pids) {
		t.Fatalf("gpu %d processes = %+v, want pids %v", i, s.Processes, pids)
	}
	var sum int64
	for k, p := range s.Processes {
		if p.PID != pids[k] || p.MemoryUsedBytes == nil || *p.MemoryUsedBytes <= 0 {
			t.Errorf("gpu %d process %d = %+v, want pid %d with memory", i, k, p, pids[k])
			continue
		}
		sum += *p.MemoryUsedBytes
	}
	if used := *s.MemoryUsedBytes; sum > used || sum < used-1024*mib {
		t.Errorf("gpu %d process memory %d MiB does not account for %d MiB used", i, sum/mib, used/mib)
	}
}

func checkCountersZero(t *testing.T, s gpu.Sample) {
	t.Helper()
	for name, v := range map[string]*uint64{
		"ecc vol corr": s.ECCVolatileCorrected, "ecc vol unc": s.ECCVolatileUncorrected,
		"ecc agg corr": s.ECCAggregateCorrected, "ecc agg unc": s.ECCAggregateUncorrected,
		"pcie replay": s.PCIeReplayCount, "nvlink": s.NVLinkErrorCount,
	} {
		if v == nil || *v != 0 {
			t.Errorf("gpu %d %s = %v, want 0", s.Index, name, v)
		}
	}
	if s.RowRemapPending == nil || *s.RowRemapPending || s.RowRemapFailure == nil || *s.RowRemapFailure {
		t.Errorf("gpu %d row remap = %v/%v, want false/false", s.Index, s.RowRemapPending, s.RowRemapFailure)
	}
	if s.RecoveryAction == nil || *s.RecoveryAction != telemetry.RecoveryNone {
		t.Errorf("gpu %d recovery action = %v, want none", s.Index, s.RecoveryAction)
	}
	if *s.MemoryTotalBytes != 143771*mib || *s.PowerLimitMilliwatts != 700_000 {
		t.Errorf("gpu %d total %d / limit %d", s.Index, *s.MemoryTotalBytes, *s.PowerLimitMilliwatts)
	}
}

func TestSampleFollowsAllocation(t *testing.T) {
	clk := newClock()
	s := newSim(t, clk)
	c := newCollector(t, s, clk)

	samples, events := sample(t, c)
	if len(samples) != 8 || len(events) != 0 {
		t.Fatalf("got %d samples, %d events; want 8, 0", len(samples), len(events))
	}
	for _, g := range samples {
		checkIdle(t, g)
		checkCountersZero(t, g)
	}

	alloc := map[int][]int32{0: {101, 102}, 3: {303}}
	s.SetAllocation(alloc)
	// Values move smoothly: a tenth of a second later the GPU is not busy yet.
	clk.Advance(100 * time.Millisecond)
	samples, _ = sample(t, c)
	if u := *samples[0].SMUtilizationPercent; u < 1 || u > 20 {
		t.Errorf("SM util 0.1 s after allocation = %v, want a partial rise", u)
	}
	if temp := *samples[0].TemperatureCelsius; temp > 37 {
		t.Errorf("temperature 0.1 s after allocation = %v, want still idle", temp)
	}

	samples = settle(t, c, clk, time.Minute)
	for _, g := range samples {
		if pids, ok := alloc[g.Index]; ok {
			checkBusy(t, g, pids)
		} else {
			checkIdle(t, g)
		}
		checkCountersZero(t, g)
	}
	if got := s.Allocation(); len(got) != 2 || len(got[0]) != 2 || got[3][0] != 303 {
		t.Errorf("Allocation() = %v", got)
	}

	// The values keep moving with noise but stay in range.
	seen := map[float64]bool{}
	for range 30 {
		clk.Advance(time.Second)
		samples, _ = sample(t, c)
		checkBusy(t, samples[0], alloc[0])
		seen[float64(*samples[0].PowerMilliwatts)] = true
	}
	if len(seen) < 10 {
		t.Errorf("power took %d distinct values over 30 samples, want noise", len(seen))
	}

	s.SetAllocation(nil)
	samples = settle(t, c, clk, 2*time.Minute)
	for _, g := range samples {
		checkIdle(t, g)
	}
}

func TestEnergyIntegratesPower(t *testing.T) {
	clk := newClock()
	s := newSim(t, clk)
	c := newCollector(t, s, clk)
	samples, _ := sample(t, c)
	prev := *samples[2].EnergyMillijoules
	for step := range 120 {
		if step == 40 {
			s.SetAllocation(map[int][]int32{2: {42}})
		}
		clk.Advance(time.Second)
		samples, _ = sample(t, c)
		e := *samples[2].EnergyMillijoules
		// One second at 70–680 W is 70 000–680 000 mJ.
		if d := float64(e) - float64(prev); d < 70_000 || d > 680_000 {
			t.Fatalf("step %d: energy rose by %v mJ in 1 s, want 70–680 J", step, d)
		}
		prev = e
	}
	// A clock that stands still or goes back changes nothing.
	samples, _ = sample(t, c)
	if e := *samples[2].EnergyMillijoules; e != prev {
		t.Errorf("energy changed without time passing: %d -> %d", prev, e)
	}
	clk.Advance(-time.Minute)
	samples, _ = sample(t, c)
	if e := *samples[2].EnergyMillijoules; e != prev {
		t.Errorf("energy changed when the clock went back: %d -> %d", prev, e)
	}
}

func TestDeterministicNoise(t *testing.T) {
	run := func(seed int64) []uint32 {
		clk := newClock()
		s := New(Options{Seed: seed, Now: clk.Now, NodeName: "n"})
		s.Init()
		defer s.Shutdown()
		s.SetAllocation(map[int][]int32{1: {9}})
		d, _ := s.DeviceGetHandleByIndex(1)
		var out []uint32
		for range 20 {
			clk.Advance(time.Second)
			p, r := d.GetPowerUsage()
			if r != nvml.SUCCESS {
				t.Fatalf("GetPowerUsage: %v", r)
			}
			out = append(out, p)
		}
		return out
	}
	a, b, other := run(1), run(1), run(2)
	if !equalSlices(a, b) {
		t.Errorf("same seed, different values:\n%v\n%v", a, b)
	}
	if equalSlices(a, other) {
		t.Errorf("different seeds, same values: %v", a)
	}
}

func equalSlices[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
