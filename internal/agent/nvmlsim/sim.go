package nvmlsim

import (
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"sort"
	"sync"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
)

// Version strings the simulation reports. Each says it is simulated.
const (
	// DriverVersion is what SystemGetDriverVersion returns.
	DriverVersion = "570.00-sim"
	// NVMLVersion is what SystemGetNVMLVersion returns.
	NVMLVersion = "12.570.00-sim"
	// CUDADriverVersion is what SystemGetCudaDriverVersion returns (12.8).
	CUDADriverVersion = 12080
	// UUIDPrefix starts every simulated GPU UUID ("51m" reads "sim").
	UUIDPrefix = "GPU-51m0"
	// PCIDomain is the PCI domain of the first eight simulated GPUs (the
	// next eight are in PCIDomain+1, and so on); real systems put their
	// GPUs in domain 0.
	PCIDomain = 0x5151
)

// Defaults for Options.
const (
	DefaultGPUs                 = 8
	DefaultModel                = "NVIDIA H200 (simulated)"
	DefaultMemoryTotalBytes     = 143771 * mib // what a real H200 reports
	DefaultPowerLimitMilliwatts = 700_000
)

const mib = 1 << 20

// Clocks in MHz, as an H200 SXM reports them.
const (
	smClockBusy     = 1980
	smClockIdle     = 345
	smClockThermal  = 1410
	smClockPowerBrk = 840
	memClock        = 3201
	videoClockBusy  = 1755
	videoClockIdle  = 765
	videoClockMax   = 1965
)

// Seconds each value takes to move about 63 % of the way to its target.
const (
	tauUtil   = 1.0
	tauMemory = 2.0
	tauPower  = 1.5
	tauTemp   = 8.0
)

// Options configure a Sim. The zero value is usable.
type Options struct {
	// GPUs is the number of simulated GPUs (default 8).
	GPUs int
	// Model is the name every GPU reports (default "NVIDIA H200 (simulated)").
	Model string
	// MemoryTotalBytes is each GPU's memory (default 143771 MiB, an H200).
	MemoryTotalBytes uint64
	// PowerLimitMilliwatts is each GPU's enforced power limit (default 700 W).
	PowerLimitMilliwatts uint32
	// Seed makes the noise deterministic: two Sims with the same Options,
	// clock and call sequence report the same values.
	Seed int64
	// Now is the clock (default time.Now). Telemetry moves with it.
	Now func() time.Time
	// NodeName makes UUIDs and serial numbers distinct per node.
	NodeName string
}

func (o Options) withDefaults() Options {
	if o.GPUs <= 0 {
		o.GPUs = DefaultGPUs
	}
	if o.Model == "" {
		o.Model = DefaultModel
	}
	if o.MemoryTotalBytes == 0 {
		o.MemoryTotalBytes = DefaultMemoryTotalBytes
	}
	if o.PowerLimitMilliwatts == 0 {
		o.PowerLimitMilliwatts = DefaultPowerLimitMilliwatts
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Sim is a simulated NVML library: an nvml.Interface whose GPUs follow the
// allocation set with SetAllocation and the faults injected with Inject.
// Methods outside the simulated set return nvml.ERROR_NOT_SUPPORTED. A Sim
// is safe for concurrent use.
type Sim struct {
	nvmlInterface // fallback for methods the simulation does not model

	opts    Options
	devices []*device

	mu    sync.Mutex
	inits int // Init calls not yet matched by Shutdown
	rng   *rand.Rand
	gpus  []*gpuState
	sets  map[*eventSet]struct{}
}

var _ nvml.Interface = (*Sim)(nil)

// gpuState is one GPU: identity, per-GPU character, smoothed telemetry,
// counters and faults. Guarded by Sim.mu.
type gpuState struct {
	index  int
	uuid   string
	serial string
	domain uint32
	bus    uint32
	busID  string
	pids   []int32

	// Per-GPU character, drawn once: where in the plausible ranges this
	// GPU settles.
	busySM, busyMemUtil, busyMemFrac, busyPowerW, busyTempC float64
	idlePowerW, idleTempC, idleMemMiB, hbmDeltaC            float64

	// Smoothed telemetry, at time last.
	last                  time.Time
	sm, memUtil           float64 // percent
	memUsed               float64 // bytes
	powerMW               float64
	tempC                 float64
	energyMJ              float64
	eccVolCorr, eccVolUnc uint64
	eccAggCorr, eccAggUnc uint64
	faults                map[string]Fault // by kind
}

// New builds a Sim with opts' defaults filled in.
func New(opts Options) *Sim {
	opts = opts.withDefaults()
	h := fnv.New64a()
	_, _ = h.Write([]byte(opts.NodeName))
	nodeHash := h.Sum64()
	s := &Sim{
		opts: opts,
		rng:  rand.New(rand.NewPCG(uint64(opts.Seed), nodeHash)),
		sets: make(map[*eventSet]struct{}),
	}
	lib := &mock.Interface{}
	forwardDeviceCalls(lib)
	fillUnset(lib, func() nvml.Return { return nvml.ERROR_NOT_SUPPORTED })
	s.nvmlInterface = lib

	now := opts.Now()
	for i := range opts.GPUs {
		domain, bus := pciLocation(i)
		g := &gpuState{
			index:  i,
			uuid:   simUUID(nodeHash, i),
			serial: fmt.Sprintf("SIM%07d%03d", nodeHash%10_000_000, i%1000),
			domain: domain,
			bus:    bus,
			busID:  fmt.Sprintf("%08X:%02X:00.0", domain, bus),
			faults: make(map[string]Fault),
			last:   now,
		}
		g.busySM = s.between(88, 96)
		g.busyMemUtil = s.between(45, 55)
		g.busyMemFrac = s.between(0.63, 0.72)
		g.busyPowerW = s.between(590, 640)
		g.busyTempC = s.between(64, 71)
		g.idlePowerW = s.between(74, 86)
		g.idleTempC = s.between(31, 35)
		g.idleMemMiB = s.between(500, 540)
		g.hbmDeltaC = s.between(3, 6)
		// Start settled at idle.
		g.memUsed = g.idleMemMiB * mib
		g.powerMW = g.idlePowerW * 1000
		g.tempC = g.idleTempC
		s.gpus = append(s.gpus, g)

		d := &device{sim: s, idx: i}
		fallback := &mock.Device{}
		fillUnset(fallback, func() nvml.Return { return s.deviceReturn(i) })
		d.nvmlDevice = fallback
		s.devices = append(s.devices, d)
	}
	return s
}

// simUUID is a UUID in NVML's layout that marks itself simulated: the
// "GPU-51m0" prefix, 64 bits of the node name's hash, and the GPU index.
func simUUID(nodeHash uint64, i int) string {
	return fmt.Sprintf("%s%04x-%04x-%04x-%04x-%012x", UUIDPrefix,
		uint16(nodeHash>>48), uint16(nodeHash>>32), uint16(nodeHash>>16), uint16(nodeHash), i)
}

// pciLocation is GPU i's PCI domain and bus: eight GPUs per domain, on the
// buses of an 8-GPU HGX board, starting at domain PCIDomain.
func pciLocation(i int) (domain, bus uint32) {
	hgx := [8]uint32{0x18, 0x2a, 0x3a, 0x5d, 0x9a, 0xab, 0xba, 0xdb}
	return PCIDomain + uint32(i/len(hgx)), hgx[i%len(hgx)]
}

func (s *Sim) between(lo, hi float64) float64 { return lo + s.rng.Float64()*(hi-lo) }

func (s *Sim) noise(amp float64) float64 { return (s.rng.Float64()*2 - 1) * amp }

// GPUCount is the number of simulated GPUs.
func (s *Sim) GPUCount() int { return len(s.devices) }

// SetAllocation says which processes run on which GPU: alloc maps a GPU
// index to the PIDs of the job's processes on it. A GPU absent from alloc,
// or with no PIDs, is idle. Indexes outside [0, GPUCount) are ignored. The
// telemetry moves toward the new load over the following seconds.
func (s *Sim) SetAllocation(alloc map[int][]int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opts.Now()
	for _, g := range s.gpus {
		s.advance(g, now) // integrate up to now under the old load
		pids := alloc[g.index]
		if len(pids) == 0 {
			g.pids = nil
			continue
		}
		g.pids = append([]int32(nil), pids...)
	}
}

// Allocation returns a copy of the current allocation (busy GPUs only).
func (s *Sim) Allocation() map[int][]int32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[int][]int32)
	for _, g := range s.gpus {
		if len(g.pids) > 0 {
			out[g.index] = append([]int32(nil), g.pids...)
		}
	}
	return out
}

func (g *gpuState) busy() bool           { return len(g.pids) > 0 }
func (g *gpuState) has(kind string) bool { _, ok := g.faults[kind]; return ok }

// advance moves g's telemetry from g.last to now: each value follows a
// first-order lag toward a noisy target, and energy integrates power.
// A clock that goes backwards changes nothing.
func (s *Sim) advance(g *gpuState, now time.Time) {
	dt := now.Sub(g.last).Seconds()
	if dt <= 0 {
		return
	}
	g.last = now
	total := float64(s.opts.MemoryTotalBytes)
	limitW := float64(s.opts.PowerLimitMilliwatts) / 1000

	var smT, memUtilT, memT, powerT, tempT float64
	if g.busy() {
		smT = clamp(g.busySM+s.noise(3), 85, 99)
		memUtilT = clamp(g.busyMemUtil+s.noise(5), 40, 60)
		memT = clamp(g.busyMemFrac+s.noise(0.02), 0.60, 0.75) * total
		powerT = clamp(g.busyPowerW+s.noise(30), 550, 680)
		tempT = clamp(g.busyTempC+s.noise(3), 60, 75)
		if g.has(KindPower) {
			powerT *= 0.55 // the power brake holds the board far below its limit
		}
	} else {
		memT = clamp(g.idleMemMiB+s.noise(8), 490, 550) * mib
		powerT = clamp(g.idlePowerW+s.noise(4), 70, 90)
		tempT = clamp(g.idleTempC+s.noise(1), 30, 36)
	}
	if g.has(KindThermal) {
		tempT = clamp(92+s.noise(1), 90, 94)
	}
	powerT = math.Min(powerT, limitW)
	memT = math.Min(memT, total)

	before := g.powerMW
	g.sm = lag(g.sm, smT, dt, tauUtil)
	g.memUtil = lag(g.memUtil, memUtilT, dt, tauUtil)
	g.memUsed = lag(g.memUsed, memT, dt, tauMemory)
	g.powerMW = lag(g.powerMW, powerT*1000, dt, tauPower)
	g.tempC = lag(g.tempC, tempT, dt, tauTemp)
	// mW × s = mJ; the trapezoid of the power before and after.
	g.energyMJ += (before + g.powerMW) / 2 * dt
}

// lag moves x toward target as a first-order system with time constant tau.
func lag(x, target, dt, tau float64) float64 {
	return target + (x-target)*math.Exp(-dt/tau)
}

func clamp(x, lo, hi float64) float64 { return math.Max(lo, math.Min(hi, x)) }

// smClock is the SM (and graphics) clock in MHz.
func (g *gpuState) smClock() uint32 {
	switch {
	case !g.busy():
		return smClockIdle
	case g.has(KindPower):
		return smClockPowerBrk
	case g.has(KindThermal):
		return smClockThermal
	default:
		return smClockBusy
	}
}

// throttleReasons is the clocks event reasons bitmask. Real GPUs assert
// HW slowdown together with HW thermal slowdown and with the power brake.
func (g *gpuState) throttleReasons() uint64 {
	var r uint64
	if !g.busy() {
		r |= nvml.ClocksEventReasonGpuIdle
	}
	if g.has(KindThermal) {
		r |= nvml.ClocksEventReasonSwThermalSlowdown | nvml.ClocksThrottleReasonHwThermalSlowdown | nvml.ClocksThrottleReasonHwSlowdown
	}
	if g.has(KindPower) {
		r |= nvml.ClocksThrottleReasonHwPowerBrakeSlowdown | nvml.ClocksThrottleReasonHwSlowdown
	}
	return r
}

// processes lists the GPU's PIDs with the memory above the idle baseline
// split between them.
func (g *gpuState) processes() []nvml.ProcessInfo {
	if !g.busy() {
		return []nvml.ProcessInfo{}
	}
	jobMem := math.Max(0, g.memUsed-g.idleMemMiB*mib)
	share := uint64(jobMem) / uint64(len(g.pids))
	out := make([]nvml.ProcessInfo, len(g.pids))
	for i, pid := range g.pids {
		out[i] = nvml.ProcessInfo{
			Pid:               uint32(pid),
			UsedGpuMemory:     share &^ (mib - 1), // whole MiB, as NVML reports
			GpuInstanceId:     math.MaxUint32,     // no MIG
			ComputeInstanceId: math.MaxUint32,
		}
	}
	return out
}

// deviceReturn is what a call on GPU i fails with, or SUCCESS.
func (s *Sim) deviceReturn(i int) nvml.Return {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.deviceReturnLocked(i)
	if r == nvml.SUCCESS {
		return nvml.ERROR_NOT_SUPPORTED
	}
	return r
}

func (s *Sim) deviceReturnLocked(i int) nvml.Return {
	switch {
	case s.inits == 0:
		return nvml.ERROR_UNINITIALIZED
	case s.gpus[i].has(KindGPULost):
		return nvml.ERROR_GPU_IS_LOST
	default:
		return nvml.SUCCESS
	}
}

// Init starts the library; calls nest like real NVML's.
func (s *Sim) Init() nvml.Return {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inits++
	return nvml.SUCCESS
}

// InitWithFlags is Init; the flags are ignored.
func (s *Sim) InitWithFlags(uint32) nvml.Return { return s.Init() }

// Shutdown undoes one Init.
func (s *Sim) Shutdown() nvml.Return {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inits == 0 {
		return nvml.ERROR_UNINITIALIZED
	}
	s.inits--
	return nvml.SUCCESS
}

// ErrorString names r.
func (s *Sim) ErrorString(r nvml.Return) string { return r.Error() }

// errNoSymbols: the simulation has no library to look symbols up in.
var errNoSymbols = errors.New("nvmlsim: simulated library has no symbols")

// Extensions returns an ExtendedInterface whose LookupSymbol always fails.
func (s *Sim) Extensions() nvml.ExtendedInterface {
	return &mock.ExtendedInterface{LookupSymbolFunc: func(string) error { return errNoSymbols }}
}

func (s *Sim) initialised() nvml.Return {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inits == 0 {
		return nvml.ERROR_UNINITIALIZED
	}
	return nvml.SUCCESS
}

// SystemGetDriverVersion returns DriverVersion.
func (s *Sim) SystemGetDriverVersion() (string, nvml.Return) {
	if r := s.initialised(); r != nvml.SUCCESS {
		return "", r
	}
	return DriverVersion, nvml.SUCCESS
}

// SystemGetNVMLVersion returns NVMLVersion.
func (s *Sim) SystemGetNVMLVersion() (string, nvml.Return) {
	if r := s.initialised(); r != nvml.SUCCESS {
		return "", r
	}
	return NVMLVersion, nvml.SUCCESS
}

// SystemGetCudaDriverVersion returns CUDADriverVersion.
func (s *Sim) SystemGetCudaDriverVersion() (int, nvml.Return) {
	if r := s.initialised(); r != nvml.SUCCESS {
		return 0, r
	}
	return CUDADriverVersion, nvml.SUCCESS
}

// SystemGetCudaDriverVersion_v2 returns CUDADriverVersion.
func (s *Sim) SystemGetCudaDriverVersion_v2() (int, nvml.Return) {
	return s.SystemGetCudaDriverVersion()
}

// DeviceGetCount returns the number of GPUs, lost ones included.
func (s *Sim) DeviceGetCount() (int, nvml.Return) {
	if r := s.initialised(); r != nvml.SUCCESS {
		return 0, r
	}
	return len(s.devices), nvml.SUCCESS
}

// DeviceGetHandleByIndex returns GPU i; like real NVML it fails with
// ERROR_GPU_IS_LOST for a lost GPU.
func (s *Sim) DeviceGetHandleByIndex(i int) (nvml.Device, nvml.Return) {
	if i < 0 || i >= len(s.devices) {
		if r := s.initialised(); r != nvml.SUCCESS {
			return nil, r
		}
		return nil, nvml.ERROR_INVALID_ARGUMENT
	}
	return s.handle(i)
}

func (s *Sim) handle(i int) (nvml.Device, nvml.Return) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.deviceReturnLocked(i); r != nvml.SUCCESS {
		return nil, r
	}
	return s.devices[i], nvml.SUCCESS
}

// DeviceGetHandleByUUID returns the GPU with that UUID.
func (s *Sim) DeviceGetHandleByUUID(uuid string) (nvml.Device, nvml.Return) {
	return s.handleWhere(func(g *gpuState) bool { return g.uuid == uuid })
}

// DeviceGetHandleByPciBusId returns the GPU with that PCI bus id.
func (s *Sim) DeviceGetHandleByPciBusId(busID string) (nvml.Device, nvml.Return) {
	return s.handleWhere(func(g *gpuState) bool { return g.busID == busID })
}

// DeviceGetHandleBySerial returns the GPU with that serial number.
func (s *Sim) DeviceGetHandleBySerial(serial string) (nvml.Device, nvml.Return) {
	return s.handleWhere(func(g *gpuState) bool { return g.serial == serial })
}

func (s *Sim) handleWhere(match func(*gpuState) bool) (nvml.Device, nvml.Return) {
	if r := s.initialised(); r != nvml.SUCCESS {
		return nil, r
	}
	for i, g := range s.gpus { // identity never changes: no lock needed
		if match(g) {
			return s.handle(i)
		}
	}
	return nil, nvml.ERROR_NOT_FOUND
}

// Faults returns the active faults, by GPU then kind.
func (s *Sim) Faults() []Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faultsLocked()
}

func (s *Sim) faultsLocked() []Fault {
	out := []Fault{}
	for _, g := range s.gpus {
		for _, f := range g.faults {
			out = append(out, f)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].GPU != out[j].GPU {
			return out[i].GPU < out[j].GPU
		}
		return out[i].Kind < out[j].Kind
	})
	return out
}
