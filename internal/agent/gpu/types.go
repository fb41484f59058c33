package gpu

import (
	"fmt"
	"time"

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

// Sample is one GPU's telemetry at one instant; it maps onto agentpb.GpuSample.
// A nil field is one the GPU does not report.
type Sample struct {
	Time  time.Time
	Index int
	UUID  string

	SMUtilizationPercent     *float64
	MemoryUtilizationPercent *float64
	MemoryUsedBytes          *int64
	MemoryTotalBytes         *int64
	TemperatureCelsius       *float64
	MemoryTemperatureCelsius *float64
	PowerMilliwatts          *int64
	PowerLimitMilliwatts     *int64
	EnergyMillijoules        *uint64
	SMClockMHz               *int32
	MemoryClockMHz           *int32
	// ThrottleReasons is NVML's clocks event reasons bitmask
	// (nvml.ClocksEventReason*).
	ThrottleReasons         *uint64
	ECCVolatileCorrected    *uint64
	ECCVolatileUncorrected  *uint64
	ECCAggregateCorrected   *uint64
	ECCAggregateUncorrected *uint64
	RowRemapPending         *bool
	RowRemapFailure         *bool
	PCIeReplayCount         *uint64
	// NVLinkErrorCount is the sum over all links of the CRC flit, CRC data,
	// replay and recovery error counters.
	NVLinkErrorCount *uint64
	// RecoveryAction is what the driver says the GPU needs (NVML R570+).
	// Not in agentpb.GpuSample yet.
	RecoveryAction *telemetry.RecoveryAction
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

// HealthEvent is hardware evidence about one GPU; it maps onto
// agentpb.HealthEvent.
type HealthEvent struct {
	Time      time.Time
	Component string // "gpu3"
	GPUIndex  int
	UUID      string
	Kind      string          // telemetry.Kind*
	Code      int64           // the XID for KindXID
	Class     health.XIDClass // for XIDs
	Message   string
}

func component(index int) string { return fmt.Sprintf("gpu%d", index) }
