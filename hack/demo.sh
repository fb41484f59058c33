#!/usr/bin/env bash
# make demo: the seed tutorial's distributed job shape (2 nodes x 8 tasks,
# 8 GPUs each) submitted through the controller's gRPC API to a local Slurm
# cluster, watched to completion, and its history read back after the
# controller is killed with SIGKILL and restarted. Run as root on Debian.
# It installs what is missing, starts what it needs and stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "make demo starts a local Slurm cluster and needs root" >&2; exit 1; }

work=$(mktemp -d /tmp/sopilot-demo.XXXXXX)
chmod 755 "$work"
started_cluster=0
ctl_pid=
cleanup() {
  [ -n "$ctl_pid" ] && kill "$ctl_pid" 2>/dev/null && wait "$ctl_pid" 2>/dev/null || true
  [ "$started_cluster" = 1 ] && hack/slurm/cluster.sh down >/dev/null || true
  echo "demo files kept in $work"
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "tools and the local Slurm cluster"
command -v jq >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq jq; }
make --no-print-directory tools build >/dev/null
if ! hack/slurm/cluster.sh status >/dev/null 2>&1; then started_cluster=1; hack/slurm/cluster.sh up >/dev/null; fi
eval "$(hack/slurm/cluster.sh env)"
sinfo

addr=127.0.0.1:50051
start_controller() {
  bin/controller --db "$work/controller.db" --grpc-addr "$addr" --metrics-addr 127.0.0.1:9477 \
    --poll-interval 2s --default-workdir "$work" >>"$work/controller.log" 2>&1 &
  ctl_pid=$!
  for _ in $(seq 50); do bin/grpcurl -plaintext "$addr" grpc.health.v1.Health/Check >/dev/null 2>&1 && return; sleep 0.2; done
  echo "controller did not start; log:" >&2; tail -20 "$work/controller.log" >&2; exit 1
}
step "controller (log: $work/controller.log)"
start_controller
bin/grpcurl -plaintext "$addr" list

step "CreateRun: the seed's job shape, 2 nodes x 8 tasks, --gres=gpu:8"
req=$(cat <<JSON
{"request_id": "demo-$(date +%s)",
 "spec": {"job_name": "training-with-original", "nodes": 2, "tasks_per_node": 8, "gpus_per_node": 8,
          "time_limit": "600s", "labels": {"demo": "seed"},
          "script": "srun bash -c 'echo rank \$SLURM_PROCID of \$SLURM_NTASKS on \$SLURMD_NODENAME, GPUs \$CUDA_VISIBLE_DEVICES'\n"}}
JSON
)
created=$(bin/grpcurl -plaintext -d "$req" "$addr" sopilot.api.v1.RunService/CreateRun)
echo "$created"
run_id=$(sed -n 's/^    "id": "\(r-[a-z0-9]*\)".*/\1/p' <<<"$created" | head -1)
echo "retrying the same request_id returns the same run:"
bin/grpcurl -plaintext -d "$req" "$addr" sopilot.api.v1.RunService/CreateRun | grep -E '"(id|slurmJobId)"'

step "WatchRun $run_id until it ends"
bin/grpcurl -plaintext -d "{\"run_id\": \"$run_id\"}" "$addr" sopilot.api.v1.RunService/WatchRun |
  grep -E '"(state|slurmState|nodeList|exitCode)"' || true

step "kill -9 the controller, restart it, read the history back"
kill -9 "$ctl_pid"; wait "$ctl_pid" 2>/dev/null || true; ctl_pid=
start_controller
bin/grpcurl -plaintext -d '{"labels": {"demo": "seed"}}' "$addr" sopilot.api.v1.RunService/ListRuns |
  grep -E '"(id|state|slurmJobId|exitCode|outputPath)"'

step "the job's output"
out=$(bin/grpcurl -plaintext -d "{\"run_id\": \"$run_id\"}" "$addr" sopilot.api.v1.RunService/GetRun | sed -n 's/.*"outputPath": "\(.*\)".*/\1/p')
sort -k2,2n "$out"
