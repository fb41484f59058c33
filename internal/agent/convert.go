package agent

import (
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sopilot/sopilot/internal/agent/gpu"
	"github.com/sopilot/sopilot/internal/agent/ib"
	"github.com/sopilot/sopilot/internal/agent/progress"
	"github.com/sopilot/sopilot/pkg/agentpb"
)

func gpuSampleToProto(s gpu.Sample, jobs map[int32]string) *agentpb.GpuSample {
	p := &agentpb.GpuSample{
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
	for _, pr := range s.Processes {
		gp := &agentpb.GpuProcess{Pid: pr.PID, SlurmJobId: jobs[pr.PID]}
		if pr.MemoryUsedBytes != nil {
			gp.MemoryUsedBytes = *pr.MemoryUsedBytes
		}
		p.Processes = append(p.Processes, gp)
	}
	return p
}

func healthEventToProto(e gpu.HealthEvent) *agentpb.HealthEvent {
	return &agentpb.HealthEvent{
		EventTime: timestamppb.New(e.Time),
		Component: e.Component,
		Kind:      e.Kind,
		Code:      e.Code,
		Message:   e.Message,
	}
}

func ibSampleToProto(s ib.Sample) *agentpb.IbSample {
	return &agentpb.IbSample{
		SampleTime: timestamppb.New(s.Time),
		Device:     s.Device,
		Port:       int32(s.Port),
		State:      s.State,
		PhysState:  s.PhysState,
		RateGbps:   int64(s.RateGbps),
		Counters:   s.Counters,
	}
}

func progressToProto(runID string, u progress.Update) *agentpb.ProgressUpdate {
	p := &agentpb.ProgressUpdate{
		RunId:      runID,
		UpdateTime: timestamppb.New(u.Time),
		Step:       u.Step,
		TotalSteps: u.TotalSteps,
		Metrics:    u.Metrics,
	}
	if u.Loss != nil {
		p.Loss = *u.Loss
	}
	if u.SamplesPerSecond != nil {
		p.SamplesPerSecond = *u.SamplesPerSecond
	}
	return p
}
