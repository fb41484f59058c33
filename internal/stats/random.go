package stats

import (
	"math"
	"math/bits"
	"math/rand/v2"
)

// rng is the package's random source: PCG-DXSM from math/rand/v2, whose
// output sequence for a given seed is fixed by its specification. Every
// transformation of its 64-bit outputs (uniforms, indices, binomials) is
// written here rather than taken from rand.Rand, so a given Options.Seed
// yields the same intervals on every Go version.
type rng struct{ pcg *rand.PCG }

// newRNG returns the generator for stream `stream` of seed `seed`: PCG
// seeded with two SplitMix64 outputs of seed + stream·γ (γ the golden-ratio
// increment), so nearby seeds and streams give unrelated sequences.
func newRNG(seed, stream uint64) *rng {
	state := seed + stream*0x9e3779b97f4a7c15
	s1 := splitMix64(&state)
	s2 := splitMix64(&state)
	return &rng{pcg: rand.NewPCG(s1, s2)}
}

func splitMix64(state *uint64) uint64 {
	*state += 0x9e3779b97f4a7c15
	z := *state
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// uniform returns a uniform float64 in the open interval (0, 1):
// (⌊u/2¹¹⌋ + ½)·2⁻⁵³.
func (r *rng) uniform() float64 {
	return (float64(r.pcg.Uint64()>>11) + 0.5) * 0x1p-53
}

// index returns a uniform integer in [0, n) by Lemire's multiply-shift
// (bias below n/2⁶⁴, i.e. < 1e-13 for n ≤ 10⁶; no rejection loop so the
// number of draws per resample is fixed).
func (r *rng) index(n uint64) uint64 {
	hi, _ := bits.Mul64(r.pcg.Uint64(), n)
	return hi
}

// binomial returns an exact draw from Binomial(n, p). It uses inversion by
// sequential search when n·min(p,1−p) < 10, and otherwise Hörmann's BTRS
// (transformed rejection with squeeze; W. Hörmann, "The generation of
// binomial random variates", J. Statist. Comput. Simul. 46, 1993), both
// exact: every draw has exactly the binomial distribution, up to
// floating-point rounding in the acceptance test.
func (r *rng) binomial(n int64, p float64) int64 {
	switch {
	case n <= 0 || p <= 0:
		return 0
	case p >= 1:
		return n
	case p > 0.5:
		return n - r.binomial(n, 1-p)
	case float64(n)*p < 10:
		return r.binomialInversion(n, p)
	default:
		return r.binomialBTRS(n, p)
	}
}

// binomialInversion: P(0) = qⁿ, P(k)/P(k−1) = (n−k+1)p/(kq); walk the CDF
// until it passes a uniform. Here n·p < 10 and p ≤ ½, so qⁿ ≥ e^{−14} and
// the walk takes n·p + O(√(n·p)) steps on average. A walk that runs past
// a bound far into the tail (rounding left a sliver of mass unassigned)
// restarts with a fresh uniform, as numpy does.
func (r *rng) binomialInversion(n int64, p float64) int64 {
	q := 1 - p
	s := p / q
	a := float64(n+1) * s
	q0 := math.Exp(float64(n) * math.Log1p(-p))
	np := float64(n) * p
	bound := min(float64(n), np+10*math.Sqrt(np*q+1))
	for {
		u := r.uniform()
		px := q0
		var k int64
		for u > px {
			u -= px
			k++
			if float64(k) > bound {
				k = -1
				break
			}
			px *= a/float64(k) - s
		}
		if k >= 0 {
			return k
		}
	}
}

// stirlingTail returns fc(k) = ln k! − [(k+½)ln(k+1) − (k+1) + ln√(2π)],
// the error of Stirling's formula for ln k! (stirlingCorrection at k+1),
// from a table for small k where the series is not yet accurate.
func stirlingTail(k float64) float64 {
	if k < float64(len(stirlingTailTable)) {
		return stirlingTailTable[int(k)]
	}
	return stirlingCorrection(k + 1)
}

var stirlingTailTable = func() (t [15]float64) {
	for k := range t {
		fk := float64(k)
		lf, _ := math.Lgamma(fk + 1)
		t[k] = lf - ((fk+0.5)*math.Log(fk+1) - (fk + 1) + lnSqrt2Pi)
	}
	return t
}()

// binomialBTRS is algorithm BTRS for n·p ≥ 10, p ≤ ½. A pair of uniforms
// (u, v) is mapped to k = ⌊(2a/uₛ + b)u + c⌋ with uₛ = ½ − |u|, a
// transformation whose density dominates the binomial pmf; the box
// uₛ ≥ 0.07, v ≤ v_r accepts immediately (most draws), otherwise k is
// accepted when ln(v·α/(a/uₛ² + b)) ≤ ln(f(k)/f(m)), m the mode, with the
// log-ratio of pmfs written through Stirling's formula and fc.
func (r *rng) binomialBTRS(n int64, p float64) int64 {
	fn := float64(n)
	q := 1 - p
	spq := math.Sqrt(fn * p * q)
	b := 1.15 + 2.53*spq
	a := -0.0873 + 0.0248*b + 0.01*p
	c := fn*p + 0.5
	vr := 0.92 - 4.2/b
	var (
		prepared      bool
		alpha, lr, m  float64
		lnMode, fcSum float64
	)
	for {
		u := r.uniform() - 0.5
		v := r.uniform()
		us := 0.5 - math.Abs(u)
		k := math.Floor((2*a/us+b)*u + c)
		if k < 0 || k > fn {
			continue
		}
		if us >= 0.07 && v <= vr {
			return int64(k)
		}
		if !prepared {
			prepared = true
			alpha = (2.83 + 5.1/b) * spq
			lr = math.Log(p / q)
			m = math.Floor((fn + 1) * p)
			lnMode = (m+0.5)*math.Log((m+1)/(fn-m+1)) - (m+0.5)*lr
			fcSum = stirlingTail(m) + stirlingTail(fn-m)
		}
		lhs := math.Log(v * alpha / (a/(us*us) + b))
		// ln f(k) − ln f(m), rearranged from Hörmann's step 3.3.
		rhs := lnMode + (fn+1)*math.Log((fn-m+1)/(fn-k+1)) +
			(k+0.5)*(lr+math.Log((fn-k+1)/(k+1))) +
			fcSum - stirlingTail(k) - stirlingTail(fn-k)
		if lhs <= rhs {
			return int64(k)
		}
	}
}
