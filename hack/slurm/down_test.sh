#!/usr/bin/env bash
# A test of `cluster.sh down` (make test runs it): a slurmctld that removes
# its pid file as soon as it gets SIGTERM and exits only later, as the real
# one does while it saves its state, must be gone when `down` returns.
# Before the fix, down read the pid file again after the signal, found it
# gone ("line 75 ... pid: No such file") and returned with slurmctld still
# running. Runs without Slurm: the daemon is a stand-in named slurmctld, in
# a cluster directory of its own. Needs root, as cluster.sh down does.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

dir=$(mktemp -d)
fake=
cleanup() {
  [[ -n $fake ]] && kill -KILL "$fake" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
mkdir -p "$dir/run" "$dir/bin"

# The stand-in: its command name is slurmctld (what cluster.sh checks); on
# SIGTERM it removes its pid file at once and exits 2 s later.
cat >"$dir/bin/slurmctld" <<'FAKE'
#!/bin/bash
pidfile=$1
trap 'rm -f "$pidfile"; sleep 2; exit 0' TERM
echo $$ >"$pidfile"
while :; do sleep 0.1; done
FAKE
chmod +x "$dir/bin/slurmctld"
"$dir/bin/slurmctld" "$dir/run/slurmctld.pid" </dev/null >/dev/null 2>&1 &
fake=$!
for _ in $(seq 50); do [[ -s $dir/run/slurmctld.pid ]] && break; sleep 0.1; done
[[ $(cat "/proc/$fake/comm") == slurmctld ]] || { echo "FAIL: the stand-in is not named slurmctld" >&2; exit 1; }

SOPILOT_SLURM_DIR=$dir "$HERE/cluster.sh" --slurm 22.05 down
if [[ -e /proc/$fake ]] && [[ $(awk '/^State:/ {print $2}' "/proc/$fake/status" 2>/dev/null) != Z ]]; then
  echo "FAIL: cluster.sh down returned while slurmctld (pid $fake) still runs" >&2
  exit 1
fi
[[ ! -e $dir/run/slurmctld.pid ]] || { echo "FAIL: the pid file is left behind" >&2; exit 1; }
echo "ok: down waited for a slurmctld that removed its pid file before exiting"
