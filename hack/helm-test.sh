#!/usr/bin/env bash
# Chart checks: helm lint of deploy/helm/sopilot with its defaults and with
# each variant under ci/, then the render tests of deploy/helm/rendertest (a
# Go module of its own, so Helm's dependencies stay out of the main
# go.mod). Installs helm into ./bin when it is missing. Needs Go and the
# module proxy (or a warm module cache); no cluster.
set -euo pipefail
cd "$(dirname "$0")/.."

HELM_VERSION=v3.22.0
BIN="$(pwd)/bin"
HELM="$BIN/helm"
KUBE_VERSION=1.31.0
chart=deploy/helm/sopilot

if [ ! -x "$HELM" ] || ! "$HELM" version --template '{{.Version}}' 2>/dev/null | grep -q "^${HELM_VERSION%.*}"; then
  echo "== installing helm $HELM_VERSION into $BIN"
  GOBIN="$BIN" go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
fi

echo "== helm lint $chart"
"$HELM" lint --strict --kube-version "$KUBE_VERSION" "$chart"
for values in "$chart"/ci/*.yaml; do
  echo "== helm lint $chart -f $values"
  "$HELM" lint --strict --kube-version "$KUBE_VERSION" -f "$values" "$chart"
  "$HELM" template sopilot "$chart" --namespace soperator --kube-version "$KUBE_VERSION" -f "$values" >/dev/null
done

echo "== render tests (deploy/helm/rendertest)"
(cd deploy/helm/rendertest && go vet ./... && go test -race -count=1 ./...)
