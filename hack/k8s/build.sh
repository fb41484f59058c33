#!/usr/bin/env bash
# build.sh — everything the single-node test Kubernetes (hack/k8s/cluster.sh)
# runs: the upstream Kubernetes binaries built from source through the Go
# module proxy, CoreDNS, crictl and a static pause program, plus the Debian
# packages it needs (etcd, containerd, runc, CNI plugins, buildah, ...).
#
#   hack/k8s/build.sh          build what is missing; print the bin dir on stdout
#   hack/k8s/build.sh dir      print the bin dir only (builds nothing)
#
# Binaries are cached under $SOPILOT_K8S_CACHE (default /var/cache/sopilot/k8s)
# in a directory named after the Kubernetes version, so only the first run on
# a machine pays for the build (cold: 12-20 min on 2 cores; cached: seconds).
# Each binary has a stamp with its inputs (versions, tools go.sum, Go version):
# a changed input rebuilds that binary only.
#
# The Kubernetes version is the one hack/k8s/tools/go.mod pins: a small module
# that requires k8s.io/kubernetes and replaces each staging module (k8s.io/api,
# client-go, ...) with the published v0.x of the same release, the usual way of
# depending on k8s.io/kubernetes (its own ./staging replaces do not apply to a
# dependency, so `go install k8s.io/kubernetes/...@v1.x` refuses it).
#
# Go builds run under nice with -p ${SOPILOT_K8S_BUILD_JOBS:-2} so a build
# does not starve a shared machine. Debian packages are installed with apt-get
# only when missing (root only).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
# shellcheck source=versions.sh
. "$HERE/versions.sh"

log() { echo "k8s/build.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

CACHE_ROOT=${SOPILOT_K8S_CACHE:-/var/cache/sopilot/k8s}
BIN=$CACHE_ROOT/$K8S_VERSION/bin
JOBS=${SOPILOT_K8S_BUILD_JOBS:-2}

# Debian package → a command it provides (checked before installing).
APT_PACKAGES=(
	etcd-server:etcd
	containerd:containerd
	runc:runc
	containernetworking-plugins:/usr/lib/cni/bridge
	buildah:buildah
	busybox-static:/bin/busybox
	iptables:iptables
	nftables:nft
	conntrack:conntrack
	iproute2:ip
	util-linux:unshare
)

install_packages() {
	local missing=() p pkg probe
	for p in "${APT_PACKAGES[@]}"; do
		pkg=${p%%:*} probe=${p#*:}
		if [[ $probe == /* ]]; then [[ -e $probe ]] && continue
		else command -v "$probe" >/dev/null && continue; fi
		missing+=("$pkg")
	done
	((${#missing[@]})) || return 0
	[[ $(id -u) == 0 ]] || die "missing Debian packages ${missing[*]}: run as root or install them"
	log "installing ${missing[*]}"
	# policy-rc.d-style guard: no package may start a host-wide daemon
	# (containerd's own service); cluster.sh starts its own instances.
	DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get install -y -q --no-install-recommends \
		"${missing[@]}" >&2 || {
		apt-get update -q >&2
		DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
	}
}

go_version() { go env GOVERSION; }

# fresh NAME KEY: true when BIN/NAME exists and was built from KEY.
fresh() { [[ -x $BIN/$1 && -f $BIN/.stamp-$1 && $(<"$BIN/.stamp-$1") == "$2" ]]; }
stamp() { printf '%s' "$2" >"$BIN/.stamp-$1"; }

k8s_ldflags() {
	local v=${K8S_VERSION#v} major minor
	major=${v%%.*} minor=${v#*.}; minor=${minor%%.*}
	local f="-s -w" pkg
	# The servers report component-base's version (Helm checks kubeVersion
	# against it); kubectl's client reports client-go's.
	for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		f+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
		f+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
	done
	printf '%s' "$f"
}

build_kubernetes() {
	local key cmd todo=()
	key="$K8S_VERSION $(go_version) $(sha256sum "$HERE/tools/go.sum" | cut -c1-16)"
	for cmd in "${K8S_COMMANDS[@]}"; do fresh "$cmd" "$key" || todo+=("$cmd"); done
	((${#todo[@]})) || return 0
	local ldflags start
	ldflags=$(k8s_ldflags)
	for cmd in "${todo[@]}"; do
		start=$SECONDS
		log "building $cmd $K8S_VERSION"
		(cd "$HERE/tools" && CGO_ENABLED=0 nice -n 10 go build -p "$JOBS" -trimpath \
			-ldflags "$ldflags" -o "$BIN/.$cmd.tmp" "k8s.io/kubernetes/cmd/$cmd")
		mv -f "$BIN/.$cmd.tmp" "$BIN/$cmd"
		stamp "$cmd" "$key"
		log "built $cmd in $((SECONDS - start)) s"
	done
}

# go_install NAME PACKAGE@VERSION: a tool whose module installs with `go install`.
go_install() {
	local name=$1 pkgver=$2 key start tmp
	key="$pkgver $(go_version)"
	fresh "$name" "$key" && return 0
	start=$SECONDS
	log "building $name ($pkgver)"
	tmp=$(mktemp -d "$BIN/.gobin.XXXXXX")
	CGO_ENABLED=0 GOBIN=$tmp nice -n 10 go install -p "$JOBS" -trimpath -ldflags "-s -w" "$pkgver"
	mv -f "$tmp/$name" "$BIN/$name"
	rmdir "$tmp"
	stamp "$name" "$key"
	log "built $name in $((SECONDS - start)) s"
}

build_pause() {
	local key
	key="pause $(sha256sum "$HERE/pause/main.go" | cut -c1-16) $(go_version)"
	fresh pause "$key" && return 0
	(cd "$REPO" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$BIN/.pause.tmp" ./hack/k8s/pause)
	mv -f "$BIN/.pause.tmp" "$BIN/pause"
	stamp pause "$key"
}

main() {
	case ${1:-build} in
	dir) echo "$BIN"; return 0 ;;
	build) ;;
	*) die "unknown command ${1} (build|dir)" ;;
	esac
	command -v go >/dev/null || die "go is not on PATH"
	local start=$SECONDS
	install_packages
	mkdir -p "$BIN"
	build_pause
	build_kubernetes
	go_install coredns "github.com/coredns/coredns@$COREDNS_VERSION"
	go_install crictl "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION"
	log "binaries ready in $BIN ($((SECONDS - start)) s)"
	echo "$BIN"
}

main "$@"
