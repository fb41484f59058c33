#!/usr/bin/env bash
# make bench: the benchmarks behind docs/benchmarks.md. Needs root and the
# local Slurm cluster (started here if it is not running, and stopped again).
# Takes about 45 minutes (the 500-run load on three Slurm versions is 12 of them).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "make bench uses the local Slurm cluster and needs root" >&2; exit 1; }
started=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"; [ "$started" = 1 ] && hack/slurm/cluster.sh down >/dev/null || true' EXIT
if ! hack/slurm/cluster.sh status >/dev/null 2>&1; then started=1; hack/slurm/cluster.sh up >/dev/null; fi
eval "$(hack/slurm/cluster.sh env)"

echo "== ListRuns over 100,000 stored runs; CreateRun and a 500-run poll update in the store"
go test -run XXX -bench . -benchtime 2s -count 5 -benchmem ./internal/store/
echo "== CreateRun through the controller (pinned to CPU 0) vs bare sbatch (CPU 1): cli (prestarted sbatch), cli-cold, rest; on 22.05, 24.11 and 26.05 (5 x 60 each), and where Create's time goes"
go test -c -o "$tmp/controller.test" ./cmd/controller/
go test -c -o "$tmp/controller-pkg.test" ./internal/controller/
go test -c -o "$tmp/api.test" ./internal/api/
for v in 22.05 24.11 26.05; do
  up_here=0
  if ! hack/slurm/cluster.sh --slurm "$v" status >/dev/null 2>&1; then up_here=1; hack/slurm/cluster.sh --slurm "$v" up >/dev/null; fi
  (eval "$(hack/slurm/cluster.sh --slurm "$v" env)"
   echo "-- Slurm $v, load average $(cut -d' ' -f1-3 /proc/loadavg)"
   cd cmd/controller && SOPILOT_BENCH_CONTROLLER_CPUS=0 taskset -c 1 "$tmp/controller.test" -test.run XXX \
     -test.bench BenchmarkCreateRunVsSbatch -test.benchtime 60x -test.count 5 | grep -E '^Benchmark')
  if [ "$up_here" = 1 ] && [ "$v" = 26.05 ]; then hack/slurm/cluster.sh --slurm "$v" down >/dev/null; fi
done
(cd internal/controller && "$tmp/controller-pkg.test" -test.run XXX -test.bench BenchmarkCreateBreakdown -test.benchtime 40x -test.count 5 | grep -E '^Benchmark')
echo "== controller start on 100,000 runs and 10,000 nodes (pinned to CPU 0), against a 50-run store, load average $(cut -d' ' -f1-3 /proc/loadavg)"
(cd cmd/controller && SOPILOT_BENCH_CONTROLLER_CPUS=0 taskset -c 1 "$tmp/controller.test" -test.run XXX \
  -test.bench BenchmarkStartOn100kRuns -test.benchtime 10x -test.count 3 | grep -E '^Benchmark|bytes a run')
echo "== WatchRun: 1,000 watchers (CPU 1) on 100 runs changing every second, controller CPU (CPU 0), 3 x 30 s, load average $(cut -d' ' -f1-3 /proc/loadavg)"
(cd internal/api && SOPILOT_BENCH_WATCHER_CPUS=1 taskset -c 0 "$tmp/api.test" -test.run '^$' \
  -test.bench WatchRun1000 -test.benchtime 1x -test.count 3 | grep -E '^Benchmark')
echo "== slurmctld RPCs while the controller tracks 500 active runs (5 s poll, 60 s window), on each Slurm version"
for v in 22.05 24.11 26.05; do
  up_here=0
  if ! hack/slurm/cluster.sh --slurm "$v" status >/dev/null 2>&1; then up_here=1; hack/slurm/cluster.sh --slurm "$v" up >/dev/null; fi
  for mode in json format; do
    echo "-- Slurm $v, --slurm-query=$mode"
    (eval "$(hack/slurm/cluster.sh --slurm "$v" env)"
     SOPILOT_SLURM_QUERY=$mode go test -run XXX -bench BenchmarkTrackerLoad500 -benchtime 1x -v ./cmd/controller/ |
       grep -E 'bench_test|^Benchmark')
  done
  if [ "$up_here" = 1 ] && [ "$v" != 22.05 ]; then hack/slurm/cluster.sh --slurm "$v" down >/dev/null; fi
done
echo "== parsing a 500-job listing of each version (squeue --json, slurmrestd)"
go test -run XXX -bench ParseJobs -benchmem -count 5 ./internal/scheduler/slurmjson/
echo "== CompareRuns statistics: 1,000,000 paired samples, 10,000 bootstrap resamples, vs the seed's arithmetic"
/usr/bin/python3 -c 'import numpy' 2>/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-numpy; }
internal/stats/testdata/bench_seed_compare.sh
echo "== node agent CPU and memory at 1 Hz, 8 simulated GPUs + 8 IB ports, against a controller (3 x 60 s)"
hack/agentbench.sh
echo "== controller ingest at 1 Hz from 1,000-10,000 simulated agents, separate processes (3 x 30 s each)"
hack/ingestbench/sweep.sh 1000 2500 5000 10000
go test -run XXX -bench DecodeBatch -count 5 ./hack/ingestbench/
echo "== XID 79 → the retried run's first progress line (20 injections, sopilot's share apart), Slurm 22.05, load average $(cut -d' ' -f1-3 /proc/loadavg)"
SOPILOT_SLURM_EXCLUSIVE=1 go test -run '^$' -bench ExclusiveRetryFaultToResume -benchtime 1x -v ./cmd/controller/ |
  grep -E 'injection|over [0-9]+ injections|^Benchmark'
