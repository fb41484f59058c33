#!/usr/bin/env bash
# Times sopilot's paired comparison (BenchmarkComparePaired1M) and the seed's
# compare_models.py arithmetic (seed_compare_models.py, a reconstruction) on
# the same 1,000,000-sample data, continuous and 0/1. Run from anywhere:
#
#   internal/stats/testdata/bench_seed_compare.sh
#
# Needs Debian's python3-numpy (/usr/bin/python3). Prints the Go benchmark
# lines (5 counts of 5 comparisons each) and their medians, per variant the
# Python script's JSON with the median of 5 runs, and, for scale, what a
# naive numpy bootstrap of the mean delta costs per resample (the seed
# computes no interval; this is what adding one the obvious way would cost).
set -euo pipefail
cd "$(dirname "$0")/../../.."
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

SOPILOT_STATS_BENCH_DATA=$dir go test -count=1 -run '^TestWriteBenchmarkData$' ./internal/stats/ >/dev/null
go test -run '^$' -bench 'ComparePaired1M' -benchtime 5x -count 5 ./internal/stats/ | tee "$dir/go.txt"
for name in $(awk '/^BenchmarkComparePaired1M/ {print $1}' "$dir/go.txt" | sort -u); do
	awk -v n="$name" '$1 == n {print $3}' "$dir/go.txt" | sort -n |
		awk -v n="$name" '{a[NR] = $1} END {printf "median %s: %.1f ms over %d counts\n", n, a[int((NR + 1) / 2)] / 1e6, NR}'
done
for v in continuous binary; do
	/usr/bin/python3 internal/stats/testdata/seed_compare_models.py --label "$v" --repeat 5 \
		--baseline "$dir/${v}_baseline.f64" --candidate "$dir/${v}_candidate.f64"
done
/usr/bin/python3 - "$dir/continuous_baseline.f64" "$dir/continuous_candidate.f64" <<'PY'
import statistics, sys, time
import numpy as np
b = np.fromfile(sys.argv[1], dtype="<f8")
d = np.fromfile(sys.argv[2], dtype="<f8") - b
rng = np.random.default_rng(0)
times = []
for _ in range(20):
    t0 = time.perf_counter()
    d[rng.integers(0, d.size, d.size)].mean()
    times.append(time.perf_counter() - t0)
m = statistics.median(times)
print("naive numpy bootstrap, 1M deltas: median %.1f ms per resample (20 timed) -> ~%.0f s for 10,000" % (1e3 * m, 1e4 * m))
PY
