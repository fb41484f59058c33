// Package telemetry is the vocabulary of what node agents report, as the
// controller sees it: GPU and InfiniBand samples and health events. The
// controller converts the wire messages (agentpb) into these types once, at
// its edge (proto.go); the health rules and the monitor read only these.
package telemetry

import "time"

// Health event kinds.
const (
	KindXID            = "xid"
	KindGPULost        = "gpu_lost"
	KindECCUncorrected = "ecc_uncorrected"
)

// HealthEvent is hardware evidence about one component at one instant.
type HealthEvent struct {
	Time      time.Time
	Component string // "gpu3", "ib:mlx5_0/1"
	Kind      string // KindXID, KindGPULost, …
	Code      int64  // the XID for KindXID
	Message   string
}

// GPUSample is one GPU's telemetry at one instant. A nil field is one the
// GPU does not report.
type GPUSample struct {
	Time  time.Time
	Index int
	UUID  string
	// SlurmJobID is the Slurm job of the first of the GPU's processes
	// that belongs to one ("" when none does).
	SlurmJobID string

	SMUtilizationPercent     *float64
	MemoryUtilizationPercent *float64
	MemoryUsedBytes          *int64
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
	// Not on the wire yet.
	RecoveryAction *RecoveryAction
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

// Inventory is what a node's agent says it has, in its Hello.
type Inventory struct {
	GPUs          []GPUInfo
	IBPorts       []IBPortInfo
	DriverVersion string
	CUDAVersion   string
	NCCLVersion   string
	// Simulated: the GPUs come from the simulated NVML backend.
	Simulated bool
}

// GPUInfo is one GPU of an inventory.
type GPUInfo struct {
	Index            int
	UUID             string
	Model            string
	MemoryTotalBytes int64
}

// IBPortInfo is one InfiniBand port of an inventory.
type IBPortInfo struct {
	Device    string
	Port      int
	RateGbps  int64
	LinkLayer string
}

// IBCounters are the cumulative InfiniBand port counters the health rules
// read.
type IBCounters struct {
	LinkDowned                   uint64
	ExcessiveBufferOverrunErrors uint64
	LocalLinkIntegrityErrors     uint64
	SymbolError                  uint64
	PortRcvErrors                uint64
}

// IBPortSample is one reading of one IB port.
type IBPortSample struct {
	Time      time.Time
	Device    string // "mlx5_0"
	Port      int
	State     string // "ACTIVE", "DOWN", "INIT", …
	PhysState string // "LinkUp", "Polling", "Disabled", …
	RateGbps  int64
	Counters  IBCounters
}

// Up reports whether the port is usable: logical state ACTIVE and physical
// state LinkUp (an empty PhysState is not held against it).
func (s IBPortSample) Up() bool {
	return s.State == "ACTIVE" && (s.PhysState == "" || s.PhysState == "LinkUp")
}

// Progress is a training run's latest progress as its job reported it.
type Progress struct {
	RunID            string
	Time             time.Time
	Step             int64
	TotalSteps       int64
	Loss             float64
	SamplesPerSecond float64
	// Metrics is shared with the wire message: copy before keeping it.
	Metrics map[string]float64
	// Checkpoint is the newest checkpoint among the lines this update sums
	// up; nil when none reported one.
	Checkpoint *Checkpoint
}

// Checkpoint is a checkpoint a job reported in its progress file.
type Checkpoint struct {
	Step int64
	Path string
	// Time is when the job wrote the checkpoint line.
	Time time.Time
}

// Batch is one agent batch. A Batch filled by SetFromProto shares its
// slices with the next one: whoever keeps part of it copies it.
type Batch struct {
	Sequence       uint64
	GPUSamples     []GPUSample
	IBSamples      []IBPortSample
	Events         []HealthEvent
	Progress       []Progress
	DroppedSamples uint64
}
