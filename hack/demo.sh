#!/usr/bin/env bash
# make demo: the seed tutorial's workflow, for real, on a local Slurm cluster.
#  Part 1: the seed's job shape (2 nodes x 8 tasks, 8 GPUs each) submitted
#  through the controller's gRPC API, watched to completion, and its history
#  read back after the controller is killed with SIGKILL and restarted.
#  Part 2: the seed's workflow with the sopilot CLI (examples/finetune/), as
#  one pipeline submission: save the original model -> DDP fine-tuning on 2
#  nodes x 8 tasks (gloo on CPU, NCCL on GPUs) with live progress -> inference
#  of the original and the trained model on the same test set -> sopilot
#  compare, with the report saved as JSON.
#  One node agent per Slurm node streams (simulated, labelled so) GPU and IB
#  telemetry and the training progress to the controller.
# DEMO_KEEP=1 leaves the cluster, the controller and the agents running so
# the history can be queried (SOPILOT_CONTROLLER is printed); make demo-down
# stops them.
# Slurm 24.11 by default (SOPILOT_SLURM_VERSION=22.05 or 26.05 picks another
# version): as on Soperator, slurmd runs with --instance-id, each agent names
# its machine and the controller maps it to its Slurm node through Slurm's
# own record. On 24.11 and 26.05 the jobs run inside the cluster's Debian
# chroot, so Python, PyTorch and scikit-learn are installed there
# (cluster.sh --packages: once, then cached); on 22.05 on the host.
# Run as root on Debian. It installs what is missing, starts what it needs and
# stops what it started; it exits non-zero if any step fails.
# docs/demo.md walks through it step by step.
set -euo pipefail
cd "$(dirname "$0")/.."
t_start=$(date +%s)
[ "$(id -u)" = 0 ] || { echo "make demo starts a local Slurm cluster and needs root" >&2; exit 1; }

source hack/demo-lib.sh
work=$(mktemp -d /tmp/sopilot-demo.XXXXXX)
chmod 755 "$work"
ctl_pid=
runs=()   # runs submitted in part 2: cancelled if the demo stops early
keep=${DEMO_KEEP:-0}
state_file=/tmp/sopilot-demo.state   # what make demo-down stops
export SOPILOT_SLURM_VERSION=${SOPILOT_SLURM_VERSION:-24.11}   # every cluster.sh call below
cleanup() {
  local rc=$? r p
  if [ "$rc" != 0 ] && [ -n "$ctl_pid" ]; then
    for r in "${runs[@]}"; do bin/sopilot run cancel "$r" >/dev/null 2>&1 || true; done
  fi
  if [ "$rc" = 0 ] && [ "$keep" = 1 ]; then
    { echo "pids=\"$ctl_pid ${agent_pids[*]}\""; echo "started_cluster=$started_cluster"
      echo "slurm_version=$SOPILOT_SLURM_VERSION"; } >"$state_file"
    echo "left running (DEMO_KEEP=1): controller on $SOPILOT_CONTROLLER and ${#agent_pids[@]} agents; try:"
    echo "  export SOPILOT_CONTROLLER=$SOPILOT_CONTROLLER SOPILOT_INSECURE=true; bin/sopilot run list; bin/sopilot nodes"
    echo "make demo-down stops them"
  else
    for p in "${agent_pids[@]}"; do kill "$p" 2>/dev/null || true; done
    [ -n "$ctl_pid" ] && kill "$ctl_pid" 2>/dev/null && wait "$ctl_pid" 2>/dev/null || true
    [ "$started_cluster" = 1 ] && hack/slurm/cluster.sh down >/dev/null || true
    echo "history kept in $work/controller.db (bin/controller --insecure --db $work/controller.db & SOPILOT_INSECURE=true bin/sopilot run list)"
  fi
  echo "demo files kept in $work"
  if [ "$rc" = 0 ]; then
    echo "make demo: OK in $(( $(date +%s) - t_start ))s"
  else
    printf '\033[1mmake demo: FAILED (exit %s) after %ss; controller log: %s\033[0m\n' "$rc" "$(( $(date +%s) - t_start ))" "$work/controller.log" >&2
  fi
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "tools and the local Slurm $SOPILOT_SLURM_VERSION cluster"
demo_cluster

addr=127.0.0.1:$(free_port)
metrics_addr=127.0.0.1:$(free_port)
export SOPILOT_CONTROLLER=$addr
# The demo's controller serves plaintext without authentication (--insecure),
# as a local development controller does; the CLI must say so too.
export SOPILOT_INSECURE=true
start_controller() {
  bin/controller --db "$work/controller.db" --grpc-addr "$addr" --metrics-addr "$metrics_addr" \
    --poll-interval 2s --default-workdir "$work" --insecure >>"$work/controller.log" 2>&1 &
  ctl_pid=$!
  for _ in $(seq 50); do
    kill -0 "$ctl_pid" 2>/dev/null || break
    bin/grpcurl -plaintext "$addr" grpc.health.v1.Health/Check >/dev/null 2>&1 && return
    sleep 0.2
  done
  echo "controller did not start; log:" >&2; tail -20 "$work/controller.log" >&2; exit 1
}
step "controller (log: $work/controller.log)"
start_controller
bin/grpcurl -plaintext "$addr" list

step "one node agent per Slurm node (GPUs and InfiniBand SIMULATED: no GPU here)"
# Each agent names its machine as on Soperator (machine_of); the controller
# maps them back.
start_agents "$addr" "$work"
bin/sopilot nodes
if [ -n "$SOPILOT_SLURM_INSTANCES" ]; then
  echo "-- Slurm's record of worker-0 (slurmd --instance-id, as Soperator starts it) and sopilot's view of it:"
  scontrol show node worker-0 | grep -o 'InstanceId=[^ ]*'
  bin/sopilot node get worker-0 | sed -n '1,/^$/p'   # its header; the GPUs and IB ports follow
fi

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
run_state=$(bin/grpcurl -plaintext -d "{\"run_id\": \"$run_id\"}" "$addr" sopilot.api.v1.RunService/GetRun | jq -r .run.state)
[ "$run_state" = RUN_STATE_COMPLETED ] || { echo "run $run_id ended $run_state, not RUN_STATE_COMPLETED" >&2; exit 1; }

step "kill -9 the controller, restart it, read the history back"
kill -9 "$ctl_pid"; wait "$ctl_pid" 2>/dev/null || true; ctl_pid=
start_controller
bin/grpcurl -plaintext -d '{"labels": {"demo": "seed"}}' "$addr" sopilot.api.v1.RunService/ListRuns |
  grep -E '"(id|state|slurmJobId|exitCode|outputPath)"'

step "the job's output"
out=$(bin/grpcurl -plaintext -d "{\"run_id\": \"$run_id\"}" "$addr" sopilot.api.v1.RunService/GetRun | sed -n 's/.*"outputPath": "\(.*\)".*/\1/p')
# Slurm may report the job COMPLETED a moment before the last task's line
# reaches the file: wait (up to 10 s) for all 16.
for _ in $(seq 50); do [ "$(wc -l <"$out")" -ge 16 ] && break; sleep 0.2; done
sort -k2,2n "$out"

# ---------------------------------------------------------------------------
# Part 2: the seed tutorial's workflow with the sopilot CLI. Every job runs
# /usr/bin/python3 on examples/finetune/ and writes into $work/models (the
# seed's /mnt/inference/original and /mnt/training) and $work/results (the
# seed's /mnt/inference/results): a directory every node can read and write.
ex=$PWD/examples/finetune
models=$work/models
results=$work/results
mkdir -p "$models" "$results"
epochs=${DEMO_EPOCHS:-30}
tag=$(date +%s)

# watch RUN: sopilot run watch, which exits 1 unless the run COMPLETED.
watch_run() {
  bin/sopilot run watch "$1" || {
    echo "run $1 did not complete; the end of its output:" >&2
    bin/sopilot run logs --tail 3000 "$1" >&2 || true
    return 1
  }
}

step "seed step 1-3: the whole workflow as one pipeline (Slurm afterok dependencies chain it)"
pipeline=$work/pipeline.json
jq -n --arg py "$py" --arg ex "$ex" --arg models "$models" --arg results "$results" --arg epochs "$epochs" '
  def spec(cmd): {time_limit: "600s", labels: {demo: "finetune"}, argv: cmd};
  {name: "seed-finetune", steps: [
    {name: "save-original", spec: spec([$py, "\($ex)/save_original.py", "--out", $models])},
    {name: "training-with-original", after: ["save-original"],
     spec: (spec([$py, "\($ex)/train.py", "--init", "\($models)/original.pt", "--out", "\($models)/trained.pt", "--epochs", $epochs])
            + {nodes: 2, tasks_per_node: 8, gpus_per_node: 8})},
    {name: "inference-original", after: ["training-with-original"],
     spec: (spec([$py, "\($ex)/infer.py", "--model", "\($models)/original.pt", "--results", "\($results)/original.jsonl"])
            + {results_path: "\($results)/original.jsonl"})},
    {name: "inference-trained", after: ["training-with-original"],
     spec: (spec([$py, "\($ex)/infer.py", "--model", "\($models)/trained.pt", "--results", "\($results)/trained.jsonl"])
            + {results_path: "\($results)/trained.jsonl"})}]}' >"$pipeline"
echo "pipeline file: $pipeline"
bin/sopilot run pipeline -f "$pipeline" --request-id "demo-$tag" -o json >"$work/pipeline-runs.json"
step_id() { jq -r --arg s "$1" '.[$s].id' "$work/pipeline-runs.json"; }
save=$(step_id save-original); train=$(step_id training-with-original)
infer_orig=$(step_id inference-original); infer_trained=$(step_id inference-trained)
runs+=("$save" "$train" "$infer_orig" "$infer_trained")
bin/sopilot run list --label pipeline=seed-finetune

step "seed step 1: save the original model (run $save)"
watch_run "$save"
bin/sopilot run logs "$save"

step "seed step 2: distributed fine-tuning, 2 nodes x 8 tasks, DDP (run $train), with live progress"
watch_run "$train"
echo "-- sopilot run logs $train | tail -n 12"
bin/sopilot run logs "$train" | tail -n 12
echo "--"
bin/sopilot run get "$train"
bin/sopilot nodes

step "seed step 3: inference of the original and the trained model on the same test set"
for r in "$infer_orig" "$infer_trained"; do
  watch_run "$r"
  bin/sopilot run logs "$r"
  # The controller stores results_path when the run completes; a problem with
  # the file does not fail the run, it leaves its reason.
  reason=$(bin/sopilot run get -o json "$r" | jq -r '.reason // ""')
  [ -z "$reason" ] || { echo "run $r: $reason" >&2; exit 1; }
done

step "seed step 4: compare the runs (baseline: original, candidate: trained)"
bin/sopilot compare "$infer_orig" "$infer_trained" --metric correct:higher --metric loss:lower --seed 1
bin/sopilot compare "$infer_orig" "$infer_trained" --metric correct:higher --metric loss:lower --seed 1 -o json >"$work/compare.json"
jq -r .reportJson "$work/compare.json" >"$results/comparison_report.json"
verdict=$(jq -r .verdict "$work/compare.json")
echo
echo "report (the seed's comparison_report.json): $results/comparison_report.json; its seed-style fields:"
jq '{verdict, original_model, trained_model, differences}' "$results/comparison_report.json"
echo "verdict: $verdict"
for f in original trained; do
  jq -r --arg f "$f" 'select(.run_metrics) | .run_metrics | "accuracy of the \($f) model: \(.accuracy * 10000 | round / 100)% on \(.samples) test samples"' "$results/$f.jsonl"
done
[ "$verdict" = VERDICT_IMPROVED ] || { echo "fine-tuning did not improve the model (verdict $verdict)" >&2; exit 1; }
