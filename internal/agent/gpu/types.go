package gpu

import (
	"fmt"

	"github.com/sopilot/sopilot/internal/health"
	"github.com/sopilot/sopilot/internal/telemetry"
)

// Inventory is what the agent reports about its GPUs when it says Hello.
type Inventory struct {
	DriverVersion     string
	CUDADriverVersion string // e.g. "12.4"
	NVMLVersion       string
	GPUs              []GPUInfo
	// Simulated is set by the caller when the NVML library is a simulation.
	Simulated bool
	// FieldErrors lists values that could not be read (not those a GPU lacks).
	FieldErrors []FieldError
}

// GPUInfo describes one GPU; it maps onto agentpb.GpuInfo.
type GPUInfo struct {
	Index            int
	UUID             string
	Model            string
	MemoryTotalBytes int64
	PCIBusID         string
}

// Sample is one GPU's telemetry at one instant: what goes on the wire
// (telemetry.GPUSample), and what the agent keeps for itself. A nil field
// is one the GPU does not report.
type Sample struct {
	telemetry.GPUSample
	MemoryTotalBytes *int64
	// Processes is nil when the GPU cannot list them, empty when it runs none.
	Processes []Process

	FieldErrors []FieldError
}

// Process is a compute process on a GPU.
type Process struct {
	PID int32
	// MemoryUsedBytes is nil when NVML cannot attribute memory to the process.
	MemoryUsedBytes *int64
}

// FieldError is a value that NVML failed to read for a reason other than
// "not supported".
type FieldError struct {
	Field string
	Err   error
}

func (e FieldError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e FieldError) Unwrap() error { return e.Err }

// HealthEvent is hardware evidence about one GPU: the event that goes on
// the wire, and which GPU and class it is for the agent's own logs.
type HealthEvent struct {
	telemetry.HealthEvent
	GPUIndex int
	UUID     string
	Class    health.XIDClass // for XIDs
}

func component(index int) string { return fmt.Sprintf("gpu%d", index) }
