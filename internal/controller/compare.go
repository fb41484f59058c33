package controller

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

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
	// BaselineOnly and CandidateOnly count the samples that have the
	// metric in one run only, left out of a paired comparison.
	BaselineOnly, CandidateOnly int
}

// RunMetric is one run-level metric (results run_metrics) of both runs.
type RunMetric struct {
	Name                      string
	Baseline, Candidate       float64
	HasBaseline, HasCandidate bool
}

// RunCost is what a run cost, from its record.
type RunCost struct {
	Wall, Queue time.Duration
	GPUs        int
	GPUHours    float64
	// SamplesPerSecond is the last reported training throughput, valid
	// when ThroughputReported.
	SamplesPerSecond   float64
	ThroughputReported bool
	// UtilizationMean is the mean GPU utilisation (percent) of the run's
	// recorded usage, valid when UtilizationMeasured.
	UtilizationMean     float64
	UtilizationMeasured bool
	// Attempts is how many attempts the run had (1 unless it was retried).
	Attempts int
	// Goodput is the GPU time the run used across its attempts and the
	// part whose work it kept, valid when GoodputMeasured: the run had a
	// retry policy (its attempts and checkpoints are recorded) or completed
	// in one attempt (all of its time kept). Without a policy, a run that
	// failed kept an unknown part.
	Goodput         run.Goodput
	GoodputMeasured bool
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
	// RunMetrics are the run-level metrics either run reported, by name.
	RunMetrics []RunMetric
}

// Compare compares the per-sample results of two runs, metric by metric,
// paired by sample id on the samples both runs scored, and their cost from
// the run records. Every option is checked before any results are read;
// ctx cancels the bootstrap.
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
	if err := (stats.Options{ConfidenceLevel: req.ConfidenceLevel}).Validate(); err != nil {
		add("confidence_level", "%v: want a level in (0, 1), e.g. 0.95 (0 means 0.95)", req.ConfidenceLevel)
	}
	if err := (stats.Options{Resamples: req.Resamples}).Validate(); err != nil {
		add("bootstrap_resamples", "%d: want 0 (the default, %d) or %d to %d", req.Resamples, stats.DefaultResamples, 100, stats.MaxResamples)
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
		if (stats.Options{MinAbsoluteImprovement: m.MinAbsoluteImprovement}).Validate() != nil {
			add(field+".min_absolute_improvement", "%v: must be finite and ≥ 0 (0: no threshold)", m.MinAbsoluteImprovement)
		}
		if (stats.Options{MinRelativeImprovement: m.MinRelativeImprovement}).Validate() != nil {
			add(field+".min_relative_improvement", "%v: must be finite and ≥ 0 (0.01 = 1 %%; 0: no threshold)", m.MinRelativeImprovement)
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
	// The two result sets are read and decoded at the same time: each is a
	// read transaction and a pass over its encoding (~0.1 s a million
	// samples), and nothing else of the call can start before both are in.
	var (
		baseSet, candSet *results.Set
		baseErr, candErr error
		g                errgroup.Group
	)
	g.Go(func() error { baseSet, baseErr = s.Results(ctx, base.ID); return nil })
	g.Go(func() error { candSet, candErr = s.Results(ctx, cand.ID); return nil })
	_ = g.Wait() // the errors are kept apart, so that the baseline's is reported first
	if baseErr != nil {
		return nil, fmt.Errorf("results of baseline run %s: %w", base.ID, baseErr)
	}
	if candErr != nil {
		return nil, fmt.Errorf("results of candidate run %s: %w", cand.ID, candErr)
	}
	if len(req.Metrics) == 0 {
		shared := sharedMetrics(baseSet, candSet)
		return nil, &run.ValidationError{Violations: []run.FieldViolation{{Field: "metrics",
			Description: fmt.Sprintf("declare at least one metric and its direction (a lower loss is better, a higher accuracy is); metrics both runs have: %s", strings.Join(shared, ", "))}}}
	}

	// Join every metric first, so that the work of the whole call is known
	// (and refused if too large) before any bootstrap starts.
	joins := make([]metricJoin, len(req.Metrics))
	work := 0
	match := matchSamples(baseSet, candSet)
	for i, m := range req.Metrics {
		j, err := joinMetric(baseSet, candSet, match, m.Name)
		if errors.Is(err, ErrNoMetric) {
			return nil, &run.ValidationError{Violations: []run.FieldViolation{{Field: fmt.Sprintf("metrics[%d].name", i), Description: err.Error()}}}
		}
		joins[i] = j
		work += j.values()
	}
	if err := stats.CheckWork(req.Resamples, work); err != nil {
		var oe *stats.OptionError
		errors.As(err, &oe)
		return nil, &run.ValidationError{Violations: []run.FieldViolation{{Field: "bootstrap_resamples",
			Description: fmt.Sprintf("too much work for one call, summed over the %d metrics: %s", len(req.Metrics), oe.Reason)}}}
	}

	rep := &CompareReport{Baseline: base, Candidate: cand, RunMetrics: runMetrics(baseSet, candSet)}
	opt := stats.Options{ConfidenceLevel: req.ConfidenceLevel, Resamples: req.Resamples, Seed: req.Seed}
	for i, m := range req.Metrics {
		o := opt
		o.MinAbsoluteImprovement, o.MinRelativeImprovement = m.MinAbsoluteImprovement, m.MinRelativeImprovement
		c, err := joins[i].compare(ctx, m.Direction, o)
		switch {
		case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
			return nil, fmt.Errorf("compare metric %q: %w", m.Name, err)
		case err != nil:
			// The data cannot be compared (too few samples, overflow, ...).
			return nil, fmt.Errorf("metric %q: %w: %w", m.Name, ErrFailedPrecondition, err)
		}
		res := MetricResult{Name: m.Name, Comparison: c}
		if c.Paired {
			res.BaselineOnly, res.CandidateOnly = joins[i].baselineOnly(), joins[i].candidateOnly()
		}
		rep.Metrics = append(rep.Metrics, res)
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

// metricJoin is one metric of two runs joined by sample id: the values of
// the samples both runs have (in baseline order), and every value of each.
type metricJoin struct {
	name               string
	pairedB, pairedC   []float64
	allB, allC         []float64
	presentB, presentC int
}

func (j metricJoin) shared() int        { return len(j.pairedB) }
func (j metricJoin) baselineOnly() int  { return j.presentB - j.shared() }
func (j metricJoin) candidateOnly() int { return j.presentC - j.shared() }

// pair says whether the comparison is paired: when the runs scored the
// same samples (at least 2), or share at least as many as a verdict needs.
// Samples only one run scored are left out (and counted); pairing on the
// shared ones keeps the per-sample difficulty out of the comparison, where
// Welch over every value would let one missing sample cost all the power
// of pairing. Only when the runs share fewer than that, and each has
// others, is every value compared unpaired.
func (j metricJoin) pair() bool {
	n := j.shared()
	return n >= stats.MinSamples(stats.DefaultAlpha) || (n >= 2 && n == j.presentB && n == j.presentC)
}

// values is how many values the comparison resamples.
func (j metricJoin) values() int {
	if j.pair() {
		return j.shared()
	}
	return len(j.allB) + len(j.allC)
}

// sampleMatch is the join of two runs' samples by id, made once per
// comparison and shared by its metrics.
type sampleMatch struct {
	// same: both runs hold the same ids in the same order.
	same bool
	// pos[i] is the candidate's position of the baseline's sample i, or
	// results.NoMatch (when not same).
	pos []uint32
}

func matchSamples(base, cand *results.Set) sampleMatch {
	pos, same := base.MatchSamples(cand)
	return sampleMatch{same: same, pos: pos}
}

// joinMetric pairs one metric's values on the samples both runs scored, in
// the baseline's order. When the runs hold the same samples in the same
// order and every sample has the metric in both, the pairs are the two
// columns themselves (the sets' own slices, which the comparison only
// reads), and nothing is copied.
func joinMetric(base, cand *results.Set, match sampleMatch, metric string) (metricJoin, error) {
	bcol, ok := base.Column(metric)
	if !ok {
		return metricJoin{}, fmt.Errorf("baseline: %w (it has: %s)", ErrNoMetric, strings.Join(base.Metrics(), ", "))
	}
	ccol, ok := cand.Column(metric)
	if !ok {
		return metricJoin{}, fmt.Errorf("candidate: %w (it has: %s)", ErrNoMetric, strings.Join(cand.Metrics(), ", "))
	}
	j := metricJoin{name: metric, presentB: base.Present(metric), presentC: cand.Present(metric)}
	switch {
	case match.same && j.presentB == len(bcol) && j.presentC == len(ccol):
		j.pairedB, j.pairedC = bcol, ccol
	case match.same:
		j.pairedB = make([]float64, 0, min(j.presentB, j.presentC))
		j.pairedC = make([]float64, 0, min(j.presentB, j.presentC))
		for i, b := range bcol {
			if c := ccol[i]; !math.IsNaN(b) && !math.IsNaN(c) {
				j.pairedB = append(j.pairedB, b)
				j.pairedC = append(j.pairedC, c)
			}
		}
	default:
		j.pairedB = make([]float64, 0, min(j.presentB, j.presentC))
		j.pairedC = make([]float64, 0, min(j.presentB, j.presentC))
		for i, k := range match.pos {
			if k == results.NoMatch || math.IsNaN(bcol[i]) || math.IsNaN(ccol[k]) {
				continue
			}
			j.pairedB = append(j.pairedB, bcol[i])
			j.pairedC = append(j.pairedC, ccol[k])
		}
	}
	if !j.pair() {
		j.allB, j.allC = present(bcol), present(ccol)
	}
	return j, nil
}

// compare runs the paired comparison on the shared samples, or, when the
// runs share too few, the unpaired one on every value, saying so.
func (j metricJoin) compare(ctx context.Context, dir stats.Direction, opt stats.Options) (stats.Comparison, error) {
	if j.pair() {
		c, err := stats.ComparePaired(ctx, j.pairedB, j.pairedC, dir, opt)
		if err != nil {
			return c, err
		}
		if left := j.baselineOnly() + j.candidateOnly(); left > 0 {
			c.Note = fmt.Sprintf("%s; left out: %d samples only the baseline scored and %d only the candidate scored",
				c.Note, j.baselineOnly(), j.candidateOnly())
		}
		return c, nil
	}
	c, err := stats.CompareUnpaired(ctx, j.allB, j.allC, dir, opt)
	if err != nil {
		return c, err
	}
	c.Note = fmt.Sprintf("the runs share only %d samples with this metric (baseline has %d, candidate %d; pairing on shared samples needs %d), so every value was compared unpaired. %s",
		j.shared(), j.presentB, j.presentC, stats.MinSamples(stats.DefaultAlpha), c.Note)
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
	// A retried run's wall time and queue time run from its first
	// attempt, and its GPU-hours are every attempt's.
	submit, start := r.SubmitTime, r.StartTime
	if len(r.Attempts) > 0 {
		submit, start = r.Attempts[0].SubmitTime, r.Attempts[0].StartTime
	}
	if !start.IsZero() && !r.EndTime.IsZero() && r.EndTime.After(start) {
		c.Wall = r.EndTime.Sub(start)
		c.GPUHours = float64(c.GPUs) * r.EndTime.Sub(r.StartTime).Hours()
		for _, a := range r.Attempts {
			if !a.StartTime.IsZero() && a.EndTime.After(a.StartTime) {
				c.GPUHours += float64(c.GPUs) * a.EndTime.Sub(a.StartTime).Hours()
			}
		}
	}
	if !start.IsZero() && !submit.IsZero() && start.After(submit) {
		c.Queue = start.Sub(submit)
	}
	if r.Progress != nil && r.Progress.SamplesPerSecond > 0 {
		c.SamplesPerSecond, c.ThroughputReported = r.Progress.SamplesPerSecond, true
	}
	if u := r.Usage; u != nil && u.Samples > 0 { // utilisation samples from telemetry
		c.UtilizationMean, c.UtilizationMeasured = u.UtilizationMean, true
	}
	c.Attempts = r.Attempt()
	ended := r.State.Terminal() && !r.EndTime.IsZero()
	if ended && (r.Spec.Retry != nil || len(r.Attempts) > 0 || r.State == run.StateCompleted) {
		if r.Goodput != nil {
			c.Goodput = *r.Goodput
		} else {
			c.Goodput = r.ComputeGoodput(r.EndTime)
		}
		c.GoodputMeasured = true
	}
	return c
}

// runMetrics lists the run-level metrics of either run, sorted by name.
func runMetrics(base, cand *results.Set) []RunMetric {
	b, c := base.RunMetrics(), cand.RunMetrics()
	names := make([]string, 0, len(b)+len(c))
	for k := range b {
		names = append(names, k)
	}
	for k := range c {
		if _, ok := b[k]; !ok {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	out := make([]RunMetric, 0, len(names))
	for _, k := range names {
		bv, bok := b[k]
		cv, cok := c[k]
		out = append(out, RunMetric{Name: k, Baseline: bv, Candidate: cv, HasBaseline: bok, HasCandidate: cok})
	}
	return out
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
	// A run listed twice, or in both groups, would be counted as two
	// independent repeats: the spread shrinks and significance is faked.
	first := map[string]string{}
	for _, g := range []struct {
		field string
		ids   []string
	}{{"baseline.run_ids", req.BaselineIDs}, {"candidate.run_ids", req.CandidateIDs}} {
		for i, id := range g.ids {
			field := fmt.Sprintf("%s[%d]", g.field, i)
			switch prev, dup := first[id]; {
			case id == "":
				add(field, "required: a run id")
			case dup:
				add(field, "run %s is already %s: each run may count once, in one group", id, prev)
			default:
				first[id] = field
			}
		}
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
			vals := present(col)
			if len(vals) == 0 {
				return nil, &run.ValidationError{Violations: []run.FieldViolation{{Field: fmt.Sprintf("%s[%d]", field, i),
					Description: fmt.Sprintf("run %s has no sample with metric %q", id, metric)}}}
			}
			// stats.Mean keeps the mean of values near ±1.8e308 finite,
			// where a plain sum overflows.
			m, err := stats.Mean(vals)
			if err != nil {
				return nil, fmt.Errorf("%s[%d] %s: %w", field, i, id, err)
			}
			out = append(out, m)
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
		g, err := stats.CompareGroups(ctx, b, c, m.Direction, stats.Options{
			ConfidenceLevel: req.ConfidenceLevel, Seed: req.Seed,
			MinAbsoluteImprovement: m.MinAbsoluteImprovement, MinRelativeImprovement: m.MinRelativeImprovement,
		})
		switch {
		case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
			return 0, nil, fmt.Errorf("compare metric %q: %w", m.Name, err)
		case err != nil:
			return 0, nil, fmt.Errorf("metric %q: %w: %w", m.Name, ErrFailedPrecondition, err)
		}
		res = append(res, GroupMetricResult{Name: m.Name, Comparison: g})
	}
	return res[0].Comparison.Verdict, res, nil
}
