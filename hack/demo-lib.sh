# Sourced by hack/demo.sh and hack/demo-resilience.sh: what both demos do
# before their own steps. The caller sets `set -euo pipefail`, cds to the
# repository root and defines step(); these set py, started_cluster,
# agent_pids and admin (Slurm node -> its agent's admin address).

py=/usr/bin/python3   # Debian's python3, where python3-torch and python3-sklearn install
started_cluster=0
agent_pids=()
declare -A admin

# demo_cluster EXTRA_PKG...: installs jq and python3 (and EXTRA_PKG) on the
# host if missing, builds the tools and binaries, and starts the local Slurm
# cluster (SOPILOT_SLURM_VERSION) with what the jobs run installed where
# they run (the chroot on 24.11/26.05, the host on 22.05); python3-torch is
# large: the first time takes minutes. A cluster already up is left up.
demo_cluster() {
  local pkgs=() p
  command -v jq >/dev/null || pkgs+=(jq)
  [ -x $py ] || pkgs+=(python3)   # the host's python3 finds free ports
  for p in "$@"; do command -v "$p" >/dev/null || pkgs+=("$p"); done
  if [ ${#pkgs[@]} -gt 0 ]; then
    echo "installing ${pkgs[*]} on the host"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >/dev/null
  fi
  make --no-print-directory tools build >/dev/null
  local job_pkgs="python3 python3-torch python3-sklearn"
  if ! hack/slurm/cluster.sh status >/dev/null 2>&1; then
    started_cluster=1; hack/slurm/cluster.sh --packages "$job_pkgs" up >/dev/null
  else
    # Already up (and left up at the end): only the packages, no daemon touched.
    hack/slurm/cluster.sh --packages "$job_pkgs" packages
  fi
  eval "$(hack/slurm/cluster.sh env)"
  sinfo
}

# free_port prints a free local TCP port, so that a controller someone else
# runs on 50051 is neither in the way nor mistaken for the demo's.
free_port() { $py -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# machine_of NODE: the machine an agent on Slurm node NODE names, as on
# Soperator: the node's instance id (slurmd --instance-id, Slurm 24.11+:
# worker-N runs on gpu-node-N), else the node's own name (22.05, a plain host).
machine_of() {
  local pair
  for pair in ${SOPILOT_SLURM_INSTANCES//,/ }; do
    [ "${pair%%=*}" = "$1" ] && { echo "${pair#*=}"; return; }
  done
  echo "$1"
}

# start_agents ADDR DIR: one simulated node agent per Slurm node against the
# controller at ADDR (state and logs in DIR), then waits until the
# controller sees them all connected.
start_agents() {
  local addr=$1 dir=$2 n m
  for n in $(sinfo -h -N -o %N | sort -u); do
    m=$(machine_of "$n")
    admin[$n]=127.0.0.1:$(free_port)
    bin/node-agent --insecure --controller "$addr" --node-name "$m" --nvml sim --ib sim --nccl sim \
      --admin-addr "${admin[$n]}" --state-dir "$dir/agent-$m" >/dev/null 2>>"$dir/agent-$m.log" &
    agent_pids+=($!)
  done
  for _ in $(seq 50); do
    [ "$(bin/grpcurl -plaintext -d '{}' "$addr" sopilot.api.v1.NodeService/ListNodes | jq '[.nodes[]? | select(.agentConnected)] | length')" = "${#agent_pids[@]}" ] && break
    sleep 0.2
  done
}
