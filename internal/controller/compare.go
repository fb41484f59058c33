package controller

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/sopilot/sopilot/internal/results"
	"github.com/sopilot/sopilot/internal/run"
	"github.com/sopilot/sopilot/internal/stats"
)

// MetricRequest names a per-sample metric to compare and which way is better.
type MetricRequest struct {
	Name                   string
	Direction              stats.Direction
	MinAbsoluteImprovement float64
	MinRelativeImprovement float64
}

// CompareRequest asks for a candidate run against a baseline run.
type CompareRequest struct {
	BaselineID, CandidateID string
	// Metrics to compare, each with its declared direction; the first
	// decides the overall verdict.
	Metrics         []MetricRequest
	ConfidenceLevel float64
	Resamples       int
	Seed            uint64
}

// MetricResult is one metric's comparison.
type MetricResult struct {
	Name       string
	Comparison stats.Comparison
}

// RunCost is what a run cost, from its record.
type RunCost struct {
	Wall, Queue time.Duration
	GPUs        int
	GPUHours    float64
	// SamplesPerSecond is the last reported training throughput, 0 if none.
	SamplesPerSecond float64
}

// CompareReport is CompareRuns' answer.
type CompareReport struct {
	Baseline, Candidate *run.Run
	Verdict             stats.Verdict
	Metrics             []MetricResult
	BaselineCost        RunCost
	CandidateCost       RunCost
	// Efficiency is set when both runs have GPUs and wall times.
	Efficiency     *stats.Efficiency
	EfficiencyNote string
}

// Compare compares the per-sample results of two runs, metric by metric,
// paired by sample id when both runs scored the same samples, and their
// cost from the run records.
func (s *Service) Compare(ctx context.Context, req CompareRequest) (*CompareReport, error) {
	var verr run.ValidationError
	add := func(field, format string, args ...any) {
		verr.Violations = append(verr.Violations, run.FieldViolation{Field: field, Description: fmt.Sprintf(format, args...)})
	}
	if req.BaselineID == "" {
		add("baseline_run_id", "required: the run to compare against")
	}
	if req.CandidateID == "" {
		add("candidate_run_id", "required: the run being judged")
	}
	seen := map[string]bool{}
	for i, m := range req.Metrics {
		field := fmt.Sprintf("metrics[%d]", i)
		switch {
		case m.Name == "":
			add(field+".name", "required: a per-sample metric in both runs' results, e.g. \"correct\"")
		case seen[m.Name]:
			add(field+".name", "metric %q is listed twice", m.Name)
		}
		seen[m.Name] = true
		if m.Direction != stats.HigherIsBetter && m.Direction != stats.LowerIsBetter {
			add(field+".direction", "required: DIRECTION_HIGHER_IS_BETTER (accuracy, score) or DIRECTION_LOWER_IS_BETTER (loss, error)")
		}
	}
	if len(verr.Violations) > 0 {
		return nil, &verr
	}
	base, err := s.Get(ctx, req.BaselineID)
	if err != nil {
		return nil, err
	}
	cand, err := s.Get(ctx, req.CandidateID)
	if err != nil {
		return nil, err
	}
	baseSet, err := s.Results(ctx, base.ID)
	if err != nil {
		return nil, fmt.Errorf("results of baseline run %s: %w", base.ID, err)
	}
	candSet, err := s.Results(ctx, cand.ID)
	if err != nil {
		return nil, fmt.Errorf("results of candidate run %s: %w", cand.ID, err)
	}
	if len(req.Metrics) == 0 {
		shared := sharedMetrics(baseSet, candSet)
		return nil, &run.ValidationError{Violations: []run.FieldViolation{{Field: "metrics",
			Description: fmt.Sprintf("declare at least one metric and its direction (a lower loss is better, a higher accuracy is); metrics both runs have: %s", strings.Join(shared, ", "))}}}
	}

	rep := &CompareReport{Baseline: base, Candidate: cand}
	opt := stats.Options{ConfidenceLevel: req.ConfidenceLevel, Resamples: req.Resamples, Seed: req.Seed}
	for i, m := range req.Metrics {
		o := opt
		o.MinAbsoluteImprovement, o.MinRelativeImprovement = m.MinAbsoluteImprovement, m.MinRelativeImprovement
		c, err := compareMetric(baseSet, candSet, m, o)
		switch {
		case errors.Is(err, ErrNoMetric):
			return nil, &run.ValidationError{Violations: []run.FieldViolation{{Field: fmt.Sprintf("metrics[%d].name", i), Description: err.Error()}}}
		case errors.Is(err, stats.ErrOptions):
			return nil, &run.ValidationError{Violations: []run.FieldViolation{{Field: fmt.Sprintf("metrics[%d]", i), Description: err.Error()}}}
		case err != nil:
			// The data cannot be compared (too few samples, ...).
			return nil, fmt.Errorf("metric %q: %w: %w", m.Name, ErrFailedPrecondition, err)
		}
		rep.Metrics = append(rep.Metrics, MetricResult{Name: m.Name, Comparison: c})
	}
	rep.Verdict = rep.Metrics[0].Comparison.Verdict
	rep.BaselineCost, rep.CandidateCost = runCost(base), runCost(cand)
	switch {
	case rep.BaselineCost.GPUs == 0 || rep.CandidateCost.GPUs == 0:
		rep.EfficiencyNote = "no efficiency comparison: a run used no GPUs"
	case rep.BaselineCost.Wall <= 0 || rep.CandidateCost.Wall <= 0:
		rep.EfficiencyNote = "no efficiency comparison: a run has no start and end time yet"
	default:
		e, err := stats.CompareEfficiency(
			stats.Workload{GPUs: rep.BaselineCost.GPUs, Wall: rep.BaselineCost.Wall},
			stats.Workload{GPUs: rep.CandidateCost.GPUs, Wall: rep.CandidateCost.Wall})
		if err != nil {
			rep.EfficiencyNote = "no efficiency comparison: " + err.Error()
		} else {
			rep.Efficiency = &e
		}
	}
	return rep, nil
}

// ErrNoMetric: a requested metric is missing from a run's results.
var ErrNoMetric = errors.New("metric not in the run's results")

// compareMetric pairs by sample id when both runs have the metric for
// exactly the same samples, and falls back to an unpaired comparison,
// saying so, when they do not.
func compareMetric(base, cand *results.Set, m MetricRequest, opt stats.Options) (stats.Comparison, error) {
	bcol, ok := base.Column(m.Name)
	if !ok {
		return stats.Comparison{}, fmt.Errorf("baseline: %w (it has: %s)", ErrNoMetric, strings.Join(base.Metrics(), ", "))
	}
	ccol, ok := cand.Column(m.Name)
	if !ok {
		return stats.Comparison{}, fmt.Errorf("candidate: %w (it has: %s)", ErrNoMetric, strings.Join(cand.Metrics(), ", "))
	}
	var pb, pc []float64 // paired values, in baseline order
	shared := 0
	for i := range base.Len() {
		if math.IsNaN(bcol[i]) {
			continue
		}
		j, ok := cand.Index(base.SampleID(i))
		if !ok || math.IsNaN(ccol[j]) {
			continue
		}
		shared++
		pb = append(pb, bcol[i])
		pc = append(pc, ccol[j])
	}
	nb, nc := base.Present(m.Name), cand.Present(m.Name)
	if shared == nb && shared == nc && shared >= 2 {
		return stats.ComparePaired(pb, pc, m.Direction, opt)
	}
	c, err := stats.CompareUnpaired(present(bcol), present(ccol), m.Direction, opt)
	if err != nil {
		return c, err
	}
	c.Note = fmt.Sprintf("the runs did not score the same samples (%d shared; baseline %d, candidate %d), so they were compared unpaired. %s", shared, nb, nc, c.Note)
	return c, nil
}

func present(col []float64) []float64 {
	out := make([]float64, 0, len(col))
	for _, v := range col {
		if !math.IsNaN(v) {
			out = append(out, v)
		}
	}
	return out
}

func sharedMetrics(a, b *results.Set) []string {
	var out []string
	for _, m := range a.Metrics() {
		if _, ok := b.Column(m); ok {
			out = append(out, m)
		}
	}
	sort.Strings(out)
	if len(out) == 0 {
		return []string{"(none)"}
	}
	return out
}

func runCost(r *run.Run) RunCost {
	c := RunCost{GPUs: r.Spec.Nodes * r.Spec.GPUsPerNode}
	if !r.StartTime.IsZero() && !r.EndTime.IsZero() && r.EndTime.After(r.StartTime) {
		c.Wall = r.EndTime.Sub(r.StartTime)
		c.GPUHours = float64(c.GPUs) * c.Wall.Hours()
	}
	if !r.StartTime.IsZero() && !r.SubmitTime.IsZero() && r.StartTime.After(r.SubmitTime) {
		c.Queue = r.StartTime.Sub(r.SubmitTime)
	}
	if r.Progress != nil {
		c.SamplesPerSecond = r.Progress.SamplesPerSecond
	}
	return c
}

// GroupRequest compares groups of repeated runs (e.g. the same training
// with different seeds) by the per-run mean of each metric.
type GroupRequest struct {
	BaselineName, CandidateName string
	BaselineIDs, CandidateIDs   []string
	Metrics                     []MetricRequest
	ConfidenceLevel             float64
	Seed                        uint64
}

// GroupMetricResult is one metric across groups.
type GroupMetricResult struct {
	Name       string
	Comparison stats.GroupComparison
}

// CompareGroups compares the groups' per-run means, metric by metric; the
// first metric decides the overall verdict.
func (s *Service) CompareGroups(ctx context.Context, req GroupRequest) (stats.Verdict, []GroupMetricResult, error) {
	var verr run.ValidationError
	add := func(field, format string, args ...any) {
		verr.Violations = append(verr.Violations, run.FieldViolation{Field: field, Description: fmt.Sprintf(format, args...)})
	}
	if len(req.BaselineIDs) < 2 {
		add("baseline.run_ids", "at least two runs are needed to estimate the spread between repeats; got %d", len(req.BaselineIDs))
	}
	if len(req.CandidateIDs) < 2 {
		add("candidate.run_ids", "at least two runs are needed to estimate the spread between repeats; got %d", len(req.CandidateIDs))
	}
	if len(req.Metrics) == 0 {
		add("metrics", "declare at least one metric and its direction")
	}
	for i, m := range req.Metrics {
		if m.Name == "" {
			add(fmt.Sprintf("metrics[%d].name", i), "required")
		}
		if m.Direction != stats.HigherIsBetter && m.Direction != stats.LowerIsBetter {
			add(fmt.Sprintf("metrics[%d].direction", i), "required: DIRECTION_HIGHER_IS_BETTER or DIRECTION_LOWER_IS_BETTER")
		}
	}
	if len(verr.Violations) > 0 {
		return 0, nil, &verr
	}
	means := func(field string, ids []string, metric string) ([]float64, error) {
		out := make([]float64, 0, len(ids))
		for i, id := range ids {
			set, err := s.Results(ctx, id)
			if err != nil {
				return nil, fmt.Errorf("%s[%d] %s: %w", field, i, id, err)
			}
			col, ok := set.Column(metric)
			if !ok {
				return nil, &run.ValidationError{Violations: []run.FieldViolation{{Field: fmt.Sprintf("%s[%d]", field, i),
					Description: fmt.Sprintf("run %s has no metric %q (it has: %s)", id, metric, strings.Join(set.Metrics(), ", "))}}}
			}
			sum, n := 0.0, 0
			for _, v := range col {
				if !math.IsNaN(v) {
					sum += v
					n++
				}
			}
			out = append(out, sum/float64(n))
		}
		return out, nil
	}
	var res []GroupMetricResult
	for _, m := range req.Metrics {
		b, err := means("baseline.run_ids", req.BaselineIDs, m.Name)
		if err != nil {
			return 0, nil, err
		}
		c, err := means("candidate.run_ids", req.CandidateIDs, m.Name)
		if err != nil {
			return 0, nil, err
		}
		g, err := stats.CompareGroups(b, c, m.Direction, stats.Options{
			ConfidenceLevel: req.ConfidenceLevel, Seed: req.Seed,
			MinAbsoluteImprovement: m.MinAbsoluteImprovement, MinRelativeImprovement: m.MinRelativeImprovement,
		})
		if err != nil {
			return 0, nil, fmt.Errorf("metric %q: %w: %w", m.Name, ErrFailedPrecondition, err)
		}
		res = append(res, GroupMetricResult{Name: m.Name, Comparison: g})
	}
	return res[0].Comparison.Verdict, res, nil
}
