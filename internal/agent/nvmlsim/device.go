package nvmlsim

import (
	"encoding/binary"
	"math"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// device is the nvml.Device handle of one simulated GPU. Handles are
// pointers, so the handle in an event compares equal to the one returned by
// DeviceGetHandleByIndex.
type device struct {
	nvmlDevice // fallback for methods the simulation does not model

	sim *Sim
	idx int
}

// Events a simulated GPU supports, as an H100/H200 does.
const supportedEvents = nvml.EventTypeSingleBitEccError | nvml.EventTypeDoubleBitEccError |
	nvml.EventTypePState | nvml.EventTypeXidCriticalError | nvml.EventTypeClock

// with runs fn on the GPU's state, advanced to now, under the lock, unless
// the library is not initialised or the GPU is lost.
func with[T any](d *device, fn func(g *gpuState) (T, nvml.Return)) (T, nvml.Return) {
	s := d.sim
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.deviceReturnLocked(d.idx); r != nvml.SUCCESS {
		var zero T
		return zero, r
	}
	g := s.gpus[d.idx]
	s.advance(g, s.opts.Now())
	return fn(g)
}

// success is v with nvml.SUCCESS.
func success[T any](v T) (T, nvml.Return) { return v, nvml.SUCCESS }

// GetUUID returns the simulated UUID.
func (d *device) GetUUID() (string, nvml.Return) {
	return with(d, func(g *gpuState) (string, nvml.Return) { return success(g.uuid) })
}

// GetName returns Options.Model.
func (d *device) GetName() (string, nvml.Return) {
	return with(d, func(*gpuState) (string, nvml.Return) { return success(d.sim.opts.Model) })
}

// GetIndex returns the GPU's index.
func (d *device) GetIndex() (int, nvml.Return) {
	return with(d, func(g *gpuState) (int, nvml.Return) { return success(g.index) })
}

// GetMinorNumber returns the GPU's index (/dev/nvidiaN).
func (d *device) GetMinorNumber() (int, nvml.Return) { return d.GetIndex() }

// GetSerial returns a serial number that starts with "SIM".
func (d *device) GetSerial() (string, nvml.Return) {
	return with(d, func(g *gpuState) (string, nvml.Return) { return success(g.serial) })
}

// GetPciInfo returns the simulated PCI location.
func (d *device) GetPciInfo() (nvml.PciInfo, nvml.Return) {
	return with(d, func(g *gpuState) (nvml.PciInfo, nvml.Return) {
		p := nvml.PciInfo{
			Domain:         g.domain,
			Bus:            g.bus,
			PciDeviceId:    0x233510de, // H200 SXM device id, NVIDIA vendor id
			PciSubSystemId: 0x18a810de,
		}
		copyCString(p.BusId[:], g.busID)
		copyCString(p.BusIdLegacy[:], g.busID[4:]) // "DDDD:BB:DD.F"
		return success(p)
	})
}

func copyCString(dst []int8, s string) {
	for i := 0; i < len(s) && i < len(dst)-1; i++ {
		dst[i] = int8(s[i])
	}
}

// GetMemoryInfo returns total, used and free framebuffer memory.
func (d *device) GetMemoryInfo() (nvml.Memory, nvml.Return) {
	return with(d, func(g *gpuState) (nvml.Memory, nvml.Return) {
		total := d.sim.opts.MemoryTotalBytes
		used := min(uint64(g.memUsed)&^(mib-1), total)
		return success(nvml.Memory{Total: total, Used: used, Free: total - used})
	})
}

// GetMemoryInfo_v2 is GetMemoryInfo with no reserved memory.
func (d *device) GetMemoryInfo_v2() (nvml.Memory_v2, nvml.Return) {
	m, r := d.GetMemoryInfo()
	if r != nvml.SUCCESS {
		return nvml.Memory_v2{}, r
	}
	return nvml.Memory_v2{Version: nvml.STRUCT_VERSION(nvml.Memory_v2{}, 2), Total: m.Total, Free: m.Free, Used: m.Used}, nvml.SUCCESS
}

// GetUtilizationRates returns SM and memory utilisation in percent.
func (d *device) GetUtilizationRates() (nvml.Utilization, nvml.Return) {
	return with(d, func(g *gpuState) (nvml.Utilization, nvml.Return) {
		return success(nvml.Utilization{Gpu: uint32(math.Round(g.sm)), Memory: uint32(math.Round(g.memUtil))})
	})
}

// GetTemperature returns the GPU core temperature; other sensors are
// invalid, as on real GPUs.
func (d *device) GetTemperature(sensor nvml.TemperatureSensors) (uint32, nvml.Return) {
	return with(d, func(g *gpuState) (uint32, nvml.Return) {
		if sensor != nvml.TEMPERATURE_GPU {
			return 0, nvml.ERROR_INVALID_ARGUMENT
		}
		return success(uint32(math.Round(g.tempC)))
	})
}

// GetPowerUsage returns the board power in milliwatts.
func (d *device) GetPowerUsage() (uint32, nvml.Return) {
	return with(d, func(g *gpuState) (uint32, nvml.Return) { return success(uint32(math.Round(g.powerMW))) })
}

// GetEnforcedPowerLimit returns Options.PowerLimitMilliwatts.
func (d *device) GetEnforcedPowerLimit() (uint32, nvml.Return) {
	return with(d, func(*gpuState) (uint32, nvml.Return) { return success(d.sim.opts.PowerLimitMilliwatts) })
}

// GetPowerManagementLimit returns Options.PowerLimitMilliwatts.
func (d *device) GetPowerManagementLimit() (uint32, nvml.Return) { return d.GetEnforcedPowerLimit() }

// GetPowerManagementDefaultLimit returns Options.PowerLimitMilliwatts.
func (d *device) GetPowerManagementDefaultLimit() (uint32, nvml.Return) {
	return d.GetEnforcedPowerLimit()
}

// GetTotalEnergyConsumption returns the energy used since the Sim was
// built, in millijoules.
func (d *device) GetTotalEnergyConsumption() (uint64, nvml.Return) {
	return with(d, func(g *gpuState) (uint64, nvml.Return) { return success(uint64(g.energyMJ)) })
}

// GetClockInfo returns the current clock of a domain in MHz.
func (d *device) GetClockInfo(ct nvml.ClockType) (uint32, nvml.Return) {
	return with(d, func(g *gpuState) (uint32, nvml.Return) {
		switch ct {
		case nvml.CLOCK_GRAPHICS, nvml.CLOCK_SM:
			return success(g.smClock())
		case nvml.CLOCK_MEM:
			return success(uint32(memClock))
		case nvml.CLOCK_VIDEO:
			if g.busy() {
				return success(uint32(videoClockBusy))
			}
			return success(uint32(videoClockIdle))
		default:
			return 0, nvml.ERROR_INVALID_ARGUMENT
		}
	})
}

// GetMaxClockInfo returns the maximum clock of a domain in MHz.
func (d *device) GetMaxClockInfo(ct nvml.ClockType) (uint32, nvml.Return) {
	return with(d, func(*gpuState) (uint32, nvml.Return) {
		switch ct {
		case nvml.CLOCK_GRAPHICS, nvml.CLOCK_SM:
			return success(uint32(smClockBusy))
		case nvml.CLOCK_MEM:
			return success(uint32(memClock))
		case nvml.CLOCK_VIDEO:
			return success(uint32(videoClockMax))
		default:
			return 0, nvml.ERROR_INVALID_ARGUMENT
		}
	})
}

// GetPerformanceState returns P0 when busy and P8 when idle.
func (d *device) GetPerformanceState() (nvml.Pstates, nvml.Return) {
	return with(d, func(g *gpuState) (nvml.Pstates, nvml.Return) {
		if g.busy() {
			return success(nvml.PSTATE_0)
		}
		return success(nvml.PSTATE_8)
	})
}

// GetCurrentClocksEventReasons returns the throttle reasons bitmask.
func (d *device) GetCurrentClocksEventReasons() (uint64, nvml.Return) {
	return with(d, func(g *gpuState) (uint64, nvml.Return) { return success(g.throttleReasons()) })
}

// GetCurrentClocksThrottleReasons is the older name of
// GetCurrentClocksEventReasons.
func (d *device) GetCurrentClocksThrottleReasons() (uint64, nvml.Return) {
	return d.GetCurrentClocksEventReasons()
}

// GetEccMode reports ECC enabled, now and after reboot.
func (d *device) GetEccMode() (nvml.EnableState, nvml.EnableState, nvml.Return) {
	v, r := with(d, func(*gpuState) (nvml.EnableState, nvml.Return) { return success(nvml.FEATURE_ENABLED) })
	return v, v, r
}

// GetTotalEccErrors returns an ECC counter.
func (d *device) GetTotalEccErrors(et nvml.MemoryErrorType, ct nvml.EccCounterType) (uint64, nvml.Return) {
	return with(d, func(g *gpuState) (uint64, nvml.Return) {
		switch {
		case et == nvml.MEMORY_ERROR_TYPE_CORRECTED && ct == nvml.VOLATILE_ECC:
			return success(g.eccVolCorr)
		case et == nvml.MEMORY_ERROR_TYPE_UNCORRECTED && ct == nvml.VOLATILE_ECC:
			return success(g.eccVolUnc)
		case et == nvml.MEMORY_ERROR_TYPE_CORRECTED && ct == nvml.AGGREGATE_ECC:
			return success(g.eccAggCorr)
		case et == nvml.MEMORY_ERROR_TYPE_UNCORRECTED && ct == nvml.AGGREGATE_ECC:
			return success(g.eccAggUnc)
		default:
			return 0, nvml.ERROR_INVALID_ARGUMENT
		}
	})
}

// GetRemappedRows returns the row remapping state; a row_remap_failure
// fault reports one uncorrectable row, pending and failed.
func (d *device) GetRemappedRows() (int, int, bool, bool, nvml.Return) {
	type rows struct {
		corr, unc        int
		pending, failure bool
	}
	v, r := with(d, func(g *gpuState) (rows, nvml.Return) {
		if g.has(KindRowRemapFailure) {
			return success(rows{unc: 1, pending: true, failure: true})
		}
		return success(rows{})
	})
	return v.corr, v.unc, v.pending, v.failure, r
}

// GetPcieReplayCounter returns 0: simulated links do not replay.
func (d *device) GetPcieReplayCounter() (int, nvml.Return) {
	return with(d, func(*gpuState) (int, nvml.Return) { return success(0) })
}

// nvlinkLinks is an H200's NVLink count.
const nvlinkLinks = 18

// GetFieldValues fills each value it knows: HBM temperature, recovery
// action (none), NVLink link count and error counters (zero). Other ids
// get ERROR_NOT_SUPPORTED in their NvmlReturn.
func (d *device) GetFieldValues(vals []nvml.FieldValue) nvml.Return {
	_, r := with(d, func(g *gpuState) (struct{}, nvml.Return) {
		ts := d.sim.opts.Now().UnixMicro()
		for i := range vals {
			v := &vals[i]
			v.Timestamp = ts
			v.LatencyUsec = 0
			v.Value = [8]byte{}
			v.NvmlReturn = uint32(nvml.SUCCESS)
			switch id := v.FieldId; {
			case id == nvml.FI_DEV_MEMORY_TEMP:
				putUint32(v, uint32(math.Round(g.tempC+g.hbmDeltaC)))
			case id == nvml.FI_DEV_GET_GPU_RECOVERY_ACTION:
				putUint32(v, uint32(nvml.GPU_RECOVERY_ACTION_NONE))
			case id == nvml.FI_DEV_NVLINK_LINK_COUNT:
				putUint32(v, nvlinkLinks)
			case isNVLinkErrorField(id):
				v.ValueType = uint32(nvml.VALUE_TYPE_UNSIGNED_LONG_LONG)
				binary.NativeEndian.PutUint64(v.Value[:], 0)
			default:
				v.ValueType = 0
				v.NvmlReturn = uint32(nvml.ERROR_NOT_SUPPORTED)
			}
		}
		return success(struct{}{})
	})
	return r
}

func putUint32(v *nvml.FieldValue, x uint32) {
	v.ValueType = uint32(nvml.VALUE_TYPE_UNSIGNED_INT)
	binary.NativeEndian.PutUint32(v.Value[:], x)
}

// isNVLinkErrorField: the per-link and total CRC flit, CRC data, replay
// and recovery counters, and the NVLink ECC data error total.
func isNVLinkErrorField(id uint32) bool {
	return (id >= nvml.FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_L0 && id <= nvml.FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL) ||
		id == nvml.FI_DEV_NVLINK_ECC_DATA_ERROR_COUNT_TOTAL
}

// GetComputeRunningProcesses lists the allocated PIDs with their memory.
func (d *device) GetComputeRunningProcesses() ([]nvml.ProcessInfo, nvml.Return) {
	return with(d, func(g *gpuState) ([]nvml.ProcessInfo, nvml.Return) { return success(g.processes()) })
}

// GetGraphicsRunningProcesses returns none: the simulated GPUs run compute
// only.
func (d *device) GetGraphicsRunningProcesses() ([]nvml.ProcessInfo, nvml.Return) {
	return with(d, func(*gpuState) ([]nvml.ProcessInfo, nvml.Return) { return success([]nvml.ProcessInfo{}) })
}

// GetMPSComputeRunningProcesses returns none: MPS is not simulated.
func (d *device) GetMPSComputeRunningProcesses() ([]nvml.ProcessInfo, nvml.Return) {
	return d.GetGraphicsRunningProcesses()
}

// GetSupportedEventTypes returns the event types an H200 supports.
func (d *device) GetSupportedEventTypes() (uint64, nvml.Return) {
	return with(d, func(*gpuState) (uint64, nvml.Return) { return success(uint64(supportedEvents)) })
}

// RegisterEvents adds the GPU to a simulated event set for the event types
// in mask.
func (d *device) RegisterEvents(mask uint64, set nvml.EventSet) nvml.Return {
	_, r := with(d, func(*gpuState) (struct{}, nvml.Return) {
		es, isSim := set.(*eventSet)
		if !isSim || es == nil || es.sim != d.sim {
			return struct{}{}, nvml.ERROR_INVALID_ARGUMENT
		}
		if mask&^uint64(supportedEvents) != 0 {
			return struct{}{}, nvml.ERROR_NOT_SUPPORTED
		}
		if !es.register(d.idx, mask) {
			return struct{}{}, nvml.ERROR_INVALID_ARGUMENT // freed
		}
		return success(struct{}{})
	})
	return r
}
