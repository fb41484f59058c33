package monitor

import (
	"github.com/sopilot/sopilot/internal/agent/gpu"
	"github.com/sopilot/sopilot/internal/health"
	"github.com/sopilot/sopilot/pkg/agentpb"
)

// gpuSample converts the wire sample back to the collector's type, which
// the health rules read.
func gpuSample(g *agentpb.GpuSample) gpu.Sample {
	return gpu.Sample{
		Time:                     g.GetSampleTime().AsTime(),
		Index:                    int(g.GetIndex()),
		UUID:                     g.GetUuid(),
		SMUtilizationPercent:     g.SmUtilizationPercent,
		MemoryUtilizationPercent: g.MemoryUtilizationPercent,
		MemoryUsedBytes:          g.MemoryUsedBytes,
		TemperatureCelsius:       g.TemperatureCelsius,
		MemoryTemperatureCelsius: g.MemoryTemperatureCelsius,
		PowerMilliwatts:          g.PowerMilliwatts,
		PowerLimitMilliwatts:     g.PowerLimitMilliwatts,
		EnergyMillijoules:        g.EnergyMillijoules,
		SMClockMHz:               g.SmClockMhz,
		MemoryClockMHz:           g.MemoryClockMhz,
		ThrottleReasons:          g.ThrottleReasons,
		ECCVolatileCorrected:     g.EccVolatileCorrected,
		ECCVolatileUncorrected:   g.EccVolatileUncorrected,
		ECCAggregateCorrected:    g.EccAggregateCorrected,
		ECCAggregateUncorrected:  g.EccAggregateUncorrected,
		RowRemapPending:          g.RowRemapPending,
		RowRemapFailure:          g.RowRemapFailure,
		PCIeReplayCount:          g.PcieReplayCount,
		NVLinkErrorCount:         g.NvlinkErrorCount,
	}
}

// compactGPUSample keeps what the rate rules read of an older sample (the
// counters whose increase over the hour they judge), as copies, so the
// wire message can be collected.
func compactGPUSample(g *agentpb.GpuSample) gpu.Sample {
	s := gpu.Sample{Time: g.GetSampleTime().AsTime(), Index: int(g.GetIndex())}
	if g.EccVolatileCorrected != nil {
		v := g.GetEccVolatileCorrected()
		s.ECCVolatileCorrected = &v
	}
	if g.PcieReplayCount != nil {
		v := g.GetPcieReplayCount()
		s.PCIeReplayCount = &v
	}
	if g.NvlinkErrorCount != nil {
		v := g.GetNvlinkErrorCount()
		s.NVLinkErrorCount = &v
	}
	return s
}

func ibSample(p *agentpb.IbSample) health.IBPortSample {
	c := p.GetCounters()
	return health.IBPortSample{
		Time:      p.GetSampleTime().AsTime(),
		Device:    p.GetDevice(),
		Port:      int(p.GetPort()),
		State:     p.GetState(),
		PhysState: p.GetPhysState(),
		Counters: health.IBCounters{
			LinkDowned:                   c.GetLinkDowned(),
			ExcessiveBufferOverrunErrors: c.GetExcessiveBufferOverrunErrors(),
			LocalLinkIntegrityErrors:     c.GetLocalLinkIntegrityErrors(),
			SymbolError:                  c.GetSymbolError(),
			PortRcvErrors:                c.GetPortRcvErrors(),
		},
	}
}
