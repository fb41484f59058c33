package stats

import (
	"context"
	"fmt"
	"math"
)

// GroupComparison compares two groups of repeated runs (e.g. the same
// configuration trained with different seeds), one value per run: the run's
// mean of the metric. The unit of replication is the run, so the spread is
// between runs, never the pooled per-sample spread.
type GroupComparison struct {
	Direction Direction
	Note      string
	// Baseline and Candidate summarise the per-run means: report each
	// group as Mean ± Std (sample std across runs) with N runs.
	Baseline, Candidate Summary
	// AbsoluteChange is the difference of the groups' means of run means.
	AbsoluteChange float64
	Relative       RelativeChange
	// CILow, CIHigh: Welch's t interval for AbsoluteChange. With a handful
	// of runs per group this is the interval to quote.
	ConfidenceLevel float64
	CILow, CIHigh   float64
	// BootstrapCILow, BootstrapCIHigh: percentile bootstrap over runs,
	// each group resampled independently. With few runs it is too narrow
	// (the resampled variance is biased down by (n−1)/n and takes few
	// distinct values), so it can only make the verdict stricter.
	BootstrapCILow, BootstrapCIHigh float64
	Bootstrap                       BootstrapInfo
	// Test is Welch's t test across runs (an exact permutation test when
	// every run in each group gave the same value).
	Test          TestResult
	Alpha         float64
	Verdict       Verdict
	VerdictReason string
}

// CompareGroups compares per-run means of two groups of runs, at least two
// runs per group. The verdict requires Welch's p < Alpha and both the Welch
// and the bootstrap interval to exclude 0 on the same side, and the
// thresholds. ctx cancels the bootstrap.
func CompareGroups(ctx context.Context, baselineRunMeans, candidateRunMeans []float64, dir Direction, opt Options) (GroupComparison, error) {
	opt, err := prepare(dir, opt)
	if err != nil {
		return GroupComparison{}, err
	}
	g := GroupComparison{Direction: dir, ConfidenceLevel: opt.ConfidenceLevel, Alpha: opt.Alpha}
	bm, bss, err := twoSampleSide("baseline run means", baselineRunMeans, &g.Baseline)
	if err != nil {
		return GroupComparison{}, err
	}
	cm, css, err := twoSampleSide("candidate run means", candidateRunMeans, &g.Candidate)
	if err != nil {
		return GroupComparison{}, err
	}
	nb, nc := len(baselineRunMeans), len(candidateRunMeans)
	g.AbsoluteChange = cm - bm
	if math.IsInf(g.AbsoluteChange, 0) {
		return GroupComparison{}, fmt.Errorf("difference of means: %w", ErrOverflow)
	}
	vb, vc := bss/float64(nb-1), css/float64(nc-1)
	if g.Test, err = welchT(nb, bm, vb, nc, cm, vc); err != nil {
		return GroupComparison{}, err
	}
	if g.Test.Name == TestWelchT && g.Test.DF > 0 {
		g.CILow, g.CIHigh = welchCI(nb, vb, nc, vc, g.AbsoluteChange, opt.ConfidenceLevel, g.Test.DF)
	} else {
		// Both groups constant: no spread to build an interval from.
		g.CILow, g.CIHigh = g.AbsoluteChange, g.AbsoluteChange
	}
	rb := newNaiveOrConstant("baseline", baselineRunMeans, bm, bss)
	rc := newNaiveOrConstant("candidate", candidateRunMeans, cm, css)
	reps, err := bootstrapReplicates(ctx, opt.Resamples, opt.Seed, func(r *rng) float64 {
		b := rb.draw(r)
		return rc.draw(r) - b
	})
	if err != nil {
		return GroupComparison{}, err
	}
	g.BootstrapCILow, g.BootstrapCIHigh = percentileInterval(reps, opt.ConfidenceLevel)
	g.Bootstrap = BootstrapInfo{Resamples: opt.Resamples, Seed: opt.Seed, Interval: "percentile",
		Parts: []ResampleInfo{rb.info(), rc.info()}}
	g.Relative = relativeChange(g.AbsoluteChange, g.Baseline, opt)
	if g.Test.Name == TestPermutation && !enoughUnpaired(nb, nc, opt.Alpha) {
		// Every run of each group gave the same value: the exact
		// permutation test is all there is, and with so few runs its
		// smallest p cannot reach Alpha. "No change" would be a claim the
		// data cannot support either way.
		g.Verdict, g.VerdictReason = Inconclusive, fmt.Sprintf(
			"%d baseline and %d candidate runs, each group constant: the exact permutation test cannot reach p < %g with so few runs (its smallest p is %.3g); add runs",
			nb, nc, opt.Alpha, 2/math.Exp(lnChoose(float64(nb+nc), float64(nb))))
	} else {
		g.Verdict, g.VerdictReason = decide(dir, g.AbsoluteChange, g.Relative, []interval{
			{"Welch", g.CILow, g.CIHigh},
			{"bootstrap", g.BootstrapCILow, g.BootstrapCIHigh},
		}, g.Test, opt)
	}
	g.Note = fmt.Sprintf("groups of runs: %d baseline and %d candidate runs, one mean per run; "+
		"Welch's t test across runs (%v)", nb, nc, dir)
	return g, nil
}

// newNaiveOrConstant resamples a handful of run means directly.
func newNaiveOrConstant(of string, x []float64, mean, ss float64) resampler {
	if ss == 0 {
		return constantResampler{ResampleInfo{Of: of, N: len(x), Method: ResampleConstant}, mean}
	}
	return newNaiveResampler(of, x, mean)
}
