package agent

import (
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sopilot/sopilot/internal/agent/gpu"
	"github.com/sopilot/sopilot/internal/agent/ib"
	"github.com/sopilot/sopilot/internal/agent/progress"
	"github.com/sopilot/sopilot/pkg/agentpb"
)

// gpuSampleToProto converts a GPU's sample. gpuJob, when not empty, is the
// job that Soperator's GPU→job file names for this GPU, and it is the job
// of every process on the GPU; otherwise each process has its own from
// jobs (pid → job). A file is believed only while the GPU runs processes:
// Soperator 1.20's epilog leaves the file behind when the job ends, so on
// an idle GPU it names a finished job.
func gpuSampleToProto(s gpu.Sample, jobs map[int32]string, gpuJob string) *agentpb.GpuSample {
	p := s.GPUSample.ToProto()
	for _, pr := range s.Processes {
		job := jobs[pr.PID]
		if gpuJob != "" {
			job = gpuJob
		}
		gp := &agentpb.GpuProcess{Pid: pr.PID, SlurmJobId: job}
		if pr.MemoryUsedBytes != nil {
			gp.MemoryUsedBytes = *pr.MemoryUsedBytes
		}
		p.Processes = append(p.Processes, gp)
	}
	return p
}

func ibSampleToProto(s ib.Sample) *agentpb.IbSample {
	return &agentpb.IbSample{
		SampleTime: timestamppb.New(s.Time),
		Device:     s.Device,
		Port:       int32(s.Port),
		State:      s.State,
		PhysState:  s.PhysState,
		RateGbps:   int64(s.RateGbps),
		Counters:   ibCountersToProto(s.Counters),
	}
}

// ibCountersToProto picks the standard counters out of sysfs's names.
func ibCountersToProto(c map[string]uint64) *agentpb.IbCounters {
	if c == nil {
		return nil
	}
	return &agentpb.IbCounters{
		SymbolError:                  c["symbol_error"],
		LinkErrorRecovery:            c["link_error_recovery"],
		LinkDowned:                   c["link_downed"],
		PortRcvErrors:                c["port_rcv_errors"],
		PortRcvRemotePhysicalErrors:  c["port_rcv_remote_physical_errors"],
		PortRcvSwitchRelayErrors:     c["port_rcv_switch_relay_errors"],
		PortXmitDiscards:             c["port_xmit_discards"],
		PortXmitConstraintErrors:     c["port_xmit_constraint_errors"],
		PortRcvConstraintErrors:      c["port_rcv_constraint_errors"],
		LocalLinkIntegrityErrors:     c["local_link_integrity_errors"],
		ExcessiveBufferOverrunErrors: c["excessive_buffer_overrun_errors"],
		Vl15Dropped:                  c["VL15_dropped"],
		PortXmitWait:                 c["port_xmit_wait"],
		PortRcvData:                  c["port_rcv_data"],
		PortXmitData:                 c["port_xmit_data"],
		PortRcvPackets:               c["port_rcv_packets"],
		PortXmitPackets:              c["port_xmit_packets"],
		UnicastRcvPackets:            c["unicast_rcv_packets"],
		UnicastXmitPackets:           c["unicast_xmit_packets"],
		MulticastRcvPackets:          c["multicast_rcv_packets"],
		MulticastXmitPackets:         c["multicast_xmit_packets"],
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

// checkpointToProto is the checkpoint a progress line reported.
func checkpointToProto(u progress.Update) *agentpb.ProgressCheckpoint {
	return &agentpb.ProgressCheckpoint{Step: u.Step, Path: u.Checkpoint, WriteTime: timestamppb.New(u.Time)}
}
