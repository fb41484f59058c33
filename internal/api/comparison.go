package api

import (
	"context"
	"encoding/json"
	"log/slog"
	"math"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/sopilot/sopilot/internal/controller"
	"github.com/sopilot/sopilot/internal/run"
	"github.com/sopilot/sopilot/internal/stats"
	"github.com/sopilot/sopilot/pkg/apipb"
)

// Comparer is what ComparisonService needs from the controller.
type Comparer interface {
	Compare(ctx context.Context, req controller.CompareRequest) (*controller.CompareReport, error)
	CompareGroups(ctx context.Context, req controller.GroupRequest) (stats.Verdict, []controller.GroupMetricResult, error)
}

var _ Comparer = (*controller.Service)(nil)

// ComparisonServer implements apipb.ComparisonServiceServer.
type ComparisonServer struct {
	apipb.UnimplementedComparisonServiceServer
	c   Comparer
	log *slog.Logger
}

var _ apipb.ComparisonServiceServer = (*ComparisonServer)(nil)

// NewComparisonServer builds the ComparisonService handlers.
func NewComparisonServer(c Comparer, logger *slog.Logger) *ComparisonServer {
	return &ComparisonServer{c: c, log: logger.With("component", "api")}
}

func metricsFromProto(ms []*apipb.MetricSpec) []controller.MetricRequest {
	out := make([]controller.MetricRequest, 0, len(ms))
	for _, m := range ms {
		out = append(out, controller.MetricRequest{
			Name:                   m.GetName(),
			Direction:              directionFromProto(m.GetDirection()),
			MinAbsoluteImprovement: m.GetMinAbsoluteImprovement(),
			MinRelativeImprovement: m.GetMinRelativeImprovement(),
		})
	}
	return out
}

// directionFromProto maps UNSPECIFIED to a value the controller rejects
// with a field violation.
func directionFromProto(d apipb.Direction) stats.Direction {
	switch d {
	case apipb.Direction_DIRECTION_HIGHER_IS_BETTER:
		return stats.HigherIsBetter
	case apipb.Direction_DIRECTION_LOWER_IS_BETTER:
		return stats.LowerIsBetter
	}
	return stats.Direction(-1)
}

func directionToProto(d stats.Direction) apipb.Direction {
	if d == stats.LowerIsBetter {
		return apipb.Direction_DIRECTION_LOWER_IS_BETTER
	}
	return apipb.Direction_DIRECTION_HIGHER_IS_BETTER
}

func verdictToProto(v stats.Verdict) apipb.Verdict {
	switch v {
	case stats.Improved:
		return apipb.Verdict_VERDICT_IMPROVED
	case stats.Regressed:
		return apipb.Verdict_VERDICT_REGRESSED
	case stats.NoSignificantChange:
		return apipb.Verdict_VERDICT_NO_SIGNIFICANT_CHANGE
	case stats.Inconclusive:
		return apipb.Verdict_VERDICT_INCONCLUSIVE
	}
	return apipb.Verdict_VERDICT_UNSPECIFIED
}

func summaryToProto(s stats.Summary) *apipb.Summary {
	return &apipb.Summary{N: int64(s.N), Mean: s.Mean, Std: s.Std, Min: s.Min, P50: s.P50, P90: s.P90, Max: s.Max}
}

func (s *ComparisonServer) CompareRuns(ctx context.Context, req *apipb.CompareRunsRequest) (*apipb.CompareRunsResponse, error) {
	if req.GetSeed() < 0 {
		return nil, badRequest("seed must not be negative", run.FieldViolation{Field: "seed", Description: "must be 0 or positive"})
	}
	rep, err := s.c.Compare(ctx, controller.CompareRequest{
		BaselineID:      req.GetBaselineRunId(),
		CandidateID:     req.GetCandidateRunId(),
		Metrics:         metricsFromProto(req.GetMetrics()),
		ConfidenceLevel: req.GetConfidenceLevel(),
		Resamples:       int(req.GetBootstrapResamples()),
		Seed:            uint64(req.GetSeed()),
	})
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	resp := &apipb.CompareRunsResponse{Verdict: verdictToProto(rep.Verdict)}
	for _, m := range rep.Metrics {
		c := m.Comparison
		mc := &apipb.MetricComparison{
			Name: m.Name, Direction: directionToProto(c.Direction), Verdict: verdictToProto(c.Verdict),
			Paired: c.Paired, Baseline: summaryToProto(c.Baseline), Candidate: summaryToProto(c.Candidate),
			AbsoluteChange: c.AbsoluteChange, CiLow: c.CILow, CiHigh: c.CIHigh, ConfidenceLevel: c.ConfidenceLevel,
			PValue: c.Test.PValue, Test: c.Test.Name,
			Wins: int64(c.Wins), Ties: int64(c.Ties), Losses: int64(c.Losses),
			Note:                joinNonEmpty(c.Note, c.VerdictReason),
			BaselineOnlySamples: int64(m.BaselineOnly), CandidateOnlySamples: int64(m.CandidateOnly),
			TieTolerance: c.Tolerance,
		}
		for _, t := range c.Tests {
			mc.Tests = append(mc.Tests, &apipb.TestResult{Name: t.Name, Statistic: t.Statistic, Df: t.DF, PValue: t.PValue, Method: t.Method})
		}
		if c.Paired {
			mc.Deltas = summaryToProto(c.Deltas)
		}
		if c.Relative.OK {
			v := c.Relative.Value
			mc.RelativeChange = &v
		} else {
			mc.RelativeChangeNote = c.Relative.Reason
		}
		resp.Metrics = append(resp.Metrics, mc)
	}
	for _, rm := range rep.RunMetrics {
		p := &apipb.RunMetricComparison{Name: rm.Name}
		if rm.HasBaseline {
			p.Baseline = &rm.Baseline
		}
		if rm.HasCandidate {
			p.Candidate = &rm.Candidate
		}
		resp.RunMetrics = append(resp.RunMetrics, p)
	}
	resp.BaselineEfficiency = costToProto(rep.BaselineCost)
	resp.CandidateEfficiency = costToProto(rep.CandidateCost)
	if e := rep.Efficiency; e != nil {
		resp.Speedup, resp.ScalingEfficiency = e.Speedup, e.ScalingEfficiency
	}
	report, err := jsonReport(rep, resp)
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	resp.ReportJson = report
	return resp, nil
}

func costToProto(c controller.RunCost) *apipb.Efficiency {
	e := &apipb.Efficiency{
		WallSeconds: c.Wall.Seconds(), QueueSeconds: c.Queue.Seconds(), GpuHours: c.GPUHours,
		GpuCount:         int32(c.GPUs),
		SamplesPerSecond: c.SamplesPerSecond, SamplesPerSecondReported: c.ThroughputReported,
		GpuUtilizationMeanPercent: c.UtilizationMean, GpuUtilizationMeasured: c.UtilizationMeasured,
		Attempts: int32(c.Attempts),
	}
	if c.GoodputMeasured {
		g := c.Goodput
		e.Goodput = &apipb.RunGoodput{GpuHoursUsed: g.GPUHoursUsed, GpuHoursKept: g.GPUHoursKept, LostGpuHoursByCause: g.LostByCause}
	}
	return e
}

func (s *ComparisonServer) CompareRunGroups(ctx context.Context, req *apipb.CompareRunGroupsRequest) (*apipb.CompareRunGroupsResponse, error) {
	if req.GetSeed() < 0 {
		return nil, badRequest("seed must not be negative", run.FieldViolation{Field: "seed", Description: "must be 0 or positive"})
	}
	verdict, res, err := s.c.CompareGroups(ctx, controller.GroupRequest{
		BaselineName: req.GetBaseline().GetName(), CandidateName: req.GetCandidate().GetName(),
		BaselineIDs: req.GetBaseline().GetRunIds(), CandidateIDs: req.GetCandidate().GetRunIds(),
		Metrics: metricsFromProto(req.GetMetrics()), ConfidenceLevel: req.GetConfidenceLevel(), Seed: uint64(req.GetSeed()),
	})
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	resp := &apipb.CompareRunGroupsResponse{Verdict: verdictToProto(verdict)}
	for _, r := range res {
		g := r.Comparison
		resp.Metrics = append(resp.Metrics, &apipb.GroupMetricComparison{
			Name:      r.Name,
			Baseline:  &apipb.GroupSummary{Name: req.GetBaseline().GetName(), Runs: int32(g.Baseline.N), Mean: g.Baseline.Mean, Std: g.Baseline.Std},
			Candidate: &apipb.GroupSummary{Name: req.GetCandidate().GetName(), Runs: int32(g.Candidate.N), Mean: g.Candidate.Mean, Std: g.Candidate.Std},
			Verdict:   verdictToProto(g.Verdict), PValue: g.Test.PValue, CiLow: g.CILow, CiHigh: g.CIHigh,
		})
	}
	return resp, nil
}

// jsonReport is the report_json document: the response itself in
// protobuf's JSON with the proto field names (snake_case, like the rest of
// the document), plus the fields of the seed tutorial's compare_models.py
// report computed correctly from the first metric (docs/statistics.md says
// what each means now).
func jsonReport(rep *controller.CompareReport, resp *apipb.CompareRunsResponse) (string, error) {
	type side = map[string]any
	raw, err := protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}.Marshal(resp)
	if err != nil {
		return "", err
	}
	doc := map[string]any{}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return "", err
	}
	delete(doc, "report_json")
	doc["baseline_run_id"] = rep.Baseline.ID
	doc["candidate_run_id"] = rep.Candidate.ID
	if rep.EfficiencyNote != "" {
		doc["efficiency_note"] = rep.EfficiencyNote
	}
	first := rep.Metrics[0].Comparison
	legacy := func(s stats.Summary) side {
		return side{"mean_output": s.Mean, "std_output": s.Std, "min_output": s.Min, "max_output": s.Max, "num_samples": s.N}
	}
	diff := side{"metric": rep.Metrics[0].Name, "mean_difference": first.AbsoluteChange}
	if first.Relative.OK {
		// Positive means better, whichever way the metric points.
		pct := first.Relative.Value * 100
		if first.Direction == stats.LowerIsBetter {
			pct = -pct
		}
		diff["improvement_percent"] = pct
	} else {
		diff["improvement_percent"] = nil
		diff["improvement_percent_omitted"] = first.Relative.Reason
	}
	doc["trained_model"] = legacy(first.Candidate)
	doc["original_model"] = legacy(first.Baseline)
	doc["differences"] = diff
	out, err := json.MarshalIndent(sanitize(doc), "", "  ")
	return string(out), err
}

// sanitize replaces non-finite floats (which encoding/json refuses) in the
// few places they can occur with null.
func sanitize(v map[string]any) map[string]any {
	for k, x := range v {
		if f, ok := x.(float64); ok && (math.IsNaN(f) || math.IsInf(f, 0)) {
			v[k] = nil
		}
		if m, ok := x.(map[string]any); ok {
			v[k] = sanitize(m)
		}
	}
	return v
}

func joinNonEmpty(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + " " + b
}
