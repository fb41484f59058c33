#!/usr/bin/python3
"""Reference values for internal/stats, computed independently with
numpy/scipy (and, for the exact Wilcoxon distribution with ties, by brute-force
enumeration of every sign pattern), written to reference.json. Student t
quantiles come from mpmath at 40 digits: scipy 1.10's t.ppf (cephes stdtrit)
is accurate only to about 1e-9 relative (e.g. t.ppf(0.6, 2) returns
0.2886751346880066; the closed form (2q-1)/sqrt(2q(1-q)) is
0.28867513459481281...).

Run with Debian's python3 (apt-get install python3-scipy python3-mpmath):
    /usr/bin/python3 internal/stats/testdata/generate_reference.py > internal/stats/testdata/reference.json

The datasets are drawn here with a fixed numpy seed and stored in the JSON, so
the Go tests read the same numbers that produced the reference values.
"""
import itertools
import json
import platform
import sys

import mpmath
import numpy as np
import scipy
from scipy import special, stats

rng = np.random.default_rng(20240611)


def fl(a):
    return [float(v) for v in a]


def summary(name, x):
    x = np.asarray(x, dtype=float)
    return {
        "name": name,
        "x": fl(x),
        "mean": float(np.mean(x)),
        "std": float(np.std(x, ddof=1)),
        "min": float(np.min(x)),
        # numpy's default percentile method is 'linear' = Hyndman & Fan type 7.
        "p50": float(np.percentile(x, 50)),
        "p90": float(np.percentile(x, 90)),
        "max": float(np.max(x)),
    }


def wilcoxon_brute(d):
    """Two-sided exact p of the signed-rank test, zeros dropped, midranks for
    ties, by enumerating all 2^n sign patterns: 2*min(P(W+<=w), P(W+>=w))."""
    d = np.asarray(d, dtype=float)
    d = d[d != 0]
    r = stats.rankdata(np.abs(d))  # average ranks for ties
    w = float(np.sum(r[d > 0]))
    n = len(d)
    le = ge = 0
    for signs in itertools.product((0, 1), repeat=n):
        s = float(np.dot(signs, r))
        if s <= w + 1e-9:
            le += 1
        if s >= w - 1e-9:
            ge += 1
    return w, min(1.0, 2 * min(le, ge) / 2**n)


def w_plus(d):
    d = np.asarray(d, dtype=float)
    d = d[d != 0]
    r = stats.rankdata(np.abs(d))
    return float(np.sum(r[d > 0]))


def paired_case(name, b, c, wilcoxon_method):
    b = np.asarray(b, dtype=float)
    c = np.asarray(c, dtype=float)
    d = c - b
    t = stats.ttest_rel(c, b)
    case = {
        "name": name,
        "baseline": fl(b),
        "candidate": fl(c),
        "t": {"statistic": float(t.statistic), "df": float(len(d) - 1), "pvalue": float(t.pvalue)},
    }
    if wilcoxon_method == "brute":
        w, p = wilcoxon_brute(d)
        case["wilcoxon"] = {"w_plus": w, "pvalue": p, "source": "brute-force enumeration"}
    else:
        res = stats.wilcoxon(c, b, zero_method="wilcox", correction=False, method=wilcoxon_method)
        case["wilcoxon"] = {"w_plus": w_plus(d), "pvalue": float(res.pvalue),
                            "source": "scipy.stats.wilcoxon method=%s zero_method=wilcox correction=False" % wilcoxon_method}
    return case


def welch_case(name, b, c, level=0.95):
    b = np.asarray(b, dtype=float)
    c = np.asarray(c, dtype=float)
    res = stats.ttest_ind(c, b, equal_var=False)
    vb, vc = np.var(b, ddof=1) / len(b), np.var(c, ddof=1) / len(c)
    df = (vb + vc) ** 2 / (vb**2 / (len(b) - 1) + vc**2 / (len(c) - 1))
    q = stats.t.ppf(1 - (1 - level) / 2, df)
    diff = np.mean(c) - np.mean(b)
    se = np.sqrt(vb + vc)
    return {"name": name, "baseline": fl(b), "candidate": fl(c),
            "statistic": float(res.statistic), "df": float(df), "pvalue": float(res.pvalue),
            "ci95": [float(diff - q * se), float(diff + q * se)]}


def mcnemar_case(b, c):
    m = b + c
    if m < 25:
        k = min(b, c)
        p = stats.binomtest(k, m, 0.5).pvalue
        return {"b": b, "c": c, "statistic": float(k), "pvalue": float(p), "method": "exact binomial (scipy.stats.binomtest)"}
    chi2 = max(0.0, abs(b - c) - 1.0) ** 2 / m
    return {"b": b, "c": c, "statistic": chi2, "pvalue": float(stats.chi2.sf(chi2, 1)),
            "method": "chi-square with continuity correction (scipy.stats.chi2.sf)"}


out = {
    "generator": "generate_reference.py",
    "python": platform.python_version(),
    "numpy": np.__version__,
    "scipy": scipy.__version__,
    "mpmath": mpmath.__version__,
}

# Summaries.
out["summaries"] = [
    summary("small_odd", rng.normal(3, 2, 7)),
    summary("ties", np.round(rng.normal(0, 1, 40), 1)),
    summary("skewed_101", rng.lognormal(0, 1, 101)),
    summary("two_values", [1.0, 5.0]),
]

# Paired tests.
paired = []
b = rng.normal(0.6, 0.1, 12)
paired.append(paired_case("normal_12_exact", b, b + rng.normal(0.02, 0.05, 12), "exact"))
b = rng.normal(10, 3, 40)
paired.append(paired_case("normal_40_exact", b, b - 0.5 + rng.normal(0, 1.5, 40), "exact"))
b = np.round(rng.normal(1.0, 0.3, 16), 1)
paired.append(paired_case("ties_zeros_16_brute", b, np.round(b + rng.normal(0.1, 0.2, 16), 1), "brute"))
b = np.round(rng.normal(2.0, 1.0, 14), 0)
paired.append(paired_case("coarse_14_brute", b, np.round(b + rng.normal(0.3, 1.0, 14), 0), "brute"))
b = np.round(rng.normal(0.0, 1.0, 90), 1)
paired.append(paired_case("ties_zeros_90_approx", b, np.round(b + rng.normal(0.05, 0.3, 90), 1), "approx"))
b = rng.normal(0, 1, 200)
paired.append(paired_case("normal_200_approx", b, b + rng.normal(-0.1, 0.7, 200), "approx"))
b = (rng.random(400) < 0.7).astype(float)
c = b.copy()
flip = rng.random(400)
c[(b == 1) & (flip < 0.15)] = 0
c[(b == 0) & (flip < 0.45)] = 1
paired.append(paired_case("binary_400_approx", b, c, "approx"))
out["paired"] = paired

# Welch.
out["welch"] = [
    welch_case("small_8_13", rng.normal(0.5, 0.1, 8), rng.normal(0.56, 0.2, 13)),
    welch_case("unequal_50_70", rng.normal(100, 5, 50), rng.normal(98, 15, 70)),
    welch_case("runs_3_4", [0.712, 0.705, 0.720], [0.731, 0.744, 0.728, 0.739]),
    welch_case("runs_2_2", [2.31, 2.35], [2.21, 2.28]),
]

# McNemar.
out["mcnemar"] = [mcnemar_case(b, c) for b, c in
                  [(3, 9), (0, 5), (1, 1), (7, 17), (12, 12), (12, 30), (100, 130), (40, 41), (500, 620)]]

# Student t tail: two-sided P(|T| >= t) = 2*sf.
tgrid = []
for df in [1, 2, 2.5, 5, 10, 29, 100, 1000, 99999, 999999]:
    for t in [0.05, 0.5, 1.0, 1.96, 2.5, 4.0, 8.0, 20.0]:
        tgrid.append({"t": t, "df": df, "p": float(2 * stats.t.sf(t, df))})
out["t_two_sided"] = tgrid
mpmath.mp.dps = 40


def mp_t_quantile(q, df):
    """t with P(T <= t) = q > 1/2, by bisection on mpmath's regularized
    incomplete beta: P(T > t) = I_{df/(df+t^2)}(df/2, 1/2) / 2."""
    df = mpmath.mpf(df)
    tail = 1 - mpmath.mpf(q)
    lo, hi = mpmath.mpf(0), mpmath.mpf(1)
    sf = lambda t: mpmath.betainc(df / 2, mpmath.mpf(1) / 2, 0, df / (df + t * t), regularized=True) / 2
    while sf(hi) > tail:
        lo, hi = hi, 2 * hi
    for _ in range(200):
        mid = (lo + hi) / 2
        if sf(mid) > tail:
            lo = mid
        else:
            hi = mid
    return float((lo + hi) / 2)


out["t_quantile"] = [{"q": q, "df": df, "t": mp_t_quantile(q, df)}
                     for df in [1, 2, 3.7, 9, 30, 1000, 1e6] for q in [0.6, 0.9, 0.975, 0.995]]
out["inc_beta"] = [{"a": a, "b": bb, "x": x, "value": float(special.betainc(a, bb, x))}
                   for a, bb in [(0.5, 0.5), (1, 3), (2.5, 7), (10, 0.5), (50, 50), (500, 0.5), (5e5, 0.5), (30, 2000)]
                   for x in [0.001, 0.1, 0.5, 0.9, 0.999]]

json.dump(out, sys.stdout, indent=1)
sys.stdout.write("\n")
