#!/usr/bin/env bash
# Times results upload and the end-to-end path (upload both runs, then
# CompareRuns) on 1,000,000 samples a run, beside the seed's path on the
# same samples: reading both results files and its comparison arithmetic
# (seed_compare_jsonl.py). Run from anywhere:
#
#   internal/api/testdata/bench_upload_seed.sh
#
# 1. the Go benchmarks over a loopback socket (5 counts of 3 iterations),
#    with their medians;
# 2. the seed baseline, median of 5 (needs Debian's python3-numpy);
#    (SOPILOT_BENCH_ONLY_BINARIES=1 skips them)
# 3. when a Slurm cluster's environment is set (eval "$(hack/slurm/cluster.sh env)"),
#    the real binaries: a controller, `sopilot results upload` of both files
#    (parsing included), `sopilot compare`, and the controller's peak
#    resident memory (VmHWM) at the end; 5 rounds, medians.
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

SOPILOT_UPLOAD_BENCH_DATA=$dir go test -count=1 -run '^TestWriteUploadBenchmarkData$' ./internal/api/ >/dev/null
# SOPILOT_BENCH_ONLY_BINARIES=1 skips the Go benchmarks (step 1).
[[ -n ${SOPILOT_BENCH_ONLY_BINARIES:-} ]] || go test -run '^$' -bench 'ReportRunResults1M|UploadAndCompare1M' -benchtime 3x -count 5 ./internal/api/ | tee "$dir/go.txt"
touch "$dir/go.txt"
for name in $(awk '/^Benchmark/ {print $1}' "$dir/go.txt" | sort -u); do
	printf 'median %s: %s ms' "$name" "$(awk -v n="$name" '$1 == n {print $3 / 1e6}' "$dir/go.txt" | median)"
	for unit in upload-baseline-ms upload-candidate-ms compare-ms peak-heap-MiB; do
		v=$(awk -v n="$name" -v u="$unit" '$1 == n {for (i = 4; i < NF; i++) if ($(i + 1) == u) print $i}' "$dir/go.txt" | median)
		[[ -n $v ]] && printf ', %s %s' "$unit" "$v"
	done
	echo
done

/usr/bin/python3 internal/api/testdata/seed_compare_jsonl.py --baseline "$dir/baseline.jsonl" --candidate "$dir/candidate.jsonl" --repeat 5 |
	awk '/median_seconds/ {gsub(",", ""); printf "seed baseline (read both files + arithmetic): median %.0f ms\n", $2 * 1000}'

if [[ -z ${SLURM_CONF:-} ]]; then
	echo "no Slurm environment: skipping the real controller (eval \"\$(hack/slurm/cluster.sh env)\")"
	exit 0
fi
go build -o "$dir/controller" ./cmd/controller
go build -o "$dir/sopilot" ./cmd/sopilot
workdir=$dir/work
mkdir -p "$workdir"
"$dir/controller" --db "$dir/controller.db" --grpc-addr 127.0.0.1:0 --metrics-addr "" --poll-interval 5s \
	--default-workdir "$workdir" --remediation dry-run --insecure >"$dir/controller.log" 2>&1 &
ctl_pid=$!
for _ in $(seq 100); do
	addr=$(grep -o 'controller listening on [^ ]*' "$dir/controller.log" | awk '{print $4}' || true)
	[[ -n $addr ]] && break
	sleep 0.1
done
export SOPILOT_CONTROLLER=$addr SOPILOT_INSECURE=true
for round in 1 2 3 4 5; do
	base=$("$dir/sopilot" run submit --job-name up-base --time 1m -o json -- true | awk -F'"' '/"id"/ {print $4; exit}')
	cand=$("$dir/sopilot" run submit --job-name up-cand --time 1m -o json -- true | awk -F'"' '/"id"/ {print $4; exit}')
	t0=$(date +%s%N)
	"$dir/sopilot" results upload "$base" "$dir/baseline.jsonl" >/dev/null 2>&1
	t1=$(date +%s%N)
	"$dir/sopilot" results upload "$cand" "$dir/candidate.jsonl" >/dev/null 2>&1
	t2=$(date +%s%N)
	"$dir/sopilot" compare "$base" "$cand" --metric correct:higher --metric loss:lower --seed 1 >/dev/null
	t3=$(date +%s%N)
	echo "$(((t1 - t0) / 1000000)) $(((t2 - t1) / 1000000)) $(((t3 - t2) / 1000000)) $(((t3 - t0) / 1000000))" >>"$dir/cli.txt"
done
for col in 1 2 3 4; do
	label=$(echo "upload-baseline upload-candidate compare end-to-end" | cut -d' ' -f"$col")
	printf 'real binaries, %s (CLI, file parse included): median %s ms\n' "$label" "$(awk -v c="$col" '{print $c}' "$dir/cli.txt" | median)"
done
echo "controller peak resident memory after 10 uploads and 5 comparisons: $(awk '/VmHWM/ {print $2 / 1024 " MiB"}' "/proc/$ctl_pid/status")"
