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

// Summarize describes x. It fails on an empty x, on NaN or ±Inf (a
// *NonFiniteError naming input "x"), and with ErrOverflow on values so far
// apart (≳ 1e154) that their variance overflows float64.
func Summarize(x []float64) (Summary, error) {
	return summarize("x", x)
}

func summarize(input string, x []float64) (Summary, error) {
	if err := checkFinite(input, x); err != nil {
		return Summary{}, err
	}
	s := slices.Clone(x)
	sortFloat64s(s)
	mean, ss := meanAndSS(x)
	if math.IsInf(ss, 0) {
		return Summary{}, fmt.Errorf("%s: variance: %w", input, ErrOverflow)
	}
	sum := Summary{
		N:    len(x),
		Mean: mean,
		Min:  s[0],
		P50:  quantileSorted(s, 0.5),
		P90:  quantileSorted(s, 0.9),
		Max:  s[len(s)-1],
	}
	if len(x) > 1 {
		sum.Std = math.Sqrt(ss / float64(len(x)-1))
	}
	return sum, nil
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
	h := float64(len(s)-1) * q
	lo := int(math.Floor(h))
	if lo >= len(s)-1 {
		return s[len(s)-1]
	}
	frac := h - float64(lo)
	return s[lo] + frac*(s[lo+1]-s[lo])
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
