#!/usr/bin/env bash
# agentbench: the node agent's CPU and memory at 1 Hz with 8 simulated GPUs
# and 8 simulated InfiniBand ports, streaming to a real controller.
#
#   hack/agentbench.sh [SECONDS [REPS]]     (defaults: 60 s, 3 repetitions)
#
# Per repetition it starts a fresh controller (temporary bbolt file, its own
# port, no metrics listener) and two agents against it, both with
# --nvml sim --ib sim --nccl sim: "1s" samples every second (the product's
# default), "10s" samples every 10 s (the baseline: the Go runtime, the
# gRPC connection and the admin listener, with a tenth of the sampling), and
# "1s-fixedib" samples every second but reads a still copy of the simulated
# InfiniBand tree through the sysfs code path (--ib sysfs): --ib sim rewrites
# every counter file of the tree before each sample, work a real node never
# does, and this separates it out. No run is assigned, so the /proc scan that
# attributes simulated GPUs to jobs (every 2 s while runs are assigned) and
# progress tailing stay idle. After a warm-up it reads each process's utime+stime from
# /proc/<pid>/stat at the start and end of the window (CPU % of one core) and
# VmRSS and VmHWM from /proc/<pid>/status at the end. The controller's CPU is
# reported too. Prints one row per repetition and a median/min/max summary.
# Needs the local Slurm cluster's environment only for the controller's
# --slurm-conf; runs as any user.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-${AGENTBENCH_SECONDS:-60}}
REPS=${2:-${AGENTBENCH_REPS:-3}}
WARMUP=${AGENTBENCH_WARMUP:-10}

tmp=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

go build -o "$tmp/bin/" ./cmd/controller ./cmd/node-agent
if [ -z "${SLURM_CONF:-}" ]; then eval "$(hack/slurm/cluster.sh env)"; fi

# freeport prints a TCP port nothing listens on now, below the ephemeral
# range (32768 and up) so that no outgoing connection can take it before
# the controller binds it.
freeport() {
	local p
	while :; do
		p=$((20000 + RANDOM % 12000))
		if ! ss -ltnH "sport = :$p" | grep -q .; then echo "$p"; return; fi
	done
}

# ticks PID: utime+stime in clock ticks.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# kib PID FIELD: a "VmRSS:"-style field of /proc/PID/status in KiB.
kib() { awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/status"; }

hz=$(getconf CLK_TCK)
rows="$tmp/rows"
: >"$rows"
for rep in $(seq 1 "$REPS"); do
	gport=$(freeport)
	"$tmp/bin/controller" --insecure --grpc-addr "127.0.0.1:$gport" --metrics-addr '' --db "$tmp/c$rep/controller.db" \
		--slurm-conf "$SLURM_CONF" --log-level warn >"$tmp/controller$rep.log" 2>&1 &
	cpid=$!
	pids+=("$cpid")
	for _ in $(seq 100); do ss -ltnH "sport = :$gport" | grep -q . && break; sleep 0.1; done
	declare -A apid=()
	for who in 1s 10s 1s-fixedib; do
		iv=${who%%-*}
		ib=(--ib sim)
		if [ "$who" = 1s-fixedib ]; then
			# A still copy of the 1 s agent's simulated tree, read through
			# the real sysfs code path: the agent's own cost without the
			# simulator rewriting ~300 counter files a second.
			for _ in $(seq 50); do [ -d "$tmp/a$rep-1s/ib-sim/class" ] && break; sleep 0.1; done
			sleep 1
			cp -a "$tmp/a$rep-1s/ib-sim" "$tmp/fixedib$rep"
			ib=(--ib sysfs --sysfs-root "$tmp/fixedib$rep")
		fi
		mkdir -p "$tmp/a$rep-$who"
		"$tmp/bin/node-agent" --insecure --controller "127.0.0.1:$gport" --nvml sim "${ib[@]}" --nccl sim \
			--node-name "bench-$who" --interval "$iv" --state-dir "$tmp/a$rep-$who" \
			--admin-addr 127.0.0.1:0 --log-level warn >"$tmp/agent$rep-$who.log" 2>&1 &
		apid[$who]=$!
		pids+=("$!")
	done
	sleep "$WARMUP"
	for p in "$cpid" "${apid[@]}"; do
		kill -0 "$p" 2>/dev/null || { echo "process $p died; logs:" >&2; tail -n 20 "$tmp"/*.log >&2; exit 1; }
	done
	declare -A t0=()
	for p in "$cpid" "${apid[@]}"; do t0[$p]=$(ticks "$p"); done
	w0=$(date +%s.%N)
	sleep "$DURATION"
	w1=$(date +%s.%N)
	for who in 1s 10s 1s-fixedib; do
		p=${apid[$who]}
		awk -v rep="$rep" -v who="agent-$who" -v d="$(ticks "$p")" -v s="${t0[$p]}" -v hz="$hz" -v w0="$w0" -v w1="$w1" \
			-v rss="$(kib "$p" VmRSS)" -v hwm="$(kib "$p" VmHWM)" \
			'BEGIN {printf "%s %s %.3f %.1f %.1f\n", who, rep, 100 * (d - s) / hz / (w1 - w0), rss / 1024, hwm / 1024}' >>"$rows"
	done
	awk -v rep="$rep" -v d="$(ticks "$cpid")" -v s="${t0[$cpid]}" -v hz="$hz" -v w0="$w0" -v w1="$w1" \
		-v rss="$(kib "$cpid" VmRSS)" -v hwm="$(kib "$cpid" VmHWM)" \
		'BEGIN {printf "controller %s %.3f %.1f %.1f\n", rep, 100 * (d - s) / hz / (w1 - w0), rss / 1024, hwm / 1024}' >>"$rows"
	# The controller must have acked the 1 s agent's batches all along.
	if grep -qi 'level=error' "$tmp/agent$rep-1s.log"; then
		echo "agent errors:" >&2
		grep -i 'level=error' "$tmp/agent$rep-1s.log" | tail -n 5 >&2
	fi
	for p in "${apid[@]}" "$cpid"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
	pids=()
done

echo "node agent, 8 simulated GPUs + 8 simulated IB ports, ${DURATION} s windows after ${WARMUP} s warm-up, $REPS repetitions"
printf '%-18s %4s %10s %10s %10s\n' process rep 'CPU%core' 'RSS MiB' 'HWM MiB'
sort -k1,1 -k2,2n "$rows" | awk '{printf "%-18s %4s %10.3f %10.1f %10.1f\n", $1, $2, $3, $4, $5}'
echo
printf '%-18s %-24s %-24s %-24s\n' process 'CPU%core med [min-max]' 'RSS MiB med [min-max]' 'HWM MiB med [min-max]'
for who in agent-1s agent-10s agent-1s-fixedib controller; do
	line=$(awk -v w="$who" '$1 == w' "$rows")
	col() { echo "$line" | awk -v c="$1" '{print $c}' | sort -g | awk -v f="$2" '{v[NR] = $1} END {printf f " [" f "-" f "]", v[int((NR + 1) / 2)], v[1], v[NR]}'; }
	printf '%-18s %-24s %-24s %-24s\n' "$who" "$(col 3 %.3f)" "$(col 4 %.1f)" "$(col 5 %.1f)"
done
med() { awk -v w="$1" -v c="$2" '$1 == w {print $c}' "$rows" | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
awk -v a="$(med agent-1s 3)" -v b="$(med agent-10s 3)" -v r="$(med agent-1s 4)" -v h="$(med agent-1s 5)" -v f="$(med agent-1s-fixedib 3)" 'BEGIN {
	printf "\nagent at 1 Hz: %.3f%% of a core (goal <= 1%%: %s), RSS %.1f MiB, peak %.1f MiB (goal <= 30 MiB: %s)\n",
		a, (a <= 1 ? "met" : "MISSED"), r, h, (h <= 30 ? "met" : "MISSED")
	printf "ratio 1 Hz / 0.1 Hz baseline CPU: %.2fx; per-sample cost ~%.3f%% of a core\n", (b > 0 ? a / b : 0), (a - b) / 0.9
	printf "agent at 1 Hz reading a still IB tree (no simulator writes): %.3f%% of a core (goal <= 1%%: %s); the simulator costs %.3f%%\n",
		f, (f <= 1 ? "met" : "MISSED"), a - f
}'
