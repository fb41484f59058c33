package telemetry

import (
	"fmt"
	"math"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/sopilot/sopilot/pkg/agentpb"
)

// Limits on the strings of a health event: agents write short ones ("XID
// 79 on gpu3 (GPU-…): drain"); the controller keeps events as evidence,
// so their size bounds its memory per node.
const (
	MaxEventKindBytes    = 64
	MaxEventMessageBytes = 1024
)

// CheckValues checks every numeric field of a wire batch: floating-point
// values are finite (no NaN, no ±Inf) and percentages lie in [0, 100];
// health events' kinds and messages are within their limits. It returns
// one line per bad field, naming it ("batch.gpu_samples[2].temperature_celsius:
// NaN is not a finite number"), at most one per sample or event list, and
// nil without allocating when all is well: it runs on every batch.
func CheckValues(b *agentpb.Batch) []string {
	var errs []string
	for i, g := range b.GetGpuSamples() {
		if e := checkGPU(g); e != "" {
			errs = append(errs, fmt.Sprintf("batch.gpu_samples[%d].%s", i, e))
			break
		}
	}
	for i, p := range b.GetProgress() {
		if e := checkProgress(p); e != "" {
			errs = append(errs, fmt.Sprintf("batch.progress[%d].%s", i, e))
			break
		}
	}
	for i, e := range b.GetHealthEvents() {
		if n := len(e.GetKind()); n > MaxEventKindBytes {
			errs = append(errs, fmt.Sprintf("batch.health_events[%d].kind: %d bytes, at most %d", i, n, MaxEventKindBytes))
			break
		}
		if n := len(e.GetMessage()); n > MaxEventMessageBytes {
			errs = append(errs, fmt.Sprintf("batch.health_events[%d].message: %d bytes, at most %d", i, n, MaxEventMessageBytes))
			break
		}
	}
	return errs
}

func checkGPU(g *agentpb.GpuSample) string {
	for _, f := range [...]struct {
		name    string
		v       *float64
		percent bool
	}{
		{"sm_utilization_percent", g.SmUtilizationPercent, true},
		{"memory_utilization_percent", g.MemoryUtilizationPercent, true},
		{"temperature_celsius", g.TemperatureCelsius, false},
		{"memory_temperature_celsius", g.MemoryTemperatureCelsius, false},
	} {
		if f.v == nil {
			continue
		}
		if e := finite(f.name, *f.v); e != "" {
			return e
		}
		if f.percent && (*f.v < 0 || *f.v > 100) {
			return fmt.Sprintf("%s: %v not in [0, 100]", f.name, *f.v)
		}
	}
	return ""
}

func checkProgress(p *agentpb.ProgressUpdate) string {
	if e := finite("loss", p.GetLoss()); e != "" {
		return e
	}
	if e := finite("samples_per_second", p.GetSamplesPerSecond()); e != "" {
		return e
	}
	for k, v := range p.GetMetrics() {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Sprintf("metrics[%q]: %v is not a finite number", k, v)
		}
	}
	if c := p.GetCheckpoint(); c != nil {
		return checkCheckpoint(c)
	}
	return ""
}

// MaxCheckpointPathBytes is the longest checkpoint path a progress update
// may carry (the agent's progress parser holds lines to the same limit).
const MaxCheckpointPathBytes = 4096

// checkCheckpoint holds a checkpoint to the progress file's rules: its path
// becomes an environment variable of the run's next job.
func checkCheckpoint(c *agentpb.ProgressCheckpoint) string {
	path := c.GetPath()
	switch {
	case c.GetStep() < 0:
		return fmt.Sprintf("checkpoint.step: %d is negative", c.GetStep())
	case path == "":
		return "checkpoint.path: empty"
	case len(path) > MaxCheckpointPathBytes:
		return fmt.Sprintf("checkpoint.path: %d bytes, longer than the limit of %d", len(path), MaxCheckpointPathBytes)
	case !utf8.ValidString(path):
		return "checkpoint.path: not valid UTF-8"
	case strings.ContainsFunc(path, unicode.IsControl):
		return fmt.Sprintf("checkpoint.path: %q has control characters", path)
	}
	return ""
}

func finite(name string, v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return fmt.Sprintf("%s: %v is not a finite number", name, v)
	}
	return ""
}

// CheckCommandResult checks a command result's numbers.
func CheckCommandResult(r *agentpb.CommandResult) error {
	if e := finite("command_result.bus_bandwidth_gbps", r.GetBusBandwidthGbps()); e != "" {
		return fmt.Errorf("%s", e)
	}
	if v := r.GetBusBandwidthGbps(); v < 0 {
		return fmt.Errorf("command_result.bus_bandwidth_gbps: %v is negative", v)
	}
	return nil
}
