package gpu

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/sopilot/sopilot/internal/health"
	"github.com/sopilot/sopilot/internal/telemetry"
)

// reader reads the fields of one GPU (or of the system, gpu -1) and keeps
// going past per-field errors; it stops at a watchdog error or a lost GPU.
type reader struct {
	ctx       context.Context
	c         *Collector
	gpu       int
	fieldErrs []FieldError
	lost      bool
	fatal     error // watchdog or context error: stop reading
}

func (r *reader) stopped() bool { return r.lost || r.fatal != nil }

// accept reports whether a value read for field can be used.
func (r *reader) accept(field string, ret nvml.Return, err error) bool {
	switch {
	case errors.Is(err, ErrPanic):
		r.fieldErrs = append(r.fieldErrs, FieldError{Field: field, Err: err})
		r.c.noteFieldError(r.gpu, field, err)
		return false
	case err != nil:
		r.fatal = err
		r.fieldErrs = append(r.fieldErrs, FieldError{Field: field, Err: err})
		return false
	case ret == nvml.SUCCESS:
		r.c.noteFieldOK(r.gpu, field)
		return true
	case ret == nvml.ERROR_NOT_SUPPORTED, ret == nvml.ERROR_NOT_FOUND:
		return false
	case ret == nvml.ERROR_GPU_IS_LOST:
		r.lost = true
		return false
	default:
		r.fieldErrs = append(r.fieldErrs, FieldError{Field: field, Err: ret})
		r.c.noteFieldError(r.gpu, field, ret)
		return false
	}
}

// read runs fn on the worker and returns its value when it can be used.
func read[T any](r *reader, field string, fn func() (T, nvml.Return)) (T, bool) {
	var zero T
	if r.stopped() {
		return zero, false
	}
	v, ret, err := call(r.ctx, r.c, fn)
	if !r.accept(field, ret, err) {
		return zero, false
	}
	return v, true
}

func ptr[T any](v T) *T { return &v }

// Inventory reads driver versions and the static description of each GPU.
// Values that could not be read are listed in Inventory.FieldErrors; the
// error is non-nil only when NVML itself did not answer (watchdog, ctx).
func (c *Collector) Inventory(ctx context.Context) (Inventory, error) {
	if c.isClosed() {
		return Inventory{}, ErrClosed
	}
	var inv Inventory
	sys := &reader{ctx: ctx, c: c, gpu: -1}
	if v, ok := read(sys, "driver_version", c.lib.SystemGetDriverVersion); ok {
		inv.DriverVersion = v
	}
	if v, ok := read(sys, "cuda_driver_version", c.lib.SystemGetCudaDriverVersion); ok {
		inv.CUDADriverVersion = fmt.Sprintf("%d.%d", v/1000, v%1000/10)
	}
	if v, ok := read(sys, "nvml_version", c.lib.SystemGetNVMLVersion); ok {
		inv.NVMLVersion = v
	}
	inv.FieldErrors = sys.fieldErrs
	if sys.fatal != nil {
		return inv, fmt.Errorf("gpu inventory: %w", sys.fatal)
	}
	for _, d := range c.devices {
		r := &reader{ctx: ctx, c: c, gpu: d.index}
		info := GPUInfo{Index: d.index, UUID: d.uuid}
		if v, ok := read(r, "name", d.handle.GetName); ok {
			info.Model = v
		}
		if v, ok := read(r, "memory_info", d.handle.GetMemoryInfo); ok {
			info.MemoryTotalBytes = int64(v.Total)
		}
		if v, ok := read(r, "pci_info", d.handle.GetPciInfo); ok {
			info.PCIBusID = cString(v.BusId[:])
		}
		if r.lost {
			r.fieldErrs = append(r.fieldErrs, FieldError{Field: "gpu", Err: nvml.ERROR_GPU_IS_LOST})
		}
		for _, fe := range r.fieldErrs {
			fe.Field = fmt.Sprintf("%s.%s", component(d.index), fe.Field)
			inv.FieldErrors = append(inv.FieldErrors, fe)
		}
		inv.GPUs = append(inv.GPUs, info)
		if r.fatal != nil {
			return inv, fmt.Errorf("gpu inventory: gpu %d: %w", d.index, r.fatal)
		}
	}
	return inv, nil
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

// Sample reads the telemetry of every GPU. It returns one Sample per GPU that
// answered, a gpu_lost HealthEvent for each GPU newly found lost, and an error
// only when NVML did not answer in time (ErrCallTimeout, ErrWedged), ctx
// ended, or the Collector is closed; what was read before that is returned.
func (c *Collector) Sample(ctx context.Context) ([]Sample, []HealthEvent, error) {
	if c.isClosed() {
		return nil, nil, ErrClosed
	}
	var (
		samples []Sample
		events  []HealthEvent
	)
	for i, d := range c.devices {
		s, r := c.sampleGPU(ctx, d)
		if r.lost {
			if ev, isNew := c.markLost(d, true); isNew {
				events = append(events, ev)
			}
			continue
		}
		c.markLost(d, false)
		samples = append(samples, s)
		if r.fatal != nil {
			err := fmt.Errorf("sample gpu %d: %w", d.index, r.fatal)
			if rest := len(c.devices) - i - 1; rest > 0 {
				err = fmt.Errorf("%w (%d more gpus not sampled)", err, rest)
			}
			return samples, events, err
		}
	}
	return samples, events, nil
}

func (c *Collector) markLost(d device, lost bool) (HealthEvent, bool) {
	c.mu.Lock()
	was := c.lost[d.index]
	c.lost[d.index] = lost
	c.mu.Unlock()
	if !lost {
		if was {
			c.log.Info("gpu answers again after being lost", "gpu", d.index, "uuid", d.uuid)
		}
		return HealthEvent{}, false
	}
	if was {
		return HealthEvent{}, false
	}
	c.log.Error("gpu lost", "gpu", d.index, "uuid", d.uuid)
	return HealthEvent{
		HealthEvent: telemetry.HealthEvent{
			Time: c.opts.Now(), Component: component(d.index), Kind: telemetry.KindGPULost,
			Message: fmt.Sprintf("NVML reports GPU %d (%s) lost", d.index, d.uuid),
		},
		GPUIndex: d.index, UUID: d.uuid, Class: health.XIDDrain,
	}, true
}

// Values read in one GetFieldValues call: HBM temperature, the driver's
// recovery action, and NVLink error counters totalled over links.
var fieldIDs = []uint32{
	nvml.FI_DEV_MEMORY_TEMP,
	nvml.FI_DEV_GET_GPU_RECOVERY_ACTION,
	nvml.FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL,
	nvml.FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL,
	nvml.FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL,
	nvml.FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL,
}

type remappedRows struct {
	corrected, uncorrected int
	pending, failure       bool
}

func (c *Collector) sampleGPU(ctx context.Context, d device) (Sample, *reader) {
	h := d.handle
	r := &reader{ctx: ctx, c: c, gpu: d.index}
	s := Sample{GPUSample: telemetry.GPUSample{Time: c.opts.Now(), Index: d.index, UUID: d.uuid}}

	if u, ok := read(r, "utilization", h.GetUtilizationRates); ok {
		s.SMUtilizationPercent = ptr(float64(u.Gpu))
		s.MemoryUtilizationPercent = ptr(float64(u.Memory))
	}
	if m, ok := read(r, "memory_info", h.GetMemoryInfo); ok {
		s.MemoryUsedBytes = ptr(int64(m.Used))
		s.MemoryTotalBytes = ptr(int64(m.Total))
	}
	if v, ok := read(r, "temperature", func() (uint32, nvml.Return) { return h.GetTemperature(nvml.TEMPERATURE_GPU) }); ok {
		s.TemperatureCelsius = ptr(float64(v))
	}
	if v, ok := read(r, "power_usage", h.GetPowerUsage); ok {
		s.PowerMilliwatts = ptr(int64(v))
	}
	if v, ok := read(r, "power_limit", h.GetEnforcedPowerLimit); ok {
		s.PowerLimitMilliwatts = ptr(int64(v))
	}
	if v, ok := read(r, "energy", h.GetTotalEnergyConsumption); ok {
		s.EnergyMillijoules = ptr(v)
	}
	if v, ok := read(r, "sm_clock", func() (uint32, nvml.Return) { return h.GetClockInfo(nvml.CLOCK_SM) }); ok {
		s.SMClockMHz = ptr(int32(v))
	}
	if v, ok := read(r, "memory_clock", func() (uint32, nvml.Return) { return h.GetClockInfo(nvml.CLOCK_MEM) }); ok {
		s.MemoryClockMHz = ptr(int32(v))
	}
	if v, ok := read(r, "throttle_reasons", h.GetCurrentClocksEventReasons); ok {
		s.ThrottleReasons = ptr(v)
	}
	for _, e := range []struct {
		field   string
		errType nvml.MemoryErrorType
		counter nvml.EccCounterType
		dst     **uint64
	}{
		{"ecc_volatile_corrected", nvml.MEMORY_ERROR_TYPE_CORRECTED, nvml.VOLATILE_ECC, &s.ECCVolatileCorrected},
		{"ecc_volatile_uncorrected", nvml.MEMORY_ERROR_TYPE_UNCORRECTED, nvml.VOLATILE_ECC, &s.ECCVolatileUncorrected},
		{"ecc_aggregate_corrected", nvml.MEMORY_ERROR_TYPE_CORRECTED, nvml.AGGREGATE_ECC, &s.ECCAggregateCorrected},
		{"ecc_aggregate_uncorrected", nvml.MEMORY_ERROR_TYPE_UNCORRECTED, nvml.AGGREGATE_ECC, &s.ECCAggregateUncorrected},
	} {
		if v, ok := read(r, e.field, func() (uint64, nvml.Return) { return h.GetTotalEccErrors(e.errType, e.counter) }); ok {
			*e.dst = ptr(v)
		}
	}
	if v, ok := read(r, "remapped_rows", func() (remappedRows, nvml.Return) {
		corr, unc, pending, failure, ret := h.GetRemappedRows()
		return remappedRows{corr, unc, pending, failure}, ret
	}); ok {
		s.RowRemapPending = ptr(v.pending)
		s.RowRemapFailure = ptr(v.failure)
	}
	if v, ok := read(r, "pcie_replay_count", h.GetPcieReplayCounter); ok {
		s.PCIeReplayCount = ptr(uint64(v))
	}
	if vals, ok := read(r, "field_values", func() ([]nvml.FieldValue, nvml.Return) {
		vals := make([]nvml.FieldValue, len(fieldIDs))
		for i, id := range fieldIDs {
			vals[i].FieldId = id
		}
		return vals, h.GetFieldValues(vals)
	}); ok {
		r.applyFieldValues(&s, vals)
	}
	if procs, ok := read(r, "processes", h.GetComputeRunningProcesses); ok {
		s.Processes = make([]Process, 0, len(procs))
		for _, p := range procs {
			proc := Process{PID: int32(p.Pid)}
			// NVML_VALUE_NOT_AVAILABLE (all ones) when memory is not attributable.
			if p.UsedGpuMemory != math.MaxUint64 {
				proc.MemoryUsedBytes = ptr(int64(p.UsedGpuMemory))
			}
			s.Processes = append(s.Processes, proc)
		}
	}
	s.FieldErrors = r.fieldErrs
	return s, r
}

func (r *reader) applyFieldValues(s *Sample, vals []nvml.FieldValue) {
	var nvlinkSum uint64
	nvlinkSeen := false
	for _, fv := range vals {
		ret := nvml.Return(fv.NvmlReturn)
		var field string
		switch fv.FieldId {
		case nvml.FI_DEV_MEMORY_TEMP:
			field = "memory_temperature"
		case nvml.FI_DEV_GET_GPU_RECOVERY_ACTION:
			field = "recovery_action"
			if ret == nvml.ERROR_INVALID_ARGUMENT {
				continue // a driver older than the field id (R570)
			}
		default:
			field = "nvlink_errors"
		}
		if !r.accept(field, ret, nil) {
			continue
		}
		v, err := fieldValue(fv)
		if err != nil {
			r.fieldErrs = append(r.fieldErrs, FieldError{Field: field, Err: err})
			continue
		}
		switch fv.FieldId {
		case nvml.FI_DEV_MEMORY_TEMP:
			s.MemoryTemperatureCelsius = ptr(v)
		case nvml.FI_DEV_GET_GPU_RECOVERY_ACTION:
			s.RecoveryAction = ptr(recoveryAction(nvml.DeviceGpuRecoveryAction(v)))
		default:
			if v > 0 {
				nvlinkSum += uint64(v)
			}
			nvlinkSeen = true
		}
	}
	if nvlinkSeen {
		s.NVLinkErrorCount = ptr(nvlinkSum)
	}
}

func recoveryAction(a nvml.DeviceGpuRecoveryAction) telemetry.RecoveryAction {
	switch a {
	case nvml.GPU_RECOVERY_ACTION_NONE:
		return telemetry.RecoveryNone
	case nvml.GPU_RECOVERY_ACTION_GPU_RESET:
		return telemetry.RecoveryGPUReset
	case nvml.GPU_RECOVERY_ACTION_NODE_REBOOT:
		return telemetry.RecoveryNodeReboot
	case nvml.GPU_RECOVERY_ACTION_DRAIN_P2P:
		return telemetry.RecoveryDrainP2P
	case nvml.GPU_RECOVERY_ACTION_DRAIN_AND_RESET:
		return telemetry.RecoveryDrainAndReset
	case nvml.GPU_RECOVERY_ACTION_RECOVER_IMEX_DOMAIN:
		return telemetry.RecoveryIMEXDomain
	case nvml.GPU_RECOVERY_ACTION_BUS_RESET:
		return telemetry.RecoveryBusReset
	case nvml.GPU_RECOVERY_ACTION_SYSTEM_REBOOT:
		return telemetry.RecoverySystemReboot
	default:
		return telemetry.RecoveryAction(fmt.Sprintf("unknown_%d", a))
	}
}

var errValueType = errors.New("unknown nvml value type")

func fieldValue(fv nvml.FieldValue) (float64, error) {
	b := fv.Value[:]
	switch nvml.ValueType(fv.ValueType) {
	case nvml.VALUE_TYPE_DOUBLE:
		return math.Float64frombits(binary.NativeEndian.Uint64(b)), nil
	case nvml.VALUE_TYPE_UNSIGNED_INT:
		return float64(binary.NativeEndian.Uint32(b)), nil
	case nvml.VALUE_TYPE_UNSIGNED_LONG, nvml.VALUE_TYPE_UNSIGNED_LONG_LONG:
		return float64(binary.NativeEndian.Uint64(b)), nil
	case nvml.VALUE_TYPE_SIGNED_LONG_LONG:
		return float64(int64(binary.NativeEndian.Uint64(b))), nil
	case nvml.VALUE_TYPE_SIGNED_INT:
		return float64(int32(binary.NativeEndian.Uint32(b))), nil
	case nvml.VALUE_TYPE_UNSIGNED_SHORT:
		return float64(binary.NativeEndian.Uint16(b)), nil
	default:
		return 0, fmt.Errorf("%w %d", errValueType, fv.ValueType)
	}
}
