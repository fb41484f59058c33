#!/usr/bin/env bash
# e2e.sh — sopilot's Helm chart on a real Kubernetes: a single-node cluster
# (hack/k8s/cluster.sh, built by hack/k8s/build.sh), a namespace holding what
# Soperator creates, `helm install --wait` of deploy/helm/sopilot with
# ci/k8s-e2e-values.yaml (TLS on; agents authenticated by their projected
# ServiceAccount token through TokenReview against this API server; users by
# a token file), checks by value, an XID 79 and a simulated node replacement
# followed through Slurm's instance_id, and a tear-down that is checked to
# leave the host as it found it.
#
#   hack/k8s/e2e.sh            everything; exit 0 iff every check passed
#
# Needs root, Go, and the local Slurm 24.11 cluster up (hack/slurm/cluster.sh
# --slurm 24.11 up): the controller reaches its slurmrestd through the
# Service soperator-rest-svc:6820, as on Soperator, and Slurm node records
# carry instance ids from 24.11 on: worker-0 must run on instance gpu-node-0
# (the cluster script's default). The replacement moves it to gpu-node-7
# (hack/slurm/cluster.sh replace-node, a restart of that slurmd) and back at
# the end, also when a check fails.
#
# The namespace (soperator, like Soperator's default SlurmCluster):
# - Secret soperator-rest-jwt-key (rest_jwt.key = the local cluster's JWT key)
#   and Secret soperator-munge (munge.key = its munge key);
# - ConfigMap soperator-slurm-configs (its slurm.conf);
# - PVC jail-pvc on a static hostPath PV: the local cluster's chroot, the
#   root its jobs run in (Soperator's jail);
# - Service soperator-rest-svc:6820 without a selector, its Endpoints on the
#   bridge gateway, and a DNAT of its cluster IP to slurmrestd on loopback
#   (hack/k8s/cluster.sh expose);
# - StatefulSet worker (worker-0, worker-1): pause containers with the labels
#   Soperator 1.20 gives its worker pods;
# and the node carries the labels and taint Soperator's Terraform sets on GPU
# workers.
#
# Settings: SOPILOT_K8S_KEEP=1 leaves the cluster up at the end (and skips the
# tear-down check); SOPILOT_K8S_E2E_DIR (default /tmp/sopilot-k8s-e2e) holds
# the built binaries, image archives and host snapshots.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
# shellcheck source=versions.sh
. "$HERE/versions.sh"

log() { echo "k8s/e2e.sh: $*" >&2; }
die() { log "FAIL: $*"; exit 1; }

NS=soperator
RELEASE=sopilot
CHART=$REPO/deploy/helm/sopilot
WORK=${SOPILOT_K8S_E2E_DIR:-/tmp/sopilot-k8s-e2e}
KEEP=${SOPILOT_K8S_KEEP:-0}
SLURM_VERSION=24.11
NODE0=gpu-node-0
NODE_REPLACED=gpu-node-7
# Labels and taint of a Soperator GPU worker node group (nebius-solutions-
# library modules/labels and k8s_ng_workers.tf).
NODE_LABELS=nebius.com/gpu=true,slurm.nebius.ai/workload=gpu,slurm.nebius.ai/nodeset=worker,slurm.nebius.ai/jail=true
NODE_TAINTS=nvidia.com/gpu=8:NoSchedule
WORKER_LABELS=(app.kubernetes.io/name=slurmcluster app.kubernetes.io/instance=soperator app.kubernetes.io/component=worker)

CLUSTER=$HERE/cluster.sh
BIN=$WORK/bin
TIMINGS=()
PF_PID=""
PASSED=0
RUN_ID=""
XID_INCIDENT=""
# The Secrets ci/k8s-e2e-values.yaml names: the controller's certificate
# (tls.existingSecret.controller) and the API's user tokens
# (auth.tokenFile.secretName); the audience of the agents'
# tokens (the chart's auth.tokenReview.audience) and their admin port.
TLS_SECRET=sopilot-controller-tls
TOKENS_SECRET=sopilot-api-tokens
TOKEN_AUDIENCE=sopilot
AGENT_ADMIN_PORT=9478
CONTROLLER_DNS=""
CA_FILE=""
USER_TOKEN_FILE=""

# timed NAME CMD...: run CMD, remember how long it took.
timed() {
	local name=$1 t0=$SECONDS
	shift
	"$@"
	TIMINGS+=("$(printf '%5ss  %s' "$((SECONDS - t0))" "$name")")
}
pass() { PASSED=$((PASSED + 1)); log "ok: $*"; }
kc() { kubectl -n "$NS" "$@"; }

# ---------------------------------------------------------------- host snapshot

# snapshot NAME: what the cluster may touch on the host, normalised (counters
# and per-boot ids stripped) for a before/after diff.
snapshot() {
	local out=$WORK/host-$1
	ip -o link show | sed -E 's/^[0-9]+: //; s/ +link\/.*//' | sort >"$out.links"
	ip -o addr show | awk '{ print $2, $3, $4 }' | sort >"$out.addrs"
	{ iptables-save; ip6tables-save; } 2>/dev/null | { grep -vE '^#' || true; } | sed -E 's/\[[0-9]+:[0-9]+\]//' >"$out.iptables"
	# Every mount the cluster can make: below its state dirs and the paths
	# its components use, and any container rootfs (overlay) or network
	# namespace (nsfs) wherever it is. Other mounts come and go with other
	# work on the host (the Slurm clusters' chroots) and are left out.
	local k8s_dir
	k8s_dir=$(sed -n 's/^export SOPILOT_K8S_DIR=//p' <("$CLUSTER" env))
	awk -v a="$k8s_dir" -v b="$WORK" '
		{ t = $5; fs = $9 }
		index(t, a "/") == 1 || t == a || index(t, b "/") == 1 || t ~ /^\/(var\/lib\/kubelet|run\/containerd|run\/netns|var\/run\/netns|var\/lib\/containerd)(\/|$)/ || fs == "overlay" || fs == "nsfs" { print t, fs }
	' /proc/self/mountinfo | sort >"$out.mounts"
	sysctl -a 2>/dev/null | { grep -E '^(net\.ipv4\.ip_forward|net\.ipv4\.conf\.(all|default|eth0|lo)\.|net\.bridge\.|vm\.overcommit_memory|vm\.panic_on_oom|kernel\.panic|kernel\.keys\.root_max|net\.netfilter\.nf_conntrack_(max|tcp_timeout_established|tcp_timeout_close_wait))' || true; } |
		sort >"$out.sysctl"
	ls -d /var/lib/kubelet /var/log/containers /var/log/pods /run/containerd /var/lib/cni /run/netns /etc/cni 2>/dev/null >"$out.paths" || true
	{ ls /sys/fs/cgroup/memory /sys/fs/cgroup/cpu /sys/fs/cgroup/unified 2>/dev/null || true; } | { grep -i kube || true; } >"$out.cgroups"
}

compare_snapshots() {
	local f diffs=0
	for f in links addrs iptables mounts sysctl paths cgroups; do
		if ! diff -u "$WORK/host-before.$f" "$WORK/host-after.$f" >"$WORK/host-diff.$f"; then
			log "host state changed ($f):"
			cat "$WORK/host-diff.$f" >&2
			diffs=1
		fi
	done
	((diffs == 0)) || die "down left something behind"
	pass "down left the host as it was (links, addresses, iptables, mounts, sysctls, paths, cgroups)"
}

# ---------------------------------------------------------------- images

build_images() {
	mkdir -p "$BIN" "$WORK/images"
	local tag
	tag=$(awk '$1 == "appVersion:" { gsub(/"/, "", $2); print $2 }' "$CHART/Chart.yaml")
	(
		cd "$REPO"
		CGO_ENABLED=0 nice go build -trimpath -ldflags "-s -w -X main.Version=$tag" -o "$BIN/controller" ./cmd/controller
		CGO_ENABLED=0 nice go build -trimpath -ldflags "-s -w -X main.Version=$tag" -o "$BIN/sopilot" ./cmd/sopilot
		# cgo (go-nvml); the image carries the glibc it links (copied with
		# --libs), no distribution base image is needed.
		CGO_ENABLED=1 CGO_CFLAGS="-O2 -Wno-deprecated-declarations" nice go build -trimpath \
			-ldflags "-s -w -X main.Version=$tag" -o "$BIN/node-agent" ./cmd/node-agent
	)
	# The static controller on an empty image, like the distroless target of
	# deploy/docker/controller.Dockerfile (whose base images need a registry).
	"$HERE/image.sh" "$WORK/images/controller.tar" "ghcr.io/sopilot/controller:$tag" \
		--entrypoint /usr/local/bin/controller --user 65532:65532 \
		"$BIN/controller:/usr/local/bin/controller" "$BIN/sopilot:/usr/local/bin/sopilot"
	# The agent as in node-agent.Dockerfile.
	"$HERE/image.sh" "$WORK/images/node-agent.tar" "ghcr.io/sopilot/node-agent:$tag" \
		--entrypoint /usr/local/bin/node-agent --user 65532:65532 \
		--env PATH=/usr/local/bin:/bin --env NVIDIA_VISIBLE_DEVICES=all --env NVIDIA_DRIVER_CAPABILITIES=utility \
		--libs "$BIN/node-agent" "$BIN/node-agent:/usr/local/bin/node-agent"
	"$CLUSTER" load "$WORK/images/controller.tar" "$WORK/images/node-agent.tar"
}

# ---------------------------------------------------------------- tools

tools() {
	local helm_version
	helm_version=$(sed -n 's/^HELM_VERSION=//p' "$REPO/hack/helm-test.sh")
	if [[ ! -x $REPO/bin/helm ]]; then
		GOBIN=$REPO/bin nice go install "helm.sh/helm/v3/cmd/helm@$helm_version"
	fi
	[[ -x $REPO/bin/grpcurl ]] || make -C "$REPO" --no-print-directory "$REPO/bin/grpcurl" >&2
	HELM=$REPO/bin/helm
	GRPCURL=$REPO/bin/grpcurl
}

# ---------------------------------------------------------------- Soperator's namespace

# slurm_root: the root the local Slurm 24.11's daemons and jobs run in (its
# chroot), i.e. what Soperator's jail is to its jobs.
slurm_root() {
	(
		VERSION=$SLURM_VERSION HERE=$REPO/hack/slurm
		log() { :; }
		die() { echo "$*" >&2; exit 1; }
		# shellcheck source=../slurm/versions.sh
		. "$REPO/hack/slurm/versions.sh"
		select_version
		echo "$ROOT"
	)
}

soperator_namespace() {
	local root jwt munge rest_ip
	root=$(slurm_root)
	[[ -d $root ]] || die "no chroot of Slurm $SLURM_VERSION at $root"
	jwt=$SOPILOT_SLURM_JWT_KEY_FILE
	munge=$root/etc/munge/munge.key
	[[ -s $jwt ]] || die "no JWT key at $jwt"
	[[ -s $munge ]] || die "no munge key at $munge"
	kubectl create namespace "$NS" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
	kc create secret generic soperator-rest-jwt-key --from-file=rest_jwt.key="$jwt" --dry-run=client -o yaml | kc apply -f - >/dev/null
	kc create secret generic soperator-munge --from-file=munge.key="$munge" --dry-run=client -o yaml | kc apply -f - >/dev/null
	kc create configmap soperator-slurm-configs --from-file=slurm.conf="$SLURM_CONF" --dry-run=client -o yaml | kc apply -f - >/dev/null
	# A fresh history for each run (the controller PVC binds to it).
	rm -rf "$WORK/controller-history"
	mkdir -p "$WORK/controller-history"
	chown 65532:65532 "$WORK/controller-history"
	kc apply -f - >/dev/null <<EOF
apiVersion: v1
kind: PersistentVolume
metadata:
  name: soperator-jail
spec:
  capacity: {storage: 10Gi}
  accessModes: [ReadWriteMany]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: ""
  hostPath: {path: $root, type: Directory}
  claimRef: {namespace: $NS, name: jail-pvc}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: jail-pvc
spec:
  accessModes: [ReadWriteMany]
  storageClassName: ""
  volumeName: soperator-jail
  resources: {requests: {storage: 10Gi}}
---
apiVersion: v1
kind: PersistentVolume
metadata:
  name: sopilot-controller-history
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: ""
  hostPath: {path: $WORK/controller-history, type: Directory}
  claimRef: {namespace: $NS, name: $RELEASE-controller-history}
---
apiVersion: v1
kind: Service
metadata:
  name: soperator-rest-svc
spec:
  ports: [{name: rest, port: 6820, targetPort: ${SOPILOT_SLURMRESTD_URL##*:}, protocol: TCP}]
---
apiVersion: v1
kind: Endpoints
metadata:
  name: soperator-rest-svc
subsets:
  - addresses: [{ip: $SOPILOT_K8S_GATEWAY}]
    ports: [{name: rest, port: ${SOPILOT_SLURMRESTD_URL##*:}, protocol: TCP}]
---
apiVersion: v1
kind: Service
metadata:
  name: soperator-worker-svc
spec:
  clusterIP: None
  selector: {app.kubernetes.io/component: worker}
  ports: [{name: slurmd, port: 6818}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: worker
  labels: &labels
$(printf '    %s\n' "${WORKER_LABELS[@]/=/: }")
spec:
  serviceName: soperator-worker-svc
  replicas: 2
  podManagementPolicy: Parallel
  selector:
    matchLabels: *labels
  template:
    metadata:
      labels: *labels
    spec:
      nodeSelector: {nebius.com/gpu: "true"}
      tolerations: [{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}]
      automountServiceAccountToken: false
      terminationGracePeriodSeconds: 1
      containers:
        - name: slurmd
          image: localhost/sopilot-k8s/pause:$K8S_VERSION
          imagePullPolicy: Never
EOF
	rest_ip=$(kc get service soperator-rest-svc -o jsonpath='{.spec.clusterIP}')
	"$CLUSTER" expose "$rest_ip" 6820 "${SOPILOT_SLURMRESTD_URL##*:}"
	kc rollout status statefulset/worker --timeout 120s >/dev/null
	local w
	for w in worker-0 worker-1; do
		[[ $(kc get pod "$w" -o jsonpath='{.status.phase}') == Running ]] || die "pod $w is not Running"
	done
	pass "Soperator's namespace: Secrets, ConfigMap, jail PVC, REST Service, worker-0 and worker-1 Running"
}

# ---------------------------------------------------------------- install

helm_install() {
	# Soperator's prolog writes the GPU->job files on the host; here they go
	# below a directory the cluster provides for host paths that pods mount
	# with propagation (the chart would create /var/run/nebius/slurm
	# otherwise). TLS and the Secrets' names are in the values file.
	mkdir -p "$SOPILOT_K8S_HOSTPATH/nebius-slurm"
	"$HELM" upgrade --install "$RELEASE" "$CHART" --namespace "$NS" -f "$CHART/ci/k8s-e2e-values.yaml" \
		--set "jail.runDirs[0]=$SOPILOT_SLURM_WORKDIR" \
		--set "agent.gpuJobDir=$SOPILOT_K8S_HOSTPATH/nebius-slurm" \
		--wait --timeout 5m
}

pods_ready() {
	local sel=$1 want=$2 ready
	ready=$(kc get pods -l "$sel" -o jsonpath='{range .items[*]}{.status.phase}/{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -c '^Running/True$' || true)
	[[ $ready == "$want" ]]
}

check_pods() {
	# helm --wait counts a DaemonSet ready within its maxUnavailable (10%,
	# which is one agent of one node): wait for the pods themselves.
	local c
	for c in controller agent; do
		kc wait --for=condition=Ready pod -l "app.kubernetes.io/component=$c" --timeout 120s >/dev/null ||
			{ kc get pods -o wide >&2; die "$c pod not Ready within 120 s"; }
	done
	pods_ready app.kubernetes.io/component=controller 1 || { kc get pods -o wide >&2; die "controller pod not Running and Ready"; }
	pods_ready app.kubernetes.io/component=agent 1 || { kc get pods -o wide >&2; die "agent pod not Running and Ready"; }
	pass "controller and agent pods Running and Ready"
}

# ---------------------------------------------------------------- TLS and tokens

# tls_secrets: a CA and the controller's server certificate (made here with
# openssl; on a real cluster cert-manager or the operator's PKI), as the
# Secret tls.existingSecret.controller names: tls.crt and tls.key, the
# controller's; ca.crt, the CA that signed it, which the agents (through
# their projected volume) and the CLI trust. And the API's user tokens
# (auth.tokenFile: "token,name,role" lines).
tls_secrets() {
	local d=$WORK/tls
	rm -rf "$d"
	mkdir -p "$d"
	CONTROLLER_DNS=$RELEASE-controller.$NS.svc.cluster.local
	openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
		-subj /CN=sopilot-k8s-e2e-ca -keyout "$d/ca.key" -out "$d/ca.crt" \
		-config <(printf '[req]\ndistinguished_name=dn\nx509_extensions=ext\n[dn]\n[ext]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n') 2>/dev/null
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-subj "/CN=$RELEASE-controller" -keyout "$d/tls.key" -out "$d/tls.csr" 2>/dev/null
	openssl x509 -req -in "$d/tls.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial -days 1 -out "$d/tls.crt" \
		-extfile <(printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:%s,DNS:%s.%s.svc,DNS:%s\n' \
			"$CONTROLLER_DNS" "$RELEASE-controller" "$NS" "$RELEASE-controller") 2>/dev/null
	openssl verify -CAfile "$d/ca.crt" "$d/tls.crt" >/dev/null || die "the controller's certificate does not verify against its CA"
	CA_FILE=$d/ca.crt
	kc create secret generic "$TLS_SECRET" --from-file=tls.crt="$d/tls.crt" --from-file=tls.key="$d/tls.key" \
		--from-file=ca.crt="$d/ca.crt" --dry-run=client -o yaml | kc apply -f - >/dev/null
	USER_TOKEN_FILE=$d/user-token
	(umask 077 && openssl rand -hex 32 >"$USER_TOKEN_FILE")
	kc create secret generic "$TOKENS_SECRET" \
		--from-literal=tokens="$(cat "$USER_TOKEN_FILE"),k8s-e2e,admin" --dry-run=client -o yaml | kc apply -f - >/dev/null
	pass "TLS: CA and controller certificate for $CONTROLLER_DNS in Secret $TLS_SECRET; a user token in Secret $TOKENS_SECRET"
}

# ---------------------------------------------------------------- API checks

port_forward() {
	stop_port_forward
	kubectl -n "$NS" port-forward "svc/$RELEASE-controller" "$PF_GRPC:50051" "$PF_METRICS:9477" >"$WORK/port-forward.log" 2>&1 &
	PF_PID=$!
	local i
	for ((i = 0; i < 60; i++)); do
		curl -fsS "http://127.0.0.1:$PF_METRICS/healthz" >/dev/null 2>&1 && return 0
		sleep 0.5
	done
	cat "$WORK/port-forward.log" >&2
	die "port-forward to the controller did not come up"
}
stop_port_forward() {
	[[ -n $PF_PID ]] || return 0
	kill "$PF_PID" 2>/dev/null || true
	wait "$PF_PID" 2>/dev/null || true
	PF_PID=""
}

# sopilot ARGS: the CLI as a user reaches the controller: a port-forward,
# TLS verified against the CA for the Service's DNS name, a bearer token.
sopilot() {
	SOPILOT_CONTROLLER=127.0.0.1:$PF_GRPC SOPILOT_TLS_CA_FILE=$CA_FILE SOPILOT_TLS_SERVER_NAME=$CONTROLLER_DNS \
		SOPILOT_TOKEN_FILE=$USER_TOKEN_FILE "$BIN/sopilot" "$@"
}
grpcurl_tls() { "$GRPCURL" -cacert "$CA_FILE" -servername "$CONTROLLER_DNS" "$@"; }

check_api() {
	local body out
	body=$(curl -fsS "http://127.0.0.1:$PF_METRICS/readyz") || die "controller /readyz did not answer 200"
	pass "controller /readyz: $body"
	grpcurl_tls "127.0.0.1:$PF_GRPC" list >"$WORK/grpc-services" || die "grpcurl list over TLS failed"
	grep -q '^sopilot\.' "$WORK/grpc-services" || die "no sopilot service in grpcurl list: $(tr '\n' ' ' <"$WORK/grpc-services")"
	[[ $(grpcurl_tls "127.0.0.1:$PF_GRPC" grpc.health.v1.Health/Check | jq -r .status) == SERVING ]] ||
		die "grpc.health.v1 does not say SERVING"
	"$GRPCURL" -plaintext "127.0.0.1:$PF_GRPC" list >/dev/null 2>&1 && die "the controller answers plaintext gRPC with TLS on"
	pass "gRPC API over TLS through a port-forward (certificate verified for $CONTROLLER_DNS; reflection: $(grep -c . "$WORK/grpc-services") services; health SERVING; plaintext refused)"
	# A user call without the token is refused, with it answered.
	if out=$(SOPILOT_TOKEN_FILE='' SOPILOT_CONTROLLER=127.0.0.1:$PF_GRPC SOPILOT_TLS_CA_FILE=$CA_FILE \
		SOPILOT_TLS_SERVER_NAME=$CONTROLLER_DNS "$BIN/sopilot" nodes 2>&1); then
		die "sopilot nodes without a token was answered: $out"
	fi
	[[ $out == *"wants a token"* ]] || die "sopilot nodes without a token: want Unauthenticated, got: $out"
	sopilot nodes >/dev/null || die "sopilot nodes with the user token failed"
	pass "sopilot CLI over TLS: refused without a token, answered with the user token (auth.tokenFile)"
}

check_run() {
	local out last id state job
	# -o json --watch: one JSON line per change of the run, the last one final.
	out=$(sopilot run submit -o json --job-name k8s-e2e --nodes 1 --time 5 \
		--request-id "k8s-e2e-$(date +%s)" --watch -- /bin/sh -c 'echo hello from $(hostname)') ||
		die "run did not complete: $out"
	last=$(tail -1 <<<"$out")
	id=$(jq -r .id <<<"$last")
	state=$(jq -r .state <<<"$last")
	job=$(jq -r .slurmJobId <<<"$last")
	[[ $state == *COMPLETED ]] || die "run $id ended $state: $last"
	[[ -n $job && $job != null && $job != 0 ]] || die "run $id has no Slurm job id: $last"
	[[ $(scontrol show job "$job" 2>/dev/null | grep -o 'JobState=[A-Z]*') == JobState=COMPLETED ]] ||
		sacct -n -X -j "$job" -o State 2>/dev/null | grep -q COMPLETED ||
		die "Slurm $SLURM_VERSION does not know job $job as COMPLETED"
	RUN_ID=$id
	pass "CreateRun through the chart's controller ran Slurm $SLURM_VERSION job $job to $state"
}

# node_json SLURM_NODE: that node's record from `sopilot nodes -o json`.
node_json() {
	sopilot nodes -o json | jq -c --arg n "$1" '.nodes[] | select(.name == $n)'
}

# check_nodes: worker-0 is listed with its agent connected and machine =
# the Kubernetes node it runs on, found through its Slurm instance_id.
check_nodes() {
	local rec deadline=$((SECONDS + 60))
	while :; do
		rec=$(node_json worker-0 || true)
		[[ -n $rec ]] && [[ $(jq -r .agentConnected <<<"$rec") == true ]] &&
			[[ $(jq -r .machine <<<"$rec") == "$SOPILOT_K8S_NODE" ]] && break
		((SECONDS < deadline)) || die "sopilot nodes: worker-0 has no connected agent on machine $SOPILOT_K8S_NODE: $rec"
		sleep 1
	done
	[[ $(jq -r .simulated <<<"$rec") == true ]] || die "worker-0's agent is not the simulated one: $rec"
	[[ $(jq -r '.unmapped // false' <<<"$rec") == false ]] || die "worker-0 is listed unmapped: $rec"
	pass "sopilot nodes: worker-0 runs on machine $SOPILOT_K8S_NODE (its instance_id), agent connected over TLS with its projected token"
}

agent_pod() { kc get pods -l app.kubernetes.io/component=agent -o jsonpath='{.items[0].metadata.name}'; }

# wait_log POD PATTERN: POD's log matches PATTERN within 60 s.
wait_log() {
	local deadline=$((SECONDS + 60))
	until kc logs "$1" 2>/dev/null | grep -q "$2"; do
		((SECONDS < deadline)) || { kc logs "$1" 2>&1 | tail -20 >&2; die "pod $1 did not log $2"; }
		sleep 1
	done
}

# check_agent_auth: the controller reviews the agents' tokens with this
# API server and binds each to its node. The projected token of the
# agents' ServiceAccount on this node may not speak for another machine,
# and a token of any other ServiceAccount is no agent's, even when bound to
# the agent's own pod.
check_agent_auth() {
	local pod sa token review rec
	pod=$(agent_pod)
	sa=$(kc get pod "$pod" -o jsonpath='{.spec.serviceAccountName}')
	# What the controller sees for the agent's token: the pod and its node.
	token=$(kc create token "$sa" --audience "$TOKEN_AUDIENCE" --bound-object-kind Pod --bound-object-name "$pod" --duration 10m)
	review=$(jq -n --arg t "$token" --arg a "$TOKEN_AUDIENCE" \
		'{apiVersion: "authentication.k8s.io/v1", kind: "TokenReview", spec: {token: $t, audiences: [$a]}}' |
		kubectl create -o json -f -)
	[[ $(jq -r .status.authenticated <<<"$review") == true ]] || die "TokenReview refused the agent's token: $review"
	[[ $(jq -r '.status.user.extra["authentication.kubernetes.io/node-name"][0] // empty' <<<"$review") == "$SOPILOT_K8S_NODE" ]] ||
		die "TokenReview does not bind the agent's token to node $SOPILOT_K8S_NODE: $review"
	pass "TokenReview: the agent's token ($sa) is bound to pod $pod on node $SOPILOT_K8S_NODE"

	# An impostor: the agent's own pod spec (ServiceAccount, projected token,
	# CA), on the same node, claiming machine "other".
	kc get daemonset "$RELEASE-agent" -o json | jq --arg node "$SOPILOT_K8S_NODE" '{
		apiVersion: "v1", kind: "Pod",
		metadata: {name: "impostor-agent", labels: {"app.kubernetes.io/name": "k8s-e2e-impostor"}},
		spec: ((.spec.template.spec + {nodeName: $node})
			| .containers[0].args |= map(if startswith("--node-name=") then "--node-name=other" else . end))
	}' | kc create -f - >/dev/null
	wait_log impostor-agent PermissionDenied
	rec=$(sopilot nodes -o json | jq -c '.nodes[] | select(.name == "other" or .machine == "other")')
	[[ -z $rec ]] || die "the impostor's machine is listed: $rec"
	pass "an agent pod on $SOPILOT_K8S_NODE claiming machine \"other\" is refused (PermissionDenied) and never listed"
	kc delete pod impostor-agent --wait=true --grace-period 1 >/dev/null

	# A token of another ServiceAccount: the agent's pod spec again, on the
	# same node and naming it, but running as k8s-e2e-intruder (the API
	# server binds a token only to a pod of its own ServiceAccount, so this
	# token names the node too).
	kc create serviceaccount k8s-e2e-intruder --dry-run=client -o yaml | kc apply -f - >/dev/null
	kc get daemonset "$RELEASE-agent" -o json | jq --arg node "$SOPILOT_K8S_NODE" '{
		apiVersion: "v1", kind: "Pod",
		metadata: {name: "intruder-agent", labels: {"app.kubernetes.io/name": "k8s-e2e-intruder"}},
		spec: (.spec.template.spec + {nodeName: $node, serviceAccountName: "k8s-e2e-intruder"})
	}' | kc create -f - >/dev/null
	wait_log intruder-agent 'PermissionDenied\|Unauthenticated'
	pass "an agent pod on $SOPILOT_K8S_NODE running as another ServiceAccount is refused ($(kc logs intruder-agent | grep -oE 'code = (PermissionDenied|Unauthenticated)' | head -1))"
	kc delete pod intruder-agent --wait=true --grace-period 1 >/dev/null
}

# inject_xid: an XID 79 on GPU 3 of worker-0's simulated agent (its admin
# port on the pod's address); with remediation dry-run the controller opens
# an incident saying what it would have done.
inject_xid() {
	local ip inc deadline=$((SECONDS + 30))
	ip=$(kc get pod "$(agent_pod)" -o jsonpath='{.status.podIP}')
	curl -fsS -XPOST "http://$ip:$AGENT_ADMIN_PORT/sim/gpu/faults" -d '{"gpu": 3, "kind": "xid", "code": 79}' >/dev/null ||
		die "fault injection at the agent's admin port ($ip:$AGENT_ADMIN_PORT) failed"
	while :; do
		inc=$(sopilot node incidents worker-0 -o json | jq -c '[.incidents[]? | select((.summary | contains("xid 79")) and (.resolveTime == null))][0] // empty')
		[[ -n $inc ]] && break
		((SECONDS < deadline)) || die "no open XID 79 incident on worker-0: $(sopilot node incidents worker-0 -o json)"
		sleep 1
	done
	# "dry-run: would drain", with what would become of a job that the
	# shared Slurm cluster happens to run on worker-0 at the time.
	[[ $(jq -r .action <<<"$inc") == "dry-run: would drain"* ]] || die "XID 79 incident's action: $inc"
	XID_INCIDENT=$(jq -r .id <<<"$inc")
	pass "XID 79 injected on worker-0 ($SOPILOT_K8S_NODE): incident $XID_INCIDENT open, dry-run: would drain"
}

# check_replacement: Soperator replaces worker-0's Kubernetes node: a new
# node (new name) registers, the worker pod and the agent come back on it,
# and slurmd restarts with the new node's name as its instance_id. The
# controller maps worker-0 to the new machine, its health starts fresh and
# the old machine's incident is resolved as "node replaced".
check_replacement() {
	local t0=$SECONDS rec open
	"$CLUSTER" replace-node "$NODE_REPLACED"
	eval "$("$CLUSTER" env)"
	[[ $SOPILOT_K8S_NODE == "$NODE_REPLACED" ]] || die "node is $SOPILOT_K8S_NODE after replace-node"
	"$REPO/hack/slurm/cluster.sh" --slurm "$SLURM_VERSION" replace-node worker-0 "$NODE_REPLACED"
	eval "$("$REPO/hack/slurm/cluster.sh" --slurm "$SLURM_VERSION" env)"
	[[ ,$SOPILOT_SLURM_INSTANCES, == *,worker-0=$NODE_REPLACED,* ]] || die "Slurm instance ids after replace-node: $SOPILOT_SLURM_INSTANCES"
	kc rollout status statefulset/worker --timeout 120s >/dev/null
	kc rollout status "daemonset/$RELEASE-agent" --timeout 120s >/dev/null
	[[ $(kc get pods -l app.kubernetes.io/component=agent -o jsonpath='{.items[0].spec.nodeName}') == "$NODE_REPLACED" ]] ||
		die "the agent did not come back on $NODE_REPLACED"
	# The controller ran on the old node too and was rescheduled.
	kc wait --for=condition=Ready pod -l app.kubernetes.io/component=controller --timeout 120s >/dev/null ||
		die "the controller is not Ready on $NODE_REPLACED"
	port_forward
	check_nodes
	pass "node replacement: $NODE0 -> $NODE_REPLACED in $((SECONDS - t0)) s, worker-0 mapped to the new machine through its instance_id"
	# The old machine runs no Slurm node any more: absent, or listed only as
	# an unmapped machine whose agent is gone.
	rec=$(sopilot nodes -o json | jq -c --arg m "$NODE0" '[.nodes[] | select(.name == $m or .machine == $m)
		| {name, machine, unmapped: (.unmapped // false), agentConnected: (.agentConnected // false)}]')
	jq -e --arg m "$NODE0" 'all(.name == $m and .unmapped and (.agentConnected | not))' <<<"$rec" >/dev/null ||
		die "the old machine $NODE0 still runs a Slurm node or has an agent connected: $rec"
	open=$(sopilot node incidents worker-0 -o json | jq -c '[.incidents[]? | select(.resolveTime == null)]')
	[[ $open == "[]" ]] || die "worker-0 carries open incidents over the replacement: $open"
	sopilot node incidents worker-0 -o json | jq -e --arg id "$XID_INCIDENT" '.incidents[] | select(.id == $id) | .resolveTime != null' >/dev/null ||
		die "XID incident $XID_INCIDENT is not in worker-0's history as resolved"
	kc logs deploy/"$RELEASE-controller" | grep 'node replaced' | grep -q "$NODE_REPLACED" ||
		die "the controller did not log worker-0's replacement"
	pass "after the replacement: $NODE0 maps to no Slurm node ($(jq -r 'if length == 0 then "absent" else "listed unmapped, agent gone" end' <<<"$rec")), no open incident on worker-0, XID incident $XID_INCIDENT resolved as \"node replaced\""
	# The controller came back on the new node with its history volume.
	[[ $(sopilot run get -o json "$RUN_ID" | jq -r .state) == *COMPLETED ]] ||
		die "run $RUN_ID is not in the rescheduled controller's history"
	pass "the rescheduled controller still has run $RUN_ID (history on its PersistentVolume)"
}

# restore_slurm_instances: the shared Slurm cluster's instance ids as they were.
restore_slurm_instances() {
	[[ -n ${RESTORE_INSTANCES:-} ]] || return 0
	"$REPO/hack/slurm/cluster.sh" --slurm "$SLURM_VERSION" replace-node worker-0 "$NODE0" >/dev/null 2>&1 ||
		log "could not restore worker-0's instance id $NODE0"
	RESTORE_INSTANCES=""
}

cleanup() {
	local rc=$?
	stop_port_forward
	restore_slurm_instances
	if ((KEEP)); then
		log "cluster left up (SOPILOT_K8S_KEEP=1): eval \"\$($CLUSTER env)\""
	elif [[ -z ${DOWN_DONE:-} ]]; then
		"$CLUSTER" down || true
	fi
	return $rc
}

main() {
	[[ $(id -u) == 0 ]] || die "must run as root"
	local t0=$SECONDS
	mkdir -p "$WORK"
	PF_GRPC=${SOPILOT_K8S_PF_GRPC:-25051}
	PF_METRICS=${SOPILOT_K8S_PF_METRICS:-25477}
	timed "build (hack/k8s/build.sh)" "$HERE/build.sh" >/dev/null
	"$REPO/hack/slurm/cluster.sh" --slurm "$SLURM_VERSION" status >/dev/null ||
		die "the local Slurm $SLURM_VERSION cluster is not up (hack/slurm/cluster.sh --slurm $SLURM_VERSION up)"
	eval "$("$REPO/hack/slurm/cluster.sh" --slurm "$SLURM_VERSION" env)"
	[[ ,$SOPILOT_SLURM_INSTANCES, == *,worker-0=$NODE0,* ]] ||
		die "Slurm $SLURM_VERSION's worker-0 must run on instance $NODE0 (SOPILOT_SLURM_INSTANCES=$SOPILOT_SLURM_INSTANCES): hack/slurm/cluster.sh --slurm $SLURM_VERSION replace-node worker-0 $NODE0"
	timed "tools (helm, grpcurl)" tools
	"$CLUSTER" status >/dev/null 2>&1 && die "a cluster is already up: hack/k8s/cluster.sh down first"
	# Leftovers of an interrupted run (processes, mounts, rules) go first.
	"$CLUSTER" down >/dev/null 2>&1 || true
	snapshot before
	trap cleanup EXIT
	SOPILOT_K8S_NODE=$NODE0 SOPILOT_K8S_NODE_LABELS=$NODE_LABELS SOPILOT_K8S_NODE_TAINTS=$NODE_TAINTS \
		timed "cluster up (node Ready)" "$CLUSTER" up
	eval "$("$CLUSTER" env)"
	timed "images (go build, buildah, import)" build_images
	timed "Soperator's namespace" soperator_namespace
	timed "TLS certificates, tokens" tls_secrets
	timed "helm install --wait" helm_install
	timed "pods Ready" check_pods
	port_forward
	timed "API checks (TLS, user token)" check_api
	timed "run on Slurm $SLURM_VERSION" check_run
	timed "nodes (instance_id)" check_nodes
	timed "agent authentication (TokenReview)" check_agent_auth
	timed "XID 79 (dry-run)" inject_xid
	RESTORE_INSTANCES=1
	timed "node replacement" check_replacement
	stop_port_forward
	restore_slurm_instances
	if ((!KEEP)); then
		timed "cluster down" "$CLUSTER" down
		DOWN_DONE=1
		snapshot after
		compare_snapshots
	fi
	log "timings:"
	printf '  %s\n' "${TIMINGS[@]}" >&2
	log "$PASSED checks passed in $((SECONDS - t0)) s"
}

main "$@"
