package nvmlsim

import (
	"context"
	"net/http/httptest"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/sopilot/sopilot/internal/agent/gpu"
)

// callAll calls every method of iface (an interface type) on v with zero
// arguments, except that nvml.Device and nvml.EventSet arguments get dev and
// set. It returns each method's last result when that is an nvml.Return.
// A panic fails the test, naming the method.
func callAll(t *testing.T, v any, iface reflect.Type, dev nvml.Device, set nvml.EventSet, skip ...string) map[string]nvml.Return {
	t.Helper()
	skipped := map[string]bool{}
	for _, s := range skip {
		skipped[s] = true
	}
	rv := reflect.ValueOf(v)
	rets := map[string]nvml.Return{}
	for i := range iface.NumMethod() {
		m := iface.Method(i)
		if skipped[m.Name] {
			continue
		}
		mv := rv.MethodByName(m.Name)
		mt := mv.Type()
		n := mt.NumIn()
		if mt.IsVariadic() {
			n-- // Call builds the empty variadic slice
		}
		args := make([]reflect.Value, n)
		for k := range args {
			switch at := mt.In(k); at {
			case reflect.TypeFor[nvml.Device]():
				args[k] = reflect.ValueOf(&dev).Elem()
			case reflect.TypeFor[nvml.EventSet]():
				args[k] = reflect.ValueOf(&set).Elem()
			default:
				args[k] = reflect.Zero(at)
			}
		}
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("%s panicked: %v", m.Name, r)
				}
			}()
			out := mv.Call(args)
			if len(out) > 0 && out[len(out)-1].Type() == returnType {
				rets[m.Name] = out[len(out)-1].Interface().(nvml.Return)
			}
		}()
	}
	return rets
}

var (
	interfaceType = reflect.TypeFor[nvml.Interface]()
	deviceType    = reflect.TypeFor[nvml.Device]()
	eventSetType  = reflect.TypeFor[nvml.EventSet]()
)

// collectorCalls are the device methods the collector calls.
var collectorCalls = []string{
	"GetUUID", "GetName", "GetMemoryInfo", "GetPciInfo", "GetUtilizationRates", "GetTemperature",
	"GetPowerUsage", "GetEnforcedPowerLimit", "GetTotalEnergyConsumption", "GetClockInfo",
	"GetCurrentClocksEventReasons", "GetTotalEccErrors", "GetRemappedRows", "GetPcieReplayCounter",
	"GetFieldValues", "GetComputeRunningProcesses", "GetSupportedEventTypes", "RegisterEvents",
}

func TestNoPanics(t *testing.T) {
	s := New(Options{})
	dev := nvml.Device(s.devices[0])

	// Before Init every device call is refused.
	rets := callAll(t, dev, deviceType, nil, nil)
	for name, r := range rets {
		if r != nvml.ERROR_UNINITIALIZED {
			t.Errorf("before Init: %s = %v, want ERROR_UNINITIALIZED", name, r)
		}
	}
	callAll(t, s, interfaceType, dev, nil, "Init", "InitWithFlags", "Shutdown")
	if _, r := s.DeviceGetCount(); r != nvml.ERROR_UNINITIALIZED {
		t.Errorf("DeviceGetCount before Init = %v", r)
	}
	if _, r := s.EventSetCreate(); r != nvml.ERROR_UNINITIALIZED {
		t.Errorf("EventSetCreate before Init = %v", r)
	}

	if r := s.Init(); r != nvml.SUCCESS {
		t.Fatal(r)
	}
	set, r := s.EventSetCreate()
	if r != nvml.SUCCESS {
		t.Fatal(r)
	}
	rets = callAll(t, dev, deviceType, nil, set)
	for _, name := range collectorCalls {
		r, ok := rets[name]
		if !ok {
			t.Errorf("%s is not a Device method", name)
			continue
		}
		// With zero arguments some calls are invalid, but none unsupported.
		if r != nvml.SUCCESS && r != nvml.ERROR_INVALID_ARGUMENT {
			t.Errorf("%s = %v, want it simulated", name, r)
		}
	}
	unsupported := 0
	for _, r := range rets {
		if r == nvml.ERROR_NOT_SUPPORTED {
			unsupported++
		}
	}
	if unsupported < 100 {
		t.Errorf("only %d device methods answer ERROR_NOT_SUPPORTED; the fallback is not in place", unsupported)
	}
	callAll(t, s, interfaceType, dev, set, "Init", "InitWithFlags", "Shutdown", "EventSetFree")
	callAll(t, set, eventSetType, dev, nil, "Free")

	// Library-level forms of device calls reach the device.
	if uuid, r := s.DeviceGetUUID(dev); r != nvml.SUCCESS || uuid != s.gpus[0].uuid {
		t.Errorf("DeviceGetUUID = %q, %v", uuid, r)
	}
	if _, r := s.DeviceGetUUID(nil); r != nvml.ERROR_INVALID_ARGUMENT {
		t.Errorf("DeviceGetUUID(nil) = %v, want ERROR_INVALID_ARGUMENT", r)
	}
	if _, r := s.EventSetWait(set, 0); r != nvml.ERROR_TIMEOUT {
		t.Errorf("EventSetWait = %v, want ERROR_TIMEOUT", r)
	}
	if r := set.Free(); r != nvml.SUCCESS {
		t.Errorf("Free = %v", r)
	}
	if r := set.Free(); r != nvml.ERROR_INVALID_ARGUMENT {
		t.Errorf("second Free = %v", r)
	}
	if _, r := set.Wait(0); r != nvml.ERROR_UNINITIALIZED {
		t.Errorf("Wait after Free = %v", r)
	}
	if err := s.Extensions().LookupSymbol("nvmlInit"); err == nil {
		t.Error("LookupSymbol succeeded")
	}

	// A lost GPU fails every call.
	if err := s.Inject(Fault{GPU: 0, Kind: KindGPULost}); err != nil {
		t.Fatal(err)
	}
	for name, r := range callAll(t, dev, deviceType, nil, nil) {
		if r != nvml.ERROR_GPU_IS_LOST {
			t.Errorf("lost GPU: %s = %v, want ERROR_GPU_IS_LOST", name, r)
		}
	}
	if r := s.Shutdown(); r != nvml.SUCCESS {
		t.Errorf("Shutdown = %v", r)
	}
	if r := s.Shutdown(); r != nvml.ERROR_UNINITIALIZED {
		t.Errorf("second Shutdown = %v", r)
	}
}

func TestHandles(t *testing.T) {
	s := New(Options{NodeName: "n"})
	s.Init()
	defer s.Shutdown()
	for i, g := range s.gpus {
		for name, lookup := range map[string]func() (nvml.Device, nvml.Return){
			"index":  func() (nvml.Device, nvml.Return) { return s.DeviceGetHandleByIndex(i) },
			"uuid":   func() (nvml.Device, nvml.Return) { return s.DeviceGetHandleByUUID(g.uuid) },
			"bus id": func() (nvml.Device, nvml.Return) { return s.DeviceGetHandleByPciBusId(g.busID) },
			"serial": func() (nvml.Device, nvml.Return) { return s.DeviceGetHandleBySerial(g.serial) },
		} {
			d, r := lookup()
			if r != nvml.SUCCESS || d != nvml.Device(s.devices[i]) {
				t.Errorf("gpu %d by %s = %v, %v", i, name, d, r)
			}
		}
	}
	if _, r := s.DeviceGetHandleByIndex(8); r != nvml.ERROR_INVALID_ARGUMENT {
		t.Errorf("index 8 = %v", r)
	}
	if _, r := s.DeviceGetHandleByUUID("GPU-nope"); r != nvml.ERROR_NOT_FOUND {
		t.Errorf("unknown uuid = %v", r)
	}
	p, _ := s.devices[2].GetPciInfo()
	if cString(p.BusId[:]) != "00005151:3A:00.0" || cString(p.BusIdLegacy[:]) != "5151:3A:00.0" || p.Domain != 0x5151 || p.Bus != 0x3a {
		t.Errorf("pci info = %q %q %#x %#x", cString(p.BusId[:]), cString(p.BusIdLegacy[:]), p.Domain, p.Bus)
	}
}

func TestManyGPUs(t *testing.T) {
	s := New(Options{GPUs: 20})
	seen := map[string]bool{}
	for _, g := range s.gpus {
		seen[g.busID] = true
		seen[g.uuid] = true
		seen[g.serial] = true
	}
	if len(seen) != 60 {
		t.Errorf("bus ids, UUIDs and serials of 20 GPUs are not distinct: %d values", len(seen))
	}
	if got := s.gpus[9].busID; got != "00005152:2A:00.0" {
		t.Errorf("GPU 9 bus id = %q, want 00005152:2A:00.0", got)
	}
}

func cString(b []int8) string {
	out := make([]byte, 0, len(b))
	for _, c := range b {
		if c == 0 {
			break
		}
		out = append(out, byte(c))
	}
	return string(out)
}

// TestConcurrent runs sampling, events, fault injection, allocation
// changes and the admin API at once; run it with -race.
func TestConcurrent(t *testing.T) {
	clk := newClock()
	s := newSim(t, clk)
	c := newCollector(t, s, clk)
	events := runEvents(t, s, c)
	h := s.Handler()

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	var wg sync.WaitGroup
	loop := func(fn func(i int)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				fn(i)
				time.Sleep(50 * time.Microsecond) // let every loop run on small machines
			}
		}()
	}
	samples := 0
	loop(func(int) {
		if _, _, err := c.Sample(ctx); err != nil && ctx.Err() == nil {
			t.Errorf("Sample: %v", err)
		}
		samples++
	})
	loop(func(int) {
		if _, err := c.Inventory(ctx); err != nil && ctx.Err() == nil {
			t.Errorf("Inventory: %v", err)
		}
	})
	injects := 0
	loop(func(i int) {
		injects++
		kinds := []Fault{{Kind: KindXID, Code: 79}, {Kind: KindECC}, {Kind: KindThermal}, {Kind: KindPower}, {Kind: KindGPULost}, {Kind: KindRowRemapFailure}}
		f := kinds[i%len(kinds)]
		f.GPU = i % 8
		if err := s.Inject(f); err != nil {
			t.Errorf("Inject: %v", err)
		}
		if i%3 == 0 {
			s.Clear(i % 8)
		}
	})
	loop(func(i int) { s.SetAllocation(map[int][]int32{i % 8: {int32(i)}}) })
	loop(func(int) { clk.Advance(time.Millisecond) })
	loop(func(i int) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/faults", nil))
		if rec.Code != 200 {
			t.Errorf("GET /faults: %d", rec.Code)
		}
		_ = s.Faults()
		_ = s.Allocation()
	})
	got := 0
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-events:
				got++
			case <-ctx.Done():
				return
			}
		}
	}()
	wg.Wait()
	if samples == 0 || got == 0 {
		t.Errorf("%d samples, %d events; want some of each", samples, got)
	}
	t.Logf("%d samples, %d events, %d injects", samples, got, injects)
	s.ClearAll()
}

// BenchmarkSample is one collector Sample of 8 busy simulated GPUs.
func BenchmarkSample(b *testing.B) {
	s := New(Options{})
	c, err := gpu.New(s, nil, gpu.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	s.SetAllocation(map[int][]int32{0: {1}, 1: {2}, 2: {3}, 3: {4}, 4: {5}, 5: {6}, 6: {7}, 7: {8}})
	ctx := context.Background()
	for b.Loop() {
		if _, _, err := c.Sample(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
