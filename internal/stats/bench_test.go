package stats

import (
	"context"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// benchTrueDelta is the mean per-sample improvement built into benchData's
// continuous variant.
const benchTrueDelta = 0.002

// Benchmark data shapes.
const (
	benchContinuous = "continuous"
	benchBinary     = "binary"
	benchSpread     = "spread"
)

// benchData returns a deterministic baseline and candidate of n paired
// samples:
//   - continuous: a per-sample score ~ N(0.6, 0.2²), candidate = score +
//     N(benchTrueDelta, 0.5²);
//   - binary ("correct"): baseline ~ Bernoulli(0.7); the candidate loses
//     10 % of the baseline's hits and gains 25 % of its misses (accuracy
//     0.705);
//   - spread: the slowest shape found for the binned bootstrap: 95 % of
//     the deltas exactly 0 and 5 % uniform on (−1, 1), which fills ≈ 2,000
//     dense bins and leaves ≈ 5,000 values in sparse ones.
func benchData(n int, kind string) (baseline, candidate []float64) {
	switch kind {
	case benchContinuous:
		baseline = normals(100, n, 0.6, 0.2)
		return baseline, shifted(baseline, benchTrueDelta, 101, 0.5)
	case benchSpread:
		r := newRNG(103, 0)
		baseline = normals(104, n, 0.6, 0.2)
		candidate = slices.Clone(baseline)
		for i := 0; i < n; i += 20 {
			candidate[i] += 2*r.uniform() - 1
		}
		return baseline, candidate
	}
	r := newRNG(102, 0)
	baseline = make([]float64, n)
	candidate = make([]float64, n)
	for i := range baseline {
		if r.uniform() < 0.7 {
			baseline[i] = 1
		}
		u := r.uniform()
		switch {
		case baseline[i] == 1 && u >= 0.1, baseline[i] == 0 && u < 0.25:
			candidate[i] = 1
		}
	}
	return baseline, candidate
}

// BenchmarkComparePaired1M: the requirement is under 2 s per
// comparison of 1,000,000 pairs with 10,000 resamples on 2 cores.
//
//	go test -run '^$' -bench ComparePaired1M -benchtime 5x -count 5 ./internal/stats/
func BenchmarkComparePaired1M(b *testing.B) {
	for _, kind := range []string{benchContinuous, benchBinary, benchSpread} {
		base, cand := benchData(1_000_000, kind)
		b.Run(kind, func(b *testing.B) {
			for b.Loop() {
				if _, err := ComparePaired(context.Background(), base, cand, HigherIsBetter, Options{Resamples: 10000}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkNaiveBootstrap1M measures what the binned method avoids: one
// naive resample of a million (multiply by 10,000 for a full interval).
func BenchmarkNaiveBootstrap1M(b *testing.B) {
	base, cand := benchData(1_000_000, benchContinuous)
	d := make([]float64, len(base))
	for i := range d {
		d[i] = cand[i] - base[i]
	}
	mean, _ := meanAndSS(d)
	rs := newNaiveResampler("deltas", d, mean)
	r := newRNG(1, 0)
	for b.Loop() {
		rs.draw(r)
	}
}

// TestWriteBenchmarkData writes benchData as raw little-endian float64 files
// for testdata/bench_seed_compare.sh, which times the seed's comparison
// arithmetic on the same numbers. It runs only when asked:
//
//	SOPILOT_STATS_BENCH_DATA=/tmp/statsbench go test -run WriteBenchmarkData ./internal/stats/
func TestWriteBenchmarkData(t *testing.T) {
	dir := os.Getenv("SOPILOT_STATS_BENCH_DATA")
	if dir == "" {
		t.Skip("set SOPILOT_STATS_BENCH_DATA=<dir> to write the benchmark data")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{benchContinuous, benchBinary} {
		base, cand := benchData(1_000_000, kind)
		for _, f := range []struct {
			side string
			x    []float64
		}{{"baseline", base}, {"candidate", cand}} {
			buf := make([]byte, 8*len(f.x))
			for i, x := range f.x {
				binary.LittleEndian.PutUint64(buf[8*i:], math.Float64bits(x))
			}
			if err := os.WriteFile(filepath.Join(dir, kind+"_"+f.side+".f64"), buf, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// BenchmarkCompareLargestCall measures time and memory of the largest
// comparisons the limits allow (Resamples × n ≤ MaxWork, Resamples ≤
// MaxResamples): 10⁷ pairs (the results limit per run) at the default 10⁴
// resamples, and 10⁶ pairs at MaxResamples. B/op is what one call
// allocates; docs/benchmarks.md records it.
//
//	go test -run '^$' -bench CompareLargestCall -benchtime 1x -count 3 ./internal/stats/
func BenchmarkCompareLargestCall(b *testing.B) {
	for _, tc := range []struct {
		name         string
		n, resamples int
	}{{"n=1e7/resamples=1e4", 10_000_000, DefaultResamples}, {"n=1e6/resamples=1e5", 1_000_000, MaxResamples}} {
		if err := CheckWork(tc.resamples, tc.n); err != nil {
			b.Fatal(err)
		}
		base, cand := benchData(tc.n, benchContinuous)
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ComparePaired(context.Background(), base, cand, HigherIsBetter, Options{Resamples: tc.resamples, Seed: 1}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
