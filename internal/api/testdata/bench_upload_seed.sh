#!/usr/bin/env bash
# Times results upload and the end-to-end path (upload both runs, then
# CompareRuns) on 1,000,000 samples a run, beside the seed's path on the
# same samples: reading both results files and its comparison arithmetic
# (seed_compare_jsonl.py). Run from anywhere:
#
#   internal/api/testdata/bench_upload_seed.sh
#
# 1. the Go benchmarks over a loopback socket (5 counts of 3 iterations),
#    with their medians: one upload (columns), both uploads + CompareRuns,
#    CompareRuns alone, and the results_path pickup of one file
#    (SOPILOT_BENCH_RECORDS=1 adds the slow records-shaped upload);
# 2. the seed baseline, median of 5 (needs Debian's python3-numpy), and the
#    ratio of the end-to-end median to it: both ran on the same machine
#    within minutes, so the ratio carries less of the machine's noise;
#    (SOPILOT_BENCH_ONLY_BINARIES=1 skips steps 1 and 2)
# 3. when a Slurm cluster's environment is set (eval "$(hack/slurm/cluster.sh env)"),
#    the real binaries: a controller pinned to CPU 0 and the CLI to CPU 1
#    (taskset, when there are two CPUs), `sopilot results upload` of both
#    files (parsing included), `sopilot compare`, the CPU time of each
#    upload in the CLI and in the controller, and the controller's peak
#    resident memory (VmHWM) at the end; 5 rounds, medians.
# The 1-minute load average is printed before and after each step.
set -euo pipefail
cd "$(dirname "$0")/../../.."
dir=$(mktemp -d)
ctl_pid=
cleanup() {
	if [[ -n $ctl_pid ]]; then kill "$ctl_pid" 2>/dev/null || true; wait "$ctl_pid" 2>/dev/null || true; fi
	rm -rf "$dir"
}
trap cleanup EXIT
median() { sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
load() { echo "load average ($1): $(cut -d' ' -f1-3 /proc/loadavg)"; }

SOPILOT_UPLOAD_BENCH_DATA=$dir go test -count=1 -run '^TestWriteUploadBenchmarkData$' ./internal/api/ >/dev/null
# SOPILOT_BENCH_ONLY_BINARIES=1 skips the Go benchmarks (step 1).
benches='ReportRunResults1M/columns|UploadAndCompare1M|CompareRuns1M|ResultsPickup1M'
[[ -z ${SOPILOT_BENCH_RECORDS:-} ]] || benches='ReportRunResults1M|UploadAndCompare1M|CompareRuns1M|ResultsPickup1M'
if [[ -z ${SOPILOT_BENCH_ONLY_BINARIES:-} ]]; then
	go test -c -o "$dir/api.test" ./internal/api/
	load "before the Go benchmarks"
	(cd internal/api && "$dir/api.test" -test.run '^$' -test.bench "$benches" -test.benchtime 3x -test.count 5) | tee "$dir/go.txt"
	load "after the Go benchmarks"
fi
touch "$dir/go.txt"
for name in $(awk '/^Benchmark/ {print $1}' "$dir/go.txt" | sort -u); do
	printf 'median %s: %s ms' "$name" "$(awk -v n="$name" '$1 == n {print $3 / 1e6}' "$dir/go.txt" | median)"
	for unit in upload-baseline-ms upload-candidate-ms compare-ms peak-heap-MiB; do
		v=$(awk -v n="$name" -v u="$unit" '$1 == n {for (i = 4; i < NF; i++) if ($(i + 1) == u) print $i}' "$dir/go.txt" | median)
		[[ -n $v ]] && printf ', %s %s' "$unit" "$v"
	done
	echo
done

if [[ -z ${SOPILOT_BENCH_ONLY_BINARIES:-} ]]; then
	seed_ms=$(/usr/bin/python3 internal/api/testdata/seed_compare_jsonl.py --baseline "$dir/baseline.jsonl" --candidate "$dir/candidate.jsonl" --repeat 5 |
		awk '/median_seconds/ {gsub(",", ""); printf "%.0f", $2 * 1000}')
	echo "seed baseline (read both files + arithmetic): median $seed_ms ms"
	load "after the seed baseline"
	e2e_ms=$(awk '$1 ~ /^BenchmarkUploadAndCompare1M/ {print $3 / 1e6}' "$dir/go.txt" | median)
	[[ -z $e2e_ms ]] || awk -v e="$e2e_ms" -v s="$seed_ms" 'BEGIN {printf "ratio end to end / seed baseline: %.2f\n", e / s}'
fi

if [[ -z ${SLURM_CONF:-} ]]; then
	echo "no Slurm environment: skipping the real controller (eval \"\$(hack/slurm/cluster.sh env)\")"
	exit 0
fi
go build -o "$dir/controller" ./cmd/controller
go build -o "$dir/sopilot" ./cmd/sopilot
workdir=$dir/work
mkdir -p "$workdir"
# The controller on one CPU and the client on the other, so that the
# controller's figures are those of one core of its own.
pin_ctl=() pin_cli=()
if command -v taskset >/dev/null && [[ $(nproc) -ge 2 ]]; then
	pin_ctl=(taskset -c 0) pin_cli=(taskset -c 1)
fi
"${pin_ctl[@]}" "$dir/controller" --db "$dir/controller.db" --grpc-addr 127.0.0.1:0 --metrics-addr "" --poll-interval 5s \
	--default-workdir "$workdir" --remediation dry-run --insecure >"$dir/controller.log" 2>&1 &
ctl_pid=$!
for _ in $(seq 100); do
	addr=$(grep -o 'controller listening on [^ ]*' "$dir/controller.log" | awk '{print $4}' || true)
	[[ -n $addr ]] && break
	sleep 0.1
done
export SOPILOT_CONTROLLER=$addr SOPILOT_INSECURE=true
load "before the real binaries"
# CPU time (user + system) of the controller so far, and of each CLI
# upload (bash's time): unlike wall time, it hardly moves with the load.
ctl_cpu_ms() { awk -v hz="$(getconf CLK_TCK)" '{print int(($14 + $15) * 1000 / hz)}' "/proc/$ctl_pid/stat"; }
TIMEFORMAT='%U %S'
for round in 1 2 3 4 5; do
	base=$("$dir/sopilot" run submit --job-name up-base --time 1m -o json -- true | awk -F'"' '/"id"/ {print $4; exit}')
	cand=$("$dir/sopilot" run submit --job-name up-cand --time 1m -o json -- true | awk -F'"' '/"id"/ {print $4; exit}')
	c0=$(ctl_cpu_ms)
	t0=$(date +%s%N)
	{ time "${pin_cli[@]}" "$dir/sopilot" results upload "$base" "$dir/baseline.jsonl" >/dev/null 2>&1; } 2>>"$dir/cli-cpu.txt"
	t1=$(date +%s%N)
	c1=$(ctl_cpu_ms)
	{ time "${pin_cli[@]}" "$dir/sopilot" results upload "$cand" "$dir/candidate.jsonl" >/dev/null 2>&1; } 2>>"$dir/cli-cpu.txt"
	t2=$(date +%s%N)
	c2=$(ctl_cpu_ms)
	echo "$((c1 - c0)) $((c2 - c1))" >>"$dir/ctl-cpu.txt"
	"${pin_cli[@]}" "$dir/sopilot" compare "$base" "$cand" --metric correct:higher --metric loss:lower --seed 1 >/dev/null
	t3=$(date +%s%N)
	echo "$(((t1 - t0) / 1000000)) $(((t2 - t1) / 1000000)) $(((t3 - t2) / 1000000)) $(((t3 - t0) / 1000000))" >>"$dir/cli.txt"
done
for col in 1 2 3 4; do
	label=$(echo "upload-baseline upload-candidate compare end-to-end" | cut -d' ' -f"$col")
	printf 'real binaries, %s (CLI, file parse included): median %s ms\n' "$label" "$(awk -v c="$col" '{print $c}' "$dir/cli.txt" | median)"
done
echo "real binaries, CPU per upload: CLI median $(awk '{print int(($1 + $2) * 1000)}' "$dir/cli-cpu.txt" | median) ms, controller median $(tr ' ' '\n' <"$dir/ctl-cpu.txt" | median) ms"
if [[ -n ${seed_ms:-} ]]; then
	awk -v e="$(awk '{print $4}' "$dir/cli.txt" | median)" -v s="$seed_ms" 'BEGIN {printf "ratio real binaries end to end / seed baseline: %.2f\n", e / s}'
fi
load "after the real binaries"
echo "controller peak resident memory after 10 uploads and 5 comparisons: $(awk '/VmHWM/ {print $2 / 1024 " MiB"}' "/proc/$ctl_pid/status")"
