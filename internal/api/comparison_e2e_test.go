package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sopilot/sopilot/internal/controller"
	"github.com/sopilot/sopilot/internal/metrics"
	"github.com/sopilot/sopilot/internal/results"
	"github.com/sopilot/sopilot/internal/run"
	"github.com/sopilot/sopilot/internal/server"
	"github.com/sopilot/sopilot/internal/store"
	"github.com/sopilot/sopilot/pkg/apipb"
)

// compareServer is the real controller on a real store behind the real
// gRPC server, serving ComparisonService over bufconn.
type compareServer struct {
	client  apipb.ComparisonServiceClient
	handler *ComparisonServer
	svc     *controller.Service
}

func serveComparison(t *testing.T) compareServer {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := store.Open(filepath.Join(t.TempDir(), "runs.db"), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	svc := controller.New(controller.Config{DefaultWorkDir: "/work"}, st, &resultsSlurm{}, logger, nil)
	srv, _ := server.NewGRPC(logger, metrics.NewController())
	h := NewComparisonServer(svc, logger)
	apipb.RegisterComparisonServiceServer(srv, h)
	t.Cleanup(func() { // after the server stops
		if err := st.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	conn := dialGRPC(t, srv, false)
	return compareServer{client: apipb.NewComparisonServiceClient(conn), handler: h, svc: svc}
}

// scored creates a run with results: ids[i] scored values[i] on metric.
// A NaN value leaves the sample without the metric.
func (cs compareServer) scored(t *testing.T, metric string, ids []string, values []float64) string {
	t.Helper()
	r, err := cs.svc.Create(context.Background(), run.Spec{
		JobName: "eval", Nodes: 1, TimeLimit: time.Hour, Argv: []string{"python3", "eval.py"},
	}, "")
	if err != nil {
		t.Fatal(err)
	}
	b := results.NewBuilder(results.Limits{})
	for i, id := range ids {
		vals := map[string]float64{"other": 1}
		if !math.IsNaN(values[i]) {
			vals[metric] = values[i]
		}
		if err := b.Add(id, vals); err != nil {
			t.Fatal(err)
		}
	}
	set, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	if err := cs.svc.ReportResults(context.Background(), r.ID, set); err != nil {
		t.Fatal(err)
	}
	return r.ID
}

func sampleIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("q-%05d", i)
	}
	return ids
}

func (cs compareServer) compare(t *testing.T, base, cand, metric string) *apipb.CompareRunsResponse {
	t.Helper()
	resp, err := cs.client.CompareRuns(context.Background(), &apipb.CompareRunsRequest{
		BaselineRunId: base, CandidateRunId: cand, Seed: 1, BootstrapResamples: 2000,
		Metrics: []*apipb.MetricSpec{{Name: metric, Direction: apipb.Direction_DIRECTION_HIGHER_IS_BETTER}},
	})
	if err != nil {
		t.Fatalf("CompareRuns: %v", err)
	}
	return resp
}

// One sample missing from one run must not turn a paired comparison into
// Welch's over every value: pairing uses the samples both runs scored.
func TestCompareRunsPairsOnSharedSamples(t *testing.T) {
	cs := serveComparison(t)
	const n = 1000
	rng := rand.New(rand.NewPCG(3, 4))
	base := make([]float64, n)
	cand := make([]float64, n)
	for i := range base {
		base[i] = rng.NormFloat64()                      // per-sample difficulty
		cand[i] = base[i] + 0.05 + 0.1*rng.NormFloat64() // a small, consistent gain
	}
	cand[17] = math.NaN()
	resp := cs.compare(t, cs.scored(t, "score", sampleIDs(n), base), cs.scored(t, "score", sampleIDs(n), cand), "score")
	m := resp.GetMetrics()[0]
	if !m.GetPaired() || m.GetVerdict() != apipb.Verdict_VERDICT_IMPROVED || m.GetTest() != "paired_t" || m.GetPValue() > 1e-20 {
		t.Errorf("one gap in 1000: paired %v, verdict %v, %s p = %v; want paired, IMPROVED", m.GetPaired(), m.GetVerdict(), m.GetTest(), m.GetPValue())
	}
	if m.GetBaselineOnlySamples() != 1 || m.GetCandidateOnlySamples() != 0 || m.GetBaseline().GetN() != n-1 || m.GetDeltas().GetN() != n-1 {
		t.Errorf("left out %d/%d, n %d, deltas n %d; want 1/0 left out of %d", m.GetBaselineOnlySamples(), m.GetCandidateOnlySamples(), m.GetBaseline().GetN(), m.GetDeltas().GetN(), n-1)
	}
	if !strings.Contains(m.GetNote(), "left out: 1 samples only the baseline scored") {
		t.Errorf("note %q does not say what was left out", m.GetNote())
	}

	// Too few shared samples: Welch over every value, and the note says so.
	resp = cs.compare(t, cs.scored(t, "score", sampleIDs(40), base[:40]), cs.scored(t, "score", slices.Concat(sampleIDs(3), []string{"x1", "x2", "x3", "x4", "x5", "x6", "x7", "x8", "x9", "x10"}), cand[:13]), "score")
	m = resp.GetMetrics()[0]
	if m.GetPaired() || m.GetTest() != "welch_t" || !strings.Contains(m.GetNote(), "share only 3 samples") || m.GetBaselineOnlySamples() != 0 {
		t.Errorf("3 shared samples: paired %v, test %s, note %q", m.GetPaired(), m.GetTest(), m.GetNote())
	}
	if len(m.GetTests()) != 2 || m.GetTests()[1].GetName() != "mann_whitney_u" {
		t.Errorf("unpaired tests = %v, want Welch and Mann-Whitney U", m.GetTests())
	}
}

// Rounding noise must not decide a verdict: candidate = baseline + 0.1 in
// decimal is the same as five (or eight) exactly equal improvements, and
// tiny samples give no verdict at all.
func TestCompareRunsVerdictsRobustToNoiseAndTinySamples(t *testing.T) {
	cs := serveComparison(t)
	tests := []struct {
		name        string
		base, cand  []float64
		wantVerdict apipb.Verdict
		wantTest    string
		wantP       float64
	}{
		{"five decimal improvements", []float64{0.3, 2.0, 3.7, 5.4, 7.1}, []float64{0.4, 2.1, 3.8, 5.5, 7.2},
			apipb.Verdict_VERDICT_INCONCLUSIVE, "sign_flip_exact", 0.0625},
		{"five exact improvements", []float64{0.3, 2.0, 3.7, 5.4, 7.1}, []float64{0.425, 2.125, 3.825, 5.525, 7.225},
			apipb.Verdict_VERDICT_INCONCLUSIVE, "sign_flip_exact", 0.0625},
		{"eight decimal improvements", []float64{0.3, 2.0, 3.7, 5.4, 7.1, 8.8, 10.5, 12.2}, []float64{0.4, 2.1, 3.8, 5.5, 7.2, 8.9, 10.6, 12.3},
			apipb.Verdict_VERDICT_IMPROVED, "sign_flip_exact", 2.0 / 256},
		{"two pairs", []float64{1, 2}, []float64{1.5, 2.51}, apipb.Verdict_VERDICT_INCONCLUSIVE, "paired_t", 0.006302960109532472}, // scipy ttest_rel
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ids := sampleIDs(len(tt.base))
			resp := cs.compare(t, cs.scored(t, "score", ids, tt.base), cs.scored(t, "score", ids, tt.cand), "score")
			m := resp.GetMetrics()[0]
			if resp.GetVerdict() != tt.wantVerdict || m.GetTest() != tt.wantTest || math.Abs(m.GetPValue()-tt.wantP) > 1e-3*tt.wantP {
				t.Errorf("verdict %v, %s p = %v; want %v, %s p = %v (note %q)", resp.GetVerdict(), m.GetTest(), m.GetPValue(), tt.wantVerdict, tt.wantTest, tt.wantP, m.GetNote())
			}
		})
	}
}

// The second test and the deltas' summary are in the response and the
// report, so a reader can do what docs/statistics.md asks: when paired t
// and Wilcoxon disagree, look at the deltas. Expected values from scipy
// 1.10.1: ttest_rel p = 0.6275282327901153 (t = −0.4890745703613765),
// wilcoxon p = 0.0003571899414964719 (min(W⁺, W⁻) = 154, so W⁺ = 666).
func TestCompareRunsReportsSecondTestAndDeltas(t *testing.T) {
	cs := serveComparison(t)
	base := make([]float64, 40)
	cand := make([]float64, 40)
	for i := range base {
		base[i] = float64(10 + i%7)
		d := 0.5 + 0.01*float64(i)
		if i >= 36 {
			d = -8 - 0.1*float64(i-36) // four large losses
		}
		cand[i] = base[i] + d
	}
	ids := sampleIDs(40)
	resp := cs.compare(t, cs.scored(t, "score", ids, base), cs.scored(t, "score", ids, cand), "score")
	m := resp.GetMetrics()[0]
	tests := m.GetTests()
	if len(tests) != 2 || tests[0].GetName() != "paired_t" || tests[1].GetName() != "wilcoxon_signed_rank" {
		t.Fatalf("tests = %v", tests)
	}
	if math.Abs(tests[0].GetPValue()-0.6275282327901153) > 1e-9 || math.Abs(tests[0].GetStatistic()+0.4890745703613765) > 1e-9 {
		t.Errorf("paired t = %v", tests[0])
	}
	if math.Abs(tests[1].GetPValue()-0.0003571899414964719) > 1e-12 || tests[1].GetStatistic() != 666 || tests[1].GetMethod() != "exact permutation distribution" {
		t.Errorf("wilcoxon = %v", tests[1])
	}
	if d := m.GetDeltas(); d.GetN() != 40 || math.Abs(d.GetP50()-0.655) > 1e-9 || math.Abs(d.GetMin()+8.3) > 1e-9 {
		t.Errorf("deltas = %v", d)
	}
	var doc struct {
		Metrics []struct {
			Tests  []map[string]any `json:"tests"`
			Deltas map[string]any   `json:"deltas"`
		} `json:"metrics"`
	}
	if err := json.Unmarshal([]byte(resp.GetReportJson()), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Metrics) != 1 || len(doc.Metrics[0].Tests) != 2 || doc.Metrics[0].Tests[1]["name"] != "wilcoxon_signed_rank" || doc.Metrics[0].Deltas["p50"] == nil {
		t.Errorf("report_json metrics = %+v", doc.Metrics)
	}
}

// Test names are the identifiers the proto lists, and McNemar's variant is
// in the name: exact below 25 discordant pairs, chi-square from 25 on.
func TestCompareRunsTestNamesAsDocumented(t *testing.T) {
	cs := serveComparison(t)
	documented := []string{"paired_t", "sign_flip_exact", "mcnemar_exact", "mcnemar_chi_square", "welch_t", "permutation_exact", "wilcoxon_signed_rank", "mann_whitney_u"}
	correct := func(n, flips int) (b, c []float64) {
		b, c = make([]float64, n), make([]float64, n)
		for i := range b {
			b[i] = float64(i % 2)
			c[i] = b[i]
			if i < 2*flips && b[i] == 0 {
				c[i] = 1
			}
		}
		return b, c
	}
	for _, tt := range []struct {
		flips int
		want  string
	}{{10, "mcnemar_exact"}, {30, "mcnemar_chi_square"}} {
		b, c := correct(200, tt.flips)
		ids := sampleIDs(200)
		m := cs.compare(t, cs.scored(t, "correct", ids, b), cs.scored(t, "correct", ids, c), "correct").GetMetrics()[0]
		if m.GetTest() != tt.want {
			t.Errorf("%d discordant pairs: test %q, want %q", tt.flips, m.GetTest(), tt.want)
		}
		for _, tr := range m.GetTests() {
			if !slices.Contains(documented, tr.GetName()) {
				t.Errorf("test name %q is not one the proto lists", tr.GetName())
			}
		}
	}
}

// Every option is checked before any results are read, with a BadRequest
// violation per field: a run without results (or no run at all) does not
// hide a bad option behind NOT_FOUND.
func TestCompareRunsValidatesOptionsFirst(t *testing.T) {
	cs := serveComparison(t)
	spec := []*apipb.MetricSpec{{Name: "score", Direction: apipb.Direction_DIRECTION_HIGHER_IS_BETTER}}
	tests := []struct {
		name string
		req  *apipb.CompareRunsRequest
		want []string
	}{
		{"resamples 2³¹−1", &apipb.CompareRunsRequest{BaselineRunId: "r-none", CandidateRunId: "r-none2", BootstrapResamples: math.MaxInt32, Metrics: spec},
			[]string{"bootstrap_resamples"}},
		{"confidence 1.5 and resamples −1", &apipb.CompareRunsRequest{BaselineRunId: "r-none", CandidateRunId: "r-none2", ConfidenceLevel: 1.5, BootstrapResamples: -1, Metrics: spec},
			[]string{"confidence_level", "bootstrap_resamples"}},
		{"thresholds", &apipb.CompareRunsRequest{BaselineRunId: "r-none", CandidateRunId: "r-none2", Metrics: []*apipb.MetricSpec{{Name: "score",
			Direction: apipb.Direction_DIRECTION_HIGHER_IS_BETTER, MinAbsoluteImprovement: -1, MinRelativeImprovement: math.Inf(1)}}},
			[]string{"metrics[0].min_absolute_improvement", "metrics[0].min_relative_improvement"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := cs.client.CompareRuns(context.Background(), tt.req)
			code, violations := fieldViolations(err)
			var fields []string
			for _, v := range violations {
				fields = append(fields, strings.SplitN(v, ":", 2)[0])
			}
			if code != codes.InvalidArgument || !slices.Equal(fields, tt.want) {
				t.Errorf("err = %v (violations %v), want INVALID_ARGUMENT on %v", err, violations, tt.want)
			}
		})
	}
}

// A comparison whose caller has gone stops: the bootstrap honours the
// context, so the handler returns the deadline instead of finishing work
// nobody will read.
func TestCompareRunsHonoursCancellation(t *testing.T) {
	cs := serveComparison(t)
	const n = 200_000
	rng := rand.New(rand.NewPCG(5, 6))
	base, cand := make([]float64, n), make([]float64, n)
	for i := range base {
		base[i], cand[i] = rng.Float64(), rng.Float64()
	}
	ids := sampleIDs(n)
	b, c := cs.scored(t, "score", ids, base), cs.scored(t, "score", ids, cand)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := cs.handler.CompareRuns(ctx, &apipb.CompareRunsRequest{BaselineRunId: b, CandidateRunId: c, BootstrapResamples: 100_000,
		Metrics: []*apipb.MetricSpec{{Name: "score", Direction: apipb.Direction_DIRECTION_HIGHER_IS_BETTER}}})
	if status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("err = %v, want DEADLINE_EXCEEDED from the abandoned bootstrap", err)
	}
}

// Groups: a run listed twice, or in both groups, is refused naming the
// field; means near the float64 limit are reported as overflow, not as
// non-finite data.
func TestCompareRunGroupsRefusesRepeatsAndReportsOverflow(t *testing.T) {
	cs := serveComparison(t)
	ids := sampleIDs(20)
	vals := func(v float64) []float64 {
		out := make([]float64, len(ids))
		for i := range out {
			out[i] = v + 0.01*float64(i%3)
		}
		return out
	}
	a1, a2 := cs.scored(t, "acc", ids, vals(0.70)), cs.scored(t, "acc", ids, vals(0.71))
	b1, b2 := cs.scored(t, "acc", ids, vals(0.80)), cs.scored(t, "acc", ids, vals(0.81))
	spec := []*apipb.MetricSpec{{Name: "acc", Direction: apipb.Direction_DIRECTION_HIGHER_IS_BETTER}}
	group := func(base, cand []string) error {
		_, err := cs.client.CompareRunGroups(context.Background(), &apipb.CompareRunGroupsRequest{
			Baseline: &apipb.RunGroup{RunIds: base}, Candidate: &apipb.RunGroup{RunIds: cand}, Metrics: spec})
		return err
	}
	for _, tt := range []struct {
		name       string
		base, cand []string
		want       string
	}{
		{"run twice in a group", []string{a1, a2, a1}, []string{b1, b2}, "baseline.run_ids[2]"},
		{"run in both groups", []string{a1, a2}, []string{a2, b1, b2}, "candidate.run_ids[0]"},
	} {
		code, violations := fieldViolations(group(tt.base, tt.cand))
		if code != codes.InvalidArgument || len(violations) != 1 || !strings.HasPrefix(violations[0], tt.want+": ") {
			t.Errorf("%s: %v %v, want INVALID_ARGUMENT on %s", tt.name, code, violations, tt.want)
		}
	}
	if err := group([]string{a1, a2}, []string{b1, b2}); err != nil {
		t.Errorf("distinct runs: %v", err)
	}

	h1, h2 := cs.scored(t, "acc", ids, vals(1.7e308)), cs.scored(t, "acc", ids, vals(1.6e308))
	l1, l2 := cs.scored(t, "acc", ids, vals(-1.7e308)), cs.scored(t, "acc", ids, vals(-1.6e308))
	err := group([]string{h1, h2}, []string{l1, l2})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "too large for float64") || strings.Contains(err.Error(), "finite") {
		t.Errorf("means near 1e308: %v, want FAILED_PRECONDITION naming the overflow", err)
	}
}
