# versions.sh — the pinned versions of hack/k8s (sourced by build.sh, cluster.sh, e2e.sh).
# shellcheck shell=bash

# The Kubernetes release comes from hack/k8s/tools/go.mod, the one place it is pinned.
K8S_VERSION=$(awk '$1 == "k8s.io/kubernetes" { print $2; exit }' "$HERE/tools/go.mod")
[[ $K8S_VERSION == v1.* ]] || { echo "versions.sh: no k8s.io/kubernetes version in $HERE/tools/go.mod" >&2; exit 1; }
# CoreDNS serves the cluster's Service DNS (the agent reaches the controller by name).
COREDNS_VERSION=v1.11.3
# crictl removes pods through CRI on `down`, so CNI DEL runs for each.
CRICTL_VERSION=v1.34.0
K8S_COMMANDS=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)
