#!/usr/bin/env bash
# cluster.sh — a real, single-node Kubernetes on this host for sopilot's
# end-to-end test of the Helm chart (hack/k8s/e2e.sh), built from the
# upstream sources by hack/k8s/build.sh.
#
#   hack/k8s/cluster.sh up                  start (or finish starting) the cluster
#   hack/k8s/cluster.sh down [--purge]      stop it and remove everything it made on the host;
#                                           --purge also deletes the state dir (logs included)
#   hack/k8s/cluster.sh status              exit 0 iff the API server answers and the node is Ready
#   hack/k8s/cluster.sh env                 export lines:  eval "$(hack/k8s/cluster.sh env)"
#   hack/k8s/cluster.sh replace-node NAME   re-register the node under a new name, the way a
#                                           replaced cloud VM comes back: stop the kubelet, delete
#                                           the Node and its pods, start it with --hostname-override NAME
#   hack/k8s/cluster.sh load ARCHIVE...     import image archives (hack/k8s/image.sh) into containerd
#   hack/k8s/cluster.sh expose IP PORT LOCAL_PORT
#                                           make a Service's cluster IP:PORT reach a service that
#                                           listens on the host's loopback at LOCAL_PORT (for pods)
#
# What runs: etcd, kube-apiserver (loopback only; a generated CA, serving and
# client certificates, service-account signing keys so projected tokens are
# bound to their pod and node and TokenReview reports both),
# kube-controller-manager, kube-scheduler, containerd (CRI, runc), the kubelet,
# kube-proxy (iptables mode) and CoreDNS (a host process serving cluster DNS
# on the bridge address). Pods sit on a CNI bridge of their own.
#
# Nothing changes host-wide settings:
# - the kubelet runs in a mount namespace of its own where regular files are
#   bind-mounted over the /proc/sys entries it would set (vm.overcommit_memory,
#   kernel.panic, ...); its root dir is a shared bind mount so the volumes it
#   mounts reach containerd;
# - containerd sets restrict_oom_score_adj (root lacks CAP_SYS_RESOURCE here,
#   and a negative OOM score fails every runc container);
# - networking: the CNI bridge plugin with isGateway/ipMasq off; this script
#   gives the bridge its gateway address and enables forwarding and
#   route_localnet on that one interface only (host ip_forward stays as it
#   is); kube-proxy with no conntrack sizing, no localhost node ports,
#   node ports on the bridge address only, and masquerading of all Service
#   traffic (pods on one bridge reach each other's Services with the replies
#   coming back through the host);
# - the API server (and anything `expose`d) listens on loopback; pods reach
#   it through a DNAT rule from its Service address, in a chain of our own
#   (SOPK8S-*) that PREROUTING jumps to first.
# `down` removes pods through CRI (so CNI DEL runs for each), kube-proxy's
# and our iptables chains, the mounts, the bridge, the pod cgroups, the host
# directories the components create when they were absent before, and stops
# every process it started.
#
# State (certificates, configs, etcd data, containerd root, logs, pid files)
# lives in $SOPILOT_K8S_DIR (default /tmp/sopilot-k8s). Must run as root.
#
# Settings (environment): SOPILOT_K8S_NODE (first node name, default
# gpu-node-0), SOPILOT_K8S_NODE_LABELS (kubelet --node-labels),
# SOPILOT_K8S_NODE_TAINTS (kubelet --register-with-taints), SOPILOT_K8S_CACHE
# (binaries, see build.sh), SOPILOT_K8S_WAIT (seconds to wait for readiness,
# default 120). Addresses: bridge sopk8s0 10.244.0.1/24 (pods), Services
# 10.96.0.0/24, API server 127.0.0.1:16443; component ports 12379-12380 (etcd)
# and 20248-20259.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.sh
. "$HERE/versions.sh"

log() { echo "k8s/cluster.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

DIR=${SOPILOT_K8S_DIR:-/tmp/sopilot-k8s}
BIN=$("$HERE/build.sh" dir)
WAIT_SECONDS=${SOPILOT_K8S_WAIT:-120}

BRIDGE=sopk8s0
POD_CIDR=10.244.0.0/24
GATEWAY=10.244.0.1
SERVICE_CIDR=10.96.0.0/24
API_SERVICE_IP=10.96.0.1
API_PORT=16443
ETCD_PORT=12379
ETCD_PEER_PORT=12380
KUBELET_PORT=20250
KUBELET_HEALTHZ_PORT=20248
PROXY_METRICS_PORT=20249
PROXY_HEALTHZ_PORT=20256
CM_PORT=20257
SCHED_PORT=20259
CLUSTER_DOMAIN=cluster.local
CHAIN=SOPK8S-PREROUTING

PKI=$DIR/pki
KC=$DIR/kubeconfigs
LOGS=$DIR/logs
RUN=$DIR/run
KUBELET_DIR=$DIR/kubelet
CTRD=$DIR/containerd
CTRD_SOCK=$CTRD/containerd.sock
# Host paths the components create outside $DIR (hard-coded in them):
# removed by `down` when they did not exist before `up`.
HOST_PATHS=(/var/lib/kubelet /var/log/containers /var/log/pods /run/containerd /var/lib/cni /run/netns)

kubectl() { "$BIN/kubectl" --kubeconfig "$KC/admin.conf" "$@"; }
crictl() { "$BIN/crictl" --runtime-endpoint "unix://$CTRD_SOCK" --timeout 30s "$@"; }

node_name() {
	if [[ -s $DIR/node-name ]]; then cat "$DIR/node-name"; else echo "${SOPILOT_K8S_NODE:-gpu-node-0}"; fi
}

# ---------------------------------------------------------------- processes

pidfile() { echo "$RUN/$1.pid"; }
# running NAME: its pid file names a live process that is ours (every
# component's command line names a file in $DIR), not a reused pid.
running() {
	local f pid
	f=$(pidfile "$1")
	[[ -s $f ]] || return 1
	pid=$(<"$f")
	kill -0 "$pid" 2>/dev/null || return 1
	tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$DIR/"
}

# start NAME CMD...: run CMD in the background, detached, logging to
# $LOGS/NAME.log, unless NAME is already running.
start() {
	local name=$1
	shift
	running "$name" && return 0
	setsid "$@" >>"$LOGS/$name.log" 2>&1 </dev/null &
	echo $! >"$(pidfile "$name")"
	log "started $name (pid $!)"
}

# stop NAME: SIGTERM, then SIGKILL after 10 s.
stop() {
	local name=$1 f pid i
	f=$(pidfile "$name")
	[[ -s $f ]] || return 0
	pid=$(<"$f")
	if running "$name"; then
		kill -TERM "$pid" 2>/dev/null || true
		for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		if kill -0 "$pid" 2>/dev/null; then
			log "$name (pid $pid) ignored SIGTERM, killing"
			kill -KILL "$pid" 2>/dev/null || true
			for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		fi
	fi
	rm -f "$f"
}

# wait_for WHAT CMD...: retry CMD until it succeeds or WAIT_SECONDS pass.
wait_for() {
	local what=$1 deadline=$((SECONDS + WAIT_SECONDS))
	shift
	until "$@" >/dev/null 2>&1; do
		((SECONDS < deadline)) || die "timed out after ${WAIT_SECONDS}s waiting for $what (logs: $LOGS)"
		sleep 0.5
	done
}

# ---------------------------------------------------------------- certificates

# issue NAME CN [O] [SANS]: a client/server certificate signed by the CA.
issue() {
	local name=$1 cn=$2 org=${3:-} sans=${4:-} subj
	[[ -s $PKI/$name.crt ]] && return 0
	subj="/CN=$cn"
	[[ -n $org ]] && subj="/O=$org$subj"
	openssl ecparam -name prime256v1 -genkey -noout -out "$PKI/$name.key" 2>/dev/null
	openssl req -new -key "$PKI/$name.key" -subj "$subj" -out "$PKI/$name.csr" 2>/dev/null
	{
		echo "basicConstraints=CA:FALSE"
		echo "keyUsage=critical,digitalSignature,keyEncipherment"
		echo "extendedKeyUsage=serverAuth,clientAuth"
		[[ -n $sans ]] && echo "subjectAltName=$sans"
	} >"$PKI/$name.ext"
	openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
		-days 30 -sha256 -extfile "$PKI/$name.ext" -out "$PKI/$name.crt" 2>/dev/null
	rm -f "$PKI/$name.csr" "$PKI/$name.ext"
}

# kubeconfig NAME CERT: a kubeconfig for the client certificate CERT.
kubeconfig() {
	local name=$1 cert=$2
	cat >"$KC/$name.conf" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: sopilot-k8s
  cluster:
    server: https://127.0.0.1:$API_PORT
    certificate-authority: $PKI/ca.crt
users:
- name: $name
  user:
    client-certificate: $PKI/$cert.crt
    client-key: $PKI/$cert.key
contexts:
- name: sopilot-k8s
  context: {cluster: sopilot-k8s, user: $name}
current-context: sopilot-k8s
EOF
}

make_pki() {
	mkdir -p "$PKI" "$KC"
	chmod 700 "$PKI"
	if [[ ! -s $PKI/ca.crt ]]; then
		openssl ecparam -name prime256v1 -genkey -noout -out "$PKI/ca.key" 2>/dev/null
		openssl req -x509 -new -key "$PKI/ca.key" -subj "/CN=sopilot-k8s-ca" -days 30 -sha256 \
			-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
			-out "$PKI/ca.crt" 2>/dev/null
	fi
	# Service-account token signing (RSA: the issuer's JWKS and every client
	# library accept RS256).
	[[ -s $PKI/sa.key ]] || {
		openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
		openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
	}
	issue apiserver kube-apiserver "" \
		"DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.$CLUSTER_DOMAIN,DNS:localhost,IP:127.0.0.1,IP:$API_SERVICE_IP,IP:$GATEWAY"
	issue apiserver-kubelet-client kube-apiserver-kubelet-client system:masters
	issue admin sopilot-k8s-admin system:masters
	issue controller-manager system:kube-controller-manager
	issue scheduler system:kube-scheduler
	issue kube-proxy system:kube-proxy
	kubeconfig admin admin
	kubeconfig controller-manager controller-manager
	kubeconfig scheduler scheduler
	kubeconfig kube-proxy kube-proxy
}

# node_pki NODE: the kubelet's client identity (system:node:NODE, so the Node
# authorizer and NodeRestriction apply) and its serving certificate.
node_pki() {
	local node=$1
	issue "kubelet-$node" "system:node:$node" system:nodes
	issue "kubelet-$node-serving" "$node" "" "DNS:$node,IP:$GATEWAY"
	kubeconfig "kubelet-$node" "kubelet-$node"
}

# ---------------------------------------------------------------- network

ipt() { iptables -w 5 "$@"; }

net_up() {
	if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
		ip link add "$BRIDGE" type bridge
	fi
	ip addr replace "$GATEWAY/24" dev "$BRIDGE"
	ip link set "$BRIDGE" up
	# Per-interface only: pods are forwarded between ports of this bridge and
	# may reach DNAT targets on loopback; the host's other interfaces and
	# net.ipv4.ip_forward are untouched.
	echo 1 >"/proc/sys/net/ipv4/conf/$BRIDGE/forwarding"
	echo 1 >"/proc/sys/net/ipv4/conf/$BRIDGE/route_localnet"
	ipt -t nat -N "$CHAIN" 2>/dev/null || true
	nat_rule "$API_SERVICE_IP" 443 "$API_PORT"
	jump_first
	mkdir -p "$DIR/cni/net.d" "$DIR/cni/ipam"
	cat >"$DIR/cni/net.d/10-sopilot-k8s.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "sopilot-k8s",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": false,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$DIR/cni/ipam",
        "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$GATEWAY"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    }
  ]
}
EOF
}

# nat_rule IP PORT LOCAL_PORT: pods' connections to IP:PORT go to 127.0.0.1:LOCAL_PORT.
nat_rule() {
	local spec=(-i "$BRIDGE" -d "$1" -p tcp --dport "$2" -j DNAT --to-destination "127.0.0.1:$3")
	ipt -t nat -C "$CHAIN" "${spec[@]}" 2>/dev/null || ipt -t nat -A "$CHAIN" "${spec[@]}"
}

# jump_first: our chain must see a packet before kube-proxy's KUBE-SERVICES
# rewrites it (a DNAT ends the chain), so its jump is PREROUTING's first rule.
jump_first() {
	local first
	first=$(ipt -t nat -S PREROUTING 2>/dev/null | sed -n 2p)
	[[ $first == "-A PREROUTING -j $CHAIN" ]] && return 0
	while ipt -t nat -D PREROUTING -j "$CHAIN" 2>/dev/null; do :; done
	ipt -t nat -I PREROUTING 1 -j "$CHAIN"
}

# clean_iptables: our chain, kube-proxy's and the kubelet's (KUBE-*), in
# every table of both families. kube-proxy --cleanup leaves empty chains
# (and exits 1) here, so this does it directly.
clean_iptables() {
	local cmd table chain rule
	for cmd in iptables ip6tables; do
		command -v "$cmd" >/dev/null || continue
		for table in nat filter mangle raw; do
			"$cmd" -w 5 -t "$table" -S >/dev/null 2>&1 || continue
			# Rules in built-in chains that jump to ours.
			while read -r rule; do
				[[ -n $rule ]] || continue
				eval "set -- ${rule/-A /-D }"
				"$cmd" -w 5 -t "$table" "$@" 2>/dev/null || true
			done < <("$cmd" -w 5 -t "$table" -S 2>/dev/null | grep -E '^-A (PREROUTING|INPUT|FORWARD|OUTPUT|POSTROUTING) .*-j (KUBE-|SOPK8S-)' || true)
			for chain in $("$cmd" -w 5 -t "$table" -S 2>/dev/null | awk '$1 == "-N" && ($2 ~ /^KUBE-/ || $2 ~ /^SOPK8S-/) { print $2 }'); do
				"$cmd" -w 5 -t "$table" -F "$chain" 2>/dev/null || true
			done
			for chain in $("$cmd" -w 5 -t "$table" -S 2>/dev/null | awk '$1 == "-N" && ($2 ~ /^KUBE-/ || $2 ~ /^SOPK8S-/) { print $2 }'); do
				"$cmd" -w 5 -t "$table" -X "$chain" 2>/dev/null || true
			done
		done
	done
}

# iptables-nft creates a table the first time a chain of it is used, and has
# no way to delete one: `down` deletes, with nft, the tables that did not
# exist before `up` and hold no rule after clean_iptables.
nft_tables() { if command -v nft >/dev/null; then nft list tables 2>/dev/null | sort; fi; }

remove_new_tables() {
	local before=$DIR/nft-tables-before t fam name save
	[[ -e $before ]] || return 0
	while read -r t fam name; do
		[[ $t == table ]] || continue
		grep -qxF "table $fam $name" "$before" && continue
		case $fam in ip) save=iptables-save ;; ip6) save=ip6tables-save ;; *) continue ;; esac
		"$save" -t "$name" 2>/dev/null | grep -q '^-A' && continue
		nft delete table "$fam" "$name" 2>/dev/null || true
	done < <(nft_tables)
	rm -f "$before"
}

# ---------------------------------------------------------------- components

start_etcd() {
	mkdir -p "$DIR/etcd"
	chmod 700 "$DIR/etcd"
	start etcd etcd --name sopilot-k8s --data-dir "$DIR/etcd" \
		--listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
		--listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
		--initial-cluster "sopilot-k8s=http://127.0.0.1:$ETCD_PEER_PORT" --listen-metrics-urls "" \
		--quota-backend-bytes 1073741824 --logger zap
	wait_for etcd curl -fsS "http://127.0.0.1:$ETCD_PORT/health"
}

start_apiserver() {
	start kube-apiserver "$BIN/kube-apiserver" \
		--etcd-servers "http://127.0.0.1:$ETCD_PORT" \
		--bind-address 127.0.0.1 --secure-port "$API_PORT" --advertise-address "$GATEWAY" \
		--service-cluster-ip-range "$SERVICE_CIDR" \
		--tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
		--client-ca-file "$PKI/ca.crt" \
		--kubelet-client-certificate "$PKI/apiserver-kubelet-client.crt" \
		--kubelet-client-key "$PKI/apiserver-kubelet-client.key" \
		--kubelet-preferred-address-types InternalIP \
		--service-account-issuer "https://kubernetes.default.svc.$CLUSTER_DOMAIN" \
		--service-account-key-file "$PKI/sa.pub" \
		--service-account-signing-key-file "$PKI/sa.key" \
		--authorization-mode Node,RBAC \
		--enable-admission-plugins NodeRestriction \
		--allow-privileged=true \
		--profiling=false \
		--service-node-port-range 30000-30999
	wait_for "the API server" kubectl get --raw /readyz
}

start_controllers() {
	start kube-controller-manager "$BIN/kube-controller-manager" \
		--kubeconfig "$KC/controller-manager.conf" \
		--authentication-kubeconfig "$KC/controller-manager.conf" \
		--authorization-kubeconfig "$KC/controller-manager.conf" \
		--bind-address 127.0.0.1 --secure-port "$CM_PORT" \
		--leader-elect=false --use-service-account-credentials=true \
		--service-account-private-key-file "$PKI/sa.key" --root-ca-file "$PKI/ca.crt" \
		--cluster-signing-cert-file "$PKI/ca.crt" --cluster-signing-key-file "$PKI/ca.key" \
		--service-cluster-ip-range "$SERVICE_CIDR" --allocate-node-cidrs=false \
		--profiling=false
	start kube-scheduler "$BIN/kube-scheduler" \
		--kubeconfig "$KC/scheduler.conf" \
		--authentication-kubeconfig "$KC/scheduler.conf" \
		--authorization-kubeconfig "$KC/scheduler.conf" \
		--bind-address 127.0.0.1 --secure-port "$SCHED_PORT" --leader-elect=false --profiling=false
}

start_containerd() {
	mkdir -p "$CTRD/root" "$CTRD/state" "$CTRD/opt"
	cat >"$CTRD/config.toml" <<EOF
version = 2
root = "$CTRD/root"
state = "$CTRD/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "$CTRD_SOCK"
[ttrpc]
  address = "$CTRD/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""

[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = "$CTRD/opt"
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "$PAUSE_IMAGE"
    # Root here lacks CAP_SYS_RESOURCE: a negative OOM score adjustment
    # fails every runc container, so clamp it to containerd's own.
    restrict_oom_score_adj = true
    # Pods' network namespaces under our state dir, not /run/netns.
    netns_mounts_under_state_dir = true
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"
    enable_selinux = false
    disable_apparmor = true
    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "overlayfs"
      default_runtime_name = "runc"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
          SystemdCgroup = false
          Root = "$CTRD/runc"
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/usr/lib/cni"
      conf_dir = "$DIR/cni/net.d"
EOF
	start containerd containerd --config "$CTRD/config.toml"
	wait_for containerd crictl info
}

# The kubelet writes kernel settings the host shares (vm.overcommit_memory,
# vm.panic_on_oom, kernel.panic, kernel.panic_on_oops, kernel.keys.*): in
# its own mount namespace those /proc/sys entries are regular files.
KUBELET_SYSCTLS=(vm/overcommit_memory vm/panic_on_oom kernel/panic kernel/panic_on_oops kernel/keys/root_maxkeys kernel/keys/root_maxbytes)

start_kubelet() {
	local node=$1 s f
	node_pki "$node"
	mkdir -p "$KUBELET_DIR" "$DIR/pod-logs" "$DIR/sysctl"
	# A shared bind mount: what the kubelet mounts below it from its own
	# namespace (secrets, projected tokens, emptyDirs) shows up in the host's,
	# where containerd bind-mounts it into containers.
	if ! mountpoint -q "$KUBELET_DIR"; then mount --bind "$KUBELET_DIR" "$KUBELET_DIR"; fi
	mount --make-shared "$KUBELET_DIR"
	# hostPath volumes with mountPropagation (HostToContainer) need their
	# source on a shared or slave mount, and this host's / is private: pods'
	# host directories go below this shared one (`env`: SOPILOT_K8S_HOSTPATH).
	mkdir -p "$DIR/hostpath"
	if ! mountpoint -q "$DIR/hostpath"; then mount --bind "$DIR/hostpath" "$DIR/hostpath"; fi
	mount --make-shared "$DIR/hostpath"
	local binds=""
	for s in "${KUBELET_SYSCTLS[@]}"; do
		f=$DIR/sysctl/${s//\//.}
		[[ -e $f ]] || cat "/proc/sys/$s" >"$f"
		binds+="mount --bind '$f' '/proc/sys/$s'; "
	done
	cat >"$DIR/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $GATEWAY
port: $KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $KUBELET_HEALTHZ_PORT
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: $PKI/kubelet-$node-serving.crt
tlsPrivateKeyFile: $PKI/kubelet-$node-serving.key
containerRuntimeEndpoint: unix://$CTRD_SOCK
cgroupDriver: cgroupfs
failSwapOn: false
makeIPTablesUtilChains: false
oomScoreAdj: 0
clusterDNS: [$GATEWAY]
clusterDomain: $CLUSTER_DOMAIN
resolvConf: ""
podLogsDir: $DIR/pod-logs
maxPods: 30
serializeImagePulls: false
# Images are imported, never pulled: keep them however full the disk is.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "50Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
shutdownGracePeriod: 0s
EOF
	local labels=${SOPILOT_K8S_NODE_LABELS:-} taints=${SOPILOT_K8S_NODE_TAINTS:-}
	[[ -s $DIR/node-labels ]] && labels=$(<"$DIR/node-labels")
	[[ -s $DIR/node-taints ]] && taints=$(<"$DIR/node-taints")
	printf '%s' "$labels" >"$DIR/node-labels"
	printf '%s' "$taints" >"$DIR/node-taints"
	local extra=()
	[[ -n $labels ]] && extra+=(--node-labels "$labels")
	[[ -n $taints ]] && extra+=(--register-with-taints "$taints")
	start kubelet unshare --mount --propagation unchanged -- bash -ec \
		"mount --make-rprivate /proc; $binds exec \"\$0\" \"\$@\"" \
		"$BIN/kubelet" --config "$DIR/kubelet.yaml" --kubeconfig "$KC/kubelet-$node.conf" \
		--hostname-override "$node" --node-ip "$GATEWAY" --root-dir "$KUBELET_DIR" \
		--cert-dir "$KUBELET_DIR/pki" "${extra[@]}"
}

start_proxy() {
	local node=$1
	cat >"$DIR/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $KC/kube-proxy.conf}
hostnameOverride: $node
mode: iptables
clusterCIDR: $POD_CIDR
bindAddress: 127.0.0.1
healthzBindAddress: 127.0.0.1:$PROXY_HEALTHZ_PORT
metricsBindAddress: 127.0.0.1:$PROXY_METRICS_PORT
nodePortAddresses: ["$GATEWAY/32"]
oomScoreAdj: 0
# Leave the host's conntrack table size and timeouts alone.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
iptables: {masqueradeAll: true, localhostNodePorts: false, syncPeriod: 30s, minSyncPeriod: 1s}
EOF
	start kube-proxy "$BIN/kube-proxy" --config "$DIR/kube-proxy.yaml"
	wait_for "kube-proxy's rules" proxy_rules_in_place
	jump_first
}

# proxy_rules_in_place: kube-proxy has hooked KUBE-SERVICES into PREROUTING
# (with a comment, so -C with the bare rule does not match it).
proxy_rules_in_place() { ipt -t nat -S PREROUTING 2>/dev/null | grep -q -- '-j KUBE-SERVICES$'; }

start_coredns() {
	cat >"$DIR/Corefile" <<EOF
.:53 {
    bind $GATEWAY
    errors
    health 127.0.0.1:20253
    ready 127.0.0.1:20254
    kubernetes $CLUSTER_DOMAIN in-addr.arpa ip6.arpa {
        kubeconfig $KC/admin.conf
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    cache 5
}
EOF
	start coredns "$BIN/coredns" -conf "$DIR/Corefile"
	wait_for CoreDNS curl -fsS http://127.0.0.1:20254/ready
}

# pause_archive: the sandbox image (hack/k8s/pause, a static program) as an
# OCI archive, cached beside the binaries and rebuilt when the program is.
pause_archive() {
	local a=$BIN/pause-image.tar
	if [[ ! -s $a || $BIN/pause -nt $a ]]; then
		"$HERE/image.sh" "$a.tmp" "$PAUSE_IMAGE" --entrypoint /pause "$BIN/pause:/pause" >&2
		mv -f "$a.tmp" "$a"
	fi
	echo "$a"
}

# load ARCHIVE...: import images into containerd's CRI namespace, under the
# names they carry, so pods with imagePullPolicy IfNotPresent find them.
load_images() {
	local a
	for a in "$@"; do
		[[ -s $a ]] || die "no image archive $a"
		ctr --address "$CTRD_SOCK" -n k8s.io images import "$a" >/dev/null
		log "imported $a"
	done
}

node_ready() {
	[[ $(kubectl get node "$1" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null) == True ]]
}

# ---------------------------------------------------------------- commands

cmd_up() {
	[[ $(id -u) == 0 ]] || die "must run as root"
	for b in "${K8S_COMMANDS[@]}" coredns crictl pause; do
		[[ -x $BIN/$b ]] || die "$BIN/$b is missing: run hack/k8s/build.sh first"
	done
	local t0=$SECONDS node
	mkdir -p "$DIR" "$LOGS" "$RUN"
	# Remember which of the host paths the components create existed before.
	if [[ ! -e $DIR/host-paths-before ]]; then
		local p
		for p in "${HOST_PATHS[@]}"; do [[ -e $p ]] && echo "$p"; done >"$DIR/host-paths-before"
	fi
	[[ -e $DIR/nft-tables-before ]] || nft_tables >"$DIR/nft-tables-before"
	node=$(node_name)
	echo "$node" >"$DIR/node-name"
	make_pki
	net_up
	start_etcd
	start_apiserver
	start_controllers
	start_containerd
	load_images "$(pause_archive)"
	start_kubelet "$node"
	start_proxy "$node"
	start_coredns
	wait_for "node $node to be Ready" node_ready "$node"
	wait_for "the default ServiceAccount" kubectl -n default get serviceaccount default
	log "up: node $node Ready in $((SECONDS - t0)) s (KUBECONFIG=$KC/admin.conf)"
}

# remove_pods: every pod sandbox through CRI, so CNI DEL runs for each.
remove_pods() {
	running containerd || return 0
	crictl rmp --all --force >/dev/null 2>&1 || crictl rmp --all --force || true
}

# kill_shims: runc shims of our containerd that outlived it.
kill_shims() {
	local p
	for p in /proc/[0-9]*; do
		[[ -r $p/cmdline ]] || continue
		if tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -q -- "-address $CTRD_SOCK"; then
			kill -KILL "${p#/proc/}" 2>/dev/null || true
		fi
	done
}

# unmount_under DIR: every mount at or below DIR, deepest first.
unmount_under() {
	local d=$1 m
	while read -r m; do
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
	done < <(awk -v d="$d" '$5 == d || index($5, d "/") == 1 { print length($5), $5 }' /proc/self/mountinfo | sort -rn | cut -d' ' -f2-)
}

# remove_cgroups: the pod cgroups the kubelet made (cgroupfs driver).
remove_cgroups() {
	local h
	for h in /sys/fs/cgroup/*/ /sys/fs/cgroup/; do
		[[ -d ${h}kubepods ]] || continue
		find "${h}kubepods" -depth -type d -exec rmdir {} + 2>/dev/null || true
	done
}

cmd_down() {
	local purge=0 t0=$SECONDS
	[[ ${1:-} == --purge ]] && purge=1
	[[ $(id -u) == 0 ]] || die "must run as root"
	stop kubelet
	remove_pods
	stop kube-proxy
	stop coredns
	stop kube-scheduler
	stop kube-controller-manager
	stop kube-apiserver
	stop etcd
	stop containerd
	kill_shims
	clean_iptables
	remove_new_tables
	ip link del "$BRIDGE" 2>/dev/null || true
	unmount_under "$DIR"
	remove_cgroups
	if [[ -e $DIR/host-paths-before ]]; then
		local p
		for p in "${HOST_PATHS[@]}"; do
			grep -qxF "$p" "$DIR/host-paths-before" && continue
			[[ -e $p ]] || continue
			unmount_under "$p"
			rm -rf "$p"
		done
		rm -f "$DIR/host-paths-before"
	fi
	if ((purge)); then
		rm -rf "$DIR"
	elif [[ -d $DIR ]]; then
		find "$DIR" -mindepth 1 -maxdepth 1 ! -name logs -exec rm -rf {} +
	fi
	log "down in $((SECONDS - t0)) s"
}

cmd_status() {
	local node
	node=$(node_name)
	kubectl get --raw /readyz >/dev/null 2>&1 || { log "API server not answering"; return 1; }
	node_ready "$node" || { log "node $node not Ready"; return 1; }
	echo "node $node Ready"
}

cmd_env() {
	cat <<EOF
export KUBECONFIG=$KC/admin.conf
export CONTAINERD_ADDRESS=$CTRD_SOCK
export CONTAINERD_NAMESPACE=k8s.io
export CONTAINER_RUNTIME_ENDPOINT=unix://$CTRD_SOCK
export SOPILOT_K8S_NODE=$(node_name)
export SOPILOT_K8S_GATEWAY=$GATEWAY
export SOPILOT_K8S_DIR=$DIR
export SOPILOT_K8S_HOSTPATH=$DIR/hostpath
export PATH=$BIN:\$PATH
EOF
}

cmd_replace_node() {
	local new=${1:-} old t0=$SECONDS
	[[ -n $new ]] || die "replace-node needs the new node name"
	old=$(node_name)
	[[ $new != "$old" ]] || die "node is already called $new"
	stop kubelet
	stop kube-proxy
	# The old machine is gone: its pods with it.
	remove_pods
	kubectl delete node "$old" --wait=true >/dev/null
	# Their API objects too, now rather than after the pod GC's quarantine
	# (40 s), so controllers recreate them on the new node at once.
	kubectl delete pods --all-namespaces --field-selector "spec.nodeName=$old" \
		--force --grace-period=0 >/dev/null 2>&1 || true
	echo "$new" >"$DIR/node-name"
	start_kubelet "$new"
	start_proxy "$new"
	wait_for "node $new to be Ready" node_ready "$new"
	log "node $old replaced by $new in $((SECONDS - t0)) s"
}

cmd_expose() {
	(($# == 3)) || die "usage: expose CLUSTER_IP PORT LOCAL_PORT"
	nat_rule "$@"
	jump_first
}

PAUSE_IMAGE=localhost/sopilot-k8s/pause:$K8S_VERSION

case ${1:-} in
up) cmd_up ;;
down) shift; cmd_down "$@" ;;
status) cmd_status ;;
env) cmd_env ;;
replace-node) shift; cmd_replace_node "$@" ;;
expose) shift; cmd_expose "$@" ;;
load) shift; load_images "$@" ;;
*) die "usage: $0 up|down [--purge]|status|env|replace-node NAME|load ARCHIVE...|expose IP PORT LOCAL_PORT" ;;
esac
