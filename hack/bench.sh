#!/usr/bin/env bash
# make bench: the benchmarks behind docs/benchmarks.md. Needs root and the
# local Slurm cluster (started here if it is not running, and stopped again).
# Takes about 35 minutes (the 500-run load on three Slurm versions is 12 of them).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "make bench uses the local Slurm cluster and needs root" >&2; exit 1; }
started=0
trap '[ "$started" = 1 ] && hack/slurm/cluster.sh down >/dev/null || true' EXIT
if ! hack/slurm/cluster.sh status >/dev/null 2>&1; then started=1; hack/slurm/cluster.sh up >/dev/null; fi
eval "$(hack/slurm/cluster.sh env)"

echo "== ListRuns over 100,000 stored runs; CreateRun and a 500-run poll update in the store"
go test -run XXX -bench . -benchtime 2s -count 5 -benchmem ./internal/store/
echo "== CreateRun through the controller vs bare sbatch on the same cluster (5 x 60 pairs)"
go test -run XXX -bench BenchmarkCreateRunVsSbatch -benchtime 60x -count 5 ./cmd/controller/
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
