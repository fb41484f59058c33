package gpu_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/sopilot/sopilot/internal/agent/gpu"
)

// TestRealNVML runs the collector against the machine's own NVML. It is
// skipped where libnvidia-ml.so is absent (CI without GPUs, laptops).
func TestRealNVML(t *testing.T) {
	c, err := gpu.New(nvml.New(), nil, gpu.Options{})
	if errors.Is(err, nvml.ERROR_LIBRARY_NOT_FOUND) || errors.Is(err, nvml.ERROR_DRIVER_NOT_LOADED) {
		t.Skipf("no NVML on this machine (%v): run on a GPU node to exercise the real library", err)
	}
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	defer func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}()
	ctx := context.Background()
	inv, err := c.Inventory(ctx)
	if err != nil {
		t.Fatalf("Inventory: %v", err)
	}
	t.Logf("inventory: %+v", inv)
	if len(inv.GPUs) == 0 || inv.DriverVersion == "" {
		t.Fatalf("inventory has no GPUs or driver version: %+v", inv)
	}
	for _, g := range inv.GPUs {
		if !strings.HasPrefix(g.UUID, "GPU-") || g.MemoryTotalBytes <= 0 || g.PCIBusID == "" {
			t.Errorf("GPU %d = %+v", g.Index, g)
		}
	}
	samples, events, err := c.Sample(ctx)
	if err != nil {
		t.Fatalf("Sample: %v", err)
	}
	if len(samples)+len(events) != len(inv.GPUs) {
		t.Errorf("%d samples and %d events for %d GPUs", len(samples), len(events), len(inv.GPUs))
	}
	for _, s := range samples {
		t.Logf("gpu%d: field errors %v", s.Index, s.FieldErrors)
		if s.MemoryUsedBytes == nil || s.TemperatureCelsius == nil || s.PowerMilliwatts == nil {
			t.Errorf("gpu%d lacks memory, temperature or power: %+v", s.Index, s)
		}
	}
}
