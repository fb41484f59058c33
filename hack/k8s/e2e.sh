#!/usr/bin/env bash
# e2e.sh — sopilot's Helm chart on a real Kubernetes: a single-node cluster
# (hack/k8s/cluster.sh, built by hack/k8s/build.sh), a namespace holding what
# Soperator creates, `helm install --wait` of deploy/helm/sopilot with
# ci/k8s-e2e-values.yaml, checks by value, a simulated node replacement, and
# a tear-down that is checked to leave the host as it found it.
#
#   hack/k8s/e2e.sh            everything; exit 0 iff every check passed
#
# Needs root, Go, and the local Slurm 24.11 cluster up (hack/slurm/cluster.sh
# --slurm 24.11 up): the controller reaches its slurmrestd through the
# Service soperator-rest-svc:6820, as on Soperator, and Slurm node records
# carry instance ids from 24.11 on.
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
WAITING=()
RUN_ID=""

# timed NAME CMD...: run CMD, remember how long it took.
timed() {
	local name=$1 t0=$SECONDS
	shift
	"$@"
	TIMINGS+=("$(printf '%5ss  %s' "$((SECONDS - t0))" "$name")")
}
pass() { PASSED=$((PASSED + 1)); log "ok: $*"; }
# waiting WHAT: a check that needs work not in this tree yet; reported, not failed.
waiting() {
	log "SKIP (not available yet): $*"
	local w
	for w in "${WAITING[@]+"${WAITING[@]}"}"; do [[ $w == "$*" ]] && return 0; done
	WAITING+=("$*")
}

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
	# The agent as in node-agent.Dockerfile, plus a static busybox as sh and
	# cat: the chart's agent.nodeName.source=map runs a shell snippet.
	"$HERE/image.sh" "$WORK/images/node-agent.tar" "ghcr.io/sopilot/node-agent:$tag" \
		--entrypoint /usr/local/bin/node-agent --user 65532:65532 \
		--env PATH=/usr/local/bin:/bin --env NVIDIA_VISIBLE_DEVICES=all --env NVIDIA_DRIVER_CAPABILITIES=utility \
		--libs "$BIN/node-agent" "$BIN/node-agent:/usr/local/bin/node-agent" \
		/bin/busybox:/bin/sh /bin/busybox:/bin/cat
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

# identity_landed: the local Slurm sets instance ids (hack/slurm/cluster.sh
# replace-node) and agents are mapped through them.
identity_landed() { [[ -n ${SOPILOT_SLURM_INSTANCES:-} ]]; }

# chart_has PATTERN: the chart's values.yaml has a line matching PATTERN (for
# settings that only some chart versions know; its schema refuses unknown keys).
chart_has() { grep -qE "$1" "$CHART/values.yaml"; }

helm_install() {
	local args=(--namespace "$NS" -f "$CHART/ci/k8s-e2e-values.yaml"
		--set "jail.runDirs[0]=$SOPILOT_SLURM_WORKDIR" --wait --timeout 5m)
	# Charts before 0.2 select the GPU Operator's nvidia.com/gpu.present,
	# which a Soperator cluster may lack: select Terraform's label instead.
	if chart_has '^    nvidia.com/gpu.present: "true"'; then
		args+=(--set 'agent.nodeSelector.nvidia\.com/gpu\.present=null'
			--set-string 'agent.nodeSelector.nebius\.com/gpu=true')
	fi
	# No GPU Operator here: its toolkit-ready file never appears.
	chart_has '^  waitForToolkit:' && args+=(--set agent.waitForToolkit.enabled=false)
	# Soperator's prolog writes the GPU->job files on the host; here a
	# directory the cluster provides for host paths that pods mount with
	# propagation (the chart would create /var/run/nebius/slurm otherwise).
	if chart_has '^  gpuJobDir:'; then
		mkdir -p "$SOPILOT_K8S_HOSTPATH/nebius-slurm"
		args+=(--set "agent.gpuJobDir=$SOPILOT_K8S_HOSTPATH/nebius-slurm")
	fi
	if ! identity_landed && chart_has '^    source: kubernetesNode'; then
		# Until agents are mapped through Slurm's instance_id, name the
		# agent's Slurm node with the chart's static map.
		args+=(--set agent.nodeName.source=map --set "agent.nodeName.map.$SOPILOT_K8S_NODE=worker-0")
	fi
	"$HELM" upgrade --install "$RELEASE" "$CHART" "${args[@]}"
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

sopilot() { SOPILOT_CONTROLLER=127.0.0.1:$PF_GRPC SOPILOT_INSECURE=true "$BIN/sopilot" "$@"; }

check_api() {
	local body
	body=$(curl -fsS "http://127.0.0.1:$PF_METRICS/readyz") || die "controller /readyz did not answer 200"
	pass "controller /readyz: $body"
	"$GRPCURL" -plaintext "127.0.0.1:$PF_GRPC" list >"$WORK/grpc-services" || die "grpcurl list failed"
	grep -q '^sopilot\.' "$WORK/grpc-services" || die "no sopilot service in grpcurl list: $(tr '\n' ' ' <"$WORK/grpc-services")"
	[[ $("$GRPCURL" -plaintext "127.0.0.1:$PF_GRPC" grpc.health.v1.Health/Check | jq -r .status) == SERVING ]] ||
		die "grpc.health.v1 does not say SERVING"
	pass "gRPC API answers through a port-forward (reflection: $(grep -c . "$WORK/grpc-services") services; health SERVING)"
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

check_nodes() {
	local rec deadline=$((SECONDS + 60))
	while :; do
		rec=$(node_json worker-0 || true)
		[[ -n $rec ]] && [[ $(jq -r .agentConnected <<<"$rec") == true ]] && break
		((SECONDS < deadline)) || die "sopilot nodes: worker-0 has no connected agent: $rec"
		sleep 1
	done
	[[ $(jq -r .simulated <<<"$rec") == true ]] || die "worker-0's agent is not the simulated one: $rec"
	if identity_landed; then
		jq -e --arg k "$SOPILOT_K8S_NODE" 'tostring | contains($k)' <<<"$rec" >/dev/null ||
			die "sopilot nodes: worker-0 is not mapped to Kubernetes node $SOPILOT_K8S_NODE: $rec"
		pass "sopilot nodes: worker-0 mapped to Kubernetes node $SOPILOT_K8S_NODE through instance_id, agent connected"
	else
		pass "sopilot nodes: worker-0 ($(jq -r .slurmState <<<"$rec")) has the agent of Kubernetes node $SOPILOT_K8S_NODE connected (static map)"
		waiting "agent mapped to its Slurm node through instance_id (needs instance ids in hack/slurm/cluster.sh and the controller's mapping)"
	fi
}

# token_review TOKEN: the API server's TokenReview of TOKEN, as JSON.
token_review() {
	jq -n --arg t "$1" '{apiVersion: "authentication.k8s.io/v1", kind: "TokenReview", spec: {token: $t}}' |
		kubectl create -o json -f -
}

# check_tokenreview: a projected token of the agent's ServiceAccount, bound
# to the agent pod, is reviewed by this API server with the pod and node it
# is bound to.
check_tokenreview() {
	local pod sa token review node
	pod=$(kc get pods -l app.kubernetes.io/component=agent -o jsonpath='{.items[0].metadata.name}')
	sa=$(kc get pod "$pod" -o jsonpath='{.spec.serviceAccountName}')
	token=$(kc create token "$sa" --bound-object-kind Pod --bound-object-name "$pod" --duration 10m)
	review=$(token_review "$token")
	[[ $(jq -r .status.authenticated <<<"$review") == true ]] || die "TokenReview refused the agent's token: $review"
	[[ $(jq -r .status.user.username <<<"$review") == "system:serviceaccount:$NS:$sa" ]] || die "TokenReview user: $review"
	node=$(jq -r '.status.user.extra["authentication.kubernetes.io/node-name"][0] // empty' <<<"$review")
	[[ $node == "$SOPILOT_K8S_NODE" ]] || die "TokenReview names node '$node', want $SOPILOT_K8S_NODE: $review"
	[[ $(jq -r '.status.user.extra["authentication.kubernetes.io/pod-name"][0]' <<<"$review") == "$pod" ]] || die "TokenReview pod: $review"
	pass "TokenReview: the agent's projected token is bound to pod $pod on node $node"
	# A token bound to a pod that is gone is refused (once the API server's
	# authentication cache, 10 s for accepted tokens, has let it go).
	kc delete pod "$pod" --wait=true >/dev/null
	local deadline=$((SECONDS + 40))
	while :; do
		review=$(token_review "$token")
		[[ $(jq -r .status.authenticated <<<"$review") == true ]] || break
		((SECONDS < deadline)) || die "TokenReview still accepts a token of a deleted pod: $review"
		sleep 2
	done
	pass "TokenReview: the token of a deleted agent pod is refused"
	kc rollout status "daemonset/$RELEASE-agent" --timeout 120s >/dev/null
	# The controller's own check (accepted for the agent's node, refused for
	# another) is the controller's TokenReview flag, not in this chart yet.
	waiting "controller authenticates agents by TokenReview: accepted for its node, refused for another (needs the controller's TokenReview agent auth and the chart's token volume)"
}

# check_replacement: the Kubernetes node is replaced (new name, same Slurm
# node): the new agent must be mapped to the same Slurm node.
check_replacement() {
	local t0=$SECONDS
	"$CLUSTER" replace-node "$NODE_REPLACED"
	eval "$("$CLUSTER" env)"
	[[ $SOPILOT_K8S_NODE == "$NODE_REPLACED" ]] || die "node is $SOPILOT_K8S_NODE after replace-node"
	if identity_landed; then
		"$REPO/hack/slurm/cluster.sh" --slurm "$SLURM_VERSION" replace-node worker-0 "$NODE_REPLACED"
		eval "$("$REPO/hack/slurm/cluster.sh" --slurm "$SLURM_VERSION" env)"
	else
		# The static map names the old node: follow the rename (what the
		# instance ids make unnecessary).
		helm_install >/dev/null
	fi
	kc rollout status statefulset/worker --timeout 120s >/dev/null
	kc rollout status "daemonset/$RELEASE-agent" --timeout 120s >/dev/null
	[[ $(kc get pods -l app.kubernetes.io/component=agent -o jsonpath='{.items[0].spec.nodeName}') == "$NODE_REPLACED" ]] ||
		die "the agent did not come back on $NODE_REPLACED"
	# The controller ran on the old node too and was rescheduled: the agent
	# it now lists as connected is the one on the new node.
	port_forward
	check_nodes
	pass "node replacement: $NODE0 -> $NODE_REPLACED in $((SECONDS - t0)) s, worker-0's agent back"
	# The controller came back on the new node with its history volume.
	[[ $(sopilot run get -o json "$RUN_ID" | jq -r .state) == *COMPLETED ]] ||
		die "run $RUN_ID is not in the rescheduled controller's history"
	pass "the rescheduled controller still has run $RUN_ID (history on its PersistentVolume)"
	identity_landed || waiting "replacement: controller maps the new agent to worker-0 through the changed instance id, with fresh health state"
}

restore_slurm_instances() {
	identity_landed || return 0
	"$REPO/hack/slurm/cluster.sh" --slurm "$SLURM_VERSION" replace-node worker-0 "$NODE0" >/dev/null 2>&1 || true
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
	timed "helm install --wait" helm_install
	timed "pods Ready" check_pods
	port_forward
	timed "API checks" check_api
	timed "run on Slurm $SLURM_VERSION" check_run
	timed "nodes" check_nodes
	timed "TokenReview" check_tokenreview
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
	if ((${#WAITING[@]})); then
		log "not checked yet (waiting on work not in this tree):"
		printf '  - %s\n' "${WAITING[@]}" >&2
	fi
}

main "$@"
