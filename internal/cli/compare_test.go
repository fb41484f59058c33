package cli

import (
	"errors"
	"math"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/sopilot/sopilot/pkg/apipb"
)

func TestCompareRequest(t *testing.T) {
	c := &compareOptions{metrics: []string{"correct:higher", "loss:LOWER"}, seed: 7, resamples: 2000, confidence: 0.9, minAbs: 0.01, minRel: 0.02}
	got, err := c.request("r-base", "r-cand")
	if err != nil {
		t.Fatal(err)
	}
	want := &apipb.CompareRunsRequest{BaselineRunId: "r-base", CandidateRunId: "r-cand", Seed: 7,
		BootstrapResamples: 2000, ConfidenceLevel: 0.9, Metrics: []*apipb.MetricSpec{
			{Name: "correct", Direction: apipb.Direction_DIRECTION_HIGHER_IS_BETTER, MinAbsoluteImprovement: 0.01, MinRelativeImprovement: 0.02},
			{Name: "loss", Direction: apipb.Direction_DIRECTION_LOWER_IS_BETTER, MinAbsoluteImprovement: 0.01, MinRelativeImprovement: 0.02}}}
	if !proto.Equal(got, want) {
		t.Errorf("request = %v, want %v", got, want)
	}
	tests := []struct {
		name string
		opts compareOptions
		want string
	}{
		{"no metric", compareOptions{confidence: 0.95}, "at least one --metric"},
		{"no direction", compareOptions{metrics: []string{"correct"}, confidence: 0.95}, `--metric "correct"`},
		{"bad direction", compareOptions{metrics: []string{"correct:up"}, confidence: 0.95}, `--metric "correct:up"`},
		{"no name", compareOptions{metrics: []string{":higher"}, confidence: 0.95}, `--metric ":higher"`},
		{"confidence 1", compareOptions{metrics: []string{"correct:higher"}, confidence: 1}, "--confidence 1"},
		{"negative resamples", compareOptions{metrics: []string{"correct:higher"}, confidence: 0.95, resamples: -1}, "--resamples"},
		{"negative minimum", compareOptions{metrics: []string{"correct:higher"}, confidence: 0.95, minAbs: -1}, "--min-absolute-improvement"},
		{"infinite minimum", compareOptions{metrics: []string{"correct:higher"}, confidence: 0.95, minRel: math.Inf(1)}, "--min-relative-improvement"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.opts.request("a", "b")
			if !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want a usage error containing %q", err, tt.want)
			}
		})
	}
}

func TestRenderComparison(t *testing.T) {
	rel := 0.5
	resp := &apipb.CompareRunsResponse{
		Verdict: apipb.Verdict_VERDICT_IMPROVED,
		Metrics: []*apipb.MetricComparison{
			{Name: "correct", Direction: apipb.Direction_DIRECTION_HIGHER_IS_BETTER, Verdict: apipb.Verdict_VERDICT_IMPROVED,
				Paired: true, Test: "mcnemar_chi_square", Baseline: &apipb.Summary{N: 200, Mean: 0.6, Std: 0.4911},
				Candidate: &apipb.Summary{N: 200, Mean: 0.9, Std: 0.3008}, AbsoluteChange: 0.3, RelativeChange: &rel,
				CiLow: 0.24, CiHigh: 0.365, ConfidenceLevel: 0.95, PValue: 2.6e-14, Wins: 60, Ties: 140,
				BaselineOnlySamples: 1, TieTolerance: 1e-9,
				Tests: []*apipb.TestResult{{Name: "mcnemar_chi_square", PValue: 2.6e-14, Method: "chi-square with continuity correction"},
					{Name: "wilcoxon_signed_rank", PValue: 3.1e-14, Method: "normal approximation with tie correction"}},
				Deltas: &apipb.Summary{N: 200, Min: 0, P50: 0, P90: 1, Max: 1}},
			{Name: "score", Direction: apipb.Direction_DIRECTION_HIGHER_IS_BETTER, Verdict: apipb.Verdict_VERDICT_INCONCLUSIVE,
				Paired: true, Test: "paired_t", Baseline: &apipb.Summary{N: 4, Mean: 0.5, Std: 0.1}, Candidate: &apipb.Summary{N: 4, Mean: 0.5, Std: 0.1},
				AbsoluteChange: 2.7e-17, CiLow: -2.776e-17, CiHigh: 5.5e-17, ConfidenceLevel: 0.95, PValue: 1, Ties: 4, TieTolerance: 1e-9},
			{Name: "loss", Direction: apipb.Direction_DIRECTION_LOWER_IS_BETTER, Verdict: apipb.Verdict_VERDICT_NO_SIGNIFICANT_CHANGE,
				Paired: false, Test: "welch", Baseline: &apipb.Summary{N: 200, Mean: 0.0001, Std: 0.002},
				Candidate: &apipb.Summary{N: 150, Mean: 0.0002, Std: 0.003}, AbsoluteChange: 0.0001,
				RelativeChangeNote: "baseline mean is near zero", CiLow: -0.0004, CiHigh: 0.0006, ConfidenceLevel: 0.95,
				PValue: 0.71, Note: "runs scored different samples; unpaired test"},
		},
		BaselineEfficiency: &apipb.Efficiency{WallSeconds: 750, QueueSeconds: 1, GpuHours: 3.33, GpuUtilizationMeanPercent: 87, GpuUtilizationMeasured: true,
			SamplesPerSecond: 812.5, SamplesPerSecondReported: true, GpuCount: 16, Attempts: 2,
			Goodput: &apipb.RunGoodput{GpuHoursUsed: 3.33, GpuHoursKept: 3.1, LostGpuHoursByCause: map[string]float64{"HARDWARE": 0.2, "NODE_FAIL": 0.03}}},
		// Nothing measured: shown as —, never 0 %.
		CandidateEfficiency: &apipb.Efficiency{WallSeconds: 420, QueueSeconds: 3, GpuHours: 3.73, GpuCount: 32},
		RunMetrics:          []*apipb.RunMetricComparison{{Name: "accuracy", Baseline: &rel, Candidate: &rel}, {Name: "bleu", Candidate: &rel}},
		Speedup:             1.79, ScalingEfficiency: 0.89,
		IncidentIds: []string{"inc-1"},
	}
	var b strings.Builder
	printComparison(&b, resp, false, "r-base", "r-cand")
	if !strings.HasPrefix(b.String(), "verdict: IMPROVED (on correct, higher is better)\n") {
		t.Errorf("the verdict is not first:\n%s", b.String())
	}
	golden(t, "compare.golden", b.String())

	b.Reset()
	printComparison(&b, resp, true, "r-base", "r-cand")
	if !strings.HasPrefix(b.String(), "verdict: \x1b[32;1mIMPROVED\x1b[0m (on correct") {
		t.Errorf("coloured verdict line: %q", strings.SplitN(b.String(), "\n", 2)[0])
	}
}

func TestGroupComparisonOutputAndErrors(t *testing.T) {
	resp := &apipb.CompareRunGroupsResponse{
		Verdict: apipb.Verdict_VERDICT_IMPROVED,
		Metrics: []*apipb.GroupMetricComparison{{
			Name:     "correct",
			Baseline: &apipb.GroupSummary{Runs: 3, Mean: 0.55, Std: 0.01}, Candidate: &apipb.GroupSummary{Runs: 3, Mean: 0.97, Std: 0.005},
			Verdict: apipb.Verdict_VERDICT_IMPROVED, PValue: 1.5e-6, CiLow: 0.4, CiHigh: 0.44,
		}},
	}
	var b strings.Builder
	printGroupComparison(&b, resp, 0.95)
	want := "verdict: IMPROVED (groups of runs, Welch's t-test on run means)\n\n" +
		"METRIC   VERDICT   BASELINE (mean ± sd, runs)  CANDIDATE (mean ± sd, runs)  CHANGE CI           P-VALUE\n" +
		"correct  IMPROVED  0.55 ± 0.01, 3              0.97 ± 0.005, 3              [+0.4, +0.44] @95%  1.5e-06\n"
	if b.String() != want {
		t.Errorf("output =\n%s\nwant\n%s", b.String(), want)
	}

	// Every run of each group gave the same value (the same model evaluated
	// twice): the controller's p-value is the exact permutation test's, and
	// with 2 and 2 runs it is at least 2/C(4,2) = 1/3.
	constant := &apipb.CompareRunGroupsResponse{
		Verdict: apipb.Verdict_VERDICT_NO_SIGNIFICANT_CHANGE,
		Metrics: []*apipb.GroupMetricComparison{{
			Name:     "correct",
			Baseline: &apipb.GroupSummary{Runs: 2, Mean: 0.5472}, Candidate: &apipb.GroupSummary{Runs: 2, Mean: 0.9694},
			Verdict: apipb.Verdict_VERDICT_NO_SIGNIFICANT_CHANGE, PValue: 1.0 / 3, CiLow: 0.4222, CiHigh: 0.4222,
		}},
	}
	b.Reset()
	printGroupComparison(&b, constant, 0.95)
	wantNote := "note: correct: every run of each group gave the same value, so the p-value is the exact permutation test's (not Welch's t); " +
		"with 2 and 2 runs it cannot go below 0.33 (2/C(4,2)): more runs per group are needed to show a change\n"
	if !strings.HasSuffix(b.String(), wantNote) {
		t.Errorf("constant groups: output =\n%s\nwant it to end with\n%s", b.String(), wantNote)
	}
	for _, tc := range []struct {
		name           string
		nb, nc         int32
		bStd, cStd     float64
		bMean, cMean   float64
		wantNoteSuffix string
	}{
		{name: "3 and 4 runs", nb: 3, nc: 4, bMean: 1, cMean: 2, wantNoteSuffix: "with 3 and 4 runs it cannot go below 0.057 (2/C(7,3)): more runs per group are needed to show a change"},
		{name: "spread in one group", nb: 2, nc: 2, bStd: 0.1, bMean: 1, cMean: 2},
		{name: "no change", nb: 2, nc: 2, bMean: 1, cMean: 1},
	} {
		got := constantGroupsNote(&apipb.GroupMetricComparison{
			Baseline:  &apipb.GroupSummary{Runs: tc.nb, Mean: tc.bMean, Std: tc.bStd},
			Candidate: &apipb.GroupSummary{Runs: tc.nc, Mean: tc.cMean, Std: tc.cStd},
		})
		if tc.wantNoteSuffix == "" && got != "" || !strings.HasSuffix(got, tc.wantNoteSuffix) {
			t.Errorf("%s: note %q, want one ending %q", tc.name, got, tc.wantNoteSuffix)
		}
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"compare", "r-1,r-2", "r-3", "--metric", "correct:higher"}, "a group needs at least 2 runs"},
		{[]string{"compare", "r-1,,r-2", "r-3,r-4", "--metric", "correct:higher"}, "an empty run id"},
		{[]string{"compare", "r-1,r-2", "r-3,r-4"}, "at least one --metric"},
	} {
		r := sopilot(t, invocation{args: tt.args})
		if r.code != ExitUsage || !strings.Contains(r.stderr, tt.want) {
			t.Errorf("%v: exit %d, stderr %q; want usage error with %q", tt.args, r.code, r.stderr, tt.want)
		}
	}
}
