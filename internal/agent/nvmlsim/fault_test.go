package nvmlsim

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/sopilot/sopilot/internal/agent/gpu"
	"github.com/sopilot/sopilot/internal/health"
	"github.com/sopilot/sopilot/internal/telemetry"
)

// runEvents starts the collector's RunEvents and waits until every GPU is
// registered with the Sim's event set.
func runEvents(t *testing.T, s *Sim, c *gpu.Collector) <-chan gpu.HealthEvent {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan gpu.HealthEvent, 16)
	done := make(chan error, 1)
	go func() { done <- c.RunEvents(ctx, out) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("RunEvents: %v", err)
		}
	})
	deadline := time.Now().Add(5 * time.Second)
	for !s.allRegistered() {
		if time.Now().After(deadline) {
			t.Fatal("RunEvents did not register the GPUs")
		}
		time.Sleep(time.Millisecond)
	}
	return out
}

func (s *Sim) allRegistered() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for es := range s.sets {
		es.mu.Lock()
		n := len(es.masks)
		es.mu.Unlock()
		if n == len(s.gpus) {
			return true
		}
	}
	return false
}

func nextEvent(t *testing.T, events <-chan gpu.HealthEvent) gpu.HealthEvent {
	t.Helper()
	select {
	case ev := <-events:
		return ev
	case <-time.After(time.Second):
		t.Fatal("no health event within a second")
		return gpu.HealthEvent{}
	}
}

func noEvent(t *testing.T, events <-chan gpu.HealthEvent) {
	t.Helper()
	select {
	case ev := <-events:
		t.Errorf("unexpected health event %+v", ev)
	case <-time.After(50 * time.Millisecond):
	}
}

func mustInject(t *testing.T, s *Sim, spec string) Fault {
	t.Helper()
	f, err := ParseFault(spec)
	if err != nil {
		t.Fatalf("ParseFault(%q): %v", spec, err)
	}
	if err := s.Inject(f); err != nil {
		t.Fatalf("Inject(%v): %v", f, err)
	}
	return f
}

func TestXIDFault(t *testing.T) {
	clk := newClock()
	s := newSim(t, clk)
	c := newCollector(t, s, clk)
	events := runEvents(t, s, c)

	mustInject(t, s, "xid:79@gpu3")
	ev := nextEvent(t, events)
	if ev.Kind != telemetry.KindXID || ev.Code != 79 || ev.GPUIndex != 3 || ev.UUID != s.gpus[3].uuid ||
		ev.Class != health.XIDDrain || ev.Component != "gpu3" {
		t.Errorf("event = %+v, want XID 79 on gpu3, class drain", ev)
	}
	mustInject(t, s, "xid:13@gpu0")
	if ev := nextEvent(t, events); ev.Code != 13 || ev.GPUIndex != 0 || ev.Class != health.XIDApplication {
		t.Errorf("event = %+v, want XID 13 on gpu0", ev)
	}
	noEvent(t, events)
	samples, _ := sample(t, c)
	if got := *samples[3].ECCVolatileUncorrected; got != 0 {
		t.Errorf("XID 79 counted %d ECC errors", got)
	}
	if got := s.Faults(); len(got) != 2 || got[0] != (Fault{GPU: 0, Kind: "xid", Code: 13}) || got[1] != (Fault{GPU: 3, Kind: "xid", Code: 79}) {
		t.Errorf("Faults() = %v", got)
	}
	s.ClearAll()
	if got := s.Faults(); len(got) != 0 {
		t.Errorf("Faults() after ClearAll = %v", got)
	}
	noEvent(t, events)
}

func TestXID48IsAlsoECC(t *testing.T) {
	clk := newClock()
	s := newSim(t, clk)
	c := newCollector(t, s, clk)
	events := runEvents(t, s, c)

	mustInject(t, s, "xid:48@gpu6")
	got := map[string]gpu.HealthEvent{}
	for range 2 {
		ev := nextEvent(t, events)
		got[ev.Kind] = ev
	}
	if ev := got[telemetry.KindXID]; ev.Code != 48 || ev.GPUIndex != 6 {
		t.Errorf("xid event = %+v", ev)
	}
	if ev := got[telemetry.KindECCUncorrected]; ev.GPUIndex != 6 {
		t.Errorf("ecc event = %+v", ev)
	}
	samples, _ := sample(t, c)
	if v := *samples[6].ECCVolatileUncorrected; v != 1 {
		t.Errorf("uncorrected ECC = %d, want 1", v)
	}
}

func TestECCFault(t *testing.T) {
	clk := newClock()
	s := newSim(t, clk)
	c := newCollector(t, s, clk)
	events := runEvents(t, s, c)

	f := mustInject(t, s, "ecc:2@gpu1")
	if f.Code != 2 {
		t.Errorf("fault = %+v", f)
	}
	if ev := nextEvent(t, events); ev.Kind != telemetry.KindECCUncorrected || ev.GPUIndex != 1 {
		t.Errorf("event = %+v, want ecc_uncorrected on gpu1", ev)
	}
	mustInject(t, s, "ecc@gpu1") // default count 1
	nextEvent(t, events)

	check := func(when string) {
		t.Helper()
		samples, _ := sample(t, c)
		g := samples[1]
		if *g.ECCVolatileUncorrected != 3 || *g.ECCAggregateUncorrected != 3 || *g.ECCVolatileCorrected != 0 {
			t.Errorf("%s: ECC = vol unc %d, agg unc %d, vol corr %d; want 3, 3, 0", when, *g.ECCVolatileUncorrected, *g.ECCAggregateUncorrected, *g.ECCVolatileCorrected)
		}
		if *samples[0].ECCVolatileUncorrected != 0 {
			t.Errorf("%s: gpu0 ECC = %d, want 0", when, *samples[0].ECCVolatileUncorrected)
		}
	}
	check("injected")
	s.Clear(1)
	check("cleared") // counters stay risen, like hardware
	if len(s.Faults()) != 0 {
		t.Errorf("Faults() = %v after Clear", s.Faults())
	}
}

func TestStateFaults(t *testing.T) {
	tests := []struct {
		spec  string
		check func(t *testing.T, g gpu.Sample)
	}{
		{"row_remap_failure@gpu4", func(t *testing.T, g gpu.Sample) {
			if !*g.RowRemapFailure || !*g.RowRemapPending {
				t.Errorf("row remap = pending %v, failure %v; want true, true", *g.RowRemapPending, *g.RowRemapFailure)
			}
		}},
		{"thermal@gpu4", func(t *testing.T, g gpu.Sample) {
			checkIn(t, g.Index, "temp", *g.TemperatureCelsius, span{90, 94})
			want := uint64(nvml.ClocksEventReasonSwThermalSlowdown | nvml.ClocksThrottleReasonHwThermalSlowdown)
			if *g.ThrottleReasons&want != want {
				t.Errorf("throttle = %#x, want HW and SW thermal bits %#x", *g.ThrottleReasons, want)
			}
			if *g.SMClockMHz >= 1980 {
				t.Errorf("SM clock = %d, want throttled", *g.SMClockMHz)
			}
		}},
		{"power@gpu4", func(t *testing.T, g gpu.Sample) {
			if *g.ThrottleReasons&nvml.ClocksThrottleReasonHwPowerBrakeSlowdown == 0 {
				t.Errorf("throttle = %#x, want the power brake bit", *g.ThrottleReasons)
			}
			if *g.SMClockMHz >= 1980 {
				t.Errorf("SM clock = %d, want throttled", *g.SMClockMHz)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			clk := newClock()
			s := newSim(t, clk)
			c := newCollector(t, s, clk)
			s.SetAllocation(map[int][]int32{4: {44}})
			settle(t, c, clk, time.Minute)
			mustInject(t, s, tt.spec)
			samples := settle(t, c, clk, time.Minute)
			tt.check(t, samples[4])
			checkIdle(t, samples[3]) // other GPUs are untouched
			if got := s.Faults(); len(got) != 1 || got[0].GPU != 4 {
				t.Errorf("Faults() = %v", got)
			}

			s.Clear(4)
			samples = settle(t, c, clk, 2*time.Minute)
			checkBusy(t, samples[4], []int32{44})
			checkCountersZero(t, samples[4])
		})
	}
}

func TestGPULostFault(t *testing.T) {
	clk := newClock()
	s := newSim(t, clk)
	c := newCollector(t, s, clk)

	mustInject(t, s, "gpu_lost@gpu5")
	samples, events := sample(t, c)
	if len(samples) != 7 || len(events) != 1 {
		t.Fatalf("got %d samples, %d events; want 7, 1", len(samples), len(events))
	}
	for _, g := range samples {
		if g.Index == 5 {
			t.Errorf("lost GPU 5 was sampled")
		}
	}
	ev := events[0]
	if ev.Kind != telemetry.KindGPULost || ev.GPUIndex != 5 || ev.UUID != s.gpus[5].uuid || ev.Class != health.XIDDrain {
		t.Errorf("event = %+v, want gpu_lost on gpu5", ev)
	}
	// The collector reports the loss once.
	if samples, events = sample(t, c); len(samples) != 7 || len(events) != 0 {
		t.Errorf("second sample: %d samples, %d events; want 7, 0", len(samples), len(events))
	}
	// NVML still counts the GPU; its handle and every call on it fail.
	if n, r := s.DeviceGetCount(); n != 8 || r != nvml.SUCCESS {
		t.Errorf("DeviceGetCount = %d, %v", n, r)
	}
	if _, r := s.DeviceGetHandleByIndex(5); r != nvml.ERROR_GPU_IS_LOST {
		t.Errorf("DeviceGetHandleByIndex(5) = %v, want ERROR_GPU_IS_LOST", r)
	}
	if _, r := s.devices[5].GetSerial(); r != nvml.ERROR_GPU_IS_LOST {
		t.Errorf("GetSerial = %v, want ERROR_GPU_IS_LOST", r)
	}
	inv, err := c.Inventory(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.FieldErrors) != 1 || inv.FieldErrors[0].Field != "gpu5.gpu" || !errors.Is(inv.FieldErrors[0], nvml.ERROR_GPU_IS_LOST) {
		t.Errorf("inventory FieldErrors = %v, want gpu5 lost", inv.FieldErrors)
	}

	s.Clear(5)
	if samples, events = sample(t, c); len(samples) != 8 || len(events) != 0 {
		t.Errorf("after Clear: %d samples, %d events; want 8, 0", len(samples), len(events))
	}
	checkIdle(t, samples[5])
}

func TestInjectRejects(t *testing.T) {
	s := New(Options{GPUs: 4})
	tests := []struct {
		f     Fault
		field string
	}{
		{Fault{GPU: 4, Kind: KindXID, Code: 79}, "gpu"},
		{Fault{GPU: -1, Kind: KindThermal}, "gpu"},
		{Fault{GPU: 0, Kind: "melt"}, "kind"},
		{Fault{GPU: 0, Kind: ""}, "kind"},
		{Fault{GPU: 0, Kind: KindXID}, "code"},
		{Fault{GPU: 0, Kind: KindXID, Code: -1}, "code"},
		{Fault{GPU: 0, Kind: KindXID, Code: 1 << 40}, "code"},
		{Fault{GPU: 0, Kind: KindECC, Code: -3}, "code"},
		{Fault{GPU: 0, Kind: KindThermal, Code: 5}, "code"},
	}
	for _, tt := range tests {
		err := s.Inject(tt.f)
		if !errors.Is(err, ErrInvalidFault) || !strings.Contains(err.Error(), ": "+tt.field+": ") {
			t.Errorf("Inject(%+v) = %v, want an invalid %s", tt.f, err, tt.field)
		}
	}
	if got := s.Faults(); len(got) != 0 {
		t.Errorf("rejected faults were recorded: %v", got)
	}
}
