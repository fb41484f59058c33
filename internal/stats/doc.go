// Package stats owns sopilot's comparisons of runs: whether a candidate run
// is better than a baseline on a named per-sample metric, with a confidence
// interval, a significance test and a verdict that knows which direction is
// better; the mean ± std of repeated runs; and the cost side (GPU-hours,
// throughput, scaling efficiency). It is pure computation: no I/O, no gRPC,
// no global state, deterministic for a given Options.Seed.
//
// docs/statistics.md explains the choices at length; this is the summary a
// maintainer needs beside the code.
//
// # Inputs
//
// Values must be finite: NaN or ±Inf anywhere is an error naming the input
// and the index (*NonFiniteError), never silently dropped. A caller joining
// two runs by sample id decides what a missing value means before calling.
// Every comparison needs a Direction (HigherIsBetter, LowerIsBetter); there
// is no default. Values (and deltas) that differ by at most
// Options.Tolerance (10⁻⁹) × the largest |value| of either run are ties, so
// rounding noise never decides a test. Work is bounded (Resamples ≤
// MaxResamples, Resamples × n ≤ MaxWork) and ctx cancels the bootstrap.
//
// # Summary
//
// n values; mean x̄ (two-pass, corrected); sample standard deviation
// s = √(Σ(xᵢ−x̄)²/(n−1)) (0 when n = 1); quantiles of type 7 (Hyndman & Fan;
// numpy's and R's default): with sorted x₍₀₎…x₍ₙ₋₁₎, h = (n−1)q,
// Q(q) = x₍⌊h⌋₎ + (h−⌊h⌋)(x₍⌊h⌋+1₎ − x₍⌊h⌋₎).
//
// # Paired comparison (ComparePaired)
//
// The runs scored the same samples; dᵢ = candidateᵢ − baselineᵢ.
// AbsoluteChange = d̄. Tests, all two-sided:
//
//   - paired t: t = d̄ / (s_d/√n) on n−1 df, p = I_{ν/(ν+t²)}(ν/2, ½) (the
//     regularised incomplete beta, evaluated by continued fraction). When
//     every dᵢ is the same value c the statistic is undefined: c = 0 gives
//     p = 1; c ≠ 0 gives the exact sign-flip permutation p = 2/2ⁿ.
//   - Wilcoxon signed-rank: zeros dropped (Wilcoxon's method), average
//     ranks for ties, W⁺ = Σ ranks of positive dᵢ. With n′ ≤ 50 nonzero
//     deltas the p-value is exact, from the permutation distribution of W⁺
//     given the tied ranks (dynamic programming over doubled ranks);
//     otherwise z = (W⁺ − n′(n′+1)/4)/σ with
//     σ² = n′(n′+1)(2n′+1)/24 − Σ(t³−t)/48 over tie groups, no continuity
//     correction.
//   - McNemar, for 0/1 metrics (IsBinary on both runs): b = baseline-only
//     successes, c = candidate-only successes. b+c < 25: exact binomial,
//     p = min(1, 2·P(X ≤ min(b,c))), X ~ Bin(b+c, ½); otherwise
//     χ² = max(0, |b−c|−1)²/(b+c) on 1 df, p = erfc(√(χ²/2)).
//
// Test (the one the verdict uses) is McNemar for 0/1 metrics and the paired
// t test otherwise, whose null hypothesis (mean delta 0) is the quantity the
// interval estimates; Wilcoxon is reported alongside as a check that does
// not lean on the mean. Wins/Ties/Losses count samples by Direction.
//
// # Unpaired comparison (CompareUnpaired)
//
// Welch's t: t = (x̄_c − x̄_b)/√(s_b²/n_b + s_c²/n_c) on
// ν = (s_b²/n_b + s_c²/n_c)² / ((s_b²/n_b)²/(n_b−1) + (s_c²/n_c)²/(n_c−1)).
// Both runs constant: equal gives p = 1, different gives the exact
// permutation p = 2/C(n_b+n_c, n_b). Mann–Whitney U is reported beside it
// (exact without ties up to n_b + n_c = 50, otherwise the tie- and
// continuity-corrected normal approximation).
//
// # Groups of runs (CompareGroups)
//
// One mean per run; Summary gives mean ± std across runs; Welch's t test
// and Welch's interval (x̄_c − x̄_b) ± t_{ν,(1+level)/2}·SE, plus a bootstrap
// over runs.
//
// # Bootstrap interval
//
// Percentile interval of the mean delta (paired) or of the difference of
// means (unpaired and groups, each side resampled independently): the
// type-7 quantiles (1−level)/2 and (1+level)/2 of Options.Resamples
// replicates. Resamples are split into chunks of 128; chunk c draws from
// PCG-DXSM (math/rand/v2) seeded with two SplitMix64 outputs of
// Seed + c·0x9e3779b97f4a7c15, and every transformation of its output is
// this package's own, so the interval depends only on the data, Seed and
// Resamples — not on GOMAXPROCS, scheduling or the Go version.
//
// A resample of n values costs n draws when done naively: 10¹⁰ for 10⁶
// samples and 10⁴ resamples. Instead, a resample's mean is
// M = (1/n)·Σⱼ Nⱼxⱼ with N ~ Multinomial(n; 1/n, …, 1/n), and multinomial
// counts can be aggregated: values are put in equal-width bins of width h;
// bins holding at least 16 values ("dense") are drawn as counts Cᵢ by
// conditional binomials, Cᵢ ~ Bin(n − Σ_{j<i}C_j, fᵢ/Σ_{j≥i}f_j), each
// exact (inversion for small means, Hörmann's BTRS otherwise), and
// contribute Cᵢμᵢ (μᵢ the bin mean); values of sparser bins form one more
// category whose draws pick individual values, exactly as the naive method.
// If every dense bin holds a single distinct value — 0/1 metrics, whose
// deltas are −1, 0, 1 — this is exact. Otherwise M = M_b + E where, given
// the counts, E has mean 0 and variance Σ Cᵢσᵢ²/n² (σᵢ² the variance inside
// dense bin i), so
//
//	E[M_b] = E[M],  Var(M_b) = Var(M) − W/n,  W = (1/n)·Σⱼ (xⱼ − μ_bin(j))²
//
// and Var(M) = S²/n with S² the plug-in variance: binning shrinks the
// bootstrap distribution's variance by the fraction W/S² and changes nothing
// else to first order. Any set of values inside an interval of width h has
// variance at most h²/4 (Popoviciu), so h = 2√(τ)·S guarantees W/S² ≤ τ; the
// package uses τ = 10⁻⁵ and reports the W/S² actually achieved
// (ResampleInfo.VarianceShare, typically ≈ τ/3). A 95 % endpoint then moves
// by about 1.96·SE·W/(2S²) ≤ 10⁻⁵ SE, against a Monte-Carlo error of
// √(0.025·0.975/B)/φ(1.96) ≈ 0.027 SE at B = 10⁴ — over 2,000 times
// smaller. Dense bins are capped at 4096 (bins widen, and VarianceShare
// says by how much) so the time per resample is bounded whatever the data.
// Binning is used only when it is cheaper than the naive method (about
// 8 index draws per binomial); small inputs are resampled naively.
//
// # Relative change
//
// AbsoluteChange / |baseline mean|, reported only when the baseline mean is
// nonzero, above Options.NearZero if set, and significantly different from 0:
// |x̄_b| > t_{n−1,(1+level)/2}·s_b/√n_b. That is exactly the condition under
// which Fieller's confidence interval for a ratio with this denominator is
// bounded; without it the ratio carries no information. Otherwise
// RelativeChange.Reason says why it is omitted.
//
// # Verdict
//
// Inconclusive below the least sample size at which an exact,
// distribution-free test could reject at Alpha (paired: MinSamples, 6 at
// 0.05; unpaired: 2/C(n_b+n_c, n_b) < Alpha). Otherwise Improved or
// Regressed only when Test's p < Alpha, every interval reported
// excludes 0 on the same side, and |AbsoluteChange| ≥
// MinAbsoluteImprovement and |relative change| ≥ MinRelativeImprovement when
// those are set (a threshold that cannot be checked — relative change
// omitted — blocks the verdict). The side and Direction decide which:
// a significant fall in a LowerIsBetter loss is Improved. Everything else is
// NoSignificantChange, with VerdictReason saying which condition failed.
// Identical runs give p = 1, an interval [0, 0] and NoSignificantChange.
//
// # Efficiency
//
// GPU-hours = GPUs × wall hours; throughput = work / wall seconds; speedup
// = throughput ratio (or wall-time ratio when work is unknown and assumed
// equal); scaling efficiency = speedup / (candidate GPUs / baseline GPUs).
package stats
