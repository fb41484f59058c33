package stats

import (
	"context"
	"math"
	"runtime"
	"slices"
	"testing"
)

// normals returns n draws of N(mu, sigma²) from a fixed stream (Box–Muller
// on the package's own uniforms, so the data never depend on math/rand).
func normals(seed uint64, n int, mu, sigma float64) []float64 {
	r := newRNG(seed, 1<<40)
	x := make([]float64, n)
	for i := range x {
		x[i] = mu + sigma*math.Sqrt(-2*math.Log(r.uniform()))*math.Cos(2*math.Pi*r.uniform())
	}
	return x
}

// replicateStats returns the variance and the 2.5 % and 97.5 % quantiles of
// b bootstrap replicates of rs.
func replicateStats(rs resampler, b int, seed uint64) (variance, lo, hi float64) {
	reps := mustReplicates(bootstrapReplicates(context.Background(), b, seed, rs.draw))
	m, ss := meanAndSS(reps)
	_ = m
	lo, hi = percentileInterval(reps, 0.95)
	return ss / float64(b-1), lo, hi
}

// TestBinnedBootstrapMatchesNaive checks the fast path against the textbook
// bootstrap on data small enough for both: the replicate variance of each
// must match its theoretical value (naive: S²/n; binned: (S² − W)/n, the
// identity the error bound rests on), and the percentile endpoints must
// agree within Monte-Carlo error.
func TestBinnedBootstrapMatchesNaive(t *testing.T) {
	const (
		n = 2000
		b = 10000
	)
	continuous := normals(1, n, 0.2, 1.5)
	ternary := make([]float64, n) // deltas of a 0/1 metric: −1, 0, 1
	for i, v := range normals(2, n, 0, 1) {
		switch {
		case v < -0.8:
			ternary[i] = -1
		case v > 0.6:
			ternary[i] = 1
		}
	}
	cases := []struct {
		name      string
		x         []float64
		tol       float64
		wantExact bool
	}{
		// At n = 2000 the default width leaves every bin sparse: every
		// value is resampled individually, exactly as the naive method.
		{"continuous default bins (all sparse)", continuous, binVarianceShare, true},
		{"continuous tol 1e-3 (dense and sparse bins)", continuous, 1e-3, false},
		{"continuous coarse bins (6 bins, W/S² ≈ 0.15)", continuous, 0.5, false},
		{"ternary deltas", ternary, binVarianceShare, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mean, ss := meanAndSS(c.x)
			s2 := ss / n // the bootstrap's plug-in variance
			naive := newNaiveResampler("x", c.x, mean)
			binned := newBinnedResampler("x", c.x, mean, ss, c.tol)
			info := binned.info()
			if exact := info.VarianceShare == 0; exact != c.wantExact {
				t.Errorf("VarianceShare = %g, want exact = %v", info.VarianceShare, c.wantExact)
			}
			if info.VarianceShare > c.tol {
				t.Errorf("VarianceShare = %g above the bound %g", info.VarianceShare, c.tol)
			}
			vN, loN, hiN := replicateStats(naive, b, 11)
			vB, loB, hiB := replicateStats(binned, b, 12)
			// The sample variance of b replicates has relative sd √(2/(b−1)).
			relSD := math.Sqrt(2.0 / (b - 1))
			if want := s2 / n; math.Abs(vN/want-1) > 5*relSD {
				t.Errorf("naive replicate variance %g, want %g", vN, want)
			}
			if want := s2 * (1 - info.VarianceShare) / n; math.Abs(vB/want-1) > 5*relSD {
				t.Errorf("binned replicate variance %g, want (S²−W)/n = %g", vB, want)
			}
			// With coarse bins the loss is large enough to see: the identity,
			// not luck, is what the check above confirmed.
			if info.VarianceShare > 10*relSD && math.Abs(vB/(s2/n)-1) < 5*relSD {
				t.Errorf("coarse bins: replicate variance %g indistinguishable from S²/n = %g", vB, s2/n)
			}
			// A 2.5 % quantile of b replicates has sd ≈ √(p(1−p)/b)/f(q);
			// the bootstrap distribution of a mean of 2000 is close to
			// normal with sd √(S²/n). Two independent estimates differ by
			// √2 of that.
			se := math.Sqrt(s2 / n)
			mcSD := math.Sqrt(0.025*0.975/b) / (math.Exp(-1.96*1.96/2) / math.Sqrt(2*math.Pi)) * se
			tol := 5 * math.Sqrt2 * mcSD
			// Coarse bins shrink the interval by up to ≈ 1.96·se·W/(2S²);
			// allow that on top.
			tol += 1.96 * se * info.VarianceShare / 2 * 1.5
			if math.Abs(loB-loN) > tol || math.Abs(hiB-hiN) > tol {
				t.Errorf("binned interval [%.5g, %.5g], naive [%.5g, %.5g]: differ by more than %.3g",
					loB, hiB, loN, hiN, tol)
			}
		})
	}
}

func TestBinnedBootstrapErrorBound(t *testing.T) {
	// Heavy tails: a few huge outliers. The bound W ≤ tol·S² holds by
	// construction whatever the shape; check it, and that the bins stay
	// well below the worst case (3n/tol)^(1/3).
	x := normals(3, 200000, 0, 1)
	for i := 0; i < len(x); i += 20000 {
		x[i] *= 1000
	}
	mean, ss := meanAndSS(x)
	b := newBinnedResampler("x", x, mean, ss, binVarianceShare)
	if info := b.info(); info.VarianceShare > binVarianceShare || info.Bins > 10000 {
		t.Errorf("heavy tails: %+v", info)
	}
}

func TestBinCap(t *testing.T) {
	x := normals(8, 100000, 0, 1)
	mean, ss := meanAndSS(x)
	free := newBinnedResampler("x", x, mean, ss, binVarianceShare).info()
	capped := newCappedBinnedResampler("x", x, mean, ss, binVarianceShare, 100).info()
	if free.Bins <= 100 || capped.Bins > 100 || capped.Bins < 30 || capped.VarianceShare <= free.VarianceShare {
		t.Errorf("uncapped %+v, capped at 100 %+v", free, capped)
	}
	// W ≤ h²/4 still holds at the widened width; with ≤ 100 bins over a
	// range of ≈ 9 S, h ≲ 0.2 S.
	if capped.VarianceShare > 0.01 {
		t.Errorf("capped VarianceShare %g", capped.VarianceShare)
	}
}

func TestSparseBinsAreExact(t *testing.T) {
	// 99 % of the values at 0 and 1 % spread evenly over a wide range: the
	// spread values land in bins of one or two and are resampled one by
	// one (exact), so only the spike is a dense bin (sharing it with the
	// odd spread value within a bin width of 0).
	const n = 1_000_000
	x := make([]float64, n)
	r := newRNG(8, 0)
	for i := range x {
		if i%100 == 0 {
			x[i] = 2*r.uniform() - 1
		}
	}
	mean, ss := meanAndSS(x)
	info := newResampler("x", x, mean, ss).info()
	if info.Method != ResampleBinned || info.Bins != 1 || info.Individual < n/100-3 || info.VarianceShare > 1e-9 {
		t.Errorf("%+v", info)
	}
}

func TestBootstrapIsReproducible(t *testing.T) {
	x := normals(4, 50000, 1, 2) // binned
	y := normals(5, 300, 1, 2)   // naive
	for _, data := range [][]float64{x, y} {
		mean, ss := meanAndSS(data)
		rs := newResampler("x", data, mean, ss)
		first := mustReplicates(bootstrapReplicates(context.Background(), 1000, 99, rs.draw))
		again := mustReplicates(bootstrapReplicates(context.Background(), 1000, 99, rs.draw))
		prev := runtime.GOMAXPROCS(1)
		serial := mustReplicates(bootstrapReplicates(context.Background(), 1000, 99, rs.draw))
		runtime.GOMAXPROCS(prev)
		other := mustReplicates(bootstrapReplicates(context.Background(), 1000, 100, rs.draw))
		if !slices.Equal(first, again) || !slices.Equal(first, serial) {
			t.Errorf("%s: same seed gave different replicates", rs.info().Method)
		}
		if slices.Equal(first, other) {
			t.Errorf("%s: different seeds gave identical replicates", rs.info().Method)
		}
	}
}

// TestBootstrapCoverage simulates many paired comparisons with a known mean
// delta and checks that the 95 % interval covers it about 95 % of the time.
func TestBootstrapCoverage(t *testing.T) {
	const sims = 300
	covered := 0
	for s := range uint64(sims) {
		b := normals(1000+s, 100, 0.7, 0.1)
		d := normals(5000+s, 100, 0.3, 1)
		c := make([]float64, len(b))
		for i := range c {
			c[i] = b[i] + d[i]
		}
		cmp := mustCompare(t, ComparePaired, b, c, HigherIsBetter, Options{Resamples: 1000, Seed: s})
		if cmp.CILow <= 0.3 && 0.3 <= cmp.CIHigh {
			covered++
		}
	}
	// Binomial sd of the coverage at 95 % over 300 runs is 1.3 %; the
	// percentile interval of a mean at n = 100 runs slightly below nominal.
	if rate := float64(covered) / sims; rate < 0.90 || rate > 0.985 {
		t.Errorf("coverage %.3f, want ≈ 0.95", rate)
	}
}

func mustReplicates(reps []float64, err error) []float64 {
	if err != nil {
		panic(err)
	}
	return reps
}
