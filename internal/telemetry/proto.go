package telemetry

import (
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sopilot/sopilot/pkg/agentpb"
)

// GPUSampleFromProto converts a wire sample. The optional fields are shared
// with g, not copied: no allocation per field on the ingest path. Of the
// processes only the Slurm job is kept.
func GPUSampleFromProto(g *agentpb.GpuSample) GPUSample {
	s := GPUSample{
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
	for _, p := range g.GetProcesses() {
		if p.GetSlurmJobId() != "" {
			s.SlurmJobID = p.GetSlurmJobId()
			break
		}
	}
	return s
}

// InventoryFromProto converts a Hello's inventory.
func InventoryFromProto(inv *agentpb.Inventory) Inventory {
	out := Inventory{DriverVersion: inv.GetDriverVersion(), CUDAVersion: inv.GetCudaVersion(), NCCLVersion: inv.GetNcclVersion(), Simulated: inv.GetSimulated()}
	for _, g := range inv.GetGpus() {
		out.GPUs = append(out.GPUs, GPUInfo{Index: int(g.GetIndex()), UUID: g.GetUuid(), Model: g.GetModel(), MemoryTotalBytes: g.GetMemoryTotalBytes()})
	}
	for _, p := range inv.GetIbPorts() {
		out.IBPorts = append(out.IBPorts, IBPortInfo{Device: p.GetDevice(), Port: int(p.GetPort()), RateGbps: p.GetRateGbps(), LinkLayer: p.GetLinkLayer()})
	}
	return out
}

// MarshalInventory is the wire form of inv, as an agent's Hello carries it
// and the store keeps it (store.NodeRecord.Inventory): the inverse of
// InventoryFromProto over proto.Unmarshal.
func MarshalInventory(inv Inventory) ([]byte, error) {
	out := &agentpb.Inventory{DriverVersion: inv.DriverVersion, CudaVersion: inv.CUDAVersion, NcclVersion: inv.NCCLVersion, Simulated: inv.Simulated}
	for _, g := range inv.GPUs {
		out.Gpus = append(out.Gpus, &agentpb.GpuInfo{Index: int32(g.Index), Uuid: g.UUID, Model: g.Model, MemoryTotalBytes: g.MemoryTotalBytes})
	}
	for _, p := range inv.IBPorts {
		out.IbPorts = append(out.IbPorts, &agentpb.IbPortInfo{Device: p.Device, Port: int32(p.Port), RateGbps: p.RateGbps, LinkLayer: p.LinkLayer})
	}
	return proto.Marshal(out)
}

// ToProto is the wire form of s (RecoveryAction is not on the wire; the
// Slurm job is one process of it).
func (s GPUSample) ToProto() *agentpb.GpuSample {
	g := &agentpb.GpuSample{
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
	if s.SlurmJobID != "" {
		g.Processes = []*agentpb.GpuProcess{{SlurmJobId: s.SlurmJobID}}
	}
	return g
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

// ProgressFromProto converts a wire progress update.
func ProgressFromProto(p *agentpb.ProgressUpdate) Progress {
	out := Progress{RunID: p.GetRunId(), Time: p.GetUpdateTime().AsTime(), Step: p.GetStep(), TotalSteps: p.GetTotalSteps(),
		Loss: p.GetLoss(), SamplesPerSecond: p.GetSamplesPerSecond(), Metrics: p.GetMetrics()}
	if c := p.GetCheckpoint(); c != nil {
		out.Checkpoint = &Checkpoint{Step: c.GetStep(), Path: c.GetPath(), Time: c.GetWriteTime().AsTime()}
	}
	return out
}

// ToProto is the wire form of p.
func (p Progress) ToProto() *agentpb.ProgressUpdate {
	out := &agentpb.ProgressUpdate{RunId: p.RunID, UpdateTime: timestamppb.New(p.Time), Step: p.Step, TotalSteps: p.TotalSteps,
		Loss: p.Loss, SamplesPerSecond: p.SamplesPerSecond, Metrics: p.Metrics}
	if c := p.Checkpoint; c != nil {
		out.Checkpoint = &agentpb.ProgressCheckpoint{Step: c.Step, Path: c.Path, WriteTime: timestamppb.New(c.Time)}
	}
	return out
}

// SetFromProto makes dst the batch b, reusing dst's slices: the ingest path
// converts every batch without allocating. Events without a time get now.
func (dst *Batch) SetFromProto(b *agentpb.Batch, now time.Time) {
	dst.Sequence, dst.DroppedSamples = b.GetSequence(), b.GetDroppedSamples()
	dst.GPUSamples = dst.GPUSamples[:0]
	for _, g := range b.GetGpuSamples() {
		dst.GPUSamples = append(dst.GPUSamples, GPUSampleFromProto(g))
	}
	dst.IBSamples = dst.IBSamples[:0]
	for _, p := range b.GetIbSamples() {
		dst.IBSamples = append(dst.IBSamples, IBPortSampleFromProto(p))
	}
	dst.Events = dst.Events[:0]
	for _, e := range b.GetHealthEvents() {
		dst.Events = append(dst.Events, HealthEventFromProto(e, now))
	}
	dst.Progress = dst.Progress[:0]
	for _, p := range b.GetProgress() {
		dst.Progress = append(dst.Progress, ProgressFromProto(p))
	}
}

// ToProto is the wire form of b.
func (b *Batch) ToProto() *agentpb.Batch {
	p := &agentpb.Batch{Sequence: b.Sequence, DroppedSamples: b.DroppedSamples}
	for _, g := range b.GPUSamples {
		p.GpuSamples = append(p.GpuSamples, g.ToProto())
	}
	for _, s := range b.IBSamples {
		p.IbSamples = append(p.IbSamples, s.ToProto())
	}
	for _, e := range b.Events {
		p.HealthEvents = append(p.HealthEvents, e.ToProto())
	}
	for _, u := range b.Progress {
		p.Progress = append(p.Progress, u.ToProto())
	}
	return p
}
