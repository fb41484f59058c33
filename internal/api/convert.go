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
	if rp := p.GetRetry(); rp != nil {
		s.Retry = &run.RetryPolicy{MaxAttempts: int(rp.GetMaxAttempts()), KeepFaultyNodes: rp.GetKeepFaultyNodes()}
		for _, c := range rp.GetCauses() {
			s.Retry.Causes = append(s.Retry.Causes, run.Cause(c)) // same numbering
		}
		if d := rp.GetBackoff(); d != nil {
			if d.CheckValid() != nil {
				s.Retry.Backoff = -1 // validation names the field
			} else {
				s.Retry.Backoff = d.AsDuration()
			}
		}
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
	if rp := s.Retry; rp != nil {
		p.Retry = &apipb.RetryPolicy{MaxAttempts: int32(rp.MaxAttempts), KeepFaultyNodes: rp.KeepFaultyNodes}
		for _, c := range rp.Causes {
			p.Retry.Causes = append(p.Retry.Causes, apipb.RetryCause(c))
		}
		if rp.Backoff > 0 {
			p.Retry.Backoff = durationpb.New(rp.Backoff)
		}
	}
	return p
}

func attemptToProto(a run.Attempt) *apipb.RunAttempt {
	p := &apipb.RunAttempt{
		Number: int32(a.Number), SlurmJobId: a.SlurmJobID, NodeList: a.NodeList, State: stateToProto(a.State),
		SubmitTime: ts(a.SubmitTime), StartTime: ts(a.StartTime), EndTime: ts(a.EndTime),
		Cause: apipb.RetryCause(a.Cause), FaultyNodes: a.FaultyNodes, IncidentId: a.IncidentID,
	}
	if c := a.Checkpoint; c != nil {
		p.CheckpointStep, p.CheckpointPath = c.Step, c.Path
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
	if r.Spec.Retry == nil && r.Attempt() == 1 {
		return p
	}
	for _, a := range r.AllAttempts() {
		p.Attempts = append(p.Attempts, attemptToProto(a))
	}
	// Computed now for a run still going; as stored for one that ended.
	g := r.ComputeGoodput(time.Now())
	if r.State.Terminal() && r.Goodput != nil {
		g = *r.Goodput
	}
	p.Goodput = &apipb.RunGoodput{GpuHoursUsed: g.GPUHoursUsed, GpuHoursKept: g.GPUHoursKept, LostGpuHoursByCause: g.LostByCause}
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
