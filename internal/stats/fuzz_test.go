package stats

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"testing"
)

// FuzzCompare feeds arbitrary float64 pairs (huge, subnormal, tied, NaN) to
// every comparison and checks the invariants: an error wraps a sentinel,
// and a result holds only finite numbers, p-values in [0, 1], an ordered
// interval and consistent counts.
//
//	go test -run '^$' -fuzz FuzzCompare -fuzztime 60s ./internal/stats/
func FuzzCompare(f *testing.F) {
	pack := func(v ...float64) []byte {
		b := make([]byte, 8*len(v))
		for i, x := range v {
			binary.LittleEndian.PutUint64(b[8*i:], math.Float64bits(x))
		}
		return b
	}
	f.Add(pack(1, 2, 3, 4), true)
	f.Add(pack(0, 1, 1, 1, 0, 0, 1, 0), false)
	f.Add(pack(1e308, -1e308, 5e-324, 0), true)
	f.Add(pack(2, 2, 2, 2, 2, 2), false)
	f.Add(pack(1, 2, math.NaN(), 4), true)
	f.Add(pack(math.Copysign(0, -1), 0, 1e-300, 1e300, 7, 7, 7, 8, 3, 3), true)
	f.Fuzz(func(t *testing.T, data []byte, higher bool) {
		n := min(len(data)/16, 64)
		b, c := make([]float64, n), make([]float64, n)
		for i := range n {
			b[i] = math.Float64frombits(binary.LittleEndian.Uint64(data[16*i:]))
			c[i] = math.Float64frombits(binary.LittleEndian.Uint64(data[16*i+8:]))
		}
		dir := LowerIsBetter
		if higher {
			dir = HigherIsBetter
		}
		opt := Options{Resamples: 200, MinRelativeImprovement: 0.01}
		for _, call := range []func() (Comparison, error){
			func() (Comparison, error) { return ComparePaired(context.Background(), b, c, dir, opt) },
			func() (Comparison, error) { return CompareUnpaired(context.Background(), b, c, dir, opt) },
		} {
			cmp, err := call()
			if err != nil {
				checkSentinel(t, err)
				continue
			}
			checkFiniteResult(t, cmp.Baseline, cmp.Candidate, cmp.Deltas, cmp.AbsoluteChange, cmp.Relative,
				cmp.CILow, cmp.CIHigh, cmp.Tests, cmp.Verdict)
			if cmp.Paired && cmp.Wins+cmp.Ties+cmp.Losses != n {
				t.Errorf("wins/ties/losses %d/%d/%d of %d", cmp.Wins, cmp.Ties, cmp.Losses, n)
			}
		}
		g, err := CompareGroups(context.Background(), b, c, dir, opt)
		if err != nil {
			checkSentinel(t, err)
			return
		}
		checkFiniteResult(t, g.Baseline, g.Candidate, Summary{}, g.AbsoluteChange, g.Relative,
			g.CILow, g.CIHigh, []TestResult{g.Test}, g.Verdict)
		if !(g.BootstrapCILow <= g.BootstrapCIHigh) {
			t.Errorf("bootstrap interval [%v, %v]", g.BootstrapCILow, g.BootstrapCIHigh)
		}
	})
}

func checkSentinel(t *testing.T, err error) {
	t.Helper()
	for _, s := range []error{ErrEmpty, ErrTooFewSamples, ErrNonFinite, ErrOverflow, ErrLengthMismatch} {
		if errors.Is(err, s) {
			return
		}
	}
	t.Errorf("error without a sentinel: %v", err)
}

func checkFiniteResult(t *testing.T, b, c, d Summary, abs float64, rel RelativeChange, lo, hi float64, tests []TestResult, v Verdict) {
	t.Helper()
	vals := []float64{abs, rel.Value, lo, hi}
	for _, s := range []Summary{b, c, d} {
		vals = append(vals, s.Mean, s.Std, s.Min, s.P50, s.P90, s.Max)
	}
	for _, tr := range tests {
		vals = append(vals, tr.Statistic, tr.DF, tr.PValue)
		if !(tr.PValue >= 0 && tr.PValue <= 1) {
			t.Errorf("%s p = %v", tr.Name, tr.PValue)
		}
	}
	for i, x := range vals {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			t.Errorf("value %d of the result is %v", i, x)
		}
	}
	if !(lo <= hi) {
		t.Errorf("interval [%v, %v]", lo, hi)
	}
	if v != Improved && v != Regressed && v != NoSignificantChange && v != Inconclusive {
		t.Errorf("verdict %v", v)
	}
}
