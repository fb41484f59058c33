#!/usr/bin/python3
"""A minimal re-implementation of the arithmetic of the seed tutorial's
compare_models.py -- the ANTI-EXAMPLE that internal/stats replaces. Do not use
it to compare anything.

The seed (shared/seed/000_faea56aba9bf2442.txt, section "Comparing Models")
does not contain the script's source: only its invocation
(--trained-results, --original-results, --output), a description of what it
computes ("mean (average) output, standard deviation, min/max; calculates
differences; calculates improvement percentage") and an example report
({"trained_model": {"mean_output", "num_samples"}, "original_model": {...},
"differences": {"improvement_percent": 29.7}}, read as "Trained model is 29.7%
better!"). So this file is a reconstruction of exactly that arithmetic, not a
copy, and it needs only numpy (the original loads models with torch). Each
sample's "output" is a vector; the script's statistics are:

    mean_output = mean over samples of each sample's mean output
    std_output  = std over samples of each sample's std (population, ddof=0)
    improvement_percent = (trained mean - original mean) / original mean * 100

Its flaws, each fixed in internal/stats (see docs/statistics.md):
  * improvement of a raw output mean, with no metric direction;
  * std of per-sample stds (not the spread of anything being compared; it is
    0 for scalar outputs);
  * the two runs are treated as unpaired although they scored the same test
    set, and no test or interval is computed at all;
  * the division by the original mean, which can be ~0 (or negative, which
    flips the sign of "improvement").

It is here to be timed on the same data as BenchmarkComparePaired1M
(see bench_seed_compare.sh):

    seed_compare_models.py --baseline B.f64 --candidate C.f64 [--repeat 5]

B.f64 and C.f64 are raw little-endian float64 files, one scalar output per
sample (as written by TestWriteBenchmarkData).
"""
import argparse
import json
import statistics
import sys
import time

import numpy as np


def summarize(outputs):
    """outputs: array (n_samples, output_dim)."""
    per_sample_mean = outputs.mean(axis=1)
    per_sample_std = outputs.std(axis=1)
    return {
        "mean_output": float(per_sample_mean.mean()),
        "std_output": float(per_sample_std.std()),
        "min_output": float(outputs.min()),
        "max_output": float(outputs.max()),
        "num_samples": int(outputs.shape[0]),
    }


def compare(trained_outputs, original_outputs):
    trained = summarize(trained_outputs)
    original = summarize(original_outputs)
    diff = trained["mean_output"] - original["mean_output"]
    return {
        "trained_model": trained,
        "original_model": original,
        "differences": {
            "mean_output_difference": diff,
            "std_output_difference": trained["std_output"] - original["std_output"],
            "improvement_percent": diff / original["mean_output"] * 100,
        },
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--baseline", required=True, help="raw float64 file: the original model's outputs")
    ap.add_argument("--candidate", required=True, help="raw float64 file: the trained model's outputs")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--label", default="")
    args = ap.parse_args()

    t0 = time.perf_counter()
    original = np.fromfile(args.baseline, dtype="<f8").reshape(-1, 1)
    trained = np.fromfile(args.candidate, dtype="<f8").reshape(-1, 1)
    load_s = time.perf_counter() - t0

    times = []
    report = None
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        report = compare(trained, original)
        times.append(time.perf_counter() - t0)
    json.dump({
        "label": args.label,
        "samples": int(original.shape[0]),
        "load_seconds": load_s,
        "compare_seconds": times,
        "compare_median_seconds": statistics.median(times),
        "numpy": np.__version__,
        "report": report,
    }, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
