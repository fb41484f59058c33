#!/usr/bin/env bash
# sweep: controller ingest at 1 Hz for a series of agent counts, with the
# controller and the agents in separate processes so the controller's CPU
# and memory are its own.
#
#   hack/ingestbench/sweep.sh [N ...]     (default: 1000 2500 5000 10000 15000)
#
# Environment: REPS (default 3) runs per N, DURATION (default 30s) window,
# WARMUP (default 20s), PROFILE_DIR: if set, the controller's CPU profile of
# each run is written there (controller-N-rep.pprof, and its live heap at
# the end of the window: controller-N-rep.heap); SERVER_GOGC: the
# controller's GOGC (default 100, Go's default); SERVER_GOMEMLIMIT: its
# soft memory limit (default off; the controller binary sets 90 % of its
# container's limit, 922MiB under the chart's 1Gi); SERVER_GODEBUG: its GODEBUG;
# IB_COUNTERS=false: batches
# without InfiniBand counters; MONITOR=false: the fleet without the health
# monitor attached; TLS=1: mTLS as in production (a test CA, a client
# certificate per agent; see -tls-dir); PIN=1: the controller on CPU 0 and
# the agents on CPU 1 (taskset), so that figures mean the same on any
# 2-core machine; OVERLOAD_LATENCY: the controller's -overload-latency
# (-1ns: overload control off, to measure capacity); RAMP: agents start
# spread over this long (default 5s); RESTART=1: after the window the
# controller restarts on the same address and the agents' reconnection is
# reported.
# One process may hold ~20,000 descriptors here (ulimit -n); one connection
# per agent needs one in each process, so beyond ~19,000 agents pass
# CONNS=<n> to share connections.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPS=${REPS:-3}
DURATION=${DURATION:-30s}
WARMUP=${WARMUP:-20s}
ns=("$@")
[ ${#ns[@]} -gt 0 ] || ns=(1000 2500 5000 10000 15000)

tmp=$(mktemp -d)
spid=
cleanup() {
	if [ -n "$spid" ]; then kill "$spid" 2>/dev/null || true; wait "$spid" 2>/dev/null || true; fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
go build -o "$tmp/ingestbench" ./hack/ingestbench
tlsargs=()
if [ "${TLS:-0}" = 1 ]; then mkdir -p "$tmp/pki"; tlsargs=(-tls-dir "$tmp/pki"); fi
restart=
if [ "${RESTART:-0}" = 1 ]; then restart=-restart; fi
pin0=() pin1=()
if [ "${PIN:-0}" = 1 ]; then pin0=(taskset -c 0) pin1=(taskset -c 1); fi
echo "ulimit -n: $(ulimit -n); $(nproc) CPUs; window $DURATION after $WARMUP warm-up; $REPS runs per N"
header=-header
for n in "${ns[@]}"; do
	for rep in $(seq 1 "$REPS"); do
		prof=()
		if [ -n "${PROFILE_DIR:-}" ]; then mkdir -p "$PROFILE_DIR"; prof=(-cpuprofile "$PROFILE_DIR/controller-$n-$rep.pprof" -memprofile "$PROFILE_DIR/controller-$n-$rep.heap"); fi
		rm -f "$tmp/addr"
		GOGC=${SERVER_GOGC:-100} GOMEMLIMIT=${SERVER_GOMEMLIMIT:-off} GODEBUG=${SERVER_GODEBUG:-} "${pin0[@]}" "$tmp/ingestbench" -role server -monitor="${MONITOR:-true}" -overload-latency "${OVERLOAD_LATENCY:-0}" "${tlsargs[@]}" -addr-file "$tmp/addr" "${prof[@]}" >"$tmp/server.log" 2>&1 &
		spid=$!
		for _ in $(seq 100); do [ -s "$tmp/addr" ] && break; sleep 0.1; done
		"${pin1[@]}" "$tmp/ingestbench" -role agents "${tlsargs[@]}" -connect "$(cat "$tmp/addr")" -server-pid "$spid" -agents "$n" \
			-conns "${CONNS:-0}" -ib-counters="${IB_COUNTERS:-true}" -duration "$DURATION" -warmup "$WARMUP" -ramp "${RAMP:-5s}" $header $restart 2>"$tmp/agents.log" ||
			{ echo "agents failed:" >&2; tail -n 20 "$tmp/agents.log" "$tmp/server.log" >&2; exit 1; }
		header=
		grep -v '^$' "$tmp/agents.log" | tail -n 3 >&2 || true
		kill "$spid"
		wait "$spid" 2>/dev/null || true
		grep '^fleet:\|^memory:' "$tmp/server.log" | sed "s/^/  N=$n: /; s/\$/; load average $(cut -d' ' -f1 /proc/loadavg)/" >&2 || true
		spid=
	done
done
