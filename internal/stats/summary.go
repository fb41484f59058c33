package stats

import (
	"fmt"
	"math"
	"slices"
)

// Summary describes one sample. Std is the sample standard deviation (n−1
// denominator); it is 0 when N = 1, where it is undefined. Quantiles are
// Hyndman & Fan type 7 (linear interpolation between order statistics, the
// default of numpy.percentile and R's quantile).
type Summary struct {
	N    int
	Mean float64
	Std  float64
	Min  float64
	P50  float64
	P90  float64
	Max  float64
}

// summarize describes x. It fails on an empty x, on NaN or ±Inf (a
// *NonFiniteError naming the input), and with ErrOverflow on values so far
// apart (≳ 1e154) that their variance overflows float64.
func summarize(input string, x []float64) (Summary, error) {
	if err := checkFinite(input, x); err != nil {
		return Summary{}, err
	}
	mean, ss := meanAndSS(x)
	if math.IsInf(ss, 0) {
		return Summary{}, fmt.Errorf("%s: variance: %w", input, ErrOverflow)
	}
	sum := Summary{N: len(x), Mean: mean}
	if len(x) < radixThreshold {
		s := slices.Clone(x)
		sortFloat64s(s)
		sum.Min, sum.P50, sum.P90, sum.Max = s[0], quantileSorted(s, 0.5), quantileSorted(s, 0.9), s[len(s)-1]
	} else {
		sum.Min, sum.P50, sum.P90, sum.Max = orderStats(x)
	}
	if len(x) > 1 {
		sum.Std = math.Sqrt(ss / float64(len(x)-1))
	}
	return sum, nil
}

// summarizeSorted is the Summary of n values with this mean and Σ(x−mean)²
// whose order statistic r is at(r).
func summarizeSorted(n int, mean, ss float64, at func(r int) float64) Summary {
	s := Summary{N: n, Mean: mean, Min: at(0), Max: at(n - 1)}
	for _, q := range []struct {
		p   *float64
		rho float64
	}{{&s.P50, 0.5}, {&s.P90, 0.9}} {
		lo, frac := quantileIndex(n, q.rho)
		if lo >= n-1 {
			*q.p = at(n - 1)
		} else {
			*q.p = interpolate(at(lo), at(lo+1), frac)
		}
	}
	if n > 1 {
		s.Std = math.Sqrt(ss / float64(n-1))
	}
	return s
}

// meanAndSS returns the mean of x and Σ(xᵢ − mean)², by two passes with the
// usual correction term (Chan, Golub & LeVeque 1983) so that a large common
// offset does not cost precision. len(x) must be > 0 and every value finite.
// ss is +Inf when the squared deviations overflow float64.
func meanAndSS(x []float64) (mean, ss float64) {
	n := float64(len(x))
	var sum float64
	constant := true
	for _, v := range x {
		sum += v
		constant = constant && v == x[0]
	}
	if constant {
		// Exactly: a rounded sum/n could differ from x[0] in the last bit
		// and leave a spurious variance of ~1e-33 (then t would be ~1e16).
		return x[0], 0
	}
	if math.IsInf(sum, 0) {
		// Finite values whose sum overflows: sum the scaled values instead.
		sum = 0
		for _, v := range x {
			sum += v / n
		}
		mean = sum
	} else {
		mean = sum / n
	}
	var dev, sq float64
	for _, v := range x {
		d := v - mean
		dev += d
		sq += d * d
	}
	if math.IsInf(sq, 0) || math.IsNaN(sq) {
		// Squared deviations beyond float64 (|x − mean| ≳ 1e154): callers
		// turn this into ErrOverflow.
		return mean, math.Inf(1)
	}
	mean += dev / n
	ss = sq - dev*dev/n
	if ss < 0 {
		ss = 0
	}
	return mean, ss
}

// quantileSorted returns the type-7 quantile q of sorted, non-empty s:
// h = (n−1)q, Q = s[⌊h⌋] + (h−⌊h⌋)(s[⌊h⌋+1] − s[⌊h⌋]).
func quantileSorted(s []float64, q float64) float64 {
	lo, frac := quantileIndex(len(s), q)
	if lo >= len(s)-1 {
		return s[len(s)-1]
	}
	return interpolate(s[lo], s[lo+1], frac)
}

// quantileIndex returns ⌊h⌋ and h − ⌊h⌋ for h = (n−1)q, the type-7
// quantile's order statistic and weight.
func quantileIndex(n int, q float64) (lo int, frac float64) {
	h := float64(n-1) * q
	lo = int(math.Floor(h))
	return lo, h - float64(lo)
}

// interpolate is the type-7 quantile between order statistics a ≤ b.
func interpolate(a, b, frac float64) float64 { return a + frac*(b-a) }

// orderStats returns the minimum, the type-7 quantiles 0.5 and 0.9 and
// the maximum of x (non-empty, no NaN) without sorting it: the four order
// statistics the two quantiles need are found by selection on a copy of
// the sort keys, O(n) instead of the radix sort's six passes. Working on
// the keys of sortFloat64s gives exactly the order statistics it would,
// −0 before +0 included, so the results are the same bits.
func orderStats(x []float64) (lowest, p50, p90, highest float64) {
	n := len(x)
	keys := make([]uint64, n)
	lo, hi := uint64(math.MaxUint64), uint64(0)
	for i, v := range x {
		k := floatKey(v)
		keys[i] = k
		lo, hi = min(lo, k), max(hi, k)
	}
	// at returns order statistic i and i+1 (i+1 clamped to n−1); keys[:i]
	// hold smaller keys and keys[i+1:] larger after it, so a following
	// call with a larger i selects within keys[i+1:] only.
	done := 0 // keys[:done] are in final position relative to the rest
	at := func(i int) (a, b uint64) {
		selectKeys(keys[done:], i-done)
		done = i + 1
		a, b = keys[i], keys[i]
		if i+1 < n {
			b = slices.Min(keys[i+1:])
		}
		return a, b
	}
	q := func(lo int, frac float64, a, b uint64) float64 {
		if lo >= n-1 {
			return keyFloat(a) // the maximum, as quantileSorted
		}
		return interpolate(keyFloat(a), keyFloat(b), frac)
	}
	lo50, frac50 := quantileIndex(n, 0.5)
	lo90, frac90 := quantileIndex(n, 0.9)
	a50, b50 := at(lo50)
	p50 = q(lo50, frac50, a50, b50)
	if lo90 == lo50 {
		p90 = q(lo90, frac90, a50, b50)
	} else {
		a90, b90 := at(lo90)
		p90 = q(lo90, frac90, a90, b90)
	}
	return keyFloat(lo), p50, p90, keyFloat(hi)
}

// Mean returns the mean of x, which must be non-empty and finite (a
// *NonFiniteError naming input "x" otherwise). Finite values whose sum
// overflows float64 (values near ±1.8e308) still have a finite mean, and
// get it: the sum is then taken of x/n.
func Mean(x []float64) (float64, error) {
	if err := checkFinite("x", x); err != nil {
		return 0, err
	}
	m, _ := meanAndSS(x)
	return m, nil
}
