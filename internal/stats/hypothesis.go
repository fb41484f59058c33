package stats

import (
	"cmp"
	"fmt"
	"math"
	"slices"
)

// TestResult is one two-sided test of "no difference between the runs".
type TestResult struct {
	// Name says which test, one of the Test* identifiers (the values the
	// API's MetricComparison.test and tests[].name carry).
	Name string
	// Statistic is the test's own statistic: t for the t tests, W⁺ (the
	// sum of the ranks of the positive deltas) for Wilcoxon, the smaller
	// discordant count for exact McNemar and the continuity-corrected χ²
	// for approximate McNemar, the number of nonzero deltas for the
	// sign-flip test, 0 for the complete-separation permutation test, and
	// U of the candidate (pairs where the candidate's value is larger,
	// ties counting ½) for Mann–Whitney.
	Statistic float64
	// DF is the t tests' degrees of freedom (Welch's is fractional), 1 for
	// χ² McNemar and 0 where the reference distribution has none.
	DF float64
	// PValue is two-sided.
	PValue float64
	// Method says how PValue was computed ("exact", "normal approximation
	// with tie correction", ...).
	Method string
}

// Test identifiers: stable, machine-readable, and the same strings the API
// reports (proto MetricComparison.test lists them). McNemar's two variants
// are two names, so a reader of the response knows which was used.
const (
	TestPairedT      = "paired_t"
	TestSignFlip     = "sign_flip_exact"
	TestWilcoxon     = "wilcoxon_signed_rank"
	TestMcNemarExact = "mcnemar_exact"
	TestMcNemarChiSq = "mcnemar_chi_square"
	TestWelchT       = "welch_t"
	TestPermutation  = "permutation_exact"
	TestMannWhitneyU = "mann_whitney_u"
)

// wilcoxonExactMax is the largest number of nonzero deltas for which the
// Wilcoxon p-value is computed exactly (the same bound as scipy's "auto").
const wilcoxonExactMax = 50

// mcnemarExactBelow: McNemar uses the exact binomial test when the number of
// discordant pairs is below this, and χ² with continuity correction from it
// on (the common rule of thumb: the χ² approximation is poor for b+c < 25).
const mcnemarExactBelow = 25

// pairedT tests mean(d) = 0 with Student's t on n−1 df. When every delta
// is the same value c the t statistic is undefined (0/0 or c/0); then
//   - c = 0: the runs agree on every sample, p = 1;
//   - c ≠ 0: the exact sign-flip permutation test is reported instead: of
//     the 2ⁿ equally likely sign patterns under H₀, the observed |mean| is
//     reached by 2 (all + and all −), so p = 2/2ⁿ.
func pairedT(n int, mean, ss float64) (TestResult, error) {
	if ss == 0 {
		if mean == 0 {
			return TestResult{Name: TestPairedT, Statistic: 0, DF: float64(n - 1), PValue: 1,
				Method: "every delta is 0: p = 1 by definition"}, nil
		}
		return TestResult{Name: TestSignFlip, Statistic: float64(n),
			PValue: math.Min(1, math.Exp2(1-float64(n))),
			Method: "exact: every delta is the same nonzero value, so t is undefined; p = 2/2ⁿ"}, nil
	}
	df := float64(n - 1)
	se := math.Sqrt(ss / df / float64(n))
	t := mean / se
	if math.IsInf(t, 0) {
		return TestResult{}, fmt.Errorf("paired t statistic: %w", ErrOverflow)
	}
	return TestResult{Name: TestPairedT, Statistic: t, DF: df, PValue: studentTTwoSided(t, df),
		Method: "Student t distribution"}, nil
}

// welchT tests mean(b) = mean(c) without assuming equal variances:
// t = (m_c − m_b)/√(v_b/n_b + v_c/n_c) on Welch–Satterthwaite df. When both
// samples are constant, t is undefined; then equal values give p = 1, and
// different values (complete separation) give the exact permutation
// p-value 2/C(n_b+n_c, n_b) (capped at 1).
func welchT(nb int, mb, vb float64, nc int, mc, vc float64) (TestResult, error) {
	qb, qc := vb/float64(nb), vc/float64(nc)
	se2 := qb + qc
	diff := mc - mb
	if math.IsInf(se2, 0) || math.IsInf(diff, 0) {
		return TestResult{}, fmt.Errorf("welch t: %w", ErrOverflow)
	}
	if se2 == 0 {
		if diff == 0 {
			return TestResult{Name: TestWelchT, PValue: 1,
				Method: "both samples constant and equal: p = 1 by definition"}, nil
		}
		lnp := math.Ln2 - lnChoose(float64(nb+nc), float64(nb))
		return TestResult{Name: TestPermutation, PValue: math.Min(1, math.Exp(lnp)),
			Method: "exact: both samples constant and different, so t is undefined; p = 2/C(n_b+n_c, n_b)"}, nil
	}
	// ν = se2² / (qb²/(nb−1) + qc²/(nc−1)), written with qb/se2 and qc/se2
	// (both in [0, 1]) so that large variances cannot overflow it.
	rb, rc := qb/se2, qc/se2
	df := 1 / (rb*rb/float64(nb-1) + rc*rc/float64(nc-1))
	t := diff / math.Sqrt(se2)
	if math.IsInf(t, 0) {
		return TestResult{}, fmt.Errorf("welch t statistic: %w", ErrOverflow)
	}
	return TestResult{Name: TestWelchT, Statistic: t, DF: df, PValue: studentTTwoSided(t, df),
		Method: "Student t distribution, Welch–Satterthwaite df"}, nil
}

// welchCI returns the Welch t confidence interval for mean(c) − mean(b).
func welchCI(nb int, vb float64, nc int, vc float64, diff, level float64, df float64) (lo, hi float64) {
	se := math.Sqrt(vb/float64(nb) + vc/float64(nc))
	if se == 0 {
		return diff, diff
	}
	q := studentTQuantile(1-(1-level)/2, df)
	return diff - q*se, diff + q*se
}

// signedMagnitudes returns the positive values of d and the magnitudes of
// its negative ones, each sorted ascending (zeros are in neither). They are
// the deltas sorted, in two halves: ComparePaired takes the deltas'
// quantiles from them too (sortedDeltas), so the deltas are sorted once.
func signedMagnitudes(d []float64) (pos, neg []float64) {
	np := 0
	for _, v := range d {
		if v > 0 {
			np++
		}
	}
	pos = make([]float64, 0, np)
	neg = make([]float64, 0, len(d)-np)
	for _, v := range d {
		switch {
		case v > 0:
			pos = append(pos, v)
		case v < 0:
			neg = append(neg, -v)
		}
	}
	sortFloat64s(pos)
	sortFloat64s(neg)
	return pos, neg
}

// wilcoxonRanks is the Wilcoxon signed-rank test of the deltas d whose
// signedMagnitudes are pos and neg, with Wilcoxon's treatment of zeros
// (dropped before ranking, as in R and scipy's default) and average ranks
// for ties. With at most wilcoxonExactMax nonzero deltas the p-value is
// exact: the permutation distribution of W⁺ given the
// observed (tied) ranks, computed by dynamic programming over doubled
// ranks, so it stays exact with ties and zeros (scipy falls back to the
// normal approximation there). Beyond that, the normal approximation with
// the tie correction Var = n(n+1)(2n+1)/24 − Σ(t³−t)/48 and no continuity
// correction.
//
// |d| values within tol of the smallest value of their group are ties
// (tol is the comparison's noise tolerance; 0 means exact equality).
func wilcoxonRanks(pos, neg []float64, tol float64) TestResult {
	n := len(pos) + len(neg)
	if n == 0 {
		return TestResult{Name: TestWilcoxon, PValue: 1, Method: "every delta is 0: p = 1 by definition"}
	}
	// Walk both sorted lists as one, rank groups of equal |d|.
	var (
		wPlus   float64 // Σ ranks of positive deltas
		tieTerm float64 // Σ (t³ − t) over tie groups
		rank    int     // ranks assigned so far
		i, j    int
		exact   = n <= wilcoxonExactMax
		groups  []rankGroup
	)
	for i < len(pos) || j < len(neg) {
		var v float64
		switch {
		case j == len(neg) || (i < len(pos) && pos[i] <= neg[j]):
			v = pos[i]
		default:
			v = neg[j]
		}
		cp, cn := 0, 0
		for i < len(pos) && pos[i]-v <= tol {
			i++
			cp++
		}
		for j < len(neg) && neg[j]-v <= tol {
			j++
			cn++
		}
		t := cp + cn
		// Ranks rank+1 … rank+t share the average rank + (t+1)/2.
		mid := float64(rank) + float64(t+1)/2
		wPlus += float64(cp) * mid
		ft := float64(t)
		tieTerm += ft*ft*ft - ft
		if exact {
			groups = append(groups, rankGroup{doubled: 2*rank + t + 1, count: t})
		}
		rank += t
	}
	if exact {
		return TestResult{Name: TestWilcoxon, Statistic: wPlus,
			PValue: wilcoxonExactP(groups, int(math.Round(2*wPlus))), Method: "exact permutation distribution"}
	}
	fn := float64(n)
	mean := fn * (fn + 1) / 4
	variance := fn*(fn+1)*(2*fn+1)/24 - tieTerm/48
	z := (wPlus - mean) / math.Sqrt(variance)
	return TestResult{Name: TestWilcoxon, Statistic: wPlus, PValue: normalTwoSided(z),
		Method: "normal approximation with tie correction"}
}

// rankGroup is count tied observations sharing the doubled rank doubled.
type rankGroup struct{ doubled, count int }

// wilcoxonExactP returns the two-sided p-value 2·min(P(S ≤ s), P(S ≥ s)),
// capped at 1, where S = 2W⁺ = Σ Rᵢ·Iᵢ over the doubled ranks Rᵢ with
// independent fair signs Iᵢ ∈ {0, 1} (the null distribution given the
// ranks). Counts are kept in float64, exact while the total 2ⁿ ≤ 2⁵³.
func wilcoxonExactP(groups []rankGroup, s int) float64 {
	total := 0
	for _, g := range groups {
		total += g.doubled * g.count
	}
	ways := make([]float64, total+1)
	ways[0] = 1
	top := 0
	n := 0
	for _, g := range groups {
		for range g.count {
			for k := top; k >= 0; k-- {
				if ways[k] != 0 {
					ways[k+g.doubled] += ways[k]
				}
			}
			top += g.doubled
			n++
		}
	}
	var le, ge float64
	for k, w := range ways {
		if k <= s {
			le += w
		}
		if k >= s {
			ge += w
		}
	}
	all := math.Exp2(float64(n))
	return math.Min(1, 2*math.Min(le, ge)/all)
}

// mcnemar tests paired 0/1 outcomes. b counts samples the baseline got
// right (1) and the candidate wrong (0), c the reverse; concordant pairs
// carry no information about the difference. Under H₀, c ~ Bin(b+c, ½).
// Below mcnemarExactBelow discordant pairs the exact binomial test is used:
// p = min(1, 2·P(X ≤ min(b,c))). From there on, χ² = max(0, |b−c|−1)²/(b+c)
// (Edwards' continuity correction, floored at 0 so that b = c gives p = 1)
// on 1 df.
func mcnemar(b, c int) TestResult {
	m := b + c
	if m == 0 {
		return TestResult{Name: TestMcNemarExact, PValue: 1, Method: "no discordant pairs: p = 1 by definition"}
	}
	if m < mcnemarExactBelow {
		k := min(b, c)
		// Σ_{i≤k} C(m,i) / 2^m; m < 25 keeps every term exact in float64.
		var sum, coef float64 = 0, 1
		for i := 0; i <= k; i++ {
			if i > 0 {
				coef = coef * float64(m-i+1) / float64(i)
			}
			sum += coef
		}
		return TestResult{Name: TestMcNemarExact, Statistic: float64(k),
			PValue: math.Min(1, 2*sum/math.Exp2(float64(m))), Method: "exact binomial"}
	}
	diff := math.Max(0, math.Abs(float64(b-c))-1)
	chi2 := diff * diff / float64(m)
	return TestResult{Name: TestMcNemarChiSq, Statistic: chi2, DF: 1, PValue: chiSquare1SF(chi2),
		Method: "chi-square with continuity correction"}
}

// IsBinary reports whether every value of x is exactly 0 or 1 (a
// per-sample "correct" metric, for which McNemar's test applies). It is
// false for an empty x.
func IsBinary(x []float64) bool {
	if len(x) == 0 {
		return false
	}
	for _, v := range x {
		if v != 0 && v != 1 {
			return false
		}
	}
	return true
}

// mannWhitneyExactMax is the largest n_b + n_c for which the Mann–Whitney
// p-value is computed exactly (without ties): the counts of the U
// distribution are then below C(50, 25) ≈ 1.3·10¹⁴ < 2⁵³, exact in float64.
const mannWhitneyExactMax = 50

// mannWhitney is the two-sided Mann–Whitney U (Wilcoxon rank-sum) test of
// baseline against candidate: the distribution-free check beside Welch's t,
// as Wilcoxon's signed-rank test is beside the paired t. Values within tol
// of the smallest value of their group are ties and share the average rank.
// U is the candidate's: the number of (baseline, candidate) pairs in which
// the candidate's value is larger, ties counting ½. Without ties and with
// n_b + n_c ≤ mannWhitneyExactMax the p-value is exact,
// 2·min(P(U ≤ u), P(U ≥ u)); otherwise z = (|U − n_b·n_c/2| − ½)/σ with
// σ² = n_b·n_c/12·((N+1) − Σ(t³−t)/(N(N−1))), the continuity-corrected
// normal approximation (scipy.stats.mannwhitneyu's default).
func mannWhitney(baseline, candidate []float64, tol float64) TestResult {
	nb, nc := len(baseline), len(candidate)
	type obs struct {
		v    float64
		cand bool
	}
	all := make([]obs, 0, nb+nc)
	for _, v := range baseline {
		all = append(all, obs{v, false})
	}
	for _, v := range candidate {
		all = append(all, obs{v, true})
	}
	slices.SortFunc(all, func(a, b obs) int { return cmp.Compare(a.v, b.v) })
	var rankSumC, tieTerm float64
	ties := false
	for i := 0; i < len(all); {
		j := i
		for j < len(all) && all[j].v-all[i].v <= tol {
			j++
		}
		t := j - i
		mid := float64(i) + float64(t+1)/2
		for k := i; k < j; k++ {
			if all[k].cand {
				rankSumC += mid
			}
		}
		if t > 1 {
			ties = true
			ft := float64(t)
			tieTerm += ft*ft*ft - ft
		}
		i = j
	}
	fb, fc := float64(nb), float64(nc)
	u := rankSumC - fc*(fc+1)/2
	if !ties && nb+nc <= mannWhitneyExactMax {
		return TestResult{Name: TestMannWhitneyU, Statistic: u,
			PValue: mannWhitneyExactP(nb, nc, int(math.Round(u))), Method: "exact distribution (no ties)"}
	}
	n := fb + fc
	variance := fb * fc / 12 * ((n + 1) - tieTerm/(n*(n-1)))
	if variance <= 0 {
		// Every value tied: nothing distinguishes the runs.
		return TestResult{Name: TestMannWhitneyU, Statistic: u, PValue: 1, Method: "every value tied: p = 1 by definition"}
	}
	z := math.Max(0, math.Abs(u-fb*fc/2)-0.5) / math.Sqrt(variance)
	return TestResult{Name: TestMannWhitneyU, Statistic: u, PValue: normalTwoSided(z),
		Method: "normal approximation with tie and continuity corrections"}
}

// mannWhitneyExactP returns min(1, 2·min(P(U ≤ u), P(U ≥ u))) for U the
// Mann–Whitney statistic of samples of sizes m and n under H₀. The counts
// of U are the coefficients of the Gaussian binomial [m+n choose m]_q =
// Π_{i=1..m} (1 − q^{n+i})/(1 − q^i), built factor by factor; every
// intermediate is an integer below 2⁵³ when m + n ≤ mannWhitneyExactMax.
func mannWhitneyExactP(m, n, u int) float64 {
	top := m * n
	c := make([]float64, top+1)
	c[0] = 1
	for i := 1; i <= m; i++ {
		// Multiply by (1 − q^{n+i}), then divide by (1 − q^i).
		for k := top; k >= n+i; k-- {
			c[k] -= c[k-n-i]
		}
		for k := i; k <= top; k++ {
			c[k] += c[k-i]
		}
	}
	var le, ge, total float64
	for k, w := range c {
		total += w
		if k <= u {
			le += w
		}
		if k >= u {
			ge += w
		}
	}
	return math.Min(1, 2*math.Min(le, ge)/total)
}
