package telemetry_test

import (
	"math"
	"strings"
	"testing"

	"github.com/sopilot/sopilot/internal/telemetry"
	"github.com/sopilot/sopilot/pkg/agentpb"
)

func f64(v float64) *float64 { return &v }

func TestCheckValuesNamesTheField(t *testing.T) {
	tests := []struct {
		name string
		b    *agentpb.Batch
		want string // "" when valid
	}{
		{"valid", &agentpb.Batch{GpuSamples: []*agentpb.GpuSample{{SmUtilizationPercent: f64(50), TemperatureCelsius: f64(40)}},
			Progress: []*agentpb.ProgressUpdate{{Loss: 0.5, SamplesPerSecond: 100, Metrics: map[string]float64{"acc": 0.9}}}}, ""},
		{"absent fields", &agentpb.Batch{GpuSamples: []*agentpb.GpuSample{{}}}, ""},
		{"NaN sm utilization", &agentpb.Batch{GpuSamples: []*agentpb.GpuSample{{SmUtilizationPercent: f64(math.NaN())}}}, "batch.gpu_samples[0].sm_utilization_percent: NaN"},
		{"memory utilization over 100", &agentpb.Batch{GpuSamples: []*agentpb.GpuSample{{}, {MemoryUtilizationPercent: f64(101)}}}, "batch.gpu_samples[1].memory_utilization_percent: 101 not in [0, 100]"},
		{"+Inf temperature", &agentpb.Batch{GpuSamples: []*agentpb.GpuSample{{TemperatureCelsius: f64(math.Inf(1))}}}, "batch.gpu_samples[0].temperature_celsius: +Inf"},
		{"-Inf memory temperature", &agentpb.Batch{GpuSamples: []*agentpb.GpuSample{{MemoryTemperatureCelsius: f64(math.Inf(-1))}}}, "batch.gpu_samples[0].memory_temperature_celsius: -Inf"},
		{"NaN loss", &agentpb.Batch{Progress: []*agentpb.ProgressUpdate{{Loss: math.NaN()}}}, "batch.progress[0].loss: NaN"},
		{"Inf samples per second", &agentpb.Batch{Progress: []*agentpb.ProgressUpdate{{SamplesPerSecond: math.Inf(1)}}}, "batch.progress[0].samples_per_second: +Inf"},
		{"checkpoint", &agentpb.Batch{Progress: []*agentpb.ProgressUpdate{{Checkpoint: &agentpb.ProgressCheckpoint{Step: 3, Path: "/c/3.pt"}}}}, ""},
		{"empty checkpoint path", &agentpb.Batch{Progress: []*agentpb.ProgressUpdate{{Checkpoint: &agentpb.ProgressCheckpoint{Step: 3}}}}, "batch.progress[0].checkpoint.path: empty"},
		{"negative checkpoint step", &agentpb.Batch{Progress: []*agentpb.ProgressUpdate{{Checkpoint: &agentpb.ProgressCheckpoint{Step: -1, Path: "/c"}}}}, "batch.progress[0].checkpoint.step: -1 is negative"},
		{"checkpoint path with a newline", &agentpb.Batch{Progress: []*agentpb.ProgressUpdate{{Checkpoint: &agentpb.ProgressCheckpoint{Path: "/c\nx"}}}}, "batch.progress[0].checkpoint.path: \"/c\\nx\" has control characters"},
		{"NaN metric", &agentpb.Batch{Progress: []*agentpb.ProgressUpdate{{Metrics: map[string]float64{"acc": math.NaN()}}}}, `batch.progress[0].metrics["acc"]: NaN`},
		{"long kind", &agentpb.Batch{HealthEvents: []*agentpb.HealthEvent{{Kind: strings.Repeat("k", 65)}}}, "batch.health_events[0].kind: 65 bytes, at most 64"},
		{"long message", &agentpb.Batch{HealthEvents: []*agentpb.HealthEvent{{Kind: "xid", Message: strings.Repeat("m", 1025)}}}, "batch.health_events[0].message: 1025 bytes, at most 1024"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := telemetry.CheckValues(tt.b)
			if tt.want == "" {
				if errs != nil {
					t.Fatalf("CheckValues = %q, want none", errs)
				}
				return
			}
			if len(errs) != 1 || !strings.HasPrefix(errs[0], tt.want) {
				t.Fatalf("CheckValues = %q, want one starting %q", errs, tt.want)
			}
		})
	}
}

func TestCheckCommandResult(t *testing.T) {
	for _, v := range []float64{math.NaN(), math.Inf(1), -1} {
		if err := telemetry.CheckCommandResult(&agentpb.CommandResult{BusBandwidthGbps: v}); err == nil || !strings.Contains(err.Error(), "bus_bandwidth_gbps") {
			t.Errorf("bus bandwidth %v: %v, want an error naming the field", v, err)
		}
	}
	if err := telemetry.CheckCommandResult(&agentpb.CommandResult{BusBandwidthGbps: 350}); err != nil {
		t.Error(err)
	}
}

func TestCheckValuesDoesNotAllocate(t *testing.T) {
	b := &agentpb.Batch{GpuSamples: []*agentpb.GpuSample{{SmUtilizationPercent: f64(50), TemperatureCelsius: f64(40), MemoryUtilizationPercent: f64(3)}}}
	if n := testing.AllocsPerRun(100, func() { _ = telemetry.CheckValues(b) }); n != 0 {
		t.Errorf("CheckValues allocates %v times on a valid batch", n)
	}
}
