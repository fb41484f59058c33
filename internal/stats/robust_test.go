package stats

import (
	"context"
	"errors"
	"math"
	"slices"
	"testing"
	"time"
)

// A shift written in decimal (baseline + 0.1) leaves deltas that differ in
// the last bits; they must count as the equal deltas they are, so the
// verdict and p are those of exactly equal improvements.
func TestDecimalShiftIsOneDelta(t *testing.T) {
	for _, n := range []int{5, 8} {
		base := make([]float64, n)
		exact := make([]float64, n)
		decimal := make([]float64, n)
		noisy := false
		for i := range base {
			base[i] = 0.3 + 1.7*float64(i)
			exact[i] = base[i] + 0.125 // a binary fraction: deltas exactly equal
			decimal[i] = base[i] + 0.1
			noisy = noisy || decimal[i]-base[i] != decimal[0]-base[0]
		}
		if !noisy {
			t.Fatalf("n=%d: the decimal shift left no rounding noise; the test needs some", n)
		}
		e := mustCompare(t, ComparePaired, base, exact, HigherIsBetter, Options{Resamples: 200})
		d := mustCompare(t, ComparePaired, base, decimal, HigherIsBetter, Options{Resamples: 200})
		wantP := math.Exp2(1 - float64(n))
		for name, c := range map[string]Comparison{"exact": e, "decimal": d} {
			if c.Test.Name != TestSignFlip || c.Test.PValue != wantP || c.Deltas.Std != 0 {
				t.Errorf("n=%d %s shift: test %+v, deltas std %v; want the sign-flip p = %v", n, name, c.Test, c.Deltas.Std, wantP)
			}
			want := Improved
			if n < MinSamples(DefaultAlpha) {
				want = Inconclusive
			}
			if c.Verdict != want {
				t.Errorf("n=%d %s shift: verdict %v (%s), want %v", n, name, c.Verdict, c.VerdictReason, want)
			}
		}
	}
}

// Deltas below the tolerance are ties; a single real difference is not.
func TestToleranceTies(t *testing.T) {
	base := []float64{0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8}
	cand := make([]float64, len(base))
	for i, v := range base {
		cand[i] = v*3/3 + 0.7 - 0.7 // the same values, through rounding
	}
	cand[7] = 0.9
	c := mustCompare(t, ComparePaired, base, cand, HigherIsBetter, Options{Resamples: 200})
	if c.Wins != 1 || c.Ties != 7 || c.Losses != 0 {
		t.Errorf("wins/ties/losses = %d/%d/%d, want 1/7/0", c.Wins, c.Ties, c.Losses)
	}
	if c.Verdict != NoSignificantChange {
		t.Errorf("one better sample of 8: verdict %v (%s)", c.Verdict, c.VerdictReason)
	}
}

// Two pairs that agree in sign: the percentile bootstrap of two values
// always excludes 0 and the t test can give a small p; neither is a basis
// for a verdict.
func TestTinySamplesAreInconclusive(t *testing.T) {
	c := mustCompare(t, ComparePaired, []float64{1, 2}, []float64{1.5, 2.51}, HigherIsBetter, Options{Resamples: 200})
	if c.Verdict != Inconclusive || c.CILow <= 0 {
		t.Errorf("two pairs: verdict %v (%s), interval [%v, %v]", c.Verdict, c.VerdictReason, c.CILow, c.CIHigh)
	}
	u := mustCompare(t, CompareUnpaired, []float64{1, 1.1, 0.9}, []float64{5, 5.2, 4.9}, HigherIsBetter, Options{Resamples: 200})
	if u.Verdict != Inconclusive {
		t.Errorf("3 against 3 values: verdict %v (%s), want inconclusive (2/C(6,3) = 0.1)", u.Verdict, u.VerdictReason)
	}
	tests := []struct {
		alpha float64
		want  int
	}{{0.05, 6}, {0.01, 8}, {0.1, 5}, {0, 6}}
	for _, tt := range tests {
		if got := MinSamples(tt.alpha); got != tt.want {
			t.Errorf("MinSamples(%v) = %d, want %d", tt.alpha, got, tt.want)
		}
	}
}

// Mann–Whitney U against scipy 1.10.1's mannwhitneyu(candidate, baseline):
// exact without ties, and the continuity- and tie-corrected normal
// approximation with ties.
func TestMannWhitneyAgainstScipy(t *testing.T) {
	b30 := []float64{-0.801931, -1.324359, -0.248362, 0.420445, 1.136047, 0.109706, -0.552647, -0.78478, 0.748746, 1.634783, 0.272769, -1.233329, -0.958265, 1.600019, 0.202882, -1.732135, -0.083696, -1.163226, -0.629288, -0.488006, -0.713313, 0.553378, -0.063086, -0.589431, 0.409638, 0.829855, -1.643023, -0.25673, -0.980747, -0.173155}
	c25 := []float64{-0.489419, 0.82069, 0.762114, 0.495662, -0.247927, 0.40381, -0.291329, -0.555209, 1.024786, -0.30935, 1.970296, 1.516588, -1.197817, 1.072129, -0.301717, 0.833057, 0.843632, -1.18843, 0.566577, 0.54421, 1.762001, -0.381447, 1.538042, -0.298973, 0.468709}
	tests := []struct {
		name string
		b, c []float64
		u, p float64
	}{
		{"exact 5 against 6", []float64{1.1, 2.3, 3.5, 4.2, 5.9}, []float64{2.0, 6.1, 7.4, 8.8, 9.3, 10.5}, 26, 0.05194805194805195},
		{"ties", []float64{1, 2, 2, 3, 4, 5, 5, 6}, []float64{3, 4, 5, 7, 7, 8, 9, 9, 10}, 62, 0.013610459172522007},
		// 55 values: beyond the exact bound, so the normal approximation
		// (scipy's method="asymptotic"; its exact p is 0.01836).
		{"30 against 25", b30, c25, 514, 0.01922818630208232},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mannWhitney(tt.b, tt.c, 0)
			tol := 1e-12
			if got.Name != TestMannWhitneyU || got.Statistic != tt.u || !near(got.PValue, tt.p, tol, 0) {
				t.Errorf("got %+v, want U = %v, p = %v", got, tt.u, tt.p)
			}
			c := mustCompare(t, CompareUnpaired, tt.b, tt.c, HigherIsBetter, Options{Resamples: 200})
			if len(c.Tests) != 2 || c.Tests[1] != got {
				t.Errorf("CompareUnpaired tests = %+v", c.Tests)
			}
		})
	}
	// The exact distribution itself, small enough to count by hand: sizes
	// 2 and 2 give U ∈ {0,1,2,2,3,4} over the C(4,2) = 6 orderings.
	if p := mannWhitneyExactP(2, 2, 0); p != 2.0/6 {
		t.Errorf("P(U ≤ 0)·2 for 2 against 2 = %v, want 1/3", p)
	}
}

func TestBoundedWork(t *testing.T) {
	var oe *OptionError
	err := Options{Resamples: 2147483647}.Validate()
	if !errors.As(err, &oe) || oe.Option != "Resamples" || !errors.Is(err, ErrOptions) {
		t.Errorf("2³¹−1 resamples: %v", err)
	}
	if err := (Options{Resamples: MaxResamples}).Validate(); err != nil {
		t.Errorf("MaxResamples refused: %v", err)
	}
	if err := CheckWork(0, 10_000_000); err != nil {
		t.Errorf("default resamples of the largest results refused: %v", err)
	}
	if err := CheckWork(MaxResamples, 10_000_000); !errors.As(err, &oe) || oe.Option != "Resamples" {
		t.Errorf("10⁵ resamples of 10⁷ values: %v", err)
	}
}

// A cancelled context stops the bootstrap: the call returns the context's
// error long before the work would have finished.
func TestBootstrapHonoursCancellation(t *testing.T) {
	n := 200_000
	b := make([]float64, n)
	c := make([]float64, n)
	r := newRNG(1, 1)
	for i := range b {
		b[i] = r.uniform()
		c[i] = r.uniform()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := CompareUnpaired(ctx, b, c, HigherIsBetter, Options{Resamples: MaxResamples})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v after %v, want the deadline", err, time.Since(start))
	}
}

// TestOrderStatsMatchSort: the selection behind Summarize's quantiles of
// large samples gives the very bits that sorting gives, on shapes that
// stress it: many ties, 0/1 values, ±0, sorted and reversed input, a few
// distinct values, extremes.
func TestOrderStatsMatchSort(t *testing.T) {
	const n = 3 * radixThreshold
	r := newRNG(7, 0)
	shapes := map[string]func(i int) float64{
		"uniform":      func(int) float64 { return r.uniform()*2 - 1 },
		"binary":       func(int) float64 { return float64(r.index(2)) },
		"signed zeros": func(i int) float64 { return []float64{math.Copysign(0, -1), 0, 1, -1}[r.index(4)] },
		"ascending":    func(i int) float64 { return float64(i) },
		"descending":   func(i int) float64 { return float64(-i) },
		"three values": func(int) float64 { return []float64{-2.5, 0.1, 7}[r.index(3)] },
		"extremes": func(int) float64 {
			return []float64{-math.MaxFloat64, math.MaxFloat64, math.SmallestNonzeroFloat64}[r.index(3)]
		},
		"constant":        func(int) float64 { return 0.3 },
		"organ pipe":      func(i int) float64 { return float64(min(i, n-i)) },
		"mostly one, few": func(i int) float64 { return float64(min(1, r.index(1000))) },
	}
	for name, gen := range shapes {
		for _, size := range []int{radixThreshold, n, n + 1, n + 9} {
			x := make([]float64, size)
			for i := range x {
				x[i] = gen(i)
			}
			s := slices.Clone(x)
			sortFloat64s(s)
			want := [4]float64{s[0], quantileSorted(s, 0.5), quantileSorted(s, 0.9), s[len(s)-1]}
			var got [4]float64
			got[0], got[1], got[2], got[3] = orderStats(x)
			for k := range got {
				if math.Float64bits(got[k]) != math.Float64bits(want[k]) {
					t.Errorf("%s, n = %d: order statistics %v, sorting gives %v", name, size, got, want)
					break
				}
			}
		}
	}
}
