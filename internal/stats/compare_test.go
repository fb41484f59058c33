package stats

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

// shifted returns base[i] + noise[i] + delta.
func shifted(base []float64, delta float64, noiseSeed uint64, noiseSD float64) []float64 {
	noise := normals(noiseSeed, len(base), 0, noiseSD)
	out := make([]float64, len(base))
	for i := range base {
		out[i] = base[i] + delta + noise[i]
	}
	return out
}

func TestComparePairedVerdicts(t *testing.T) {
	// Per-sample difficulty varies a lot (sd 1) while the candidate's
	// per-sample change is small and consistent (0.05 ± 0.1).
	hard := normals(10, 400, 0.5, 1)
	better := shifted(hard, 0.05, 11, 0.1)
	worse := shifted(hard, -0.05, 11, 0.1)
	tiny := shifted(hard, 0.002, 11, 0.1)
	cases := []struct {
		name                string
		baseline, candidate []float64
		dir                 Direction
		opt                 Options
		want                Verdict
		reason              string // substring of VerdictReason
	}{
		{"higher is better, up", hard, better, HigherIsBetter, Options{}, Improved, "better: change +"},
		{"higher is better, down", hard, worse, HigherIsBetter, Options{}, Regressed, "worse: change -"},
		{"lower is better, down (a lower loss)", hard, worse, LowerIsBetter, Options{}, Improved, "better: change -"},
		{"lower is better, up", hard, better, LowerIsBetter, Options{}, Regressed, "worse: change +"},
		{"too small to detect", hard, tiny, HigherIsBetter, Options{}, NoSignificantChange, "≥ α"},
		{"significant but below MinAbsoluteImprovement", hard, better, HigherIsBetter,
			Options{MinAbsoluteImprovement: 0.1}, NoSignificantChange, "< MinAbsoluteImprovement"},
		{"meets MinAbsoluteImprovement", hard, better, HigherIsBetter,
			Options{MinAbsoluteImprovement: 0.01}, Improved, "better: change +"},
		{"significant but below MinRelativeImprovement", hard, better, HigherIsBetter,
			Options{MinRelativeImprovement: 0.5}, NoSignificantChange, "< MinRelativeImprovement"},
		{"regression below the threshold is not reported", hard, worse, HigherIsBetter,
			Options{MinAbsoluteImprovement: 0.1}, NoSignificantChange, "significantly worse, but"},
		{"strict alpha", hard, tiny, HigherIsBetter, Options{Alpha: 1e-12}, NoSignificantChange, "≥ α"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cmp := mustCompare(t, ComparePaired, c.baseline, c.candidate, c.dir, c.opt)
			if cmp.Verdict != c.want || !strings.Contains(cmp.VerdictReason, c.reason) {
				t.Errorf("verdict %v (%s), want %v containing %q", cmp.Verdict, cmp.VerdictReason, c.want, c.reason)
			}
			if !cmp.Paired || cmp.Test.Name != TestPairedT || len(cmp.Tests) != 2 || cmp.Tests[1].Name != TestWilcoxon {
				t.Errorf("tests: %+v", cmp.Tests)
			}
			if cmp.Wins+cmp.Ties+cmp.Losses != len(c.baseline) {
				t.Errorf("wins+ties+losses = %d, want %d", cmp.Wins+cmp.Ties+cmp.Losses, len(c.baseline))
			}
		})
	}
}

func TestPairingIsMoreSensitive(t *testing.T) {
	// The same data compared both ways: unpaired, the between-sample
	// spread (sd 1) swamps a 0.05 shift; paired, it cancels.
	hard := normals(20, 400, 0.5, 1)
	cand := shifted(hard, 0.05, 21, 0.1)
	p := mustCompare(t, ComparePaired, hard, cand, HigherIsBetter, Options{})
	u := mustCompare(t, CompareUnpaired, hard, cand, HigherIsBetter, Options{})
	if p.Verdict != Improved || u.Verdict != NoSignificantChange {
		t.Errorf("paired %v (%s), unpaired %v (%s)", p.Verdict, p.VerdictReason, u.Verdict, u.VerdictReason)
	}
	if u.Paired || u.Test.Name != TestWelchT || !strings.Contains(u.Note, "Welch") || !strings.Contains(u.Note, "unpaired") {
		t.Errorf("unpaired: test %q, note %q", u.Test.Name, u.Note)
	}
	if u.Wins+u.Ties+u.Losses != 0 {
		t.Errorf("unpaired comparison counted wins/ties/losses: %d/%d/%d", u.Wins, u.Ties, u.Losses)
	}
	if p.AbsoluteChange != p.Deltas.Mean || !near(p.AbsoluteChange, u.AbsoluteChange, 1e-12, 1e-15) {
		t.Errorf("absolute change: paired %v (deltas %v), unpaired %v", p.AbsoluteChange, p.Deltas.Mean, u.AbsoluteChange)
	}
	if len(u.Bootstrap.Parts) != 2 || u.Bootstrap.Parts[0].Of != "baseline" || u.Bootstrap.Parts[1].Of != "candidate" {
		t.Errorf("unpaired bootstrap parts: %+v", u.Bootstrap.Parts)
	}
}

func TestIdenticalRuns(t *testing.T) {
	x := normals(30, 500, 0.7, 0.2)
	bin := make([]float64, 500)
	for i := range bin {
		if x[i] > 0.7 {
			bin[i] = 1
		}
	}
	for _, data := range [][]float64{x, bin} {
		cmp := mustCompare(t, ComparePaired, data, data, HigherIsBetter, Options{})
		if cmp.Verdict != NoSignificantChange {
			t.Errorf("verdict %v: %s", cmp.Verdict, cmp.VerdictReason)
		}
		for _, tr := range cmp.Tests {
			if tr.PValue != 1 {
				t.Errorf("%s p = %v, want 1", tr.Name, tr.PValue)
			}
		}
		if cmp.CILow != 0 || cmp.CIHigh != 0 || cmp.AbsoluteChange != 0 {
			t.Errorf("change %v, CI [%v, %v], want all 0", cmp.AbsoluteChange, cmp.CILow, cmp.CIHigh)
		}
		if cmp.Ties != len(data) || cmp.Wins != 0 || cmp.Losses != 0 {
			t.Errorf("wins/ties/losses %d/%d/%d", cmp.Wins, cmp.Ties, cmp.Losses)
		}
		if !cmp.Relative.OK || cmp.Relative.Value != 0 {
			t.Errorf("relative %+v, want 0", cmp.Relative)
		}
		if cmp.Bootstrap.Parts[0].Method != ResampleConstant {
			t.Errorf("bootstrap %+v", cmp.Bootstrap)
		}
		u := mustCompare(t, CompareUnpaired, data, data, HigherIsBetter, Options{})
		if u.Verdict != NoSignificantChange || u.Test.PValue != 1 {
			t.Errorf("unpaired: %v, p = %v", u.Verdict, u.Test.PValue)
		}
	}
}

func TestConstantShift(t *testing.T) {
	// Every delta is exactly +1: t is undefined (zero variance); the exact
	// sign-flip test gives 2/2ⁿ.
	for _, n := range []int{2, 5, 12} {
		b := make([]float64, n)
		c := make([]float64, n)
		for i := range b {
			b[i] = float64(i)
			c[i] = float64(i) + 1
		}
		cmp := mustCompare(t, ComparePaired, b, c, HigherIsBetter, Options{})
		want := math.Min(1, math.Exp2(1-float64(n)))
		if cmp.Test.Name != TestSignFlip || cmp.Test.PValue != want {
			t.Errorf("n=%d: %+v, want p = %v", n, cmp.Test, want)
		}
		if cmp.CILow != 1 || cmp.CIHigh != 1 {
			t.Errorf("n=%d: CI [%v, %v]", n, cmp.CILow, cmp.CIHigh)
		}
		wantVerdict := Improved
		if n < MinSamples(0.05) {
			// Too few pairs for any verdict; with 5 even the exact test
			// could not reject (2/2⁵ > 0.05).
			wantVerdict = Inconclusive
		}
		if cmp.Verdict != wantVerdict {
			t.Errorf("n=%d: verdict %v (%s)", n, cmp.Verdict, cmp.VerdictReason)
		}
	}
	// Unpaired, both runs constant and different: exact permutation test,
	// 2/C(n_b+n_c, n_b).
	u := mustCompare(t, CompareUnpaired, []float64{3, 3, 3}, []float64{4, 4, 4, 4}, HigherIsBetter, Options{})
	if u.Test.Name != TestPermutation || !near(u.Test.PValue, 2.0/35, 1e-12, 0) || u.Verdict != Inconclusive {
		t.Errorf("constant unpaired: %+v, verdict %v", u.Test, u.Verdict)
	}
}

func TestRelativeChangeGuard(t *testing.T) {
	zeros := make([]float64, 200)
	noisyZero := normals(40, 200, 0, 1) // mean ≈ 0, sd 1
	positive := normals(41, 200, 5, 1)
	cases := []struct {
		name     string
		baseline []float64
		opt      Options
		ok       bool
		reason   string
	}{
		{"baseline all zero", zeros, Options{}, false, "baseline mean is 0"},
		{"baseline mean indistinguishable from 0", noisyZero, Options{}, false, "not significantly different from 0"},
		{"clear baseline", positive, Options{}, true, ""},
		{"NearZero floor", positive, Options{NearZero: 10}, false, "NearZero"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cand := shifted(c.baseline, 0.5, 42, 0.1)
			cmp := mustCompare(t, ComparePaired, c.baseline, cand, HigherIsBetter, c.opt)
			r := cmp.Relative
			if r.OK != c.ok || !strings.Contains(r.Reason, c.reason) {
				t.Errorf("relative %+v, want ok=%v reason ~ %q", r, c.ok, c.reason)
			}
			if r.OK && !near(r.Value, cmp.AbsoluteChange/math.Abs(cmp.Baseline.Mean), 1e-15, 0) {
				t.Errorf("relative %v, want change/|mean|", r.Value)
			}
			if !r.OK && (r.Value != 0 || math.IsNaN(r.Value)) {
				t.Errorf("omitted relative change carries value %v", r.Value)
			}
			// The absolute comparison is unaffected: a clear +0.5 shift.
			if cmp.Verdict != Improved {
				t.Errorf("verdict %v: %s", cmp.Verdict, cmp.VerdictReason)
			}
		})
	}
	// With MinRelativeImprovement set, an omitted relative change blocks
	// the verdict rather than passing silently.
	cmp := mustCompare(t, ComparePaired, zeros, shifted(zeros, 0.5, 43, 0.1), HigherIsBetter, Options{MinRelativeImprovement: 0.01})
	if cmp.Verdict != NoSignificantChange || !strings.Contains(cmp.VerdictReason, "relative change is omitted") {
		t.Errorf("verdict %v: %s", cmp.Verdict, cmp.VerdictReason)
	}
}

func TestKnownEffectRecovered(t *testing.T) {
	// Simulated with a fixed seed: true mean delta −0.25 (loss falls by
	// 0.25), per-sample noise sd 1.
	const trueDelta = -0.25
	base := normals(50, 2000, 3, 1)
	cand := shifted(base, trueDelta, 51, 1)
	cmp := mustCompare(t, ComparePaired, base, cand, LowerIsBetter, Options{Seed: 7})
	if !(cmp.CILow <= trueDelta && trueDelta <= cmp.CIHigh) {
		t.Errorf("95%% CI [%v, %v] misses the true delta %v", cmp.CILow, cmp.CIHigh, trueDelta)
	}
	if cmp.Verdict != Improved {
		t.Errorf("verdict %v: %s", cmp.Verdict, cmp.VerdictReason)
	}
	// The interval's width should be about 2·1.96·1/√2000 ≈ 0.088.
	if w := cmp.CIHigh - cmp.CILow; w < 0.075 || w > 0.1 {
		t.Errorf("CI width %v, want ≈ 0.088", w)
	}
	again, _ := ComparePaired(context.Background(), base, cand, LowerIsBetter, Options{Seed: 7})
	if again.CILow != cmp.CILow || again.CIHigh != cmp.CIHigh {
		t.Errorf("same seed, different interval: [%v, %v] vs [%v, %v]", again.CILow, again.CIHigh, cmp.CILow, cmp.CIHigh)
	}
}

func TestWinsTiesLosses(t *testing.T) {
	b := []float64{1, 2, 3, 4, 5, 6, 7}
	c := []float64{2, 2, 1, 4, 9, 5, 7} // deltas +1 0 −2 0 +4 −1 0
	for _, tc := range []struct {
		dir                Direction
		wins, ties, losses int
	}{
		{HigherIsBetter, 2, 3, 2},
		{LowerIsBetter, 2, 3, 2},
	} {
		cmp := mustCompare(t, ComparePaired, b, c, tc.dir, Options{})
		if cmp.Wins != tc.wins || cmp.Ties != tc.ties || cmp.Losses != tc.losses {
			t.Errorf("%v: %d/%d/%d", tc.dir, cmp.Wins, cmp.Ties, cmp.Losses)
		}
	}
	// Unbalanced: 3 wins for higher-is-better become 3 losses for lower.
	c2 := []float64{2, 3, 4, 4, 5, 5, 7} // +1 +1 +1 0 0 −1 0
	hi, _ := ComparePaired(context.Background(), b, c2, HigherIsBetter, Options{})
	lo, _ := ComparePaired(context.Background(), b, c2, LowerIsBetter, Options{})
	if hi.Wins != 3 || hi.Losses != 1 || lo.Wins != 1 || lo.Losses != 3 || hi.Ties != 3 || lo.Ties != 3 {
		t.Errorf("higher %d/%d/%d, lower %d/%d/%d", hi.Wins, hi.Ties, hi.Losses, lo.Wins, lo.Ties, lo.Losses)
	}
	// Wilcoxon drops the three zeros and ranks |1| |1| |1| |1| as ties
	// (average rank 2.5): W⁺ = 7.5 of 10, exact p = 0.625 (2·P(W⁺ ≥ 7.5) =
	// 2·5/16, the sign patterns with at most one minus sign).
	w := hi.Tests[1]
	if w.Name != TestWilcoxon || w.Statistic != 7.5 || !near(w.PValue, 0.625, 1e-15, 0) {
		t.Errorf("Wilcoxon %+v", w)
	}
}

func TestMcNemarOnBinaryMetric(t *testing.T) {
	// 60 samples: 30 both right, 10 both wrong, 4 only the baseline right,
	// 16 only the candidate right.
	var b, c []float64
	add := func(n int, bv, cv float64) {
		for range n {
			b = append(b, bv)
			c = append(c, cv)
		}
	}
	add(30, 1, 1)
	add(10, 0, 0)
	add(4, 1, 0)
	add(16, 0, 1)
	if !IsBinary(b) || !IsBinary(c) || IsBinary([]float64{0, 1, 0.5}) || IsBinary(nil) {
		t.Fatal("IsBinary")
	}
	cmp := mustCompare(t, ComparePaired, b, c, HigherIsBetter, Options{})
	want := mcnemar(4, 16)
	if cmp.Test != want || want.Method != "exact binomial" || want.Statistic != 4 {
		t.Errorf("test %+v, want %+v", cmp.Test, want)
	}
	// Exact: 2·P(X ≤ 4), X ~ Bin(20, ½) = 2·6196/1048576.
	if !near(want.PValue, 2*6196.0/1048576, 1e-15, 0) {
		t.Errorf("p = %v", want.PValue)
	}
	if len(cmp.Tests) != 3 || cmp.Tests[1].Name != TestPairedT || cmp.Tests[2].Name != TestWilcoxon {
		t.Errorf("tests %+v", cmp.Tests)
	}
	if cmp.Verdict != Improved || cmp.Wins != 16 || cmp.Losses != 4 || cmp.Ties != 40 {
		t.Errorf("verdict %v, %d/%d/%d", cmp.Verdict, cmp.Wins, cmp.Ties, cmp.Losses)
	}
	if !near(cmp.AbsoluteChange, 12.0/60, 1e-15, 0) || !strings.Contains(cmp.Note, "0/1 metric") {
		t.Errorf("change %v, note %q", cmp.AbsoluteChange, cmp.Note)
	}
	// An "error" metric (1 = wrong) with LowerIsBetter: same test, the
	// candidate's 12 fewer errors are an improvement.
	eb, ec := make([]float64, len(b)), make([]float64, len(c))
	for i := range b {
		eb[i], ec[i] = 1-b[i], 1-c[i]
	}
	e := mustCompare(t, ComparePaired, eb, ec, LowerIsBetter, Options{})
	if e.Verdict != Improved || e.Test.PValue != cmp.Test.PValue {
		t.Errorf("error metric: %v, p = %v", e.Verdict, e.Test.PValue)
	}
}

func TestInputErrors(t *testing.T) {
	ctx, ok := context.Background(), []float64{1, 2, 3}
	cases := []struct {
		name       string
		err        error // what the call returned
		want       error
		message    string
		index      int // for ErrNonFinite
		inputLabel string
	}{
		{"NaN in candidate", errOf(ComparePaired(ctx, ok, []float64{1, math.NaN(), 3}, HigherIsBetter, Options{})),
			ErrNonFinite, "candidate[1] is NaN", 1, "candidate"},
		{"+Inf in baseline", errOf(ComparePaired(ctx, []float64{1, 2, math.Inf(1)}, ok, HigherIsBetter, Options{})),
			ErrNonFinite, "baseline[2] is +Inf", 2, "baseline"},
		{"−Inf unpaired", errOf(CompareUnpaired(ctx, ok, []float64{0, math.Inf(-1)}, HigherIsBetter, Options{})),
			ErrNonFinite, "candidate[1] is -Inf", 1, "candidate"},
		{"NaN in a run mean", errOf(CompareGroups(ctx, []float64{math.NaN(), 1}, ok, HigherIsBetter, Options{})),
			ErrNonFinite, "baseline run means[0] is NaN", 0, "baseline run means"},
		{"NaN summarised", errOf(summarize("x", []float64{0, math.NaN()})),
			ErrNonFinite, "x[1] is NaN", 1, "x"},
		{"empty baseline", errOf(ComparePaired(ctx, nil, nil, HigherIsBetter, Options{})),
			ErrEmpty, "baseline", 0, ""},
		{"empty summary", errOf(summarize("x", nil)),
			ErrEmpty, "x", 0, ""},
		{"length mismatch", errOf(ComparePaired(ctx, ok, ok[:2], HigherIsBetter, Options{})),
			ErrLengthMismatch, "baseline has 3 values, candidate 2", 0, ""},
		{"one pair", errOf(ComparePaired(ctx, ok[:1], ok[:1], HigherIsBetter, Options{})),
			ErrTooFewSamples, "1 sample", 0, ""},
		{"one unpaired value", errOf(CompareUnpaired(ctx, ok, ok[:1], HigherIsBetter, Options{})),
			ErrTooFewSamples, "candidate has 1 value", 0, ""},
		{"one run", errOf(CompareGroups(ctx, ok[:1], ok, HigherIsBetter, Options{})),
			ErrTooFewSamples, "baseline run means has 1 value", 0, ""},
		{"no direction", errOf(ComparePaired(ctx, ok, ok, DirectionUnspecified, Options{})),
			ErrDirection, "Direction(0)", 0, ""},
		{"bad direction", errOf(CompareUnpaired(ctx, ok, ok, Direction(7), Options{})),
			ErrDirection, "Direction(7)", 0, ""},
		{"confidence level 1", errOf(ComparePaired(ctx, ok, ok, HigherIsBetter, Options{ConfidenceLevel: 1})),
			ErrOptions, "ConfidenceLevel", 0, ""},
		{"alpha NaN", errOf(ComparePaired(ctx, ok, ok, HigherIsBetter, Options{Alpha: math.NaN()})),
			ErrOptions, "Alpha", 0, ""},
		{"too few resamples", errOf(ComparePaired(ctx, ok, ok, HigherIsBetter, Options{Resamples: 10})),
			ErrOptions, "Resamples", 0, ""},
		{"negative threshold", errOf(ComparePaired(ctx, ok, ok, HigherIsBetter, Options{MinAbsoluteImprovement: -1})),
			ErrOptions, "MinAbsoluteImprovement", 0, ""},
		{"overflowing deltas", errOf(ComparePaired(ctx, []float64{-1e308, 0}, []float64{1e308, 0}, HigherIsBetter, Options{})),
			ErrOverflow, "candidate[0] − baseline[0]", 0, ""},
		{"overflowing variance", errOf(CompareUnpaired(ctx, []float64{-1e308, 1e308}, ok, HigherIsBetter, Options{})),
			ErrOverflow, "baseline", 0, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.err
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.message) {
				t.Fatalf("err = %v, want %v containing %q", err, c.want, c.message)
			}
			if c.want == ErrNonFinite {
				var nf *NonFiniteError
				if !errors.As(err, &nf) || nf.Index != c.index || nf.Input != c.inputLabel {
					t.Errorf("NonFiniteError %+v, want input %q index %d", nf, c.inputLabel, c.index)
				}
			}
		})
	}
}

func TestCompareGroups(t *testing.T) {
	ref := loadReference(t)
	var runs34 struct{ b, c []float64 }
	var want struct{ p, lo, hi float64 }
	for _, w := range ref.Welch {
		if w.Name == "runs_3_4" {
			runs34.b, runs34.c = w.Baseline, w.Candidate
			want.p, want.lo, want.hi = w.PValue, w.CI95[0], w.CI95[1]
		}
	}
	g := mustCompare(t, CompareGroups, runs34.b, runs34.c, HigherIsBetter, Options{})
	checkNear(t, "Welch p", g.Test.PValue, want.p, 1e-9, 0)
	checkNear(t, "Welch CI low", g.CILow, want.lo, 1e-9, 0)
	checkNear(t, "Welch CI high", g.CIHigh, want.hi, 1e-9, 0)
	if g.Baseline.N != 3 || g.Candidate.N != 4 || !near(g.Baseline.Mean, 0.712333333333333, 1e-12, 0) ||
		!near(g.Baseline.Std, 0.007505553499465, 1e-10, 0) {
		t.Errorf("summaries %+v %+v", g.Baseline, g.Candidate)
	}
	// p ≈ 0.012 and both intervals above 0.
	if g.Verdict != Improved || g.BootstrapCILow <= 0 || !strings.Contains(g.VerdictReason, "Welch interval") {
		t.Errorf("verdict %v (%s), bootstrap [%v, %v]", g.Verdict, g.VerdictReason, g.BootstrapCILow, g.BootstrapCIHigh)
	}
	// The bootstrap over 3–4 runs is narrower than Welch's interval.
	if g.BootstrapCIHigh-g.BootstrapCILow >= g.CIHigh-g.CILow {
		t.Errorf("bootstrap [%v, %v] not narrower than Welch [%v, %v]", g.BootstrapCILow, g.BootstrapCIHigh, g.CILow, g.CIHigh)
	}
	// Accuracy → loss: the same numbers with LowerIsBetter regress.
	if g2, _ := CompareGroups(context.Background(), runs34.b, runs34.c, LowerIsBetter, Options{}); g2.Verdict != Regressed {
		t.Errorf("lower is better: %v", g2.Verdict)
	}
	// Two runs each, overlapping: no significant change.
	g3 := mustCompare(t, CompareGroups, []float64{2.31, 2.35}, []float64{2.21, 2.28}, LowerIsBetter, Options{})
	if g3.Verdict != NoSignificantChange || !strings.Contains(g3.VerdictReason, "≥ α") {
		t.Errorf("2 vs 2: %v (%s)", g3.Verdict, g3.VerdictReason)
	}
	// Deterministic runs (every seed gives the same value): p = 2/C(5,2).
	g4 := mustCompare(t, CompareGroups, []float64{1, 1}, []float64{2, 2, 2}, HigherIsBetter, Options{})
	if g4.Test.Name != TestPermutation || !near(g4.Test.PValue, 0.2, 1e-12, 0) || g4.CILow != 1 || g4.CIHigh != 1 {
		t.Errorf("constant groups: %+v CI [%v, %v]", g4.Test, g4.CILow, g4.CIHigh)
	}
	// ... and with so few runs that p can never reach α, no verdict: not
	// "no significant change" for a clean, constant +1.
	if g4.Verdict != Inconclusive || !strings.Contains(g4.VerdictReason, "smallest p is 0.2") {
		t.Errorf("constant 2 vs 3: %v (%s), want Inconclusive", g4.Verdict, g4.VerdictReason)
	}
	// Enough constant runs (4 vs 4: smallest p 2/70) reject.
	g5 := mustCompare(t, CompareGroups, []float64{1, 1, 1, 1}, []float64{2, 2, 2, 2}, HigherIsBetter, Options{})
	if g5.Test.Name != TestPermutation || g5.Verdict != Improved {
		t.Errorf("constant 4 vs 4: %+v %v (%s), want Improved", g5.Test, g5.Verdict, g5.VerdictReason)
	}
}

func TestEfficiency(t *testing.T) {
	// No work reported: speedup is the wall-time ratio.
	e, err := CompareEfficiency(Workload{GPUs: 8, Wall: 10 * time.Hour}, Workload{GPUs: 16, Wall: 5*time.Hour + 30*time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	checkNear(t, "speedup", e.Speedup, 10/5.5, 1e-15, 0)
	checkNear(t, "efficiency", e.ScalingEfficiency, 10/5.5/2, 1e-15, 0)

	e, err = CompareEfficiency(
		Workload{GPUs: 8, Wall: 2 * time.Hour, Work: 7.2e6},
		Workload{GPUs: 16, Wall: 90 * time.Minute, Work: 9.0e6})
	if err != nil {
		t.Fatal(err)
	}
	checkNear(t, "baseline GPU-hours", e.Baseline.GPUHours, 16, 1e-15, 0)
	checkNear(t, "candidate GPU-hours", e.Candidate.GPUHours, 24, 1e-15, 0)
	checkNear(t, "baseline throughput", e.Baseline.Throughput, 1000, 1e-15, 0)
	checkNear(t, "candidate per-GPU throughput", e.Candidate.PerGPUThroughput, 1e6/9600, 1e-15, 0)
	// Different work done: speedup is the throughput ratio, not the wall-time ratio.
	checkNear(t, "speedup", e.Speedup, (9.0e6/5400)/1000, 1e-15, 0)
	checkNear(t, "scaling efficiency", e.ScalingEfficiency, (9.0e6/5400)/1000/2, 1e-15, 0)
	if !strings.Contains(e.SpeedupBasis, "throughput") {
		t.Errorf("basis %q", e.SpeedupBasis)
	}

	for _, bad := range []struct{ b, c Workload }{
		{Workload{GPUs: 0, Wall: time.Hour}, Workload{GPUs: 8, Wall: time.Hour}},
		{Workload{GPUs: 8, Wall: time.Hour}, Workload{GPUs: 8, Wall: 0}},
		{Workload{GPUs: 8, Wall: time.Hour, Work: 1}, Workload{GPUs: 8, Wall: time.Hour}},
		{Workload{GPUs: 8, Wall: time.Hour, Work: math.NaN()}, Workload{GPUs: 8, Wall: time.Hour, Work: 1}},
		{Workload{GPUs: 8, Wall: time.Hour, Work: -1}, Workload{GPUs: 8, Wall: time.Hour, Work: 1}},
	} {
		if _, err := CompareEfficiency(bad.b, bad.c); !errors.Is(err, ErrInvalidRun) {
			t.Errorf("%+v vs %+v: err = %v", bad.b, bad.c, err)
		}
	}
}

// TestMillionSamples runs the full comparison at the scale the package was
// built for (its speed is measured by BenchmarkComparePaired1M; this only
// checks the answers).
func TestMillionSamples(t *testing.T) {
	const n = 1_000_000
	base, cand := benchData(n, benchContinuous)
	cmp := mustCompare(t, ComparePaired, base, cand, HigherIsBetter, Options{Seed: 1})
	part := cmp.Bootstrap.Parts[0]
	if part.Method != ResampleBinned || part.VarianceShare > binVarianceShare || part.VarianceShare == 0 {
		t.Errorf("bootstrap %+v", part)
	}
	if !(cmp.CILow <= benchTrueDelta && benchTrueDelta <= cmp.CIHigh) || cmp.Verdict != Improved {
		t.Errorf("CI [%v, %v] (true %v), verdict %v", cmp.CILow, cmp.CIHigh, benchTrueDelta, cmp.Verdict)
	}
	// The interval of a mean of a million is ≈ ±1.96·sd/1000.
	if w, want := cmp.CIHigh-cmp.CILow, 2*1.96*cmp.Deltas.Std/1000; math.Abs(w/want-1) > 0.05 {
		t.Errorf("CI width %v, want ≈ %v", w, want)
	}

	bb, bc := benchData(n, benchBinary)
	bin := mustCompare(t, ComparePaired, bb, bc, HigherIsBetter, Options{Seed: 1})
	if p := bin.Bootstrap.Parts[0]; p.Method != ResampleBinned || p.Bins != 3 || p.VarianceShare != 0 {
		t.Errorf("0/1 bootstrap %+v", p)
	}
	if bin.Test.Name != TestMcNemarChiSq || bin.Test.Method != "chi-square with continuity correction" {
		t.Errorf("0/1 test %+v", bin.Test)
	}
}

// errOf is the error of a call that also returns a value.
func errOf[T any](_ T, err error) error { return err }

// mustCompare runs one of the comparisons (ComparePaired, CompareUnpaired,
// CompareGroups) and fails the test on an error.
func mustCompare[T any](t *testing.T, compare func(context.Context, []float64, []float64, Direction, Options) (T, error),
	b, c []float64, dir Direction, opt Options) T {
	t.Helper()
	out, err := compare(context.Background(), b, c, dir, opt)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
