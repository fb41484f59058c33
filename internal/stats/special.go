package stats

import (
	"math"
)

// Special functions: the regularised incomplete beta function (for
// Student's t), the normal and chi-square(1) tails (through erfc) and their
// inverses. They are written here rather than imported so the package has no
// dependency; testdata/reference.json holds scipy's values for the same
// arguments and special_test.go compares them.

const lnSqrt2Pi = 0.91893853320467274178032973640561764 // ln √(2π)

// stirlingCorrection returns lnΓ(x) − [(x−½)ln x − x + ln√(2π)] for x ≥ 15,
// from the asymptotic series B₂ₖ/(2k(2k−1)x^(2k−1)). At x = 15 the first
// omitted term is below 2.3e-16.
func stirlingCorrection(x float64) float64 {
	z := 1 / (x * x)
	return (1.0/12 + z*(-1.0/360+z*(1.0/1260+z*(-1.0/1680+z*(1.0/1188))))) / x
}

// lnBeta returns ln B(a, b) for a, b > 0. For large arguments it avoids the
// cancellation of lnΓ(a) + lnΓ(b) − lnΓ(a+b) (each term ~ a ln a while the
// result may be much smaller) by cancelling the Stirling terms analytically.
func lnBeta(a, b float64) float64 {
	if a < b {
		a, b = b, a
	}
	// Now a ≥ b.
	const big = 15
	switch {
	case a < big:
		la, _ := math.Lgamma(a)
		lb, _ := math.Lgamma(b)
		lab, _ := math.Lgamma(a + b)
		return la + lb - lab
	case b < big:
		// lnΓ(a) − lnΓ(a+b) with both a and a+b in the Stirling range.
		lb, _ := math.Lgamma(b)
		diff := -(a-0.5)*math.Log1p(b/a) - b*math.Log(a+b) + b +
			stirlingCorrection(a) - stirlingCorrection(a+b)
		return lb + diff
	default:
		s := a + b
		return lnSqrt2Pi - 0.5*math.Log(s) +
			(a-0.5)*math.Log1p(-b/s) + (b-0.5)*math.Log1p(-a/s) +
			stirlingCorrection(a) + stirlingCorrection(b) - stirlingCorrection(s)
	}
}

// incBeta returns the regularised incomplete beta function I_x(a, b) and
// its complement 1 − I_x(a, b), each computed without cancellation on its
// small side. y must be 1 − x, supplied by the caller so that values of x
// near 1 keep their precision (e.g. x = ν/(ν+t²), y = t²/(ν+t²)).
func incBeta(a, b, x, y float64) (lower, upper float64) {
	switch {
	case x <= 0:
		return 0, 1
	case y <= 0:
		return 1, 0
	}
	// The continued fraction converges quickly for x < (a+1)/(a+b+2);
	// otherwise use I_x(a,b) = 1 − I_y(b,a).
	if x*(a+b+2) < a+1 {
		lower = betaFraction(a, b, x, y)
		return lower, 1 - lower
	}
	upper = betaFraction(b, a, y, x)
	return 1 - upper, upper
}

// lnOf returns ln x given x and 1 − x, using whichever is more precise.
func lnOf(x, oneMinusX float64) float64 {
	if x > 0.5 {
		return math.Log1p(-oneMinusX)
	}
	return math.Log(x)
}

// betaFraction evaluates I_x(a, b) = x^a y^b / (a B(a,b)) · CF by the
// modified Lentz method (Numerical Recipes §6.4, "betacf"), valid and fast
// for x < (a+1)/(a+b+2). It takes O(√max(a,b)) iterations in the worst case.
func betaFraction(a, b, x, y float64) float64 {
	const (
		eps   = 1e-15
		fpmin = 1e-300
	)
	maxIter := 1000 + int(20*math.Sqrt(math.Max(a, b)))
	qab, qap, qam := a+b, a+1, a-1
	c := 1.0
	d := 1 - qab*x/qap
	if math.Abs(d) < fpmin {
		d = fpmin
	}
	d = 1 / d
	h := d
	for m := 1; m <= maxIter; m++ {
		fm := float64(m)
		m2 := 2 * fm
		aa := fm * (b - fm) * x / ((qam + m2) * (a + m2))
		d = 1 + aa*d
		if math.Abs(d) < fpmin {
			d = fpmin
		}
		c = 1 + aa/c
		if math.Abs(c) < fpmin {
			c = fpmin
		}
		d = 1 / d
		h *= d * c
		aa = -(a + fm) * (qab + fm) * x / ((a + m2) * (qap + m2))
		d = 1 + aa*d
		if math.Abs(d) < fpmin {
			d = fpmin
		}
		c = 1 + aa/c
		if math.Abs(c) < fpmin {
			c = fpmin
		}
		d = 1 / d
		del := d * c
		h *= del
		if math.Abs(del-1) < eps {
			break
		}
	}
	lnFront := a*lnOf(x, y) + b*lnOf(y, x) - lnBeta(a, b) - math.Log(a)
	return math.Exp(lnFront) * h
}

// studentTTwoSided returns P(|T| ≥ |t|) for T ~ Student's t with df > 0
// degrees of freedom: I_{df/(df+t²)}(df/2, ½).
func studentTTwoSided(t, df float64) float64 {
	if t == 0 {
		return 1
	}
	t2 := t * t
	var x, y float64
	if t2 < df {
		x = df / (df + t2)
		y = t2 / (df + t2)
	} else {
		r := df / t2
		x = r / (1 + r)
		y = 1 / (1 + r)
	}
	p, _ := incBeta(df/2, 0.5, x, y)
	return p
}

// studentTQuantile returns t such that P(T ≤ t) = q for T ~ t(df), for
// q in (0, 1). It inverts studentTTwoSided by bracketing and bisection,
// which is slow (a few hundred incomplete-beta evaluations) but only used a
// handful of times per comparison.
func studentTQuantile(q, df float64) float64 {
	if q == 0.5 {
		return 0
	}
	if q < 0.5 {
		return -studentTQuantile(1-q, df)
	}
	target := 2 * (1 - q) // two-sided tail at the answer
	lo, hi := 0.0, 1.0
	for studentTTwoSided(hi, df) > target {
		lo, hi = hi, 2*hi
		if hi > 1e300 {
			return math.Inf(1)
		}
	}
	for range 200 {
		mid := lo + (hi-lo)/2
		if mid == lo || mid == hi {
			break
		}
		if studentTTwoSided(mid, df) > target {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo + (hi-lo)/2
}

// normalTwoSided returns P(|Z| ≥ |z|) for a standard normal Z.
func normalTwoSided(z float64) float64 {
	return math.Erfc(math.Abs(z) / math.Sqrt2)
}

// chiSquare1SF returns P(X ≥ x) for X ~ χ² with one degree of freedom:
// X = Z², so P(X ≥ x) = P(|Z| ≥ √x) = erfc(√(x/2)).
func chiSquare1SF(x float64) float64 {
	if x <= 0 {
		return 1
	}
	return math.Erfc(math.Sqrt(x / 2))
}

// lnChoose returns ln C(n, k).
func lnChoose(n, k float64) float64 {
	ln, _ := math.Lgamma(n + 1)
	lk, _ := math.Lgamma(k + 1)
	lnk, _ := math.Lgamma(n - k + 1)
	return ln - lk - lnk
}
