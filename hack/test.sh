#!/usr/bin/env bash
# The one test command (make test): installs what is missing, starts the local
# Slurm clusters, runs lint, the generated-code drift check and every test with
# the race detector on Slurm 22.05, then the Slurm-facing tests again on every
# newer Slurm sopilot supports (24.11, 26.05: hack/slurm/cluster.sh runs them
# from Debian chroots), and stops what it started. Tests that need Slurm fail
# rather than skip here (SOPILOT_REQUIRE_SLURM=1): a version whose cluster
# does not come up fails the run. Run as root on Debian.
#
#   hack/test.sh                 everything (what CI runs)
#   hack/test.sh --matrix        only the phases of the newer versions
#   hack/test.sh --slurm 24.11   only that version's phases (repeatable)
#   hack/test.sh --k8s           only the chart on a real Kubernetes (with Slurm 24.11)
#
# The chart's end-to-end test (hack/k8s/e2e.sh) runs inside the Slurm 24.11
# block: a single-node Kubernetes built from source (hack/k8s/build.sh; the
# first run on a machine builds it, later runs reuse the cached binaries),
# helm install of the chart against the local 24.11 slurmrestd, and a
# tear-down checked to leave the host as it was. SOPILOT_SKIP_K8S=1 skips it.
#
# Each phase's duration is printed as it ends and again in a summary.
set -euo pipefail
cd "$(dirname "$0")/.."

MATRIX=(24.11 26.05)
versions=() full=1 k8s_only=0
while (($#)); do
  case $1 in
  --k8s) full=0 k8s_only=1 versions=(24.11); shift ;;
  --matrix) full=0 versions=("${MATRIX[@]}"); shift ;;
  --slurm) (($# >= 2)) || { echo "--slurm needs a version" >&2; exit 2; }; full=0 versions+=("$2"); shift 2 ;;
  *) echo "usage: $0 [--matrix | --slurm VERSION ... | --k8s]" >&2; exit 2 ;;
  esac
done
((full)) && versions=("${MATRIX[@]}")

if [ "$(id -u)" != 0 ]; then
  echo "make test starts local Slurm clusters and needs root (sudo make test)" >&2
  exit 1
fi
if ! command -v go >/dev/null; then
  echo "Go is not on PATH: install Go 1.26 or newer first" >&2
  exit 1
fi
missing=()
for tool in git make jq curl; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

# Clusters this run started, stopped again at exit (one already running is
# left alone).
started=()
cleanup() {
  local v
  for v in "${started[@]+"${started[@]}"}"; do hack/slurm/cluster.sh --slurm "$v" down || true; done
}
trap cleanup EXIT

t_start=$SECONDS
summary=()
failed=()
# phase NAME CMD...: run one phase, print its duration, remember the outcome;
# a failed phase fails the run at the end but does not stop the others.
phase() {
  local name=$1 t0=$SECONDS rc=0
  shift
  echo "== $name"
  "$@" || rc=$?
  local took=$((SECONDS - t0)) word=ok
  ((rc == 0)) || { word="FAILED (exit $rc)"; failed+=("$name"); }
  summary+=("$(printf '%6ss  %s  %s' "$took" "$word" "$name")")
  echo "== $name: $word in ${took}s"
  return 0
}

# cluster_up VERSION: start the cluster unless it is already up.
cluster_up() {
  hack/slurm/cluster.sh --slurm "$1" status >/dev/null 2>&1 && return 0
  started+=("$1")
  hack/slurm/cluster.sh --slurm "$1" up >/dev/null
}

cluster_down() {
  local v=$1 keep=() s rc=0
  for s in "${started[@]+"${started[@]}"}"; do
    if [ "$s" = "$v" ]; then hack/slurm/cluster.sh --slurm "$v" down || rc=$?; else keep+=("$s"); fi
  done
  started=("${keep[@]+"${keep[@]}"}")
  return "$rc"
}

export SOPILOT_REQUIRE_SLURM=1
export SOPILOT_REQUIRE_TERRAFORM=1

# ---------------------------------------------------------------- Slurm 22.05: everything
full_suite() {
  go test -race -count=1 -timeout 20m ./...
}
# Allocation counts are only meaningful without the race detector, so those
# tests skip above; run them here.
alloc_tests() {
  go test -count=1 -run 'Allocs' ./internal/...
}
# Tests that drain Slurm nodes would stall the jobs of every other test, so
# they skip above and run here with the cluster to themselves, one package
# at a time (slurmtest.RequireExclusive).
exclusive_tests() {
  SOPILOT_SLURM_EXCLUSIVE=1 go test -race -count=1 -timeout 15m -p 1 -run Exclusive "$@"
}

if ((full)); then
  phase "tools" make --no-print-directory tools
  phase "Slurm 22.05 cluster up" cluster_up 22.05
  eval "$(hack/slurm/cluster.sh --slurm 22.05 env)"
  phase "lint and generated code" make --no-print-directory lint check-generated
  phase "helm chart (helm lint, render tests)" hack/helm-test.sh
  phase "Slurm 22.05: all tests" full_suite
  phase "Slurm 22.05: allocation tests (no race detector)" alloc_tests
  phase "Slurm 22.05: tests that drain nodes (exclusive)" exclusive_tests ./...
  phase "Prometheus: rules, metrics and dashboard queries" hack/prometheus/check.sh
  phase "cluster.sh down waits for a daemon whose pid file vanished" hack/slurm/down_test.sh
fi

# ---------------------------------------------------------------- newer Slurm
# What talks to Slurm: both scheduler backends with their live tests (the
# seed's 2 nodes x 8 tasks, --gres=gpu:8 job among them), the controller's
# end-to-end tests (CLI and REST backends, kill -9, cancel, agents), job
# attribution, remediation and the cluster finder itself; then the drain
# tests of the same packages with the cluster to themselves.
MATRIX_PKGS=(./internal/slurmtest/... ./internal/scheduler/... ./cmd/controller/... ./internal/agent/attrib/... ./internal/remediation/...)
MATRIX_EXCLUSIVE_PKGS=(./internal/scheduler/... ./internal/remediation/... ./cmd/controller/...)

# on_version VERSION CMD...: CMD with that cluster's environment (in a
# subshell, so the next version starts clean).
on_version() {
  local v=$1
  shift
  (
    eval "$(hack/slurm/cluster.sh --slurm "$v" env)"
    [ "$SOPILOT_SLURM_VERSION" = "$v" ] || { echo "cluster.sh env gave Slurm $SOPILOT_SLURM_VERSION, not $v" >&2; exit 1; }
    "$@"
  )
}
matrix_tests() { go test -race -count=1 -timeout 20m "${MATRIX_PKGS[@]}"; }
matrix_exclusive() { exclusive_tests "${MATRIX_EXCLUSIVE_PKGS[@]}"; }

for v in "${versions[@]}"; do
  before=${#failed[@]}
  phase "Slurm $v cluster up" cluster_up "$v"
  if ((${#failed[@]} == before)) && ((!k8s_only)); then
    phase "Slurm $v: Slurm-facing tests" on_version "$v" matrix_tests
    phase "Slurm $v: tests that drain nodes (exclusive)" on_version "$v" matrix_exclusive
  fi
  # Instance ids (Soperator's K8s node -> Slurm node link) need Slurm 24.11+.
  if [ "$v" = 24.11 ] && [ "${SOPILOT_SKIP_K8S:-0}" != 1 ] && ((${#failed[@]} == before)); then
    phase "Kubernetes: build (cached after the first run)" hack/k8s/build.sh
    phase "Kubernetes: chart end-to-end on Slurm $v" hack/k8s/e2e.sh
  fi
  phase "Slurm $v cluster down" cluster_down "$v"
done

echo "== summary ($((SECONDS - t_start))s in all)"
printf '%s\n' "${summary[@]}"
if ((${#failed[@]})); then
  echo "FAILED: $(printf '%s; ' "${failed[@]}")" >&2
  exit 1
fi
