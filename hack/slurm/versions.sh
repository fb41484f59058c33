# versions.sh — the version-specific half of cluster.sh (sourced by it, not run).
#
# 22.05 runs from Debian 12's packages on the host. Newer versions run from a
# Debian chroot of the suite that ships them: the host's packages cannot be
# mixed with another suite's, and a chroot needs no container runtime. Each
# chroot is a cache (one per suite and Slurm version, under
# $SOPILOT_SLURM_CHROOT_CACHE, default /var/cache/sopilot/slurm-chroots),
# built once with debootstrap and reused by every later `up`.
#
# Inside a chroot run: its own munged (own key and socket: the chroot's
# /run/munge), slurmctld, both slurmd and slurmrestd. The host's /proc, /sys,
# /dev, /dev/pts, /dev/shm and /tmp are bound at the same paths, so the state
# dir (under /tmp), pid files, job output in /tmp and the processes of jobs
# look the same from the host and from inside; the repository this script
# lives in, and every directory of SOPILOT_SLURM_CHROOT_BINDS (colon
# separated), are bound read-only, so that jobs submitted from a package
# directory can start there. Host tools reach the chroot's Slurm tools through
# the wrappers in $DIR/bin (see write_chroot_wrappers), which `env` puts
# first on PATH.

CHROOT_CACHE=${SOPILOT_SLURM_CHROOT_CACHE:-/var/cache/sopilot/slurm-chroots}
DEBIAN_MIRROR=${SOPILOT_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# Present only inside a chroot: wrappers that find it run the tool directly.
CHROOT_MARK=/etc/sopilot-slurm-chroot
# What a chroot gets: the daemons, the client tools and what test jobs call
# (bash, coreutils and procps are in minbase or pulled in; listed for clarity).
CHROOT_PACKAGES=(slurmctld slurmd slurm-client slurmrestd slurm-wlm-jwt-plugin munge
	bash coreutils procps ca-certificates)

# select_version sets, for $VERSION: SUITE (empty: host packages), the default
# state dir, the port block, the REST API version used as a health probe and
# INSTANCE_IDS (1: slurmd takes --instance-id, 23.11 and later).
# Port blocks are 100 apart so that clusters of different versions can run
# side by side: controller, two slurmd, slurmrestd, then srun's ports.
select_version() {
	case $VERSION in
	22.05)
		SUITE="" PORT_BASE=6817 DEFAULT_DIR=/tmp/sopilot-slurm
		REST_PLUGINS=v0.0.38 REST_PROBE_API=v0.0.38
		INSTANCE_IDS=0 # 22.05's slurmd has no --instance-id
		;;
	24.11)
		SUITE=trixie PORT_BASE=7117 DEFAULT_DIR=/tmp/sopilot-slurm-24.11
		REST_PLUGINS=slurmctld REST_PROBE_API=v0.0.42 # serves v0.0.40-v0.0.42
		INSTANCE_IDS=1
		;;
	26.05)
		SUITE=sid PORT_BASE=7217 DEFAULT_DIR=/tmp/sopilot-slurm-26.05
		REST_PLUGINS=slurmctld REST_PROBE_API=v0.0.42 # serves v0.0.42-v0.0.45
		INSTANCE_IDS=1
		;;
	*) die "unsupported Slurm version \"$VERSION\" (--slurm or SOPILOT_SLURM_VERSION): choose 22.05, 24.11 or 26.05" ;;
	esac
	if [[ -n $SUITE ]]; then
		ROOT=$CHROOT_CACHE/$SUITE-$VERSION
	else
		ROOT=""
	fi
}

in_chroot() { [[ -n $ROOT ]]; }

# slurm_exec CMD...: run a Slurm (or munge) program of this version. The
# lock files' descriptors (8, 9) are closed: a daemon that inherited them
# would hold the locks for ever.
slurm_exec() {
	if in_chroot; then
		chroot "$ROOT" "$@" 8>&- 9>&-
	else
		"$@" 8>&- 9>&-
	fi
}

# Extra slurm.conf lines of the versions from 23.x on.
version_config() {
	in_chroot || return 0
	# The cgroup plugin is loaded even with proctrack/linuxproc and
	# task/none; on a host without a cgroup v2 mount it would stop slurmd.
	echo "CgroupPlugin=disabled" | write_if_changed "$DIR/etc/cgroup.conf" 0644
}

# ---------------------------------------------------------------- the chroot
# timed NAME CMD...: run CMD and log how long it took. (Not `CMD || ...`:
# that would turn off set -e inside CMD.)
timed() {
	local name=$1 t0=$EPOCHREALTIME
	shift
	"$@"
	log "$name took $(elapsed "$t0")s"
}

elapsed() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

# mounts_under DIR: every mount point at or below DIR, deepest first.
mounts_under() {
	awk -v r="$1" '$2 == r || index($2, r "/") == 1 { print $2 }' /proc/mounts | sort -r
}

# unmount_all DIR: a few passes, since a bind over a bound directory's
# parent hides the inner mount until the outer one is gone.
unmount_all() {
	local m pass
	for ((pass = 0; pass < 5; pass++)); do
		[[ -n $(mounts_under "$1") ]] || return 0
		for m in $(mounts_under "$1"); do
			umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
		done
	done
	[[ -z $(mounts_under "$1") ]] || die "could not unmount everything under $1: $(mounts_under "$1" | tr '\n' ' ')"
}

# remove_tree DIR: delete a (partial) chroot without following its binds
# into the host's /dev or /tmp.
remove_tree() {
	[[ -e $1 ]] || return 0
	unmount_all "$1"
	rm -rf --one-file-system -- "$1"
}

bind_mount() { # bind_mount SRC DST [ro]
	local src=$1 dst=$2 mode=${3:-rw}
	mountpoint -q "$dst" && return 0
	mkdir -p "$dst"
	mount --bind "$src" "$dst"
	[[ $mode == ro ]] && mount -o remount,bind,ro "$dst"
	return 0
}

mount_chroot() {
	local d
	bind_mount /proc "$ROOT/proc"
	bind_mount /sys "$ROOT/sys"
	bind_mount /dev "$ROOT/dev"
	for d in /dev/pts /dev/shm; do
		mountpoint -q "$d" && bind_mount "$d" "$ROOT$d"
	done
	bind_mount /tmp "$ROOT/tmp"
	local IFS=:
	for d in $REPO ${SOPILOT_SLURM_CHROOT_BINDS:-}; do
		[[ -n $d && -d $d ]] || continue
		case $d in /tmp | /tmp/*) continue ;; esac
		bind_mount "$d" "$ROOT$d" ro
	done
	# Name resolution as on the host (debootstrap writes no /etc/hosts).
	cp -f /etc/hosts "$ROOT/etc/hosts"
	cp -fL /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null || true
}

# chroot_slurm_version: the installed Slurm version in the chroot, if any.
chroot_slurm_version() {
	chroot "$ROOT" dpkg-query -W -f='${Version}' slurmctld 2>/dev/null
}

ensure_debootstrap() {
	command -v debootstrap >/dev/null && return 0
	log "installing debootstrap"
	DEBIAN_FRONTEND=noninteractive apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap
}

bootstrap_chroot() {
	local partial=$ROOT.partial
	ensure_debootstrap
	remove_tree "$partial"
	mkdir -p "$CHROOT_CACHE"
	log "bootstrapping Debian $SUITE into $ROOT (minbase; a few minutes)"
	debootstrap --variant=minbase "$SUITE" "$partial" "$DEBIAN_MIRROR" >"$CHROOT_CACHE/$SUITE-$VERSION.debootstrap.log" 2>&1 || {
		tail -n 20 "$CHROOT_CACHE/$SUITE-$VERSION.debootstrap.log" >&2
		die "debootstrap $SUITE failed (log: $CHROOT_CACHE/$SUITE-$VERSION.debootstrap.log)"
	}
	mv "$partial" "$ROOT"
}

install_chroot_packages() {
	# Package scripts must not start daemons: cluster.sh starts them with
	# its own configuration.
	printf '#!/bin/sh\nexit 101\n' >"$ROOT/usr/sbin/policy-rc.d"
	chmod 0755 "$ROOT/usr/sbin/policy-rc.d"
	log "installing Slurm into the $SUITE chroot: ${CHROOT_PACKAGES[*]}"
	local out=$CHROOT_CACHE/$SUITE-$VERSION.apt.log
	# sid's Release file expires within days: a mirror snapshot or a clock
	# ahead of it would refuse it, and a test chroot gains nothing from the
	# check.
	chroot "$ROOT" env DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 sh -c \
		'apt-get -q -o Acquire::Check-Valid-Until=false update &&
		 apt-get install -y -q --no-install-recommends "$@" && apt-get clean' \
		sh "${CHROOT_PACKAGES[@]}" >"$out" 2>&1 || {
		tail -n 20 "$out" >&2
		die "installing Slurm into the $SUITE chroot failed (log: $out)"
	}
}

# ensure_chroot: a chroot with this version's Slurm, built if absent. A tree
# whose debootstrap did not finish is rebuilt; one without Slurm gets it.
ensure_chroot() {
	local have
	mkdir -p "$CHROOT_CACHE"
	exec 8>"$CHROOT_CACHE/$SUITE-$VERSION.lock"
	flock 8
	if [[ -f $ROOT$CHROOT_MARK ]]; then
		mount_chroot
		return 0
	fi
	if [[ ! -x $ROOT/usr/bin/apt-get || -d $ROOT/debootstrap ]]; then
		remove_tree "$ROOT"
		timed "debootstrap $SUITE" bootstrap_chroot
	fi
	mount_chroot
	timed "apt-get install in the $SUITE chroot" install_chroot_packages
	have=$(chroot_slurm_version) || die "no slurmctld in the $SUITE chroot after installing it"
	[[ $have == "$VERSION".* ]] ||
		die "Debian $SUITE now ships Slurm $have, not $VERSION; update select_version in hack/slurm/versions.sh"
	echo "slurm $have from Debian $SUITE" >"$ROOT$CHROOT_MARK"
	log "chroot $ROOT has Slurm $have"
}

# ---------------------------------------------------------------- extra packages
# What jobs need beyond Slurm (the demo's python3-torch and python3-sklearn),
# asked for with --packages or SOPILOT_SLURM_PACKAGES. On a chroot version
# jobs run inside the chroot, so that is where they go: installed with the
# chroot's apt from the same mirror, once per package set. A stamp file per
# set ($ROOT$PACKAGE_STAMPS/<sorted names, comma separated>, holding the
# versions installed) makes every later `up` skip apt altogether; the chroot's
# lock (taken by ensure_chroot) keeps two `up`s from running apt at once. On
# 22.05 they are installed on the host, where its jobs run, if missing.
PACKAGE_STAMPS=/etc/sopilot-slurm-packages

# parse_packages LIST: EXTRA_PACKAGES from a space or comma separated list.
parse_packages() {
	local p
	EXTRA_PACKAGES=()
	for p in ${1//,/ }; do
		[[ $p =~ ^[a-z0-9][a-z0-9+.-]+$ ]] ||
			die "--packages (SOPILOT_SLURM_PACKAGES): \"$p\" is not a Debian package name"
		EXTRA_PACKAGES+=("$p")
	done
	return 0
}

ensure_extra_packages() {
	((${#EXTRA_PACKAGES[@]})) || return 0
	if in_chroot; then
		ensure_chroot_extra_packages
	else
		ensure_host_extra_packages
	fi
}

ensure_host_extra_packages() {
	local p missing=()
	for p in "${EXTRA_PACKAGES[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
	done
	((${#missing[@]} == 0)) && return 0
	log "installing on the host: ${missing[*]} (once)"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	timed "apt-get install of ${missing[*]}" apt-get install -y -qq "${missing[@]}" >/dev/null
}

# chroot_has_packages: every package of EXTRA_PACKAGES is installed in the
# chroot (dpkg-query fails for one it does not know).
chroot_has_packages() {
	local st
	st=$(chroot "$ROOT" dpkg-query -W -f='${Status}\n' "${EXTRA_PACKAGES[@]}" 2>/dev/null) || return 1
	! grep -vqx 'install ok installed' <<<"$st"
}

# ensure_chroot_extra_packages: needs the chroot built and mounted, and its
# lock held (ensure_chroot).
ensure_chroot_extra_packages() {
	local set stamp have
	set=$(printf '%s\n' "${EXTRA_PACKAGES[@]}" | sort -u | paste -sd, -)
	stamp=$ROOT$PACKAGE_STAMPS/$set
	[[ -f $stamp ]] && return 0
	if chroot_has_packages; then
		log "the $SUITE chroot already has ${EXTRA_PACKAGES[*]}"
	else
		timed "apt-get install of ${EXTRA_PACKAGES[*]} in the $SUITE chroot" install_chroot_extra_packages
		have=$(chroot_slurm_version) || die "no slurmctld in the $SUITE chroot after installing ${EXTRA_PACKAGES[*]}"
		[[ $have == "$VERSION".* ]] || die "installing ${EXTRA_PACKAGES[*]} replaced the $SUITE chroot's Slurm $VERSION with $have"
	fi
	mkdir -p "$ROOT$PACKAGE_STAMPS"
	chroot "$ROOT" dpkg-query -W "${EXTRA_PACKAGES[@]}" >"$stamp.tmp"
	mv -f "$stamp.tmp" "$stamp"
}

install_chroot_extra_packages() {
	local out=$CHROOT_CACHE/$SUITE-$VERSION.packages.log
	log "installing into the $SUITE chroot: ${EXTRA_PACKAGES[*]} (once per package set; python3-torch takes minutes)"
	# The same options as install_chroot_packages (policy-rc.d is in place).
	chroot "$ROOT" env DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 sh -c \
		'apt-get -q -o Acquire::Check-Valid-Until=false update &&
		 apt-get install -y -q --no-install-recommends "$@" && apt-get clean' \
		sh "${EXTRA_PACKAGES[@]}" >"$out" 2>&1 || {
		tail -n 20 "$out" >&2
		die "installing ${EXTRA_PACKAGES[*]} into the $SUITE chroot failed (log: $out)"
	}
	awk '/^(Need to get|After this operation)/' "$out" | while read -r line; do log "  apt: $line"; done
}

# ---------------------------------------------------------------- munge in a chroot
chroot_munge_ok() { chroot "$ROOT" sh -c 'munge -n | unmunge' >/dev/null 2>&1; }

ensure_chroot_munge() {
	chroot "$ROOT" sh -c '
		mkdir -p /run/munge /etc/munge /var/lib/munge /var/log/munge
		chown munge:munge /run/munge /etc/munge /var/lib/munge /var/log/munge
		chmod 0755 /run/munge
		chmod 0700 /etc/munge /var/lib/munge /var/log/munge
		[ -s /etc/munge/munge.key ] || mungekey --create --keyfile=/etc/munge/munge.key --force
		chown munge:munge /etc/munge/munge.key
		chmod 0400 /etc/munge/munge.key'
	chroot_munge_ok && return 0
	stop_munged "$ROOT/run/munge/munged.pid"
	log "starting the $SUITE chroot's munged"
	rm -f "$ROOT/run/munge/munge.socket.2.lock"
	chroot "$ROOT" runuser -u munge -- /usr/sbin/munged 8>&- 9>&-
	local i
	for ((i = 0; i < 20; i++)); do
		chroot_munge_ok && return 0
		sleep 0.5
	done
	tail_log "$ROOT/var/log/munge/munged.log"
	die "the $SUITE chroot's munged is not answering"
}

# ---------------------------------------------------------------- users
# ensure_chroot_user NAME SHELL: the user inside the chroot, with the host's
# uid when the host has it (job files are shared through /tmp).
ensure_chroot_user() {
	chroot "$ROOT" id -u "$1" >/dev/null 2>&1 && return 0
	local uid
	uid=$(id -u "$1" 2>/dev/null) || uid=""
	log "creating user $1 in the $SUITE chroot"
	chroot "$ROOT" useradd --system --user-group --no-create-home --home-dir /nonexistent \
		--shell "$2" ${uid:+--uid "$uid"} "$1"
}

# ---------------------------------------------------------------- wrappers
# write_chroot_wrappers: $DIR/bin/<tool> for each client tool of the chroot's
# slurm-client. A wrapper runs the chroot's tool with the caller's
# environment, stdin and working directory (when that directory is visible
# inside: /tmp and the bound directories are; otherwise /). Inside the
# chroot (a job's srun, with $DIR/bin on the job's PATH) it runs the tool
# directly.
write_chroot_wrappers() {
	local tool name
	mkdir -p "$DIR/bin"
	for tool in $(chroot "$ROOT" dpkg-query -L slurm-client | grep -E '^/usr/s?bin/s[a-z]+$'); do
		name=${tool##*/}
		write_if_changed "$DIR/bin/$name" 0755 <<EOF
#!/bin/sh
# Generated by hack/slurm/cluster.sh: Slurm $VERSION's $name from $ROOT.
if [ -e $CHROOT_MARK ]; then exec $tool "\$@"; fi
exec /usr/sbin/chroot $ROOT /bin/sh -c 'cd "\$0" 2>/dev/null || cd /; exec "\$@"' "\$PWD" $tool "\$@"
EOF
	done
}

# chroot_in_use: a process other than the chroot's munged runs inside it
# (the daemons of another cluster of this version, with its own state dir).
chroot_in_use() {
	local p munged=""
	munged=$(cat "$ROOT/run/munge/munged.pid" 2>/dev/null) || munged=""
	for p in /proc/[0-9]*; do
		[[ ${p#/proc/} == "$munged" ]] && continue
		[[ $(readlink "$p/root" 2>/dev/null) == "$ROOT" ]] && return 0
	done
	return 1
}

# stop_chroot_extras: the chroot's munged and mounts, once no other cluster
# runs from it.
stop_chroot_extras() {
	if chroot_in_use; then
		log "another cluster still runs from $ROOT; leaving its munged and mounts"
		return 0
	fi
	stop_munged "$ROOT/run/munge/munged.pid"
	unmount_all "$ROOT"
}
