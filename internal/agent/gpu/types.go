package gpu

import (
	"fmt"
	"time"
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
	RecoveryAction *RecoveryAction
	// Processes is nil when the GPU cannot list them, empty when it runs none.
	Processes []Process

	FieldErrors []FieldError
}

// RecoveryAction is NVML's GPU recovery action (FI_DEV_GET_GPU_RECOVERY_ACTION).
type RecoveryAction string

// Recovery actions, named after nvmlDeviceGpuRecoveryAction_t.
const (
	RecoveryNone          RecoveryAction = "none"
	RecoveryGPUReset      RecoveryAction = "gpu_reset"
	RecoveryNodeReboot    RecoveryAction = "node_reboot"
	RecoveryDrainP2P      RecoveryAction = "drain_p2p"
	RecoveryDrainAndReset RecoveryAction = "drain_and_reset"
	RecoveryIMEXDomain    RecoveryAction = "recover_imex_domain"
	RecoveryBusReset      RecoveryAction = "bus_reset"
	RecoverySystemReboot  RecoveryAction = "system_reboot"
)

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

// Event kinds.
const (
	KindXID            = "xid"
	KindGPULost        = "gpu_lost"
	KindECCUncorrected = "ecc_uncorrected"
)

// HealthEvent is hardware evidence about one GPU; it maps onto
// agentpb.HealthEvent.
type HealthEvent struct {
	Time      time.Time
	Component string // "gpu3"
	GPUIndex  int
	UUID      string
	Kind      string
	Code      int64 // the XID for KindXID
	Class     Class
	Message   string
}

// Class says what an XID (or other event) calls for.
type Class string

const (
	// ClassApplication: record against the run; drain only if it repeats
	// across jobs.
	ClassApplication Class = "application"
	// ClassDrain: the node should be drained.
	ClassDrain Class = "drain"
	// ClassResetWhenIdle: reset the GPU once no job runs on it.
	ClassResetWhenIdle Class = "reset_when_idle"
	// ClassUnknown: an XID outside the known lists.
	ClassUnknown Class = "unknown"
)

// ClassifyXID maps an XID to its class (product brief, "Facts for the health
// side").
func ClassifyXID(xid uint64) Class {
	switch xid {
	case 13, 31, 43, 45, 68:
		return ClassApplication
	case 48, 64, 74, 79, 95, 119, 120:
		return ClassDrain
	case 63, 92, 94:
		return ClassResetWhenIdle
	default:
		return ClassUnknown
	}
}

func component(index int) string { return fmt.Sprintf("gpu%d", index) }
