#!/usr/bin/env bash
# cluster.sh — a real, single-host Slurm cluster for sopilot's tests, on one
# of the Slurm versions sopilot supports.
#
#   hack/slurm/cluster.sh [--slurm VERSION] up             start (or finish starting, or repair) the cluster
#   hack/slurm/cluster.sh [--slurm VERSION] down [--purge] stop it; --purge also deletes the state dir
#   hack/slurm/cluster.sh [--slurm VERSION] status         exit 0 iff the cluster is up and usable
#   hack/slurm/cluster.sh [--slurm VERSION] env            print export lines:  eval "$(hack/slurm/cluster.sh env)"
#   hack/slurm/cluster.sh [--slurm VERSION] replace-node NODE INSTANCE
#                                                          move Slurm node NODE to the "machine" INSTANCE
#   hack/slurm/cluster.sh [--slurm VERSION] --packages LIST packages
#                                                          only install LIST where jobs run (see below)
#
# --packages LIST (else SOPILOT_SLURM_PACKAGES; space or comma separated
# Debian package names), with `up` or `packages`: what the cluster's jobs
# need beyond Slurm, installed where they run: into the chroot for 24.11 and
# 26.05 (with the chroot's apt, from the same mirror; recorded by a stamp
# file per package set, so a later `up` with the same set runs no apt), on
# the host for 22.05 (if missing). `make demo` asks for python3-torch and
# python3-sklearn this way.
#
# VERSION (--slurm, else SOPILOT_SLURM_VERSION, else 22.05):
#   22.05  Debian 12's packages on the host     state /tmp/sopilot-slurm        ports 6817-6899
#   24.11  Debian 13 (trixie)'s, in a chroot    state /tmp/sopilot-slurm-24.11  ports 7117-7199
#   26.05  Debian sid's, in a chroot            state /tmp/sopilot-slurm-26.05  ports 7217-7299
# Clusters of different versions run side by side. hack/slurm/versions.sh
# holds what differs between versions (and how the chroots are built and
# cached: the first `up` of a version bootstraps one, a few minutes; later
# ones take seconds).
#
# Layout: one slurmctld, two slurmd (worker-0, worker-1, same host, one port
# each, 8 fake GPUs each), one slurmrestd (JWT auth), munged. Everything
# except munge's own directories lives in the state dir ($SOPILOT_SLURM_DIR
# overrides it): config, spool, state, logs, pid files, the JWT key and the
# fake GPU device files. Nothing is written to /etc/slurm; every Slurm tool
# is pointed at our slurm.conf through SLURM_CONF.
#
# Node identity as on Soperator: there the Slurm node name is the worker
# pod's name and slurmd runs with --instance-id <Kubernetes node name>, so
# Slurm's node record says which machine each Slurm node runs on. Here, on
# the versions whose slurmd has --instance-id (24.11, 26.05; 22.05's has
# not), worker-N starts with --instance-id gpu-node-N, a Kubernetes-like
# node name. The mapping is kept in $DIR/etc/instances ("NODE INSTANCE" per
# line) and survives `up`; `replace-node worker-1 gpu-node-9` simulates
# Soperator replacing worker-1's Kubernetes node: it restarts that slurmd
# with the new instance id and waits until slurmctld reports it (taking
# about a second).
#
# `env` prints SOPILOT_SLURM_VERSION, SOPILOT_SLURM_INSTANCES (the mapping,
# "worker-0=gpu-node-0,worker-1=gpu-node-1"; empty on 22.05), SLURM_CONF, SOPILOT_SLURMRESTD_URL
# (http://127.0.0.1:PORT), SOPILOT_SLURM_TOKEN (a fresh token, valid 24 h,
# for SOPILOT_SLURM_USER, root by default; send both as X-SLURM-USER-TOKEN /
# X-SLURM-USER-NAME), SOPILOT_SLURM_JWT_KEY_FILE and SOPILOT_SLURM_WORKDIR (a
# mode 1777 dir on the "nodes" for job working directories and output); for
# a chroot version also PATH, with the state dir's bin/ (wrappers that run
# the chroot's sbatch, squeue, scontrol, srun, ...) first.
#
# Must run as root (it starts daemons, creates users and device nodes).
# Overridable ports (the version's block start, 6817 for 22.05, is B):
# SOPILOT_SLURMCTLD_PORT (B), SOPILOT_SLURMD_PORT (B+1, worker-1 gets B+2),
# SOPILOT_SLURMRESTD_PORT (B+3); srun listens in a block of 1,000 ports
# derived from the controller port, below the kernel's ephemeral range
# (SrunPortRange: 18000-18999 for 6817, 21000-21999 for 7117, 22000-22999
# for 7217; SOPILOT_SRUN_PORTS overrides), so concurrent clusters never share
# a port. Each srun holds a few ports while its step runs: 32 concurrent
# steps exhausted a 70-port range.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)

log() { echo "cluster.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

# shellcheck source=versions.sh
. "$HERE/versions.sh"

VERSION=${SOPILOT_SLURM_VERSION:-22.05}
PACKAGES=${SOPILOT_SLURM_PACKAGES:-}
ARGS=()
while (($#)); do
	case $1 in
	--slurm) (($# >= 2)) || die "--slurm needs a version"; VERSION=$2; shift 2 ;;
	--slurm=*) VERSION=${1#--slurm=}; shift ;;
	--packages) (($# >= 2)) || die "--packages needs a list of Debian packages"; PACKAGES=$2; shift 2 ;;
	--packages=*) PACKAGES=${1#--packages=}; shift ;;
	*) ARGS+=("$1"); shift ;;
	esac
done
select_version
parse_packages "$PACKAGES"

DIR=${SOPILOT_SLURM_DIR:-$DEFAULT_DIR}
CTLD_PORT=${SOPILOT_SLURMCTLD_PORT:-$PORT_BASE}
SLURMD_PORT=${SOPILOT_SLURMD_PORT:-$((PORT_BASE + 1))}
REST_PORT=${SOPILOT_SLURMRESTD_PORT:-$((PORT_BASE + 3))}
SRUN_BASE=$((10000 + (CTLD_PORT - 6000) / 100 * 1000))
SRUN_PORTS=${SOPILOT_SRUN_PORTS:-$SRUN_BASE-$((SRUN_BASE + 999))}
REST_USER=slurmrest
# The user REST clients authenticate as (the token's user, sent as
# X-SLURM-USER-NAME). root works once slurmrestd runs with SLURM_JWT=daemon
# (see start_slurmrestd). Another name is created as a system user if missing;
# its jobs can use $DIR/work (mode 1777) as working/output directory.
JWT_USER=${SOPILOT_SLURM_USER:-root}
NODES=(worker-0 worker-1)
GPUS_PER_NODE=8
TOKEN_LIFESPAN=${SOPILOT_SLURM_JWT_LIFESPAN:-86400}
WAIT_SECONDS=${SOPILOT_SLURM_WAIT:-60}

CONF=$DIR/etc/slurm.conf
INSTANCES=$DIR/etc/instances
JWT_KEY=$DIR/etc/jwt_hs256.key
RUN=$DIR/run
LOG=$DIR/log
HOST=$(hostname)

export SLURM_CONF=$CONF
unset SLURM_JWT

need_root() { [[ $(id -u) -eq 0 ]] || die "must run as root"; }

# ---------------------------------------------------------------- packages
ensure_packages() {
	local pkgs=(slurm-wlm slurmrestd munge slurm-client) missing=() p
	for p in "${pkgs[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
	done
	((${#missing[@]} == 0)) && return 0
	log "installing missing packages: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update
	apt-get install -y "${pkgs[@]}"
}

# check_host_version: the host's packages are the version this cluster
# claims to be (SOPILOT_SLURM_VERSION in `env`, which tests branch on).
check_host_version() {
	local have
	have=$(dpkg-query -W -f='${Version}' slurmctld 2>/dev/null) || die "slurmctld is not installed"
	[[ $have == "$VERSION".* ]] ||
		die "the host's Slurm is $have, not $VERSION (22.05 comes from Debian 12's packages); pick its version with --slurm"
}

# ---------------------------------------------------------------- helpers
# pid_alive FILE: the pid in FILE names a live (not zombie) process whose
# command is the daemon the file is named after (guards against pid reuse).
pid_alive() { daemon_pid "$1" >/dev/null; }

# daemon_pid FILE: prints the pid in FILE when pid_alive holds.
daemon_pid() {
	local f=$1 pid
	# The daemon removes its pid file as it exits: it may vanish here.
	pid=$(cat "$f" 2>/dev/null) || return 1
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	proc_is "$(basename "$f" .pid)" "$pid" || return 1
	echo "$pid"
}

# proc_is KIND PID: PID is a live (not zombie) process of the daemon KIND
# (the pid file's name without .pid).
proc_is() {
	local kind=$1 pid=$2 comm state
	comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
	case $kind in
	slurmctld) [[ $comm == slurmctld ]] ;;
	slurmd-*) [[ $comm == slurmd ]] ;;
	# setsid, chroot, setpriv and env exec one another, then slurmrestd.
	slurmrestd) [[ $comm =~ ^(slurmrestd|setsid|chroot|setpriv|env)$ ]] ;;
	munged) [[ $comm == munged ]] ;;
	*) true ;;
	esac || return 1
	state=$(awk '/^State:/ {print $2}' "/proc/$pid/status" 2>/dev/null) || return 1
	[[ $state != Z ]]
}

# proc_start PID: the process's start time (clock ticks after boot), which
# tells a process from a later one given the same pid.
proc_start() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	stat=${stat##*) } # the fields after "pid (comm) "; comm may hold spaces
	awk '{print $20}' <<<"$stat"
}

tail_log() {
	local f=$1
	if [[ -f $f ]]; then
		log "---- last lines of $f ----"
		tail -n 30 "$f" >&2 || true
	else
		log "($f does not exist)"
	fi
}

# ---------------------------------------------------------------- munge
munge_ok() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }

ensure_munge() {
	mkdir -p /run/munge /etc/munge /var/lib/munge /var/log/munge
	chown munge:munge /run/munge /etc/munge /var/lib/munge /var/log/munge
	chmod 0755 /run/munge
	chmod 0700 /etc/munge /var/lib/munge /var/log/munge
	if [[ ! -s /etc/munge/munge.key ]]; then
		log "creating /etc/munge/munge.key"
		if command -v mungekey >/dev/null; then
			mungekey --create --keyfile=/etc/munge/munge.key --force
		else
			dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
		fi
	fi
	chown munge:munge /etc/munge/munge.key
	chmod 0400 /etc/munge/munge.key
	munge_ok && return 0
	local i
	# A munged that is alive but does not answer (its socket was removed,
	# say by a package reinstall) is restarted. Only the host's own munged
	# is stopped (by its pid file): the chroots of other versions run theirs.
	stop_munged /run/munge/munged.pid
	log "starting munged"
	rm -f /run/munge/munge.socket.2.lock
	runuser -u munge -- /usr/sbin/munged 8>&- 9>&-
	for ((i = 0; i < 20; i++)); do
		munge_ok && return 0
		sleep 0.5
	done
	tail_log /var/log/munge/munged.log
	die "munged is not answering"
}

# stop_munged PIDFILE: stop the munged of that pid file, if alive.
stop_munged() {
	local f=$1 i pid
	pid_alive "$f" || return 0
	pid=$(cat "$f" 2>/dev/null) || return 0
	log "stopping munged (pid $pid)"
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 20; i++)); do
		pid_alive "$f" || return 0
		sleep 0.25
	done
	kill -KILL "$pid" 2>/dev/null || true
}

# ---------------------------------------------------------------- config
write_if_changed() { # write_if_changed FILE MODE  (content on stdin)
	local f=$1 mode=$2 tmp
	tmp=$(mktemp "$f.XXXXXX")
	cat >"$tmp"
	chmod "$mode" "$tmp"
	if [[ -f $f ]] && cmp -s "$tmp" "$f"; then
		rm -f "$tmp"
	else
		mv -f "$tmp" "$f"
	fi
}

ensure_layout() {
	mkdir -p "$DIR" "$DIR/etc" "$DIR/state" "$DIR/spool" "$DIR/dev" "$DIR/work" "$RUN" "$LOG"
	chmod 1777 "$DIR/work" # working/output dir any job user may use
	# slurmrestd runs as $REST_USER and must read slurm.conf.
	chmod 0755 "$DIR" "$DIR/etc" "$RUN" "$LOG"
	chmod 0700 "$DIR/state"
	local n i
	for n in "${NODES[@]}"; do mkdir -p "$DIR/spool/$n"; done
	# Fake GPUs: slurmd drops a gpu GRES without File=, and File= must name
	# character devices; c 1 3 is the same device as /dev/null.
	for ((i = 0; i < GPUS_PER_NODE; i++)); do
		[[ -c $DIR/dev/nvidia$i ]] || { rm -f "$DIR/dev/nvidia$i"; mknod "$DIR/dev/nvidia$i" c 1 3; }
	done
	if [[ ! -s $JWT_KEY ]]; then
		log "creating JWT key $JWT_KEY"
		(umask 077 && dd if=/dev/urandom of="$JWT_KEY" bs=32 count=2 status=none)
	fi
	chown root:root "$JWT_KEY" # SlurmUser=root
	chmod 0600 "$JWT_KEY"
}

ensure_user() { # ensure_user NAME SHELL
	id -u "$1" >/dev/null 2>&1 && return 0
	log "creating system user $1"
	useradd --system --user-group --no-create-home --home-dir /nonexistent --shell "$2" "$1"
}

ensure_users() {
	ensure_user "$REST_USER" /usr/sbin/nologin
	[[ $JWT_USER == root ]] || ensure_user "$JWT_USER" /bin/bash
	in_chroot || return 0
	ensure_chroot_user "$REST_USER" /usr/sbin/nologin
	[[ $JWT_USER == root ]] || ensure_chroot_user "$JWT_USER" /bin/bash
}

write_config() {
	local i
	{
		cat <<EOF
# Generated by hack/slurm/cluster.sh (Slurm $VERSION); edits are overwritten by "up".
ClusterName=sopilot
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SrunPortRange=$SRUN_PORTS
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthAltTypes=auth/jwt
AuthAltParameters=jwt_key=$JWT_KEY

StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool/%n
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd-%n.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
PlugStackConfig=$DIR/etc/plugstack.conf

SwitchType=switch/none
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
GresTypes=gpu
# Lets each slurmd claim more CPUs/memory than this machine has.
SlurmdParameters=config_overrides
ReturnToService=2
MinJobAge=300
SlurmctldTimeout=10
SlurmdTimeout=10
InactiveLimit=0
KillWait=5
Waittime=0
MailProg=/bin/true

EOF
		for i in "${!NODES[@]}"; do
			echo "NodeName=${NODES[$i]} NodeHostname=$HOST NodeAddr=127.0.0.1 Port=$((SLURMD_PORT + i)) CPUs=32 RealMemory=8192 Gres=gpu:$GPUS_PER_NODE State=UNKNOWN"
		done
		echo "PartitionName=main Nodes=$(IFS=,; echo "${NODES[*]}") Default=YES MaxTime=INFINITE State=UP"
	} | write_if_changed "$CONF" 0644
	echo "AutoDetect=off
Name=gpu File=$DIR/dev/nvidia[0-$((GPUS_PER_NODE - 1))]" | write_if_changed "$DIR/etc/gres.conf" 0644
	: | write_if_changed "$DIR/etc/plugstack.conf" 0644
	version_config
}

# ---------------------------------------------------------------- node identity
# ensure_instances: the first `up` of a version with instance ids gives
# worker-N the instance gpu-node-N; later ones keep what replace-node set.
ensure_instances() {
	((INSTANCE_IDS)) || { rm -f "$INSTANCES"; return 0; }
	local i n missing=0
	for n in "${NODES[@]}"; do [[ -n $(instance_of "$n") ]] || missing=1; done
	((missing)) || return 0
	for i in "${!NODES[@]}"; do echo "${NODES[$i]} gpu-node-$i"; done | write_if_changed "$INSTANCES" 0644
}

# instance_of NODE: the instance id NODE's slurmd runs with ("" for none).
instance_of() {
	[[ -f $INSTANCES ]] || return 0
	awk -v n="$1" '$1 == n { print $2 }' "$INSTANCES"
}

# set_instance NODE INSTANCE: record NODE's new instance id.
set_instance() {
	local n
	for n in "${NODES[@]}"; do
		if [[ $n == "$1" ]]; then
			echo "$n $2"
		else
			echo "$n $(instance_of "$n")"
		fi
	done | write_if_changed "$INSTANCES" 0644
}

# instances_env: "worker-0=gpu-node-0,worker-1=gpu-node-1" (empty without
# instance ids).
instances_env() {
	local n out=()
	((INSTANCE_IDS)) || return 0
	for n in "${NODES[@]}"; do out+=("$n=$(instance_of "$n")"); done
	(IFS=,; echo "${out[*]}")
}

# ---------------------------------------------------------------- daemons
start_slurmctld() {
	pid_alive "$RUN/slurmctld.pid" && return 0
	log "starting slurmctld"
	slurm_exec slurmctld || { tail_log "$LOG/slurmctld.log"; die "slurmctld failed to start"; }
}

start_slurmd() {
	local n=$1 inst args=()
	pid_alive "$RUN/slurmd-$n.pid" && return 0
	inst=$(instance_of "$n")
	# As Soperator starts it: slurmd --instance-id <Kubernetes node name>.
	[[ -n $inst ]] && args=(--instance-id "$inst")
	log "starting slurmd $n${inst:+ (instance $inst)}"
	slurm_exec slurmd -N "$n" "${args[@]+"${args[@]}"}" || { tail_log "$LOG/slurmd-$n.log"; die "slurmd $n failed to start"; }
}

start_slurmrestd() {
	pid_alive "$RUN/slurmrestd.pid" && return 0
	log "starting slurmrestd on 127.0.0.1:$REST_PORT as $REST_USER"
	[[ -f $LOG/slurmrestd.log ]] && mv -f "$LOG/slurmrestd.log" "$LOG/slurmrestd.log.old"
	# slurmrestd refuses to run as root or as SlurmUser. In 22.05 it must
	# run with SLURM_JWT=daemon: that makes auth/jwt its default auth plugin
	# so that it can forward each client's token to slurmctld. Without it
	# the default is auth/munge, which refuses every token ("Rejecting
	# thread config token for user root") and every request gets HTTP 401.
	# It needs no JWT key itself: slurmctld checks the tokens. Newer
	# versions still need SLURM_JWT=daemon, and serve the API versions of
	# their data_parser plugins through the openapi/slurmctld plugin.
	local root=()
	in_chroot && root=(chroot "$ROOT")
	# In /, not the caller's directory: slurmrestd calls getcwd for every
	# job it submits and dies if its directory was deleted since (a
	# worktree or temporary directory the cluster was started from).
	setsid "${root[@]}" setpriv --reuid="$REST_USER" --regid="$REST_USER" --init-groups \
		env --chdir=/ SLURM_JWT=daemon SLURM_CONF="$CONF" \
		slurmrestd -s "$REST_PLUGINS" -a rest_auth/jwt "127.0.0.1:$REST_PORT" \
		</dev/null >>"$LOG/slurmrestd.log" 2>&1 8>&- 9>&- &
	echo $! >"$RUN/slurmrestd.pid"
}

# nodes_idle: every node is up and schedulable (idle, or busy with jobs that
# survived a restart); "idle*" (not responding), down and drain are not.
nodes_idle() {
	local out
	out=$(slurm_exec sinfo --noheader --Node --format='%N %t' 2>/dev/null) || return 1
	local n
	for n in "${NODES[@]}"; do
		grep -Eq "^$n (idle|mix|alloc)\$" <<<"$out" || return 1
	done
}

# node_responding NODE: slurmctld hears NODE's slurmd: idle, busy or drained
# (a replaced node keeps the drain its old machine earned), neither down nor
# marked not responding ("*").
node_responding() {
	local st
	st=$(slurm_exec sinfo --noheader --Node --nodes="$1" --format='%t' 2>/dev/null | head -1) || return 1
	[[ $st =~ ^(idle|mix|alloc|comp|drain|drng|drained)$ ]]
}

new_token() {
	local out
	out=$(slurm_exec scontrol token username="$JWT_USER" lifespan="$TOKEN_LIFESPAN") || return 1
	out=${out#SLURM_JWT=}
	[[ -n $out ]] || return 1
	printf '%s\n' "$out"
}

rest_ok() { # rest_ok TOKEN
	local code
	code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 \
		-H "X-SLURM-USER-NAME: $JWT_USER" -H "X-SLURM-USER-TOKEN: $1" \
		"http://127.0.0.1:$REST_PORT/slurm/$REST_PROBE_API/diag") || return 1
	[[ $code == 200 ]]
}

wait_ready() {
	local deadline=$((SECONDS + WAIT_SECONDS)) token=""
	until nodes_idle; do
		if ((SECONDS >= deadline)); then
			slurm_exec sinfo --Node >&2 || true
			tail_log "$LOG/slurmctld.log"
			for n in "${NODES[@]}"; do tail_log "$LOG/slurmd-$n.log"; done
			die "nodes did not become idle within ${WAIT_SECONDS}s"
		fi
		if ! pid_alive "$RUN/slurmctld.pid"; then
			# slurmctld writes its pid file a little after forking.
			sleep 1
			pid_alive "$RUN/slurmctld.pid" || { tail_log "$LOG/slurmctld.log"; die "slurmctld exited"; }
		fi
		sleep 1
	done
	until token=$(new_token 2>/dev/null) && rest_ok "$token"; do
		if ((SECONDS >= deadline)) || ! pid_alive "$RUN/slurmrestd.pid"; then
			tail_log "$LOG/slurmrestd.log"
			die "slurmrestd is not answering on 127.0.0.1:$REST_PORT"
		fi
		sleep 1
	done
}

# lock_state_dir: one up/down at a time per cluster.
lock_state_dir() {
	mkdir -p "$DIR"
	exec 9>"$DIR/.lock"
	flock 9
}

cmd_up() {
	need_root
	local t0=$EPOCHREALTIME n
	lock_state_dir
	if in_chroot; then
		timed "chroot $SUITE (Slurm $VERSION)" ensure_chroot
		timed "munge" ensure_chroot_munge
	else
		ensure_packages
		check_host_version
		ensure_munge
	fi
	ensure_extra_packages
	ensure_users
	ensure_layout
	ensure_instances
	write_config
	in_chroot && write_chroot_wrappers
	start_slurmctld
	for n in "${NODES[@]}"; do start_slurmd "$n"; done
	start_slurmrestd
	timed "daemons ready" wait_ready
	for n in "${NODES[@]}"; do sync_instance "$n"; done
	log "Slurm $VERSION cluster is up in $(elapsed "$t0")s (state in $DIR)"
	cmd_env
}

# stop_pidfile NAME FILE: stop the daemon of FILE and wait until it is gone.
# The pid is read once: slurmctld removes its pid file as soon as it is
# told to stop and exits only after saving its state, so the file says
# nothing about whether the process still runs. Waiting on the file made
# down return (or, reading it again, fail with "No such file") while
# slurmctld was still running.
stop_pidfile() {
	local name=$1 f=$2 kind pid start i
	kind=$(basename "$f" .pid)
	if ! pid=$(daemon_pid "$f"); then
		rm -f "$f"
		return 0
	fi
	start=$(proc_start "$pid") || { rm -f "$f"; return 0; }
	gone() { ! proc_is "$kind" "$pid" || [[ $(proc_start "$pid") != "$start" ]]; }
	log "stopping $name (pid $pid)"
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 60; i++)); do
		gone && { rm -f "$f"; return 0; }
		sleep 0.5
	done
	log "$name did not exit after 30s; sending SIGKILL"
	kill -KILL "$pid" 2>/dev/null || true
	for ((i = 0; i < 20; i++)); do
		gone && break
		sleep 0.25
	done
	rm -f "$f"
}

# kill_leftover_jobs: slurmstepd and job processes of this cluster outlive a
# stopped slurmd (a killed test leaves its jobs running); they would keep a
# chroot busy and hold the next cluster's ports. A slurmstepd clears its
# environment but keeps slurmd's working directory ($DIR/log, seen through
# the chroot); job processes carry this cluster's SLURM_CONF and a
# SLURM_JOB_ID (the caller's own shell has the first but not the second).
kill_leftover_jobs() {
	local d pid comm cwd env n=0
	for d in /proc/[0-9]*; do
		pid=${d#/proc/}
		[[ $pid == "$$" ]] && continue
		comm=$(cat "$d/comm" 2>/dev/null) || continue
		if [[ $comm == slurmstepd ]]; then
			cwd=$(readlink "$d/cwd" 2>/dev/null) || continue
			[[ $cwd == *"$DIR/log" ]] || continue
		else
			env=$( { tr '\0' '\n' <"$d/environ"; } 2>/dev/null) || continue
			grep -qxF "SLURM_CONF=$CONF" <<<"$env" || continue
			grep -q '^SLURM_JOB_ID=' <<<"$env" || continue
		fi
		kill -KILL "$pid" 2>/dev/null && n=$((n + 1))
	done
	((n == 0)) || log "killed $n leftover job processes"
}

cmd_down() {
	need_root
	local purge=0 n
	case ${1:-} in
	"") ;;
	--purge) purge=1 ;;
	*) die "down: unknown option $1 (only --purge)" ;;
	esac
	if [[ -d $DIR ]]; then
		lock_state_dir
		stop_pidfile slurmrestd "$RUN/slurmrestd.pid"
		for n in "${NODES[@]}"; do stop_pidfile "slurmd $n" "$RUN/slurmd-$n.pid"; done
		stop_pidfile slurmctld "$RUN/slurmctld.pid"
		kill_leftover_jobs
	fi
	# The chroot's munged and mounts serve this cluster only; the host's
	# munged is left running, as before.
	in_chroot && [[ -d $ROOT ]] && stop_chroot_extras
	if ((purge)); then
		case $DIR in
		"" | / | /tmp | /root | /home | /etc | /var) die "refusing to purge $DIR" ;;
		esac
		log "removing $DIR"
		rm -rf --one-file-system -- "$DIR"
	fi
}

# cmd_packages: --packages where jobs run, without touching any daemon (for a
# cluster that is already up). A chroot is built and mounted if it is not.
cmd_packages() {
	need_root
	((${#EXTRA_PACKAGES[@]})) || die "packages: name them with --packages LIST (or SOPILOT_SLURM_PACKAGES)"
	in_chroot && ensure_chroot
	ensure_extra_packages
}

cmd_status() {
	local ok=0 n token
	if in_chroot; then
		[[ -f $ROOT$CHROOT_MARK ]] || { log "no Slurm $VERSION chroot at $ROOT"; return 1; }
		mountpoint -q "$ROOT/tmp" || { log "$ROOT is not mounted"; return 1; }
		chroot_munge_ok || { log "the $SUITE chroot's munge is not working"; ok=1; }
	else
		munge_ok || { log "munge is not working"; ok=1; }
	fi
	pid_alive "$RUN/slurmctld.pid" || { log "slurmctld is not running"; ok=1; }
	for n in "${NODES[@]}"; do
		pid_alive "$RUN/slurmd-$n.pid" || { log "slurmd $n is not running"; ok=1; }
	done
	pid_alive "$RUN/slurmrestd.pid" || { log "slurmrestd is not running"; ok=1; }
	((ok == 0)) || return 1
	nodes_idle || { log "nodes are not all up:"; slurm_exec sinfo --Node >&2 || true; return 1; }
	token=$(new_token) || { log "scontrol token failed"; return 1; }
	rest_ok "$token" || { log "slurmrestd does not accept a fresh token"; return 1; }
	echo "sopilot slurm $VERSION cluster is up ($DIR)"
}

cmd_env() {
	[[ -f $CONF ]] || die "no cluster config at $CONF; run: $0 up"
	local token
	in_chroot && { mountpoint -q "$ROOT/tmp" || die "the Slurm $VERSION chroot is not mounted; run: $0 --slurm $VERSION up"; }
	token=$(new_token) || die "scontrol token failed (is the cluster up?)"
	printf 'export SOPILOT_SLURM_VERSION=%q\n' "$VERSION"
	printf 'export SOPILOT_SLURM_INSTANCES=%q\n' "$(instances_env)"
	in_chroot && printf 'export PATH=%q:"$PATH"\n' "$DIR/bin"
	printf 'export SLURM_CONF=%q\n' "$CONF"
	printf 'export SOPILOT_SLURMRESTD_URL=%q\n' "http://127.0.0.1:$REST_PORT"
	printf 'export SOPILOT_SLURM_TOKEN=%q\n' "$token"
	printf 'export SOPILOT_SLURM_USER=%q\n' "$JWT_USER"
	printf 'export SOPILOT_SLURM_WORKDIR=%q\n' "$DIR/work"
	printf 'export SOPILOT_SLURM_JWT_KEY_FILE=%q\n' "$JWT_KEY"
}

# reported_instance NODE: the instance id slurmctld holds for NODE.
reported_instance() {
	slurm_exec scontrol show node "$1" 2>/dev/null | tr ' ' '\n' | awk -F= '$1 == "InstanceId" { print $2 }'
}

# sync_instance NODE: slurmctld reports NODE's instance id as cluster.sh
# started it. 24.11's slurmctld takes the id from each registration of the
# slurmd; 26.05.5's keeps the one it has for a node defined in slurm.conf
# (after a restart the id recovered from its state, even an empty one; after
# a slurmd restart the old one: SlurmdStartTime changes, InstanceId does
# not), so the id is set through slurmctld as well, which both accept.
sync_instance() {
	local n=$1 inst
	inst=$(instance_of "$n")
	[[ -n $inst && $(reported_instance "$n") != "$inst" ]] || return 0
	slurm_exec scontrol update NodeName="$n" InstanceId="$inst" ||
		die "scontrol update NodeName=$n InstanceId=$inst failed"
}

cmd_replace_node() {
	need_root
	(($# == 2)) || die "replace-node needs NODE INSTANCE (e.g. replace-node worker-1 gpu-node-9)"
	local node=$1 inst=$2 n known=0 deadline
	for n in "${NODES[@]}"; do [[ $n == "$node" ]] && known=1; done
	((known)) || die "replace-node: no Slurm node $node here (nodes: ${NODES[*]})"
	[[ $inst =~ ^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$ ]] ||
		die "replace-node: instance $inst is not a Kubernetes node name (lower-case letters, digits, '-' and '.')"
	((INSTANCE_IDS)) || die "replace-node: Slurm $VERSION's slurmd has no --instance-id (use 24.11 or 26.05)"
	[[ -f $CONF ]] || die "no cluster config at $CONF; run: $0 up"
	lock_state_dir
	log "replacing $node's machine: $(instance_of "$node") -> $inst"
	stop_pidfile "slurmd $node" "$RUN/slurmd-$node.pid"
	set_instance "$node" "$inst"
	start_slurmd "$node"
	sync_instance "$node"
	deadline=$((SECONDS + WAIT_SECONDS))
	until [[ $(reported_instance "$node") == "$inst" ]] && node_responding "$node"; do
		if ((SECONDS >= deadline)); then
			slurm_exec scontrol show node "$node" >&2 || true
			tail_log "$LOG/slurmd-$node.log"
			die "$node did not come back with instance $inst within ${WAIT_SECONDS}s"
		fi
		sleep 0.5
	done
	log "$node now runs on $inst"
}

set -- "${ARGS[@]+"${ARGS[@]}"}"
case ${1:-} in
up) cmd_up ;;
down) shift; cmd_down "$@" ;;
status) cmd_status ;;
env) cmd_env ;;
replace-node) shift; cmd_replace_node "$@" ;;
packages) cmd_packages ;;
*)
	echo "usage: $0 [--slurm 22.05|24.11|26.05] [--packages LIST] up|down [--purge]|status|env|replace-node NODE INSTANCE|packages" >&2
	exit 2
	;;
esac
