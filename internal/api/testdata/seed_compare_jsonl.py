#!/usr/bin/python3
"""The seed tutorial's comparison arithmetic (see
internal/stats/testdata/seed_compare_models.py for what it computes and why
sopilot does otherwise), fed the way the seed feeds it: from the two runs'
results files on disk. It is the speed baseline of the upload benchmark
(bench_upload_seed.sh): the seed's whole path from two results files to a
report is reading both files and this arithmetic.

    seed_compare_jsonl.py --baseline B.jsonl --candidate C.jsonl --metric loss [--repeat 5]

B and C are results files in docs/results.md's flat shape. Prints JSON
with the median seconds of reading both files plus the arithmetic.
"""
import argparse
import json
import statistics
import sys
import time

import numpy as np


def load(path, metric):
    """One metric's values, samples without it left out (as the seed's
    per-sample outputs would be)."""
    out = []
    with open(path) as f:
        for line in f:
            rec = json.loads(line)
            v = rec.get(metric)
            if "sample_id" in rec and v is not None:
                out.append(v)
    return np.asarray(out, dtype=np.float64).reshape(-1, 1)


def summarize(outputs):
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
    trained, original = summarize(trained_outputs), summarize(original_outputs)
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
    ap.add_argument("--baseline", required=True)
    ap.add_argument("--candidate", required=True)
    ap.add_argument("--metric", default="loss")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    times, report = [], None
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        report = compare(load(args.candidate, args.metric), load(args.baseline, args.metric))
        times.append(time.perf_counter() - t0)
    json.dump({"metric": args.metric, "seconds": times, "median_seconds": statistics.median(times),
               "numpy": np.__version__, "report": report}, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
