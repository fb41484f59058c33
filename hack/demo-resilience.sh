#!/usr/bin/env bash
# make demo-resilience: a training run that survives a GPU fault.
#  The fine-tuning of examples/finetune/ runs twice, 1 node x 8 tasks, each
#  job training and then scoring its model on the test set (results_path):
#   1. undisturbed, the baseline;
#   2. with a retry policy (2 attempts on HARDWARE), checkpointing every few
#      steps. In the middle of its training an XID 79 is injected on its
#      node's agent: remediation drains the node, sopilot cancels the job and
#      resubmits it away from the node (attempt 2), and train.py resumes from
#      the last checkpoint (SOPILOT_RESUME_FROM).
#  Then `sopilot compare` shows both models score the same (within noise)
#  and the extra attempt and the GPU-hours lost to the fault; the node is
#  undrained at the end.
# Slurm 24.11 by default, as make demo (SOPILOT_SLURM_VERSION=22.05 or 26.05
# picks another). Needs the cluster to itself (it drains a node). Run as root
# on Debian; it installs what is missing, starts what it needs and stops what
# it started; it exits non-zero naming the step if any step fails.
# docs/resilience.md shows its output.
set -euo pipefail
cd "$(dirname "$0")/.."
t_start=$(date +%s)
[ "$(id -u)" = 0 ] || { echo "make demo-resilience starts a local Slurm cluster and needs root" >&2; exit 1; }

source hack/demo-lib.sh
work=$(mktemp -d /tmp/sopilot-demo-resilience.XXXXXX)
chmod 755 "$work"
ctl_pid=
runs=()
drained=()   # nodes to undrain at the end
export SOPILOT_SLURM_VERSION=${SOPILOT_SLURM_VERSION:-24.11}
cleanup() {
  local rc=$? r p n
  if [ -n "$ctl_pid" ]; then
    [ "$rc" != 0 ] && for r in "${runs[@]}"; do bin/sopilot run cancel "$r" >/dev/null 2>&1 || true; done
    for n in "${drained[@]}"; do
      bin/sopilot node undrain "$n" --force --skip-verification >/dev/null 2>&1 ||
        scontrol update NodeName="$n" State=RESUME 2>/dev/null || true
    done
  fi
  for p in "${agent_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -n "$ctl_pid" ] && kill "$ctl_pid" 2>/dev/null && wait "$ctl_pid" 2>/dev/null || true
  [ "$started_cluster" = 1 ] && hack/slurm/cluster.sh down >/dev/null || true
  echo "demo files and history ($work/controller.db) kept in $work"
  if [ "$rc" = 0 ]; then
    echo "make demo-resilience: OK in $(( $(date +%s) - t_start ))s"
  else
    printf '\033[1mmake demo-resilience: FAILED (exit %s) after %ss; controller log: %s\033[0m\n' "$rc" "$(( $(date +%s) - t_start ))" "$work/controller.log" >&2
  fi
}
trap cleanup EXIT
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
fail() { echo "$*" >&2; exit 1; }

step "tools and the local Slurm $SOPILOT_SLURM_VERSION cluster"
demo_cluster curl
[ -z "$(sinfo -h -t drain,drng,down -o %N)" ] || fail "a node is drained or down; the demo needs both nodes idle: sinfo -R"

addr=127.0.0.1:$(free_port)
export SOPILOT_CONTROLLER=$addr SOPILOT_INSECURE=true
step "controller with remediation on (log: $work/controller.log)"
# A node poll every second: the drain is seen at once. The health-event
# window is short so the node can be undrained at the end.
bin/controller --db "$work/controller.db" --grpc-addr "$addr" --metrics-addr "127.0.0.1:$(free_port)" \
  --poll-interval 1s --node-poll-interval 1s --health-event-window 10s --remediation on \
  --default-workdir "$work" --insecure >>"$work/controller.log" 2>&1 &
ctl_pid=$!
for _ in $(seq 50); do
  bin/grpcurl -plaintext "$addr" grpc.health.v1.Health/Check >/dev/null 2>&1 && break
  kill -0 "$ctl_pid" 2>/dev/null || fail "controller did not start: $(tail -5 "$work/controller.log")"
  sleep 0.2
done

step "one node agent per Slurm node (GPUs SIMULATED; faults injected through each agent's admin API)"
start_agents "$addr" "$work"   # admin[node]: each agent's admin address
bin/sopilot nodes

ex=$PWD/examples/finetune
models=$work/models results=$work/results
mkdir -p "$models" "$results"
epochs=${DEMO_EPOCHS:-30}
every=${DEMO_CHECKPOINT_EVERY:-10}   # steps between checkpoints (and one per epoch)

# spec NAME [RETRY_JSON]: a 1-node x 8-task job that trains from original.pt
# (checkpoints in $work/ckpt-NAME) and then scores the trained model. It
# keeps every checkpoint: the job runs on for a moment after the fault, until
# sopilot cancels it, and here checkpoints come faster than that (a fraction
# of a second apart), so rotating them (train.py keeps 2 by default) would
# delete the one attempt 2 resumes from.
spec() {
  jq -n --arg name "$1" --arg py "$py" --arg ex "$ex" --arg models "$models" --arg results "$results" \
    --arg epochs "$epochs" --arg every "$every" --arg ckpt "$work/ckpt-$1" --argjson retry "${2:-null}" '
    {job_name: "finetune-\($name)", nodes: 1, tasks_per_node: 8, gpus_per_node: 8, time_limit: "900s",
     labels: {demo: "resilience"}, results_path: "\($results)/\($name).jsonl",
     script: ("set -e\n"
       + "srun \($py) \($ex)/train.py --init \($models)/original.pt --out \($models)/\($name).pt --epochs \($epochs) --checkpoint-every \($every) --keep-checkpoints 0 --checkpoint-dir \($ckpt)\n"
       + "\($py) \($ex)/infer.py --model \($models)/\($name).pt --results \($results)/\($name).jsonl\n")}
    + (if $retry then {retry: $retry} else {} end)'
}
submit() {  # submit SPEC_FILE: prints the run id
  local id
  id=$(bin/sopilot run submit -f "$1" -o json | jq -r .id)
  runs+=("$id"); echo "$id"
}
watch_run() {
  bin/sopilot run watch "$1" || { bin/sopilot run logs --tail 3000 "$1" >&2 || true; fail "run $1 did not complete"; }
}

step "save the original model"
save=$(bin/sopilot run submit -o json --job-name save-original --time 00:10:00 --label demo=resilience -- $py "$ex/save_original.py" --out "$models" | jq -r .id)
runs+=("$save")
watch_run "$save" >/dev/null
bin/sopilot run logs "$save"

step "baseline: fine-tuning on 1 node x 8 tasks, undisturbed, then inference"
spec baseline >"$work/baseline.json"
baseline=$(submit "$work/baseline.json")
watch_run "$baseline" >/dev/null
bin/sopilot run logs "$baseline" | grep -E 'world|epoch '"$epochs"'/|accuracy|saved' || true

step "resilient: the same job with a retry policy, checkpoints every $every steps"
spec resilient '{"max_attempts": 2, "causes": ["RETRY_CAUSE_HARDWARE"]}' >"$work/resilient.json"
jq '{retry, script}' "$work/resilient.json"
resilient=$(submit "$work/resilient.json")
# Wait until it is a third of the way through, past a checkpoint (train.py
# checkpoints every 10 steps and at each epoch's end, so the newest line the
# agent sent is often a checkpoint's).
for _ in $(seq 600); do
  r=$(bin/sopilot run get -o json "$resilient")
  step_now=$(jq -r '(.progress.step // "0") | tonumber' <<<"$r")
  total=$(jq -r '(.progress.totalSteps // "0") | tonumber' <<<"$r")
  ckpt_step=$(jq -r '(.attempts[0].checkpointStep // "0") | tonumber' <<<"$r")
  [ "$total" -gt 0 ] && [ "$ckpt_step" -gt 0 ] && [ $((step_now * 3)) -ge "$total" ] && break
  [ "$(jq -r .state <<<"$r")" = RUN_STATE_RUNNING ] || [ "$(jq -r .state <<<"$r")" = RUN_STATE_PENDING ] ||
    fail "run $resilient ended before the fault: $(jq -r .state <<<"$r")"
  sleep 0.5
done
faulty=$(jq -r '.nodes[0]' <<<"$r")
echo "run $resilient at step $step_now/$total on $faulty, last checkpoint at step $ckpt_step"

step "inject an XID 79 (GPU fallen off the bus) on GPU 3 of $faulty"
curl -fsS -X POST -d '{"gpu":3,"kind":"xid","code":79}' "http://${admin[$faulty]}/sim/gpu/faults"
t_fault=$(date +%s.%N)
drained+=("$faulty")
for _ in $(seq 100); do
  sinfo -h -n "$faulty" -o %t | grep -q drain && break
  sleep 0.2
done
sinfo -R
bin/sopilot node incidents "$faulty" | head -5

step "the run resumes on the healthy node from its last checkpoint (attempt 2)"
for _ in $(seq 600); do
  r=$(bin/sopilot run get -o json "$resilient")
  [ "$(jq '.attempts | length' <<<"$r")" -ge 2 ] && [ "$(jq -r '.attempts[1].startTime // ""' <<<"$r")" != "" ] && break
  sleep 0.2
done
echo "attempt 2 started $($py -c "import sys; print(round(float(sys.argv[1]) - float(sys.argv[2]), 1))" "$(date +%s.%N)" "$t_fault") s after the fault, on $(jq -r '.attempts[1].nodeList' <<<"$r")"
watch_run "$resilient"
bin/sopilot run logs "$resilient" | grep -E 'attempt|world|epoch '"$epochs"'/|saved' || true
echo "--"
bin/sopilot run get "$resilient"
r=$(bin/sopilot run get -o json "$resilient")
[ "$(jq '.attempts | length' <<<"$r")" = 2 ] || fail "run $resilient: want 2 attempts, got $(jq '.attempts | length' <<<"$r")"
[ "$(jq -r '.attempts[1].nodeList' <<<"$r")" != "$faulty" ] || fail "attempt 2 ran on the faulty node $faulty"
grep -q "resumed from $work/ckpt-resilient/" "$(jq -r .outputPath <<<"$r")" || fail "attempt 2 did not resume from a checkpoint"

step "compare: baseline (undisturbed) vs resilient (one fault, two attempts)"
# Changes of a loss below 0.001 are floating-point noise (the all-reduce
# sums in another order after the resume), not a different model.
bin/sopilot compare "$baseline" "$resilient" --metric correct:higher --metric loss:lower --min-absolute-improvement 0.001 --seed 1
bin/sopilot compare "$baseline" "$resilient" --metric correct:higher --seed 1 -o json >"$work/compare.json"
verdict=$(jq -r .verdict "$work/compare.json")
acc() { jq -r 'select(.run_metrics) | .run_metrics.accuracy' "$results/$1.jsonl"; }
echo "accuracy: baseline $(acc baseline), resilient $(acc resilient); verdict $verdict"
case $verdict in
  VERDICT_NO_SIGNIFICANT_CHANGE|VERDICT_INCONCLUSIVE) ;;
  *) fail "the resumed run's model differs from the undisturbed one's: $verdict" ;;
esac

step "undrain $faulty (the simulated fault is cleared first)"
curl -fsS -X DELETE "http://${admin[$faulty]}/sim/gpu/faults" >/dev/null
bin/sopilot node undrain "$faulty" --force --skip-verification
drained=()
sinfo
