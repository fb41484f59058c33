package telemetry

import (
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sopilot/sopilot/pkg/agentpb"
)

// GPUSampleFromProto converts a wire sample. The optional fields are shared
// with g, not copied: no allocation per field on the ingest path. The
// processes stay on the wire message (run usage reads them there).
func GPUSampleFromProto(g *agentpb.GpuSample) GPUSample {
	return GPUSample{
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

// CompactGPUSample keeps what the hourly rate rules read of a sample (the
// counters whose increase they judge), as copies, so the wire message can
// be collected.
func CompactGPUSample(g *agentpb.GpuSample) GPUSample {
	s := GPUSample{Time: g.GetSampleTime().AsTime(), Index: int(g.GetIndex())}
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

// ToProto is the wire form of s (RecoveryAction is not on the wire).
func (s GPUSample) ToProto() *agentpb.GpuSample {
	return &agentpb.GpuSample{
		SampleTime:               timestamppb.New(s.Time),
		Index:                    int32(s.Index),
		Uuid:                     s.UUID,
		SmUtilizationPercent:     s.SMUtilizationPercent,
		MemoryUtilizationPercent: s.MemoryUtilizationPercent,
		MemoryUsedBytes:          s.MemoryUsedBytes,
		TemperatureCelsius:       s.TemperatureCelsius,
		MemoryTemperatureCelsius: s.MemoryTemperatureCelsius,
		PowerMilliwatts:          s.PowerMilliwatts,
		PowerLimitMilliwatts:     s.PowerLimitMilliwatts,
		EnergyMillijoules:        s.EnergyMillijoules,
		SmClockMhz:               s.SMClockMHz,
		MemoryClockMhz:           s.MemoryClockMHz,
		ThrottleReasons:          s.ThrottleReasons,
		EccVolatileCorrected:     s.ECCVolatileCorrected,
		EccVolatileUncorrected:   s.ECCVolatileUncorrected,
		EccAggregateCorrected:    s.ECCAggregateCorrected,
		EccAggregateUncorrected:  s.ECCAggregateUncorrected,
		RowRemapPending:          s.RowRemapPending,
		RowRemapFailure:          s.RowRemapFailure,
		PcieReplayCount:          s.PCIeReplayCount,
		NvlinkErrorCount:         s.NVLinkErrorCount,
	}
}

// HealthEventFromProto converts a wire event; one without a time gets now.
func HealthEventFromProto(e *agentpb.HealthEvent, now time.Time) HealthEvent {
	h := HealthEvent{Time: now, Component: e.GetComponent(), Kind: e.GetKind(), Code: e.GetCode(), Message: e.GetMessage()}
	if e.GetEventTime() != nil {
		h.Time = e.GetEventTime().AsTime()
	}
	return h
}

// ToProto is the wire form of e.
func (e HealthEvent) ToProto() *agentpb.HealthEvent {
	return &agentpb.HealthEvent{EventTime: timestamppb.New(e.Time), Component: e.Component, Kind: e.Kind, Code: e.Code, Message: e.Message}
}

// IBPortSampleFromProto converts a wire sample; the counters other than
// those the rules read stay on the wire (and the agent's /metrics).
func IBPortSampleFromProto(p *agentpb.IbSample) IBPortSample {
	c := p.GetCounters()
	return IBPortSample{
		Time:      p.GetSampleTime().AsTime(),
		Device:    p.GetDevice(),
		Port:      int(p.GetPort()),
		State:     p.GetState(),
		PhysState: p.GetPhysState(),
		RateGbps:  p.GetRateGbps(),
		Counters: IBCounters{
			LinkDowned:                   c.GetLinkDowned(),
			ExcessiveBufferOverrunErrors: c.GetExcessiveBufferOverrunErrors(),
			LocalLinkIntegrityErrors:     c.GetLocalLinkIntegrityErrors(),
			SymbolError:                  c.GetSymbolError(),
			PortRcvErrors:                c.GetPortRcvErrors(),
		},
	}
}

// ToProto is the wire form of s, with the counters the rules read.
func (s IBPortSample) ToProto() *agentpb.IbSample {
	return &agentpb.IbSample{
		SampleTime: timestamppb.New(s.Time), Device: s.Device, Port: int32(s.Port), State: s.State, PhysState: s.PhysState, RateGbps: s.RateGbps,
		Counters: &agentpb.IbCounters{
			LinkDowned:                   s.Counters.LinkDowned,
			ExcessiveBufferOverrunErrors: s.Counters.ExcessiveBufferOverrunErrors,
			LocalLinkIntegrityErrors:     s.Counters.LocalLinkIntegrityErrors,
			SymbolError:                  s.Counters.SymbolError,
			PortRcvErrors:                s.Counters.PortRcvErrors,
		},
	}
}
