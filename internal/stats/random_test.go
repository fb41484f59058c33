package stats

import (
	"math"
	"slices"
	"testing"
)

func TestStirlingTail(t *testing.T) {
	for k := 0.0; k <= 200; k++ {
		lf, _ := math.Lgamma(k + 1)
		want := lf - ((k+0.5)*math.Log(k+1) - (k + 1) + lnSqrt2Pi)
		// lnΓ(k+1) itself is only good to ~1e-16·ln k!, so compare with an
		// absolute tolerance scaled to it.
		if got := stirlingTail(k); !near(got, want, 0, 4e-16*math.Max(1, lf)) {
			t.Errorf("stirlingTail(%v) = %.17g, want %.17g", k, got, want)
		}
	}
}

// TestBinomialMatchesPMF draws from binomial and compares the histogram
// with the exact pmf by a χ² goodness-of-fit statistic (cells merged to an
// expected count ≥ 5), and the sample mean and variance with np and npq.
// Every branch is covered: inversion, BTRS, and the p > ½ reflection.
func TestBinomialMatchesPMF(t *testing.T) {
	const draws = 400000
	cases := []struct {
		n int64
		p float64
	}{
		{1, 0.5}, {5, 0.3}, {50, 0.1}, {19, 0.5}, // inversion (np < 10)
		{100, 0.2}, {1000, 0.5}, {37, 0.31}, // BTRS
		{1000000, 0.001}, {1000000, 0.37}, // BTRS, large n
		{12, 0.97}, {200, 0.8}, {3, 1e-9}, // reflection, tiny p
	}
	for ci, c := range cases {
		r := newRNG(42, uint64(ci))
		counts := map[int64]int{}
		var sum, sumSq float64
		for range draws {
			k := r.binomial(c.n, c.p)
			if k < 0 || k > c.n {
				t.Fatalf("Bin(%d, %g) drew %d", c.n, c.p, k)
			}
			counts[k]++
			fk := float64(k)
			sum += fk
			sumSq += fk * fk
		}
		fn := float64(c.n)
		mean, variance := fn*c.p, fn*c.p*(1-c.p)
		sampleMean := sum / draws
		sampleVar := sumSq/draws - sampleMean*sampleMean
		if se := math.Sqrt(variance / draws); math.Abs(sampleMean-mean) > 5*se+1e-12 {
			t.Errorf("Bin(%d, %g): mean %g, want %g ± %g", c.n, c.p, sampleMean, mean, se)
		}
		if variance*draws > 100 && math.Abs(sampleVar/variance-1) > 5*math.Sqrt(2.0/draws)+0.01 {
			t.Errorf("Bin(%d, %g): variance %g, want %g", c.n, c.p, sampleVar, variance)
		}
		// χ² over cells k = lo…hi, merging neighbours until the expected count
		// reaches draws/40: few cells keep the test powerful against the
		// smooth distortions a wrong acceptance constant causes.
		sd := math.Sqrt(variance)
		lo := max(0, int64(math.Floor(mean-10*sd-1)))
		hi := min(c.n, int64(math.Ceil(mean+10*sd+1)))
		var chi2, expAcc, obsAcc float64
		cells := 0
		for k := lo; k <= hi; k++ {
			lp := lnChoose(fn, float64(k)) + float64(k)*math.Log(c.p) + (fn-float64(k))*math.Log1p(-c.p)
			expAcc += draws * math.Exp(lp)
			obsAcc += float64(counts[k])
			if expAcc >= draws/40 || k == hi {
				chi2 += (obsAcc - expAcc) * (obsAcc - expAcc) / math.Max(expAcc, 1e-300)
				cells++
				expAcc, obsAcc = 0, 0
			}
		}
		if cells < 2 {
			continue
		}
		df := float64(cells - 1)
		if z := (chi2 - df) / math.Sqrt(2*df); z > 5 {
			t.Errorf("Bin(%d, %g): χ² = %.1f on %v df (z = %.1f): histogram does not match the pmf", c.n, c.p, chi2, df, z)
		}
	}
}

func TestSortFloat64s(t *testing.T) {
	r := newRNG(7, 0)
	x := make([]float64, 20000)
	special := []float64{0, math.Copysign(0, -1), math.Inf(1), math.Inf(-1), 5e-324, -5e-324,
		math.MaxFloat64, -math.MaxFloat64, 1, 1, -1}
	for i := range x {
		switch {
		case i < len(special):
			x[i] = special[i]
		case i%3 == 0:
			x[i] = math.Round((r.uniform() - 0.5) * 20) // many ties
		default:
			x[i] = (r.uniform() - 0.5) * math.Pow(10, 20*r.uniform()-10)
		}
	}
	want := slices.Clone(x)
	slices.Sort(want)
	got := slices.Clone(x)
	sortFloat64s(got)
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("sorted[%d] = %v, want %v", i, got[i], want[i])
		}
	}
}
