package api

import (
	"context"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sopilot/sopilot/internal/controller"
	"github.com/sopilot/sopilot/internal/run"
	"github.com/sopilot/sopilot/internal/stats"
	"github.com/sopilot/sopilot/pkg/apipb"
)

type fakeComparer struct {
	got controller.CompareRequest
	rep *controller.CompareReport
	err error
}

func (f *fakeComparer) Compare(_ context.Context, req controller.CompareRequest) (*controller.CompareReport, error) {
	f.got = req
	return f.rep, f.err
}

func (f *fakeComparer) CompareGroups(context.Context, controller.GroupRequest) (stats.Verdict, []controller.GroupMetricResult, error) {
	return 0, nil, f.err
}

func TestCompareRunsMapsReportAndLegacyFields(t *testing.T) {
	loss := stats.Comparison{
		Paired: true, Direction: stats.LowerIsBetter, Verdict: stats.Improved,
		Baseline:       stats.Summary{N: 100, Mean: 0.5, Std: 0.1, Min: 0.2, Max: 0.9},
		Candidate:      stats.Summary{N: 100, Mean: 0.4, Std: 0.1, Min: 0.1, Max: 0.8},
		AbsoluteChange: -0.1, Relative: stats.RelativeChange{Value: -0.2, OK: true},
		CILow: -0.12, CIHigh: -0.08, ConfidenceLevel: 0.95,
		Test: stats.TestResult{Name: stats.TestPairedT, PValue: 1e-6}, Wins: 70, Ties: 5, Losses: 25,
	}
	f := &fakeComparer{rep: &controller.CompareReport{
		Baseline: &run.Run{ID: "r-a"}, Candidate: &run.Run{ID: "r-b"}, Verdict: stats.Improved,
		Metrics:      []controller.MetricResult{{Name: "loss", Comparison: loss}},
		BaselineCost: controller.RunCost{GPUs: 8, Wall: time.Hour, GPUHours: 8, UtilizationMean: 87, UtilizationMeasured: true}, CandidateCost: controller.RunCost{GPUs: 16, Wall: 36 * time.Minute, GPUHours: 9.6},
		Efficiency: &stats.Efficiency{Speedup: 1.667, ScalingEfficiency: 0.833},
	}}
	s := NewComparisonServer(f, slog.New(slog.DiscardHandler))
	resp, err := s.CompareRuns(context.Background(), &apipb.CompareRunsRequest{
		BaselineRunId: "r-a", CandidateRunId: "r-b", Seed: 9, BootstrapResamples: 500,
		Metrics: []*apipb.MetricSpec{{Name: "loss", Direction: apipb.Direction_DIRECTION_LOWER_IS_BETTER, MinRelativeImprovement: 0.01}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if f.got.Seed != 9 || f.got.Resamples != 500 || f.got.Metrics[0].Direction != stats.LowerIsBetter || f.got.Metrics[0].MinRelativeImprovement != 0.01 {
		t.Errorf("request reached the controller as %+v", f.got)
	}
	m := resp.GetMetrics()[0]
	if resp.GetVerdict() != apipb.Verdict_VERDICT_IMPROVED || m.GetTest() != "paired_t" || m.GetWins() != 70 || m.GetRelativeChange() != -0.2 || !m.GetPaired() {
		t.Errorf("response = %v", resp)
	}
	if resp.GetScalingEfficiency() != 0.833 || resp.GetCandidateEfficiency().GetGpuCount() != 16 || resp.GetBaselineEfficiency().GetWallSeconds() != 3600 {
		t.Errorf("efficiency = %v / %v / %v", resp.GetScalingEfficiency(), resp.GetBaselineEfficiency(), resp.GetCandidateEfficiency())
	}
	// Utilisation comes from the recorded usage, and says when there was none.
	if be, ce := resp.GetBaselineEfficiency(), resp.GetCandidateEfficiency(); be.GetGpuUtilizationMeanPercent() != 87 || !be.GetGpuUtilizationMeasured() || ce.GetGpuUtilizationMeasured() {
		t.Errorf("utilisation: baseline %v (measured %v), candidate measured %v", be.GetGpuUtilizationMeanPercent(), be.GetGpuUtilizationMeasured(), ce.GetGpuUtilizationMeasured())
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(resp.GetReportJson()), &doc); err != nil {
		t.Fatal(err)
	}
	diff := doc["differences"].(map[string]any)
	// Loss fell by 20 %: for the old report's readers that is +20 % "improvement".
	if diff["improvement_percent"] != 20.0 || doc["trained_model"].(map[string]any)["mean_output"] != 0.4 || doc["original_model"].(map[string]any)["num_samples"] != 100.0 {
		t.Errorf("legacy fields = %v / %v / %v", diff, doc["trained_model"], doc["original_model"])
	}

	// The whole response is in the report too, with proto field names.
	metric0 := doc["metrics"].([]any)[0].(map[string]any)
	if metric0["absolute_change"] != -0.1 || metric0["test"] != "paired_t" || doc["baseline_efficiency"].(map[string]any)["wall_seconds"] != 3600.0 {
		t.Errorf("report body = metrics[0] %v, baseline_efficiency %v", metric0, doc["baseline_efficiency"])
	}
	if _, ok := doc["report_json"]; ok || doc["baseline_run_id"] != "r-a" {
		t.Errorf("report holds report_json or lacks the run ids: %v", doc)
	}

	loss.Relative = stats.RelativeChange{Reason: "baseline mean is too close to 0"}
	f.rep.Metrics[0].Comparison = loss
	resp, err = s.CompareRuns(context.Background(), &apipb.CompareRunsRequest{BaselineRunId: "r-a", CandidateRunId: "r-b"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetMetrics()[0].RelativeChange != nil || resp.GetMetrics()[0].GetRelativeChangeNote() == "" {
		t.Errorf("omitted relative change came back as %v (note %q)", resp.GetMetrics()[0].RelativeChange, resp.GetMetrics()[0].GetRelativeChangeNote())
	}
	_ = json.Unmarshal([]byte(resp.GetReportJson()), &doc)
	if d := doc["differences"].(map[string]any); d["improvement_percent"] != nil || d["improvement_percent_omitted"] == "" {
		t.Errorf("legacy improvement with a near-zero baseline = %v", d)
	}

	if _, err := s.CompareRuns(context.Background(), &apipb.CompareRunsRequest{Seed: -1}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("negative seed: %v", err)
	}
	f.err = controller.ErrNotFound
	if _, err := s.CompareRuns(context.Background(), &apipb.CompareRunsRequest{}); status.Code(err) != codes.NotFound {
		t.Errorf("unknown run: %v", err)
	}
}
