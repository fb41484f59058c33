package controller

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/sopilot/sopilot/internal/results"
	"github.com/sopilot/sopilot/internal/run"
	"github.com/sopilot/sopilot/internal/scheduler"
	"github.com/sopilot/sopilot/internal/stats"
)

// scored creates a run and reports results built by value(i) for samples
// with ids prefix0..prefix(n-1).
func (fx *fixture) scored(t *testing.T, key, prefix string, n int, value func(i int) map[string]float64) *run.Run {
	t.Helper()
	r, err := fx.svc.Create(context.Background(), seedSpec(), key)
	if err != nil {
		t.Fatal(err)
	}
	b := results.NewBuilder(results.Limits{})
	for i := range n {
		if err := b.Add(fmt.Sprintf("%s%d", prefix, i), value(i)); err != nil {
			t.Fatal(err)
		}
	}
	set, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	if err := fx.svc.ReportResults(context.Background(), r.ID, set); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestCompareRunsPairedByDeclaredDirection(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	const n = 400
	// The same 400 test samples: the candidate gets 90 % right against 70 %,
	// and its loss is lower.
	truthBase := make([]bool, n)
	truthCand := make([]bool, n)
	for i := range n {
		truthBase[i] = rng.Float64() < 0.7
		truthCand[i] = truthBase[i] || rng.Float64() < 0.67
	}
	base := fx.scored(t, "base", "s", n, func(i int) map[string]float64 {
		return map[string]float64{"correct": b2f(truthBase[i]), "loss": 1.0 + rng.NormFloat64()*0.1}
	})
	cand := fx.scored(t, "cand", "s", n, func(i int) map[string]float64 {
		return map[string]float64{"correct": b2f(truthCand[i]), "loss": 0.8 + rng.NormFloat64()*0.1}
	})
	// Give both runs a wall time so efficiency is compared: 16 GPUs each.
	for _, r := range []*run.Run{base, cand} {
		fx.slurm.set(r.SlurmJobID, func(j *scheduler.JobStatus) {
			j.State, j.ExitCode = "COMPLETED", 0
			j.StartTime = fx.now.Add(time.Minute)
			j.EndTime = fx.now.Add(31 * time.Minute)
		})
	}
	if err := fx.svc.Poll(ctx); err != nil {
		t.Fatal(err)
	}

	rep, err := fx.svc.Compare(ctx, CompareRequest{BaselineID: base.ID, CandidateID: cand.ID, Seed: 7, Resamples: 2000,
		Metrics: []MetricRequest{{Name: "correct", Direction: stats.HigherIsBetter}, {Name: "loss", Direction: stats.LowerIsBetter}}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Verdict != stats.Improved {
		t.Errorf("verdict = %v, want improved", rep.Verdict)
	}
	correct, loss := rep.Metrics[0].Comparison, rep.Metrics[1].Comparison
	if !correct.Paired || correct.Test.Name != stats.TestMcNemarChiSq || correct.Baseline.N != n {
		t.Errorf("correct: paired %v test %q n %d, want paired McNemar on %d", correct.Paired, correct.Test.Name, correct.Baseline.N, n)
	}
	if !(correct.CILow > 0 && correct.CILow < correct.AbsoluteChange && correct.AbsoluteChange < correct.CIHigh) {
		t.Errorf("correct: change %.3f not inside a positive CI [%.3f, %.3f]", correct.AbsoluteChange, correct.CILow, correct.CIHigh)
	}
	if loss.Verdict != stats.Improved || loss.AbsoluteChange >= 0 || loss.Wins <= loss.Losses {
		t.Errorf("loss: verdict %v change %.3f wins %d losses %d; a lower loss must count as improved", loss.Verdict, loss.AbsoluteChange, loss.Wins, loss.Losses)
	}
	if rep.Efficiency == nil || rep.BaselineCost.GPUs != 16 || rep.BaselineCost.Wall != 30*time.Minute || rep.BaselineCost.GPUHours != 8 {
		t.Errorf("cost = %+v, efficiency %+v", rep.BaselineCost, rep.Efficiency)
	}
	if rep.Efficiency != nil && rep.Efficiency.ScalingEfficiency != 1 {
		t.Errorf("same GPUs and wall: scaling efficiency %v, want 1", rep.Efficiency.ScalingEfficiency)
	}

	// Identical runs: no significant change.
	same, err := fx.svc.Compare(ctx, CompareRequest{BaselineID: base.ID, CandidateID: base.ID, Resamples: 500,
		Metrics: []MetricRequest{{Name: "loss", Direction: stats.LowerIsBetter}}})
	if err != nil {
		t.Fatal(err)
	}
	if same.Verdict != stats.NoSignificantChange || same.Metrics[0].Comparison.AbsoluteChange != 0 {
		t.Errorf("a run against itself: %v, change %v", same.Verdict, same.Metrics[0].Comparison.AbsoluteChange)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func TestCompareRunsUnpairedWhenSamplesDiffer(t *testing.T) {
	fx := newFixture(t)
	base := fx.scored(t, "a", "a", 50, func(i int) map[string]float64 { return map[string]float64{"score": float64(i % 7)} })
	cand := fx.scored(t, "b", "b", 60, func(i int) map[string]float64 { return map[string]float64{"score": float64(i%7) + 0.5} })
	rep, err := fx.svc.Compare(context.Background(), CompareRequest{BaselineID: base.ID, CandidateID: cand.ID, Resamples: 500,
		Metrics: []MetricRequest{{Name: "score", Direction: stats.HigherIsBetter}}})
	if err != nil {
		t.Fatal(err)
	}
	c := rep.Metrics[0].Comparison
	if c.Paired || c.Test.Name != stats.TestWelchT || !strings.Contains(c.Note, "share only 0 samples with this metric (baseline has 50, candidate 60; pairing on shared samples needs 6)") {
		t.Errorf("paired %v test %q note %q", c.Paired, c.Test.Name, c.Note)
	}
	if rep.EfficiencyNote == "" || rep.Efficiency != nil {
		t.Errorf("runs without times got efficiency %+v (note %q)", rep.Efficiency, rep.EfficiencyNote)
	}
}

func TestCompareRunsBadRequests(t *testing.T) {
	fx := newFixture(t)
	base := fx.scored(t, "a", "s", 10, func(i int) map[string]float64 { return map[string]float64{"correct": float64(i % 2), "loss": 1} })
	cand := fx.scored(t, "b", "s", 10, func(i int) map[string]float64 { return map[string]float64{"correct": 1, "loss": 1} })
	noResults, _ := fx.svc.Create(context.Background(), seedSpec(), "c")
	tests := []struct {
		name      string
		req       CompareRequest
		wantField string
		wantText  string
		wantErr   error
	}{
		{name: "no metrics lists what both runs have", req: CompareRequest{BaselineID: base.ID, CandidateID: cand.ID},
			wantField: "metrics", wantText: "metrics both runs have: correct, loss"},
		{name: "direction must be declared", req: CompareRequest{BaselineID: base.ID, CandidateID: cand.ID, Metrics: []MetricRequest{{Name: "loss"}}},
			wantField: "metrics[0].direction"},
		{name: "unknown metric", req: CompareRequest{BaselineID: base.ID, CandidateID: cand.ID, Metrics: []MetricRequest{{Name: "bleu", Direction: stats.HigherIsBetter}}},
			wantField: "metrics[0].name", wantText: "it has: correct, loss"},
		{name: "ids required", req: CompareRequest{Metrics: []MetricRequest{{Name: "loss", Direction: stats.LowerIsBetter}}},
			wantField: "baseline_run_id"},
		{name: "unknown run", req: CompareRequest{BaselineID: "r-nope", CandidateID: cand.ID, Metrics: []MetricRequest{{Name: "loss", Direction: stats.LowerIsBetter}}},
			wantErr: ErrNotFound},
		{name: "run without results", req: CompareRequest{BaselineID: noResults.ID, CandidateID: cand.ID, Metrics: []MetricRequest{{Name: "loss", Direction: stats.LowerIsBetter}}},
			wantText: "results of baseline run"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := fx.svc.Compare(context.Background(), tt.req)
			if err == nil {
				t.Fatal("no error")
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("err = %v, want %v", err, tt.wantErr)
			}
			if tt.wantText != "" && !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("err = %v, want it to say %q", err, tt.wantText)
			}
			if tt.wantField != "" {
				var verr *run.ValidationError
				if !errors.As(err, &verr) || verr.Violations[0].Field != tt.wantField {
					t.Errorf("err = %v, want a violation on %s", err, tt.wantField)
				}
			}
		})
	}
}

func TestCompareGroupsOfSeeds(t *testing.T) {
	fx := newFixture(t)
	var baseIDs, candIDs []string
	for seed := range 4 {
		b := fx.scored(t, fmt.Sprint("b", seed), "s", 20, func(i int) map[string]float64 {
			return map[string]float64{"accuracy": 0.70 + 0.01*float64(seed) + 0.001*float64(i%3)}
		})
		c := fx.scored(t, fmt.Sprint("c", seed), "s", 20, func(i int) map[string]float64 {
			return map[string]float64{"accuracy": 0.80 + 0.01*float64(seed) + 0.001*float64(i%3)}
		})
		baseIDs, candIDs = append(baseIDs, b.ID), append(candIDs, c.ID)
	}
	verdict, res, err := fx.svc.CompareGroups(context.Background(), GroupRequest{BaselineIDs: baseIDs, CandidateIDs: candIDs, Seed: 3,
		Metrics: []MetricRequest{{Name: "accuracy", Direction: stats.HigherIsBetter}}})
	if err != nil {
		t.Fatal(err)
	}
	g := res[0].Comparison
	if verdict != stats.Improved || g.Baseline.N != 4 || g.Candidate.N != 4 {
		t.Errorf("verdict %v, runs %d vs %d", verdict, g.Baseline.N, g.Candidate.N)
	}
	if d := g.AbsoluteChange; d < 0.0999 || d > 0.1001 {
		t.Errorf("difference of group means = %v, want 0.1", d)
	}
	if _, _, err := fx.svc.CompareGroups(context.Background(), GroupRequest{BaselineIDs: baseIDs[:1], CandidateIDs: candIDs,
		Metrics: []MetricRequest{{Name: "accuracy", Direction: stats.HigherIsBetter}}}); err == nil || !strings.Contains(err.Error(), "at least two runs") {
		t.Errorf("one baseline run: err = %v", err)
	}
}

func TestRunCostUtilisationFromRecordedUsage(t *testing.T) {
	measured := runCost(&run.Run{Usage: &run.Usage{GPUCount: 8, Samples: 120, UtilizationMean: 73}, Progress: &run.Progress{SamplesPerSecond: 900}})
	if !measured.UtilizationMeasured || measured.UtilizationMean != 73 || !measured.ThroughputReported || measured.SamplesPerSecond != 900 {
		t.Errorf("recorded usage: %+v", measured)
	}
	// Energy but no utilisation samples, and no progress: nothing measured.
	none := runCost(&run.Run{Usage: &run.Usage{GPUCount: 8, EnergyJoules: 5}})
	if none.UtilizationMeasured || none.ThroughputReported {
		t.Errorf("nothing measured: %+v", none)
	}
}

func TestRunCostGoodputAcrossAttempts(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	spec := run.Spec{Nodes: 1, GPUsPerNode: 8, Retry: &run.RetryPolicy{MaxAttempts: 2}}
	// Attempt 1 ran 1 h, its last checkpoint at 30 min; attempt 2 queued
	// 6 min and ran 2 h.
	retried := &run.Run{Spec: spec, State: run.StateCompleted,
		SubmitTime: t0.Add(61 * time.Minute), StartTime: t0.Add(67 * time.Minute), EndTime: t0.Add(187 * time.Minute),
		Attempts: []run.Attempt{{Number: 1, State: run.StateCancelled, Cause: run.CauseHardware,
			SubmitTime: t0.Add(-time.Minute), StartTime: t0, EndTime: t0.Add(time.Hour),
			Checkpoint: &run.Checkpoint{Step: 100, Time: t0.Add(30 * time.Minute)}}}}
	c := runCost(retried)
	if c.Attempts != 2 || !c.GoodputMeasured {
		t.Fatalf("attempts %d, measured %v", c.Attempts, c.GoodputMeasured)
	}
	if c.Wall != 187*time.Minute || c.Queue != time.Minute || c.GPUHours != 24 {
		t.Errorf("wall %v queue %v GPU-hours %v; want 187m from the first start, 1m, 8 GPUs x 3 h", c.Wall, c.Queue, c.GPUHours)
	}
	if g := c.Goodput; g.GPUHoursUsed != 24 || g.GPUHoursKept != 20 || g.LostByCause["HARDWARE"] != 4 {
		t.Errorf("goodput %+v; want 24 used, 20 kept, 4 lost to HARDWARE", g)
	}

	// No policy: a completed run kept all of its time; a failed one is not measured.
	plain := &run.Run{Spec: run.Spec{Nodes: 2, GPUsPerNode: 8}, State: run.StateCompleted, StartTime: t0, EndTime: t0.Add(time.Hour)}
	if c := runCost(plain); !c.GoodputMeasured || c.Attempts != 1 || c.Goodput.GPUHoursKept != 16 || len(c.Goodput.LostByCause) != 0 {
		t.Errorf("completed without a policy: %+v", c)
	}
	plain.State = run.StateFailed
	if c := runCost(plain); c.GoodputMeasured {
		t.Errorf("failed without a policy: goodput measured %+v", c.Goodput)
	}
}
