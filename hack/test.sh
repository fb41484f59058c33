#!/usr/bin/env bash
# The one test command (make test): installs what is missing, starts the local
# Slurm cluster, runs lint, the generated-code drift check and every test with
# the race detector, then stops the cluster. Tests that need Slurm fail rather
# than skip here (SOPILOT_REQUIRE_SLURM=1). Run as root on Debian.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "make test starts a local Slurm cluster and needs root (sudo make test)" >&2
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

started=0
cleanup() {
  if [ "$started" = 1 ]; then hack/slurm/cluster.sh down || true; fi
}
trap cleanup EXIT

make --no-print-directory tools
echo "== local Slurm cluster"
if ! hack/slurm/cluster.sh status >/dev/null 2>&1; then
  started=1
  hack/slurm/cluster.sh up
fi
eval "$(hack/slurm/cluster.sh env)"

echo "== lint and generated code"
make --no-print-directory lint check-generated

echo "== helm chart (helm lint, render tests)"
hack/helm-test.sh

echo "== tests"
export SOPILOT_REQUIRE_SLURM=1
export SOPILOT_REQUIRE_TERRAFORM=1
go test -race -count=1 -timeout 20m ./...

# Allocation counts are only meaningful without the race detector, so those
# tests skip above; run them here.
echo "== allocation tests (no race detector)"
go test -count=1 -run 'Allocs' ./internal/...

# Tests that drain Slurm nodes would stall the jobs of every other test, so
# they skip above and run here with the cluster to themselves, one package
# at a time (slurmtest.RequireExclusive).
echo "== tests that drain nodes (exclusive use of the cluster)"
SOPILOT_SLURM_EXCLUSIVE=1 go test -race -count=1 -timeout 15m -p 1 -run Exclusive ./...
