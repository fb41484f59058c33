package gpu_test

import (
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"
	"go.uber.org/goleak"

	"github.com/sopilot/sopilot/internal/agent/gpu"
	"github.com/sopilot/sopilot/internal/health"
	"github.com/sopilot/sopilot/internal/telemetry"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const mib = 1024 * 1024

// newServer builds go-nvml's 8×H100 fake server and fills in the telemetry
// calls it leaves unset, with per-GPU values the tests can predict.
func newServer(t *testing.T) *server.Server {
	t.Helper()
	s := dgxh100.New()
	for i, d := range s.Devices {
		dev := d.(*server.Device)
		i := uint32(i)
		dev.MemoryInfo.Used = uint64(1000+i) * mib
		dev.MemoryInfo.Free = dev.MemoryInfo.Total - dev.MemoryInfo.Used
		// The fake's PciInfo has no bus id; real NVML fills it.
		dev.GetPciInfoFunc = func() (nvml.PciInfo, nvml.Return) {
			var p nvml.PciInfo
			for j := range len(dev.PciBusID) {
				p.BusId[j] = int8(dev.PciBusID[j])
			}
			return p, nvml.SUCCESS
		}
		dev.GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) {
			return nvml.Utilization{Gpu: 90 + i, Memory: 40 + i}, nvml.SUCCESS
		}
		dev.GetTemperatureFunc = func(nvml.TemperatureSensors) (uint32, nvml.Return) { return 60 + i, nvml.SUCCESS }
		dev.GetPowerUsageFunc = func() (uint32, nvml.Return) { return 500_000 + i, nvml.SUCCESS }
		dev.GetEnforcedPowerLimitFunc = func() (uint32, nvml.Return) { return 700_000, nvml.SUCCESS }
		dev.GetTotalEnergyConsumptionFunc = func() (uint64, nvml.Return) { return 1_000_000_000 + uint64(i), nvml.SUCCESS }
		dev.GetClockInfoFunc = func(ct nvml.ClockType) (uint32, nvml.Return) {
			if ct == nvml.CLOCK_SM {
				return 1980, nvml.SUCCESS
			}
			return 2619, nvml.SUCCESS
		}
		dev.GetCurrentClocksEventReasonsFunc = func() (uint64, nvml.Return) { return 0, nvml.SUCCESS }
		dev.GetTotalEccErrorsFunc = func(nvml.MemoryErrorType, nvml.EccCounterType) (uint64, nvml.Return) { return 0, nvml.SUCCESS }
		dev.GetRemappedRowsFunc = func() (int, int, bool, bool, nvml.Return) { return 0, 0, false, false, nvml.SUCCESS }
		dev.GetPcieReplayCounterFunc = func() (int, nvml.Return) { return 0, nvml.SUCCESS }
		dev.GetFieldValuesFunc = func(vals []nvml.FieldValue) nvml.Return {
			for k := range vals {
				vals[k].NvmlReturn = uint32(nvml.SUCCESS)
				switch vals[k].FieldId {
				case nvml.FI_DEV_MEMORY_TEMP:
					vals[k].ValueType = uint32(nvml.VALUE_TYPE_UNSIGNED_INT)
					binary.NativeEndian.PutUint32(vals[k].Value[:], 70+i)
					continue
				case nvml.FI_DEV_GET_GPU_RECOVERY_ACTION:
					vals[k].ValueType = uint32(nvml.VALUE_TYPE_UNSIGNED_INT)
					binary.NativeEndian.PutUint32(vals[k].Value[:], uint32(nvml.GPU_RECOVERY_ACTION_NONE))
					if i == 4 {
						binary.NativeEndian.PutUint32(vals[k].Value[:], uint32(nvml.GPU_RECOVERY_ACTION_DRAIN_AND_RESET))
					}
					if i == 6 { // a driver that predates the field
						vals[k].NvmlReturn = uint32(nvml.ERROR_INVALID_ARGUMENT)
					}
					continue
				}
				vals[k].ValueType = uint32(nvml.VALUE_TYPE_UNSIGNED_LONG_LONG)
				binary.NativeEndian.PutUint64(vals[k].Value[:], 1) // one error per counter
			}
			return nvml.SUCCESS
		}
		dev.GetComputeRunningProcessesFunc = func() ([]nvml.ProcessInfo, nvml.Return) {
			return []nvml.ProcessInfo{{Pid: 4000 + i, UsedGpuMemory: 1000 * mib}}, nvml.SUCCESS
		}
		dev.GetSupportedEventTypesFunc = func() (uint64, nvml.Return) {
			return nvml.EventTypeXidCriticalError | nvml.EventTypeDoubleBitEccError | nvml.EventTypePState, nvml.SUCCESS
		}
	}
	return s
}

func device(s *server.Server, i int) *server.Device { return s.Devices[i].(*server.Device) }

func newCollector(t *testing.T, s *server.Server, opts gpu.Options) *gpu.Collector {
	t.Helper()
	c, err := gpu.New(s, slog.New(slog.DiscardHandler), opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return c
}

func TestInventory(t *testing.T) {
	tests := []struct {
		name            string
		mutate          func(s *server.Server)
		wantFieldErrors []string
		want            func(s *server.Server, i int) gpu.GPUInfo
	}{
		{
			name: "8 H100s",
			want: func(s *server.Server, i int) gpu.GPUInfo {
				return gpu.GPUInfo{
					Index:            i,
					UUID:             device(s, i).UUID,
					Model:            "NVIDIA H100 80GB HBM3",
					MemoryTotalBytes: 81920 * mib,
					PCIBusID:         device(s, i).PciBusID,
				}
			},
		},
		{
			name: "unreadable and unsupported values",
			mutate: func(s *server.Server) {
				device(s, 2).GetNameFunc = func() (string, nvml.Return) { return "", nvml.ERROR_UNKNOWN }
				device(s, 3).GetPciInfoFunc = func() (nvml.PciInfo, nvml.Return) { return nvml.PciInfo{}, nvml.ERROR_NOT_SUPPORTED }
				s.SystemGetCudaDriverVersionFunc = func() (int, nvml.Return) { return 0, nvml.ERROR_FUNCTION_NOT_FOUND }
			},
			wantFieldErrors: []string{"cuda_driver_version", "gpu2.name"},
			want: func(s *server.Server, i int) gpu.GPUInfo {
				g := gpu.GPUInfo{Index: i, UUID: device(s, i).UUID, Model: "NVIDIA H100 80GB HBM3", MemoryTotalBytes: 81920 * mib, PCIBusID: device(s, i).PciBusID}
				switch i {
				case 2:
					g.Model = ""
				case 3:
					g.PCIBusID = ""
				}
				return g
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t)
			if tt.mutate != nil {
				tt.mutate(s)
			}
			c := newCollector(t, s, gpu.Options{})
			inv, err := c.Inventory(context.Background())
			if err != nil {
				t.Fatalf("Inventory: %v", err)
			}
			if inv.DriverVersion != "550.54.15" || inv.NVMLVersion != "12.550.54.15" {
				t.Errorf("versions = %q %q, want 550.54.15 12.550.54.15", inv.DriverVersion, inv.NVMLVersion)
			}
			if tt.wantFieldErrors == nil && inv.CUDADriverVersion != "12.4" {
				t.Errorf("CUDADriverVersion = %q, want 12.4", inv.CUDADriverVersion)
			}
			var fields []string
			for _, fe := range inv.FieldErrors {
				fields = append(fields, fe.Field)
			}
			if !slices.Equal(fields, tt.wantFieldErrors) {
				t.Errorf("FieldErrors = %v, want fields %v", inv.FieldErrors, tt.wantFieldErrors)
			}
			if len(inv.GPUs) != 8 {
				t.Fatalf("got %d GPUs, want 8", len(inv.GPUs))
			}
			for i, g := range inv.GPUs {
				if want := tt.want(s, i); g != want {
					t.Errorf("GPU %d = %+v, want %+v", i, g, want)
				}
			}
		})
	}
}

func TestSample(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(s *server.Server)
		check  func(t *testing.T, s *server.Server, samples []gpu.Sample, events []gpu.HealthEvent)
	}{
		{
			name: "all fields on a healthy server",
			check: func(t *testing.T, s *server.Server, samples []gpu.Sample, events []gpu.HealthEvent) {
				if len(samples) != 8 || len(events) != 0 {
					t.Fatalf("got %d samples, %d events; want 8, 0", len(samples), len(events))
				}
				g := samples[3]
				if g.Index != 3 || g.UUID != device(s, 3).UUID {
					t.Errorf("identity = %d %q", g.Index, g.UUID)
				}
				checkVal(t, "SMUtilizationPercent", g.SMUtilizationPercent, 93)
				checkVal(t, "MemoryUtilizationPercent", g.MemoryUtilizationPercent, 43)
				checkVal(t, "MemoryUsedBytes", g.MemoryUsedBytes, 1003*mib)
				checkVal(t, "MemoryTotalBytes", g.MemoryTotalBytes, 81920*mib)
				checkVal(t, "TemperatureCelsius", g.TemperatureCelsius, 63)
				checkVal(t, "MemoryTemperatureCelsius", g.MemoryTemperatureCelsius, 73)
				checkVal(t, "PowerMilliwatts", g.PowerMilliwatts, 500_003)
				checkVal(t, "PowerLimitMilliwatts", g.PowerLimitMilliwatts, 700_000)
				checkVal(t, "EnergyMillijoules", g.EnergyMillijoules, 1_000_000_003)
				checkVal(t, "SMClockMHz", g.SMClockMHz, 1980)
				checkVal(t, "MemoryClockMHz", g.MemoryClockMHz, 2619)
				checkVal(t, "ThrottleReasons", g.ThrottleReasons, 0)
				checkVal(t, "ECCAggregateUncorrected", g.ECCAggregateUncorrected, 0)
				checkVal(t, "RowRemapPending", g.RowRemapPending, false)
				checkVal(t, "RowRemapFailure", g.RowRemapFailure, false)
				checkVal(t, "PCIeReplayCount", g.PCIeReplayCount, 0)
				checkVal(t, "NVLinkErrorCount", g.NVLinkErrorCount, 4)
				checkVal(t, "RecoveryAction", g.RecoveryAction, telemetry.RecoveryNone)
				if samples[6].RecoveryAction != nil || len(samples[6].FieldErrors) != 0 {
					t.Errorf("gpu6 RecoveryAction = %v, errors %v; want absent, none", samples[6].RecoveryAction, samples[6].FieldErrors)
				}
				if len(g.Processes) != 1 || g.Processes[0].PID != 4003 || *g.Processes[0].MemoryUsedBytes != 1000*mib {
					t.Errorf("Processes = %+v", g.Processes)
				}
				if len(g.FieldErrors) != 0 {
					t.Errorf("FieldErrors = %v", g.FieldErrors)
				}
			},
		},
		{
			name: "not supported fields are omitted without errors",
			mutate: func(s *server.Server) {
				d := device(s, 0)
				d.GetTemperatureFunc = func(nvml.TemperatureSensors) (uint32, nvml.Return) { return 0, nvml.ERROR_NOT_SUPPORTED }
				d.GetTotalEnergyConsumptionFunc = func() (uint64, nvml.Return) { return 0, nvml.ERROR_NOT_SUPPORTED }
				d.GetRemappedRowsFunc = func() (int, int, bool, bool, nvml.Return) { return 0, 0, false, false, nvml.ERROR_NOT_SUPPORTED }
				d.GetFieldValuesFunc = func([]nvml.FieldValue) nvml.Return { return nvml.ERROR_NOT_SUPPORTED }
				d.GetComputeRunningProcessesFunc = func() ([]nvml.ProcessInfo, nvml.Return) { return nil, nvml.ERROR_NOT_FOUND }
				// Per-value NOT_SUPPORTED inside a successful GetFieldValues.
				device(s, 1).GetFieldValuesFunc = func(vals []nvml.FieldValue) nvml.Return {
					for k := range vals {
						vals[k].NvmlReturn = uint32(nvml.ERROR_NOT_SUPPORTED)
					}
					return nvml.SUCCESS
				}
			},
			check: func(t *testing.T, s *server.Server, samples []gpu.Sample, events []gpu.HealthEvent) {
				if len(samples) != 8 {
					t.Fatalf("got %d samples, want 8", len(samples))
				}
				g := samples[0]
				if g.TemperatureCelsius != nil || g.EnergyMillijoules != nil || g.RowRemapPending != nil || g.RecoveryAction != nil ||
					g.RowRemapFailure != nil || g.MemoryTemperatureCelsius != nil || g.NVLinkErrorCount != nil || g.Processes != nil {
					t.Errorf("unsupported fields present: %+v", g)
				}
				checkVal(t, "PowerMilliwatts", g.PowerMilliwatts, 500_000)
				if samples[1].MemoryTemperatureCelsius != nil || samples[1].NVLinkErrorCount != nil {
					t.Errorf("gpu1 per-value NOT_SUPPORTED present")
				}
				for _, g := range samples[:2] {
					if len(g.FieldErrors) != 0 {
						t.Errorf("gpu%d FieldErrors = %v, want none", g.Index, g.FieldErrors)
					}
				}
			},
		},
		{
			name: "a failing field is listed and the rest is kept",
			mutate: func(s *server.Server) {
				d := device(s, 1)
				d.GetPcieReplayCounterFunc = func() (int, nvml.Return) { return 0, nvml.ERROR_UNKNOWN }
				d.GetTotalEccErrorsFunc = func(_ nvml.MemoryErrorType, ct nvml.EccCounterType) (uint64, nvml.Return) {
					if ct == nvml.AGGREGATE_ECC {
						return 0, nvml.ERROR_NO_PERMISSION
					}
					return 5, nvml.SUCCESS
				}
				d.GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) { panic("driver bug") }
			},
			check: func(t *testing.T, s *server.Server, samples []gpu.Sample, events []gpu.HealthEvent) {
				g := samples[1]
				var fields []string
				for _, fe := range g.FieldErrors {
					fields = append(fields, fe.Field)
				}
				want := []string{"utilization", "ecc_aggregate_corrected", "ecc_aggregate_uncorrected", "pcie_replay_count"}
				if !slices.Equal(fields, want) {
					t.Fatalf("FieldErrors fields = %v, want %v", fields, want)
				}
				if !errors.Is(g.FieldErrors[1].Err, nvml.ERROR_NO_PERMISSION) || !errors.Is(g.FieldErrors[3].Err, nvml.ERROR_UNKNOWN) {
					t.Errorf("FieldErrors = %v", g.FieldErrors)
				}
				if g.SMUtilizationPercent != nil || g.PCIeReplayCount != nil || g.ECCAggregateCorrected != nil {
					t.Errorf("failed fields present")
				}
				checkVal(t, "ECCVolatileCorrected", g.ECCVolatileCorrected, 5)
				checkVal(t, "ECCVolatileUncorrected", g.ECCVolatileUncorrected, 5)
				checkVal(t, "PowerMilliwatts", g.PowerMilliwatts, 500_001)
				checkVal(t, "NVLinkErrorCount", g.NVLinkErrorCount, 4)
			},
		},
		{
			name: "ecc and row remap values",
			mutate: func(s *server.Server) {
				d := device(s, 4)
				d.GetTotalEccErrorsFunc = func(et nvml.MemoryErrorType, ct nvml.EccCounterType) (uint64, nvml.Return) {
					return map[[2]int]uint64{{0, 0}: 11, {1, 0}: 1, {0, 1}: 111, {1, 1}: 2}[[2]int{int(et), int(ct)}], nvml.SUCCESS
				}
				d.GetRemappedRowsFunc = func() (int, int, bool, bool, nvml.Return) { return 3, 2, true, false, nvml.SUCCESS }
				device(s, 5).GetRemappedRowsFunc = func() (int, int, bool, bool, nvml.Return) { return 0, 9, false, true, nvml.SUCCESS }
				d.GetCurrentClocksEventReasonsFunc = func() (uint64, nvml.Return) {
					return nvml.ClocksEventReasonSwThermalSlowdown | nvml.ClocksEventReasonSwPowerCap, nvml.SUCCESS
				}
			},
			check: func(t *testing.T, s *server.Server, samples []gpu.Sample, events []gpu.HealthEvent) {
				g := samples[4]
				checkVal(t, "ECCVolatileCorrected", g.ECCVolatileCorrected, 11)
				checkVal(t, "ECCVolatileUncorrected", g.ECCVolatileUncorrected, 1)
				checkVal(t, "ECCAggregateCorrected", g.ECCAggregateCorrected, 111)
				checkVal(t, "ECCAggregateUncorrected", g.ECCAggregateUncorrected, 2)
				checkVal(t, "RowRemapPending", g.RowRemapPending, true)
				checkVal(t, "RowRemapFailure", g.RowRemapFailure, false)
				checkVal(t, "ThrottleReasons", g.ThrottleReasons, nvml.ClocksEventReasonSwThermalSlowdown|nvml.ClocksEventReasonSwPowerCap)
				checkVal(t, "gpu5 RowRemapFailure", samples[5].RowRemapFailure, true)
				checkVal(t, "RecoveryAction", g.RecoveryAction, telemetry.RecoveryDrainAndReset)
			},
		},
		{
			name: "a lost gpu yields a gpu_lost event instead of a sample",
			mutate: func(s *server.Server) {
				device(s, 5).GetPowerUsageFunc = func() (uint32, nvml.Return) { return 0, nvml.ERROR_GPU_IS_LOST }
			},
			check: func(t *testing.T, s *server.Server, samples []gpu.Sample, events []gpu.HealthEvent) {
				if len(samples) != 7 {
					t.Fatalf("got %d samples, want 7", len(samples))
				}
				for _, g := range samples {
					if g.Index == 5 {
						t.Errorf("sample for lost gpu5")
					}
				}
				if len(events) != 1 {
					t.Fatalf("events = %+v, want one", events)
				}
				ev := events[0]
				if ev.Kind != telemetry.KindGPULost || ev.GPUIndex != 5 || ev.Component != "gpu5" || ev.UUID != device(s, 5).UUID || ev.Class != health.XIDDrain {
					t.Errorf("event = %+v", ev)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t)
			if tt.mutate != nil {
				tt.mutate(s)
			}
			c := newCollector(t, s, gpu.Options{})
			samples, events, err := c.Sample(context.Background())
			if err != nil {
				t.Fatalf("Sample: %v", err)
			}
			tt.check(t, s, samples, events)
		})
	}
}

func TestSampleReportsGPULostOnce(t *testing.T) {
	s := newServer(t)
	lost := true
	var mu sync.Mutex
	device(s, 2).GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) {
		mu.Lock()
		defer mu.Unlock()
		if lost {
			return nvml.Utilization{}, nvml.ERROR_GPU_IS_LOST
		}
		return nvml.Utilization{Gpu: 1}, nvml.SUCCESS
	}
	c := newCollector(t, s, gpu.Options{})
	for i, want := range []struct{ samples, events int }{{7, 1}, {7, 0}, {8, 0}} {
		if i == 2 {
			mu.Lock()
			lost = false
			mu.Unlock()
		}
		samples, events, err := c.Sample(context.Background())
		if err != nil {
			t.Fatalf("Sample %d: %v", i, err)
		}
		if len(samples) != want.samples || len(events) != want.events {
			t.Errorf("Sample %d: %d samples, %d events; want %d, %d", i, len(samples), len(events), want.samples, want.events)
		}
	}
}

func TestWatchdog(t *testing.T) {
	const callTimeout = 300 * time.Millisecond
	s := newServer(t)
	release := make(chan struct{})
	var once sync.Once
	releaseHung := func() { once.Do(func() { close(release) }) }
	device(s, 2).GetPowerUsageFunc = func() (uint32, nvml.Return) {
		<-release
		return 1, nvml.SUCCESS
	}
	c, err := gpu.New(s, slog.New(slog.DiscardHandler), gpu.Options{CallTimeout: callTimeout})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		releaseHung()
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}()
	ctx := context.Background()

	start := time.Now()
	samples, _, err := c.Sample(ctx)
	if elapsed := time.Since(start); elapsed > callTimeout+time.Second {
		t.Errorf("hung Sample took %v, want about %v", elapsed, callTimeout)
	}
	if !errors.Is(err, gpu.ErrCallTimeout) {
		t.Fatalf("Sample error = %v, want ErrCallTimeout", err)
	}
	if len(samples) != 3 {
		t.Fatalf("got %d samples, want gpu0, gpu1 and partial gpu2", len(samples))
	}
	g := samples[2]
	if g.SMUtilizationPercent == nil || g.TemperatureCelsius == nil || g.PowerMilliwatts != nil {
		t.Errorf("partial gpu2 = %+v, want fields up to power", g)
	}
	if len(g.FieldErrors) != 1 || g.FieldErrors[0].Field != "power_usage" || !errors.Is(g.FieldErrors[0].Err, gpu.ErrCallTimeout) {
		t.Errorf("gpu2 FieldErrors = %v", g.FieldErrors)
	}

	start = time.Now()
	if _, _, err := c.Sample(ctx); !errors.Is(err, gpu.ErrWedged) {
		t.Errorf("Sample while wedged: %v, want ErrWedged", err)
	}
	if elapsed := time.Since(start); elapsed > callTimeout/2 {
		t.Errorf("wedged Sample took %v, want an immediate answer", elapsed)
	}
	if _, err := c.Inventory(ctx); !errors.Is(err, gpu.ErrWedged) {
		t.Errorf("Inventory while wedged: %v, want ErrWedged", err)
	}

	releaseHung()
	deadline := time.Now().Add(5 * time.Second)
	for {
		samples, _, err = c.Sample(ctx)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil || len(samples) != 8 {
		t.Fatalf("after release: %d samples, err %v; want 8, nil", len(samples), err)
	}
	checkVal(t, "gpu2 PowerMilliwatts", samples[2].PowerMilliwatts, 1)
}

func TestWatchdogAfterCallerGaveUp(t *testing.T) {
	const callTimeout = 300 * time.Millisecond
	s := newServer(t)
	release := make(chan struct{})
	device(s, 0).GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) {
		<-release
		return nvml.Utilization{}, nvml.SUCCESS
	}
	c := newCollector(t, s, gpu.Options{CallTimeout: callTimeout})
	defer close(release) // deferred calls run before t.Cleanup's Close

	// The first caller leaves through its own deadline, before the watchdog fires.
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout/4)
	defer cancel()
	if _, _, err := c.Sample(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Sample = %v, want DeadlineExceeded", err)
	}
	// The next caller finds the worker busy for a whole CallTimeout ...
	if _, _, err := c.Sample(context.Background()); !errors.Is(err, gpu.ErrWedged) {
		t.Fatalf("Sample = %v, want ErrWedged", err)
	}
	// ... and from then on callers are answered at once.
	start := time.Now()
	if _, _, err := c.Sample(context.Background()); !errors.Is(err, gpu.ErrWedged) {
		t.Fatalf("Sample = %v, want ErrWedged", err)
	}
	if elapsed := time.Since(start); elapsed > callTimeout/2 {
		t.Errorf("wedged Sample took %v, want an immediate answer", elapsed)
	}
}

func TestCloseWhileHung(t *testing.T) {
	const timeout = 100 * time.Millisecond
	s := newServer(t)
	release := make(chan struct{})
	shutdown := make(chan struct{})
	s.ShutdownFunc = func() nvml.Return { close(shutdown); return nvml.SUCCESS }
	device(s, 0).GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) {
		<-release
		return nvml.Utilization{}, nvml.SUCCESS
	}
	c, err := gpu.New(s, nil, gpu.Options{CallTimeout: timeout, CloseTimeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Sample(context.Background()); !errors.Is(err, gpu.ErrCallTimeout) {
		t.Fatalf("Sample = %v, want ErrCallTimeout", err)
	}
	if err := c.Close(); !errors.Is(err, gpu.ErrWedged) {
		t.Errorf("Close while hung = %v, want ErrWedged", err)
	}
	select {
	case <-shutdown:
		t.Fatal("Shutdown called under a running call")
	default:
	}
	close(release)
	select {
	case <-shutdown: // the worker finishes the call, shuts NVML down and exits (goleak checks)
	case <-time.After(5 * time.Second):
		t.Fatal("no Shutdown after the hung call returned")
	}
}

// countingHandler counts log records per "field" attribute.
type countingHandler struct {
	mu     sync.Mutex
	counts map[string]int
}

func (h *countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *countingHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *countingHandler) WithGroup(string) slog.Handler            { return h }
func (h *countingHandler) Handle(_ context.Context, r slog.Record) error {
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "field" {
			h.mu.Lock()
			h.counts[a.Value.String()]++
			h.mu.Unlock()
		}
		return true
	})
	return nil
}

func TestFieldErrorLoggedOnce(t *testing.T) {
	s := newServer(t)
	var mu sync.Mutex
	failing := true
	for _, i := range []int{1, 2} {
		device(s, i).GetPcieReplayCounterFunc = func() (int, nvml.Return) {
			mu.Lock()
			defer mu.Unlock()
			if failing {
				return 0, nvml.ERROR_UNKNOWN
			}
			return 0, nvml.SUCCESS
		}
	}
	h := &countingHandler{counts: map[string]int{}}
	c, err := gpu.New(s, slog.New(h), gpu.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sample := func() {
		t.Helper()
		samples, _, err := c.Sample(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		if got := len(samples[1].FieldErrors); (got == 1) != failing {
			t.Errorf("gpu1 has %d field errors while failing=%v", got, failing)
		}
	}
	for range 3 {
		sample()
	}
	// Once per (gpu, field): gpu1 and gpu2.
	if got := h.counts["pcie_replay_count"]; got != 2 {
		t.Errorf("logged %d times after 3 samples, want 2", got)
	}
	// After the field reads again, a new failure is logged again.
	mu.Lock()
	failing = false
	mu.Unlock()
	sample()
	mu.Lock()
	failing = true
	mu.Unlock()
	sample()
	sample()
	if got := h.counts["pcie_replay_count"]; got != 4 {
		t.Errorf("logged %d times, want 4", got)
	}
}

func TestSampleContextCanceled(t *testing.T) {
	c := newCollector(t, newServer(t), gpu.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := c.Sample(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Sample = %v, want context.Canceled", err)
	}
}

func TestClosed(t *testing.T) {
	s := newServer(t)
	var shutdowns int
	s.ShutdownFunc = func() nvml.Return { shutdowns++; return nvml.SUCCESS }
	c, err := gpu.New(s, nil, gpu.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if shutdowns != 1 || len(s.InitCalls()) != 1 {
		t.Errorf("Init %d times, Shutdown %d times; want 1, 1", len(s.InitCalls()), shutdowns)
	}
	if _, _, err := c.Sample(context.Background()); !errors.Is(err, gpu.ErrClosed) {
		t.Errorf("Sample after Close = %v", err)
	}
	if err := c.RunEvents(context.Background(), make(chan gpu.HealthEvent)); !errors.Is(err, gpu.ErrClosed) {
		t.Errorf("RunEvents after Close = %v", err)
	}
}

func TestNewFails(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(s *server.Server)
		want   error
	}{
		{"init fails", func(s *server.Server) { s.InitFunc = func() nvml.Return { return nvml.ERROR_LIBRARY_NOT_FOUND } }, nvml.ERROR_LIBRARY_NOT_FOUND},
		{"device count fails", func(s *server.Server) {
			s.DeviceGetCountFunc = func() (int, nvml.Return) { return 0, nvml.ERROR_UNINITIALIZED }
		}, nvml.ERROR_UNINITIALIZED},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t)
			tt.mutate(s)
			if _, err := gpu.New(s, nil, gpu.Options{}); !errors.Is(err, tt.want) {
				t.Errorf("New = %v, want %v", err, tt.want)
			}
		})
	}
}

// eventSet yields the queued events, then times out until the test ends.
func eventSet(events []nvml.EventData) *mock.EventSet {
	var mu sync.Mutex
	return &mock.EventSet{
		WaitFunc: func(timeoutMS uint32) (nvml.EventData, nvml.Return) {
			mu.Lock()
			defer mu.Unlock()
			if len(events) == 0 {
				time.Sleep(time.Duration(timeoutMS) * time.Millisecond)
				return nvml.EventData{}, nvml.ERROR_TIMEOUT
			}
			ev := events[0]
			events = events[1:]
			return ev, nvml.SUCCESS
		},
		FreeFunc: func() nvml.Return { return nvml.SUCCESS },
	}
}

func TestRunEvents(t *testing.T) {
	s := newServer(t)
	set := eventSet([]nvml.EventData{
		{Device: s.Devices[3], EventType: nvml.EventTypeXidCriticalError, EventData: 79},
		{Device: s.Devices[1], EventType: nvml.EventTypeXidCriticalError, EventData: 13},
		{Device: s.Devices[6], EventType: nvml.EventTypeDoubleBitEccError},
	})
	s.EventSetCreateFunc = func() (nvml.EventSet, nvml.Return) { return set, nvml.SUCCESS }
	var regMu sync.Mutex
	registered := map[int]uint64{}
	for i := range s.Devices {
		device(s, i).RegisterEventsFunc = func(mask uint64, _ nvml.EventSet) nvml.Return {
			regMu.Lock()
			defer regMu.Unlock()
			registered[i] = mask
			return nvml.SUCCESS
		}
	}
	// A GPU without event support is skipped, not fatal.
	device(s, 7).GetSupportedEventTypesFunc = func() (uint64, nvml.Return) { return 0, nvml.ERROR_NOT_SUPPORTED }

	c := newCollector(t, s, gpu.Options{EventWaitTimeout: 10 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan gpu.HealthEvent)
	done := make(chan error, 1)
	go func() { done <- c.RunEvents(ctx, out) }()

	want := []struct {
		gpu   int
		kind  string
		code  int64
		class health.XIDClass
	}{
		{3, telemetry.KindXID, 79, health.XIDDrain},
		{1, telemetry.KindXID, 13, health.XIDApplication},
		{6, telemetry.KindECCUncorrected, 0, ""},
	}
	for _, w := range want {
		select {
		case ev := <-out:
			if ev.GPUIndex != w.gpu || ev.UUID != device(s, w.gpu).UUID || ev.Kind != w.kind || ev.Code != w.code || ev.Class != w.class {
				t.Errorf("event = %+v, want gpu%d %s %d %q", ev, w.gpu, w.kind, w.code, w.class)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no event, want %+v", w)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("RunEvents = %v, want nil after cancel", err)
	}
	if len(set.FreeCalls()) != 1 {
		t.Errorf("event set freed %d times, want 1", len(set.FreeCalls()))
	}
	regMu.Lock()
	defer regMu.Unlock()
	if len(registered) != 7 || registered[0] != nvml.EventTypeXidCriticalError|nvml.EventTypeDoubleBitEccError {
		t.Errorf("registered = %v, want gpus 0-6 with xid|dbe", registered)
	}
}

func TestRunEventsUnsupported(t *testing.T) {
	s := newServer(t)
	s.EventSetCreateFunc = func() (nvml.EventSet, nvml.Return) { return eventSet(nil), nvml.SUCCESS }
	for i := range s.Devices {
		device(s, i).GetSupportedEventTypesFunc = func() (uint64, nvml.Return) { return nvml.EventTypePState, nvml.SUCCESS }
	}
	c := newCollector(t, s, gpu.Options{})
	if err := c.RunEvents(context.Background(), make(chan gpu.HealthEvent)); !errors.Is(err, gpu.ErrNoEvents) {
		t.Errorf("RunEvents = %v, want ErrNoEvents", err)
	}
}

func checkVal[T comparable](t *testing.T, name string, got *T, want T) {
	t.Helper()
	if got == nil {
		t.Errorf("%s absent, want %v", name, want)
		return
	}
	if *got != want {
		t.Errorf("%s = %v, want %v", name, *got, want)
	}
}

func TestCloseStopsRunEvents(t *testing.T) {
	s := newServer(t)
	set := eventSet(nil)
	s.EventSetCreateFunc = func() (nvml.EventSet, nvml.Return) { return set, nvml.SUCCESS }
	for i := range s.Devices {
		device(s, i).RegisterEventsFunc = func(uint64, nvml.EventSet) nvml.Return { return nvml.SUCCESS }
	}
	shutdownAfterFree := false
	s.ShutdownFunc = func() nvml.Return {
		shutdownAfterFree = len(set.FreeCalls()) == 1
		return nvml.SUCCESS
	}
	c, err := gpu.New(s, nil, gpu.Options{EventWaitTimeout: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.RunEvents(context.Background(), make(chan gpu.HealthEvent)) }()
	for len(set.WaitCalls()) == 0 { // until RunEvents is waiting
		time.Sleep(time.Millisecond)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := <-done; !errors.Is(err, gpu.ErrClosed) {
		t.Errorf("RunEvents = %v, want ErrClosed", err)
	}
	if !shutdownAfterFree {
		t.Error("NVML shut down before the event set was freed")
	}
}
