package api

import (
	"math"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sopilot/sopilot/internal/run"
	"github.com/sopilot/sopilot/internal/scheduler"
	"github.com/sopilot/sopilot/pkg/apipb"
)

// specFromProto converts without judging: validation happens in the
// controller so that every caller gets the same rules.
func specFromProto(p *apipb.RunSpec) run.Spec {
	if p == nil {
		return run.Spec{}
	}
	s := run.Spec{
		JobName:          p.GetJobName(),
		Nodes:            int(p.GetNodes()),
		TasksPerNode:     int(p.GetTasksPerNode()),
		GPUsPerNode:      int(p.GetGpusPerNode()),
		CPUsPerTask:      int(p.GetCpusPerTask()),
		Partition:        p.GetPartition(),
		Argv:             p.GetArgv(),
		Script:           p.GetScript(),
		WorkingDirectory: p.GetWorkingDirectory(),
		Environment:      p.GetEnvironment(),
		OutputDirectory:  p.GetOutputDirectory(),
		DependsOn:        p.GetDependsOn(),
		Labels:           p.GetLabels(),
		ResultsPath:      p.GetResultsPath(),
	}
	if d := p.GetTimeLimit(); d != nil {
		// An out-of-range Duration becomes a negative limit, which
		// validation rejects with the field's name.
		if err := d.CheckValid(); err != nil {
			s.TimeLimit = -1
		} else {
			s.TimeLimit = d.AsDuration()
			if s.TimeLimit == math.MaxInt64 {
				// Saturated: keep it whole seconds so validation reports
				// the real problem, the maximum, not the precision.
				s.TimeLimit = s.TimeLimit.Truncate(time.Second)
			}
		}
	}
	return s
}

func specToProto(s run.Spec) *apipb.RunSpec {
	p := &apipb.RunSpec{
		JobName:          s.JobName,
		Nodes:            int32(s.Nodes),
		TasksPerNode:     int32(s.TasksPerNode),
		GpusPerNode:      int32(s.GPUsPerNode),
		CpusPerTask:      int32(s.CPUsPerTask),
		Partition:        s.Partition,
		Argv:             s.Argv,
		Script:           s.Script,
		WorkingDirectory: s.WorkingDirectory,
		Environment:      s.Environment,
		OutputDirectory:  s.OutputDirectory,
		DependsOn:        s.DependsOn,
		Labels:           s.Labels,
		ResultsPath:      s.ResultsPath,
	}
	if s.TimeLimit > 0 {
		p.TimeLimit = durationpb.New(s.TimeLimit)
	}
	return p
}

func runToProto(r *run.Run) *apipb.Run {
	p := &apipb.Run{
		Id:          r.ID,
		Name:        r.Spec.JobName,
		Spec:        specToProto(r.Spec),
		State:       stateToProto(r.State),
		SlurmState:  r.SlurmState,
		Reason:      r.Reason,
		SlurmJobId:  r.SlurmJobID,
		NodeList:    r.NodeList,
		ExitCode:    int32(r.ExitCode),
		ExitSignal:  int32(r.ExitSignal),
		OutputPath:  r.OutputPath,
		RequestId:   r.RequestID,
		CreateTime:  ts(r.CreateTime),
		SubmitTime:  ts(r.SubmitTime),
		StartTime:   ts(r.StartTime),
		EndTime:     ts(r.EndTime),
		UpdateTime:  ts(r.UpdateTime),
		IncidentIds: r.IncidentIDs,
		Owner:       r.Owner,
	}
	if u := r.Usage; u != nil {
		p.Usage = &apipb.RunUsage{
			GpuCount:                  int32(u.GPUCount),
			GpuUtilizationMeanPercent: u.UtilizationMean,
			GpuUtilizationP95Percent:  u.UtilizationP95,
			GpuMemoryPeakBytes:        u.MemoryPeakBytes,
			EnergyJoules:              u.EnergyJoules,
			GpuHours:                  u.GPUHours,
			Xids:                      u.XIDs,
			Simulated:                 u.Simulated,
		}
	}
	if nodes, err := scheduler.ExpandHostlist(r.NodeList); err == nil {
		p.Nodes = nodes
	}
	if pr := r.Progress; pr != nil {
		p.Progress = &apipb.RunProgress{
			Step:             pr.Step,
			TotalSteps:       pr.TotalSteps,
			Loss:             pr.Loss,
			SamplesPerSecond: pr.SamplesPerSecond,
			UpdateTime:       ts(pr.UpdateTime),
			Metrics:          pr.Metrics,
		}
		if pr.ETA > 0 {
			p.Progress.Eta = durationpb.New(pr.ETA)
		}
	}
	return p
}

func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

// The two enums share their order; the explicit tables keep them honest if
// either ever changes.
var stateToProtoTable = map[run.State]apipb.RunState{
	run.StatePending:     apipb.RunState_RUN_STATE_PENDING,
	run.StateRunning:     apipb.RunState_RUN_STATE_RUNNING,
	run.StateCompleting:  apipb.RunState_RUN_STATE_COMPLETING,
	run.StateCompleted:   apipb.RunState_RUN_STATE_COMPLETED,
	run.StateFailed:      apipb.RunState_RUN_STATE_FAILED,
	run.StateCancelled:   apipb.RunState_RUN_STATE_CANCELLED,
	run.StateTimeout:     apipb.RunState_RUN_STATE_TIMEOUT,
	run.StateNodeFail:    apipb.RunState_RUN_STATE_NODE_FAIL,
	run.StatePreempted:   apipb.RunState_RUN_STATE_PREEMPTED,
	run.StateOutOfMemory: apipb.RunState_RUN_STATE_OUT_OF_MEMORY,
	run.StateLost:        apipb.RunState_RUN_STATE_LOST,
}

func stateToProto(s run.State) apipb.RunState { return stateToProtoTable[s] }

func stateFromProto(p apipb.RunState) (run.State, bool) {
	for k, v := range stateToProtoTable {
		if v == p {
			return k, true
		}
	}
	return run.StateUnspecified, false
}
