package stats

import (
	"context"
	"fmt"
	"math"
	"slices"
)

// Direction declares which way a metric improves. The zero value is not a
// direction: every comparison must be told (ErrDirection otherwise).
type Direction int

const (
	DirectionUnspecified Direction = iota
	HigherIsBetter                 // accuracy, score, throughput
	LowerIsBetter                  // loss, error rate, latency
)

func (d Direction) String() string {
	switch d {
	case HigherIsBetter:
		return "higher is better"
	case LowerIsBetter:
		return "lower is better"
	}
	return fmt.Sprintf("Direction(%d)", int(d))
}

// sign is +1 when an increase is an improvement, −1 when a decrease is.
func (d Direction) sign() float64 {
	if d == LowerIsBetter {
		return -1
	}
	return 1
}

func (d Direction) valid() error {
	if d != HigherIsBetter && d != LowerIsBetter {
		return fmt.Errorf("%v: %w", d, ErrDirection)
	}
	return nil
}

// Verdict is the outcome of a comparison, from the candidate's side.
type Verdict int

const (
	VerdictUnspecified Verdict = iota
	// Improved: the change is statistically significant in the better
	// direction and at least as large as the thresholds.
	Improved
	// Regressed: the same, in the worse direction.
	Regressed
	// NoSignificantChange: enough data to decide, and no decision for a
	// change (not significant, the test and the interval disagree, or
	// smaller than a threshold). VerdictReason says which.
	NoSignificantChange
	// Inconclusive: too few samples for any verdict (see MinSamples):
	// no distribution-free test could reject at Alpha with so few, so a
	// significant p would rest only on an assumption the data cannot check.
	Inconclusive
)

func (v Verdict) String() string {
	switch v {
	case Improved:
		return "improved"
	case Regressed:
		return "regressed"
	case NoSignificantChange:
		return "no significant change"
	case Inconclusive:
		return "inconclusive"
	}
	return fmt.Sprintf("Verdict(%d)", int(v))
}

// Options tune a comparison. The zero value means the defaults.
type Options struct {
	// ConfidenceLevel of the intervals; default 0.95.
	ConfidenceLevel float64
	// Resamples is the number of bootstrap resamples; default 10000,
	// at least 100, at most MaxResamples; and Resamples × n (the values
	// resampled) at most MaxWork.
	Resamples int
	// Seed of the bootstrap. The same seed and data give the same interval.
	Seed uint64
	// Alpha is the significance level of the tests; default 0.05.
	Alpha float64
	// MinAbsoluteImprovement, when > 0, is the smallest |change| (in the
	// metric's units) that counts as improved or regressed.
	MinAbsoluteImprovement float64
	// MinRelativeImprovement, when > 0, is the smallest |relative change|
	// (0.01 = 1 %) that counts; a comparison whose relative change is
	// omitted then cannot be improved or regressed.
	MinRelativeImprovement float64
	// NearZero, when > 0, is an absolute floor: relative change is omitted
	// when |baseline mean| ≤ NearZero. The significance guard (see
	// RelativeChange) applies either way.
	NearZero float64
	// Tolerance is the relative tolerance below which two values count as
	// equal: values (and deltas) that differ by at most
	// Tolerance × max |value| of the data are ties. Default
	// DefaultTolerance; it must be below 10⁻³.
	Tolerance float64
}

// Defaults.
const (
	DefaultConfidenceLevel = 0.95
	DefaultResamples       = 10000
	DefaultAlpha           = 0.05
	minResamples           = 100
	// DefaultTolerance: 10⁻⁹ is 4.5·10⁶ float64 ulps (2.2·10⁻¹⁶) above
	// rounding in one subtraction, so decimal inputs such as
	// baseline + 0.1 give exactly equal deltas, and far below any
	// difference a metric is meant to resolve.
	DefaultTolerance = 1e-9
	// MaxResamples bounds Options.Resamples: the replicates are kept in
	// memory (8 bytes each) and 10⁵ already puts the Monte-Carlo error of
	// a 95 % endpoint at 0.009 standard errors.
	MaxResamples = 100_000
	// MaxWork bounds Resamples × n, the values one comparison resamples:
	// the default 10⁴ resamples of the largest results a run may hold
	// (10⁷ samples). A caller summing over metrics applies it per call.
	MaxWork = 1e11
)

// OptionError is an Options field out of range. It wraps ErrOptions.
type OptionError struct {
	// Option is the Options field: "ConfidenceLevel", "Resamples", ...
	Option string
	Reason string
}

func (e *OptionError) Error() string {
	return fmt.Sprintf("%s: %s: %s", ErrOptions, e.Option, e.Reason)
}

// Unwrap makes errors.Is(err, ErrOptions) true.
func (e *OptionError) Unwrap() error { return ErrOptions }

// Validate checks every field of o (zero values meaning the defaults) and
// returns an *OptionError for the first one out of range. A caller can run
// it before loading any data.
func (o Options) Validate() error {
	_, err := o.withDefaults()
	return err
}

// CheckWork returns an *OptionError for Resamples when resampling n values
// resamples times exceeds MaxWork.
func CheckWork(resamples, n int) error {
	if resamples == 0 {
		resamples = DefaultResamples
	}
	if float64(resamples)*float64(n) > MaxWork {
		return &OptionError{Option: "Resamples", Reason: fmt.Sprintf(
			"%d resamples of %d values is %.3g values, above the limit %.0g: use at most %d resamples",
			resamples, n, float64(resamples)*float64(n), MaxWork, int(MaxWork/float64(max(n, 1))))}
	}
	return nil
}

// MinSamples is the least number of pairs (paired comparisons) for a
// verdict other than Inconclusive at significance level alpha: the least n
// with 2/2ⁿ < alpha, i.e. the least n at which the exact sign-flip test —
// which assumes nothing about the distribution of the deltas — could reject
// at all. 6 at alpha = 0.05: with five pairs even five equal improvements
// give p = 2/2⁵ = 0.0625.
func MinSamples(alpha float64) int {
	if alpha == 0 {
		alpha = DefaultAlpha
	}
	n := 2
	for math.Exp2(1-float64(n)) >= alpha {
		n++
	}
	return n
}

// enoughUnpaired reports whether the exact permutation test of two samples
// of sizes nb and nc could reject at alpha (2/C(nb+nc, nb) < alpha): the
// unpaired counterpart of MinSamples (3 against 3 values cannot: 0.1).
func enoughUnpaired(nb, nc int, alpha float64) bool {
	return math.Ln2-lnChoose(float64(nb+nc), float64(nb)) < math.Log(alpha)
}

func (o Options) withDefaults() (Options, error) {
	if o.ConfidenceLevel == 0 {
		o.ConfidenceLevel = DefaultConfidenceLevel
	}
	if o.Resamples == 0 {
		o.Resamples = DefaultResamples
	}
	if o.Alpha == 0 {
		o.Alpha = DefaultAlpha
	}
	if o.Tolerance == 0 {
		o.Tolerance = DefaultTolerance
	}
	bad := func(option, format string, args ...any) (Options, error) {
		return o, &OptionError{Option: option, Reason: fmt.Sprintf(format, args...)}
	}
	switch {
	case !(o.ConfidenceLevel > 0 && o.ConfidenceLevel < 1):
		return bad("ConfidenceLevel", "%v not in (0, 1)", o.ConfidenceLevel)
	case !(o.Alpha > 0 && o.Alpha < 1):
		return bad("Alpha", "%v not in (0, 1)", o.Alpha)
	case o.Resamples < minResamples:
		return bad("Resamples", "%d below %d", o.Resamples, minResamples)
	case o.Resamples > MaxResamples:
		return bad("Resamples", "%d above the limit %d", o.Resamples, MaxResamples)
	case !(o.MinAbsoluteImprovement >= 0) || math.IsInf(o.MinAbsoluteImprovement, 0):
		return bad("MinAbsoluteImprovement", "%v must be finite and ≥ 0", o.MinAbsoluteImprovement)
	case !(o.MinRelativeImprovement >= 0) || math.IsInf(o.MinRelativeImprovement, 0):
		return bad("MinRelativeImprovement", "%v must be finite and ≥ 0", o.MinRelativeImprovement)
	case !(o.NearZero >= 0) || math.IsInf(o.NearZero, 0):
		return bad("NearZero", "%v must be finite and ≥ 0", o.NearZero)
	case !(o.Tolerance > 0 && o.Tolerance < 1e-3):
		return bad("Tolerance", "%v not in (0, 10⁻³)", o.Tolerance)
	}
	return o, nil
}

// RelativeChange is AbsoluteChange / |baseline mean|, present only when OK.
// Dividing by |mean| keeps the sign of the change, so with Direction a
// reader can tell better from worse.
type RelativeChange struct {
	Value float64
	OK    bool
	// Reason says why the value is omitted (empty when OK).
	Reason string
}

// Comparison is the result of ComparePaired or CompareUnpaired. Changes are
// candidate − baseline in the metric's units; whether that is better is
// for Direction to say, and Verdict says it.
type Comparison struct {
	Paired    bool
	Direction Direction
	// Note says what was compared and how, in a sentence for a report.
	Note                string
	Baseline, Candidate Summary
	// Deltas summarises candidate[i] − baseline[i] (paired only).
	Deltas Summary
	// AbsoluteChange is mean(candidate) − mean(baseline) (paired: the
	// mean delta, the same number).
	AbsoluteChange float64
	Relative       RelativeChange
	// ConfidenceLevel, CILow, CIHigh: the bootstrap percentile interval of
	// AbsoluteChange (paired: resampling samples, i.e. deltas; unpaired:
	// resampling each run independently).
	ConfidenceLevel float64
	CILow, CIHigh   float64
	Bootstrap       BootstrapInfo
	// Test is the test the verdict uses: McNemar for paired 0/1 metrics,
	// the paired t test for other paired metrics (the exact sign-flip
	// test when every delta is the same nonzero value), Welch's t test
	// unpaired (an exact permutation test when both runs are constant).
	Test TestResult
	// Tests holds every test computed, Test first (paired: also Wilcoxon
	// signed-rank, and the paired t test for 0/1 metrics; unpaired: also
	// Mann–Whitney U).
	Tests []TestResult
	// Alpha is the significance level Test was judged at.
	Alpha float64
	// Tolerance is the absolute tolerance used for ties: Options.Tolerance
	// × the largest |value| of either run.
	Tolerance float64
	// Wins, Ties, Losses count samples where the candidate is better,
	// equal, worse than the baseline by Direction (paired only).
	Wins, Ties, Losses int
	Verdict            Verdict
	VerdictReason      string
}

// ComparePaired compares two runs scored on the same samples: baseline[i]
// and candidate[i] are the metric for the same sample (the caller joins by
// sample id). It needs at least two samples, and MinSamples(Alpha) for a
// verdict other than Inconclusive. Deltas within the tolerance of 0 are
// ties, and deltas all equal within the tolerance are one value (see
// Options.Tolerance). ctx cancels the bootstrap.
func ComparePaired(ctx context.Context, baseline, candidate []float64, dir Direction, opt Options) (Comparison, error) {
	opt, err := prepare(dir, opt)
	if err != nil {
		return Comparison{}, err
	}
	if err := checkFinite("baseline", baseline); err != nil {
		return Comparison{}, err
	}
	if err := checkFinite("candidate", candidate); err != nil {
		return Comparison{}, err
	}
	if len(baseline) != len(candidate) {
		return Comparison{}, fmt.Errorf("baseline has %d values, candidate %d: %w",
			len(baseline), len(candidate), ErrLengthMismatch)
	}
	n := len(baseline)
	if n < 2 {
		return Comparison{}, fmt.Errorf("paired comparison of %d sample: %w", n, ErrTooFewSamples)
	}
	if err := CheckWork(opt.Resamples, n); err != nil {
		return Comparison{}, err
	}
	tol := opt.Tolerance * math.Max(maxAbs(baseline), maxAbs(candidate))
	deltas := make([]float64, n)
	for i := range deltas {
		deltas[i] = candidate[i] - baseline[i]
		if math.IsInf(deltas[i], 0) {
			return Comparison{}, fmt.Errorf("candidate[%d] − baseline[%d]: %w", i, i, ErrOverflow)
		}
	}
	snapTies(deltas, tol)
	c := Comparison{Paired: true, Direction: dir, ConfidenceLevel: opt.ConfidenceLevel, Alpha: opt.Alpha, Tolerance: tol}
	if c.Baseline, err = summarize("baseline", baseline); err != nil {
		return Comparison{}, err
	}
	if c.Candidate, err = summarize("candidate", candidate); err != nil {
		return Comparison{}, err
	}
	// The deltas are sorted once, as Wilcoxon's two halves; their
	// quantiles come from the same arrays.
	pos, neg := signedMagnitudes(deltas)
	mean, ss := meanAndSS(deltas)
	if math.IsInf(ss, 0) {
		return Comparison{}, fmt.Errorf("deltas: variance: %w", ErrOverflow)
	}
	c.Deltas = summarizeSorted(n, mean, ss, func(r int) float64 { return sortedDelta(pos, neg, n, r) })
	if math.IsInf(c.Baseline.Std, 0) {
		return Comparison{}, fmt.Errorf("paired comparison: %w", ErrOverflow)
	}
	c.AbsoluteChange = mean

	// Tests.
	t, err := pairedT(n, mean, ss)
	if err != nil {
		return Comparison{}, err
	}
	w := wilcoxonRanks(pos, neg, tol)
	binary := IsBinary(baseline) && IsBinary(candidate)
	if binary {
		var b, cc int // baseline-only and candidate-only successes
		for i := range baseline {
			switch {
			case baseline[i] == 1 && candidate[i] == 0:
				b++
			case baseline[i] == 0 && candidate[i] == 1:
				cc++
			}
		}
		c.Test = mcnemar(b, cc)
		c.Tests = []TestResult{c.Test, t, w}
	} else {
		c.Test = t
		c.Tests = []TestResult{t, w}
	}

	// Bootstrap interval of the mean delta.
	rs := newResampler("deltas", deltas, mean, ss)
	reps, err := bootstrapReplicates(ctx, opt.Resamples, opt.Seed, rs.draw)
	if err != nil {
		return Comparison{}, err
	}
	c.CILow, c.CIHigh = percentileInterval(reps, opt.ConfidenceLevel)
	c.Bootstrap = BootstrapInfo{Resamples: opt.Resamples, Seed: opt.Seed, Interval: "percentile",
		Parts: []ResampleInfo{rs.info()}}

	sign := dir.sign()
	for _, d := range deltas {
		switch {
		case d*sign > 0:
			c.Wins++
		case d == 0:
			c.Ties++
		default:
			c.Losses++
		}
	}
	c.Relative = relativeChange(c.AbsoluteChange, c.Baseline, opt)
	if minN := MinSamples(opt.Alpha); n < minN {
		c.Verdict, c.VerdictReason = Inconclusive, fmt.Sprintf(
			"%d pairs, fewer than the %d a verdict needs at α = %g: no distribution-free test can reject with so few", n, minN, opt.Alpha)
	} else {
		c.Verdict, c.VerdictReason = decide(dir, c.AbsoluteChange, c.Relative, []interval{{"bootstrap", c.CILow, c.CIHigh}}, c.Test, opt)
	}
	kind := "continuous metric"
	if binary {
		kind = "0/1 metric"
	}
	c.Note = fmt.Sprintf("paired by sample id: %d samples both runs scored, deltas = candidate − baseline (%s, %v)", n, kind, dir)
	return c, nil
}

// CompareUnpaired compares two runs whose samples are not matched (different
// test sets, or a caller that cannot join by sample id): Welch's t test
// (with the Mann–Whitney U test beside it) and a bootstrap that resamples
// each run independently. Each run needs at least two values; a verdict
// other than Inconclusive needs sizes at which an exact permutation test
// could reject at Alpha. When the runs did score the same samples,
// ComparePaired is the right call: pairing removes the between-sample
// variance and is usually far more sensitive. ctx cancels the bootstrap.
func CompareUnpaired(ctx context.Context, baseline, candidate []float64, dir Direction, opt Options) (Comparison, error) {
	opt, err := prepare(dir, opt)
	if err != nil {
		return Comparison{}, err
	}
	if err := CheckWork(opt.Resamples, len(baseline)+len(candidate)); err != nil {
		return Comparison{}, err
	}
	c := Comparison{Direction: dir, ConfidenceLevel: opt.ConfidenceLevel, Alpha: opt.Alpha}
	bm, bss, err := twoSampleSide("baseline", baseline, &c.Baseline)
	if err != nil {
		return Comparison{}, err
	}
	cm, css, err := twoSampleSide("candidate", candidate, &c.Candidate)
	if err != nil {
		return Comparison{}, err
	}
	tol := opt.Tolerance * math.Max(maxAbs(baseline), maxAbs(candidate))
	c.Tolerance = tol
	// A side whose values are all equal within the tolerance is constant,
	// and means equal within it are equal: rounding noise is not a spread.
	if c.Baseline.Max-c.Baseline.Min <= tol {
		bss = 0
	}
	if c.Candidate.Max-c.Candidate.Min <= tol {
		css = 0
	}
	nb, nc := len(baseline), len(candidate)
	c.AbsoluteChange = cm - bm
	if math.IsInf(c.AbsoluteChange, 0) {
		return Comparison{}, fmt.Errorf("difference of means: %w", ErrOverflow)
	}
	if math.Abs(c.AbsoluteChange) <= tol {
		c.AbsoluteChange, cm = 0, bm
	}
	c.Test, err = welchT(nb, bm, bss/float64(nb-1), nc, cm, css/float64(nc-1))
	if err != nil {
		return Comparison{}, err
	}
	c.Tests = []TestResult{c.Test, mannWhitney(baseline, candidate, tol)}

	rb := newResampler("baseline", baseline, bm, bss)
	rc := newResampler("candidate", candidate, cm, css)
	reps, err := bootstrapReplicates(ctx, opt.Resamples, opt.Seed, func(r *rng) float64 {
		b := rb.draw(r)
		return rc.draw(r) - b
	})
	if err != nil {
		return Comparison{}, err
	}
	c.CILow, c.CIHigh = percentileInterval(reps, opt.ConfidenceLevel)
	c.Bootstrap = BootstrapInfo{Resamples: opt.Resamples, Seed: opt.Seed, Interval: "percentile",
		Parts: []ResampleInfo{rb.info(), rc.info()}}

	c.Relative = relativeChange(c.AbsoluteChange, c.Baseline, opt)
	if !enoughUnpaired(nb, nc, opt.Alpha) {
		c.Verdict, c.VerdictReason = Inconclusive, fmt.Sprintf(
			"%d baseline and %d candidate values are too few for a verdict at α = %g: no distribution-free test can reject with so few", nb, nc, opt.Alpha)
	} else {
		c.Verdict, c.VerdictReason = decide(dir, c.AbsoluteChange, c.Relative, []interval{{"bootstrap", c.CILow, c.CIHigh}}, c.Test, opt)
	}
	c.Note = fmt.Sprintf("unpaired: %d baseline and %d candidate values, not matched by sample; "+
		"Welch's t test (unequal variances), Mann–Whitney U beside it, and an independent bootstrap of each run (%v)", nb, nc, dir)
	return c, nil
}

// sortedDelta returns the deltas' order statistic r (0 ≤ r < n) from
// signedMagnitudes' halves: the negative deltas (neg, largest magnitude
// first), then the zeros, then pos. Negating a magnitude gives back the
// delta exactly, and after snapTies every zero delta is +0, so this is the
// sorted deltas, bit for bit.
func sortedDelta(pos, neg []float64, n, r int) float64 {
	switch {
	case r < len(neg):
		return -neg[len(neg)-1-r]
	case r < n-len(pos):
		return 0
	}
	return pos[r-(n-len(pos))]
}

// maxAbs returns max |x| (0 for an empty x).
func maxAbs(x []float64) float64 {
	var m float64
	for _, v := range x {
		m = math.Max(m, math.Abs(v))
	}
	return m
}

// snapTies removes rounding noise from deltas in place: a delta within tol
// of 0 becomes 0 (a tie), and when every delta lies within tol of every
// other they all become their mean, exactly one value (so five
// improvements of "0.1" written in decimal are five equal improvements,
// not a spread of 10⁻¹⁷ that makes t enormous).
func snapTies(deltas []float64, tol float64) {
	for i, d := range deltas {
		if math.Abs(d) <= tol {
			deltas[i] = 0
		}
	}
	lo, hi := slices.Min(deltas), slices.Max(deltas)
	if lo != hi && hi-lo <= tol {
		m, _ := meanAndSS(deltas)
		if math.Abs(m) <= tol {
			m = 0
		}
		for i := range deltas {
			deltas[i] = m
		}
	}
}

// twoSampleSide validates and summarises one side of an unpaired or group
// comparison and returns its mean and Σ(x−mean)².
func twoSampleSide(input string, x []float64, s *Summary) (mean, ss float64, err error) {
	if err := checkFinite(input, x); err != nil {
		return 0, 0, err
	}
	if len(x) < 2 {
		return 0, 0, fmt.Errorf("%s has %d value, a variance needs 2: %w", input, len(x), ErrTooFewSamples)
	}
	if *s, err = summarize(input, x); err != nil {
		return 0, 0, err
	}
	mean, ss = meanAndSS(x)
	if math.IsInf(ss, 0) {
		return 0, 0, fmt.Errorf("%s: %w", input, ErrOverflow)
	}
	return mean, ss, nil
}

func prepare(dir Direction, opt Options) (Options, error) {
	if err := dir.valid(); err != nil {
		return opt, err
	}
	return opt.withDefaults()
}

// relativeChange returns abs/|baseline mean| unless the baseline mean is 0,
// within NearZero of 0, or not significantly different from 0 at the
// confidence level: |m| ≤ t_{(1+level)/2, n−1}·s/√n. That last condition is
// exactly when Fieller's confidence interval for a ratio with this
// denominator is unbounded, so the ratio would carry no information; it is
// what makes a default absolute threshold unnecessary (an absolute one
// would depend on the metric's units).
func relativeChange(abs float64, base Summary, opt Options) RelativeChange {
	m := math.Abs(base.Mean)
	switch {
	case m == 0:
		return RelativeChange{Reason: "baseline mean is 0"}
	case opt.NearZero > 0 && m <= opt.NearZero:
		return RelativeChange{Reason: fmt.Sprintf("|baseline mean| %.4g ≤ NearZero %.4g", m, opt.NearZero)}
	}
	se := base.Std / math.Sqrt(float64(base.N))
	q := studentTQuantile(1-(1-opt.ConfidenceLevel)/2, float64(base.N-1))
	if m <= q*se {
		return RelativeChange{Reason: fmt.Sprintf(
			"baseline mean %.4g is not significantly different from 0 (|mean| ≤ %.4g·SE %.4g at %g%% confidence), so a ratio to it has no bounded interval",
			base.Mean, q, se, 100*opt.ConfidenceLevel)}
	}
	v := abs / m
	if math.IsInf(v, 0) {
		return RelativeChange{Reason: "relative change overflows float64"}
	}
	return RelativeChange{Value: v, OK: true}
}

type interval struct {
	name   string
	lo, hi float64
}

// decide applies the verdict rule: Improved or Regressed only when the test
// rejects (p < α), every interval excludes 0 on the same side, and the
// change meets each threshold that is set; NoSignificantChange otherwise.
func decide(dir Direction, abs float64, rel RelativeChange, cis []interval, test TestResult, opt Options) (Verdict, string) {
	if test.PValue >= opt.Alpha {
		return NoSignificantChange, fmt.Sprintf("%s p = %.4g ≥ α = %g", test.Name, test.PValue, opt.Alpha)
	}
	side := 0.0
	for _, ci := range cis {
		var s float64
		switch {
		case ci.lo > 0:
			s = 1
		case ci.hi < 0:
			s = -1
		default:
			return NoSignificantChange, fmt.Sprintf("%s p = %.4g < α = %g but the %g%% %s interval [%.4g, %.4g] includes 0",
				test.Name, test.PValue, opt.Alpha, 100*opt.ConfidenceLevel, ci.name, ci.lo, ci.hi)
		}
		if side != 0 && s != side {
			return NoSignificantChange, "the intervals exclude 0 on opposite sides"
		}
		side = s
	}
	better := side*dir.sign() > 0
	word := "worse"
	if better {
		word = "better"
	}
	if opt.MinAbsoluteImprovement > 0 && math.Abs(abs) < opt.MinAbsoluteImprovement {
		return NoSignificantChange, fmt.Sprintf("significantly %s, but |change| %.4g < MinAbsoluteImprovement %.4g",
			word, math.Abs(abs), opt.MinAbsoluteImprovement)
	}
	if opt.MinRelativeImprovement > 0 {
		if !rel.OK {
			return NoSignificantChange, fmt.Sprintf("significantly %s, but MinRelativeImprovement is set and the relative change is omitted: %s",
				word, rel.Reason)
		}
		if math.Abs(rel.Value) < opt.MinRelativeImprovement {
			return NoSignificantChange, fmt.Sprintf("significantly %s, but |relative change| %.4g < MinRelativeImprovement %.4g",
				word, math.Abs(rel.Value), opt.MinRelativeImprovement)
		}
	}
	var ciText string
	for _, ci := range cis {
		ciText += fmt.Sprintf(", %g%% %s interval [%.4g, %.4g]", 100*opt.ConfidenceLevel, ci.name, ci.lo, ci.hi)
	}
	reason := fmt.Sprintf("%s: change %+.4g (%v)%s, %s p = %.4g < α = %g", word, abs, dir, ciText, test.Name, test.PValue, opt.Alpha)
	if better {
		return Improved, reason
	}
	return Regressed, reason
}
