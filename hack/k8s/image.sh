#!/usr/bin/env bash
# image.sh — a container image from files of this host, without a registry
# or a base image: `buildah from scratch`, copy, commit, written to an OCI
# archive that `hack/k8s/cluster.sh load` imports into the cluster's
# containerd.
#
#   hack/k8s/image.sh OUT.tar REF [options] SRC:DEST ...
#     --entrypoint PATH    the image's entrypoint (exec form, no arguments)
#     --env NAME=VALUE     an environment variable (repeatable)
#     --user UID:GID       the user the image runs as
#     --libs BINARY        also copy the shared libraries BINARY links (ldd),
#                          at the same paths, so a cgo program runs
#
# buildah keeps its storage in a temporary directory (vfs driver: no mounts
# left behind) that is removed at exit.
set -euo pipefail

log() { echo "k8s/image.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

(($# >= 3)) || die "usage: $0 OUT.tar REF [--entrypoint P] [--env K=V] [--user U:G] [--libs BIN] SRC:DEST ..."
out=$1 ref=$2
shift 2
entrypoint="" user="" envs=() files=()
while (($#)); do
	case $1 in
	--entrypoint) entrypoint=$2; shift 2 ;;
	--env) envs+=("$2"); shift 2 ;;
	--user) user=$2; shift 2 ;;
	--libs)
		# ldd prints "name => /path (addr)" and the loader as "/path (addr)".
		while read -r lib; do files+=("$lib:$lib"); done < <(ldd "$2" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u)
		shift 2
		;;
	*:*) files+=("$1"); shift ;;
	*) die "bad argument $1 (want SRC:DEST)" ;;
	esac
done

work=$(mktemp -d)
trap 'buildah "${store[@]}" rm --all >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
store=(--root "$work/root" --runroot "$work/runroot" --storage-driver vfs)

ctr=$(buildah "${store[@]}" from scratch)
for f in "${files[@]}"; do
	src=${f%%:*} dest=${f#*:}
	[[ -e $src ]] || die "$src does not exist"
	buildah "${store[@]}" copy --quiet "$ctr" "$(readlink -f "$src")" "$dest" >/dev/null
done
cfg=()
[[ -n $entrypoint ]] && cfg+=(--entrypoint "[\"$entrypoint\"]" --cmd "")
[[ -n $user ]] && cfg+=(--user "$user")
for e in "${envs[@]+"${envs[@]}"}"; do cfg+=(--env "$e"); done
((${#cfg[@]})) && buildah "${store[@]}" config "${cfg[@]}" "$ctr"
img=$(buildah "${store[@]}" commit --quiet --format oci "$ctr" "$ref")
rm -f "$out"
buildah "${store[@]}" push --quiet "$img" "oci-archive:$out:$ref"
log "built $ref -> $out"
