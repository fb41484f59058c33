#!/usr/bin/env bash
# The monitoring check of make test: sopilot's metrics, rules and dashboard
# against a real Prometheus (Debian's prometheus package; installed when
# missing, never run as a service).
#
#  1. promtool test rules on the rules the chart ships, and promtool check
#     rules on the PrometheusRule the chart renders from them;
#  2. a controller (on the local Slurm cluster of cluster.sh env) and two
#     simulated node agents; promtool check metrics on each /metrics;
#  3. Prometheus on a free port with a temporary config and data directory
#     scrapes them (the agents labelled k8s_node as the chart's
#     ServiceMonitor does); after two scrapes of every target each query of
#     deploy/helm/sopilot/dashboards/sopilot.json must answer without error
#     and with at least one series.
#
# Needs root (apt-get), Go, jq, curl, and the Slurm environment
# (eval "$(hack/slurm/cluster.sh env)").
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
: "${SLURM_CONF:?no Slurm environment: eval \"\$(hack/slurm/cluster.sh env)\" first}"

work=$(mktemp -d)
pids=()
cleanup() {
  local rc=$? p
  for p in "${pids[@]+"${pids[@]}"}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]+"${pids[@]}"}"; do wait "$p" 2>/dev/null || true; done
  if ((rc != 0)); then
    for f in "$work"/*.log; do echo "--- $f"; tail -15 "$f"; done >&2
  fi
  rm -rf "$work"
}
trap cleanup EXIT

echo "-- rules: promtool test rules, and the chart's PrometheusRule"
promtool test rules hack/prometheus/rules_test.yaml
helm=$(command -v helm || echo bin/helm)
"$helm" template sopilot deploy/helm/sopilot --kube-version 1.30.0 --set metrics.prometheusRule.enabled=true \
  --show-only templates/prometheusrule.yaml | sed -n '/^spec:/,$p' | sed '1d; s/^  //' >"$work/rendered.rules.yaml"
promtool check rules "$work/rendered.rules.yaml"

echo "-- a controller and two simulated agents"
go build -o "$work/bin/" ./cmd/controller ./cmd/node-agent
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
grpc=127.0.0.1:$(free_port) ctl_metrics=127.0.0.1:$(free_port)
"$work/bin/controller" --db "$work/controller.db" --grpc-addr "$grpc" --metrics-addr "$ctl_metrics" \
  --poll-interval 1s --default-workdir "$work" --insecure >"$work/controller.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -fsS "http://$ctl_metrics/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
# Agents named as Slurm's nodes (the local cluster's are plain hosts, so
# each machine is its own Slurm node).
mapfile -t nodes < <(sinfo -h -N -o %N | sort -u | head -2)
((${#nodes[@]} == 2)) || { echo "need 2 Slurm nodes, sinfo lists: ${nodes[*]}" >&2; exit 1; }
targets=()
for n in "${nodes[@]}"; do
  a=127.0.0.1:$(free_port)
  "$work/bin/node-agent" --insecure --controller "$grpc" --node-name "$n" --nvml sim --ib sim --nccl sim \
    --admin-addr "$a" --state-dir "$work/agent-$n" >"$work/agent-$n.log" 2>&1 &
  pids+=($!)
  targets+=("$n=$a")
done
for t in "$ctl_metrics" "${targets[@]#*=}"; do
  for _ in $(seq 100); do curl -fsS "http://$t/metrics" >/dev/null 2>&1 && break; sleep 0.1; done
  echo "promtool check metrics http://$t/metrics"
  curl -fsS "http://$t/metrics" | promtool check metrics
done

echo "-- Prometheus"
prom=127.0.0.1:$(free_port)
{
  echo "global: {scrape_interval: 1s, evaluation_interval: 1s}"
  echo "scrape_configs:"
  echo "  - job_name: sopilot-controller"
  echo "    static_configs: [{targets: ['$ctl_metrics']}]"
  echo "  - job_name: sopilot-agent"
  echo "    static_configs:"
  for t in "${targets[@]}"; do echo "      - {targets: ['${t#*=}'], labels: {k8s_node: '${t%%=*}'}}"; done
} >"$work/prometheus.yml"
promtool check config "$work/prometheus.yml" >/dev/null
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/data" --web.listen-address="$prom" \
  >"$work/prometheus.log" 2>&1 &
pids+=($!)

query() { curl -fsS --get "http://$prom/api/v1/query" --data-urlencode "query=$1"; }
# Two scrapes of every target: each target has a sample in the last second
# and one older than it.
ready=0
for _ in $(seq 300); do
  if n=$(query 'count(count_over_time(up[1m]) >= 2 and up == 1)' 2>/dev/null | jq -r '.data.result[0].value[1] // 0') &&
    [ "$n" = 3 ]; then ready=1; break; fi
  sleep 0.2
done
((ready)) || { echo "Prometheus did not scrape the 3 targets twice" >&2; query up >&2 || true; exit 1; }
# The agents' streams and the first node listing reach the controller within
# a few polls; wait for sopilot_node_info of both machines.
for _ in $(seq 150); do
  [ "$(query 'count(sopilot_node_info)' | jq -r '.data.result[0].value[1] // 0')" = 2 ] && break
  sleep 0.2
done

echo "-- dashboard queries"
failed=0 count=0
while IFS= read -r expr; do
  count=$((count + 1))
  q=${expr//'$__rate_interval'/1m}
  out=$(query "$q" 2>&1) || { echo "FAIL (HTTP): $expr: $out"; failed=1; continue; }
  if [ "$(jq -r .status <<<"$out")" != success ]; then
    echo "FAIL (error): $expr: $(jq -r .error <<<"$out")"; failed=1
  elif [ "$(jq '.data.result | length' <<<"$out")" = 0 ]; then
    echo "FAIL (empty): $expr"; failed=1
  else
    echo "ok ($(jq '.data.result | length' <<<"$out") series): $expr"
  fi
done < <(jq -r '.panels[].targets[].expr' deploy/helm/sopilot/dashboards/sopilot.json)
# The joins name the Slurm node: a GPU row carries slurm_node.
if [ "$(query 'count(avg by (k8s_node, slurm_node) (sopilot_gpu_utilization_percent * on(k8s_node) group_left(slurm_node) label_replace(sopilot_node_info, "k8s_node", "$1", "machine", "(.*)")))' |
  jq -r '.data.result[0].value[1] // 0')" != 2 ]; then
  echo "FAIL: GPU rows of the 2 agents do not carry their Slurm node names"; failed=1
fi
((failed == 0)) || exit 1
echo "all $count dashboard queries answered with data"
