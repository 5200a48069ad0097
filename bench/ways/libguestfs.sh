#!/usr/bin/env bash
# libguestfs.sh — the libguestfs way: layer the cluster bundle onto a qcow2 of
# the base with guestfish (virt-customize 1.48 has no --tar-in), the usual way
# to add files to a cloud image:
#   copy the base qcow2 → guestfish: tar-in the bundle at the prefix, link the
#   bundle's units into /etc/systemd/system (what overlay.InstallBundle does).
#
#   bench/ways/libguestfs.sh BASE.qcow2 BUNDLE.tar.zst OUTDIR [NAME]
#
# BASE.qcow2 is the shell baseline's image of the base alone (Debian fixups and
# hygiene done, no bundle). libguestfs runs its appliance under TCG here (KVM
# does not work): LIBGUESTFS_BACKEND=direct LIBGUESTFS_BACKEND_SETTINGS=force_tcg.
# The appliance has no network. ROLE and PREFIX as in shell.sh.
set -euo pipefail
base=${1:?usage: libguestfs.sh BASE.qcow2 BUNDLE.tar.zst OUTDIR [NAME]}
bundle=${2:?bundle}
out=${3:?output folder}
name=${4:-host}
prefix=${PREFIX:-/opt/cluster}
command -v guestfish >/dev/null || { echo "libguestfs.sh: guestfish missing (apt-get install libguestfs-tools linux-image-cloud-amd64)" >&2; exit 1; }
export LIBGUESTFS_BACKEND=${LIBGUESTFS_BACKEND:-direct}
export LIBGUESTFS_BACKEND_SETTINGS=${LIBGUESTFS_BACKEND_SETTINGS:-force_tcg}

mkdir -p "$out"
work=$(mktemp -d "$out/.guestfs-XXXXXX")
trap 'rm -rf "$work"' EXIT
img=$work/$name.qcow2
cp --reflink=auto "$base" "$img"
# guestfish tar-in takes plain, gzip, bzip2, xz or lzop: hand it the plain tar.
zstd -dcq "$bundle" >"$work/bundle.tar"
{
  echo "mkdir-p $prefix"
  echo "tar-in $work/bundle.tar $prefix xattrs:true"
  # The unit files the bundle ships at systemd/, linked as the overlay does.
  tar -tvf "$work/bundle.tar" | awk '$1 ~ /^-/ {print $NF}' | sed -n 's|^\(\./\)\{0,1\}systemd/\([^/]*\)$|\2|p' | sort |
    while read -r u; do echo "ln-sf $prefix/systemd/$u /etc/systemd/system/$u"; done
  echo "mkdir-p /etc/systemd/system/multi-user.target.wants"
  echo "ln-sf /etc/systemd/system/cluster.target /etc/systemd/system/multi-user.target.wants/cluster.target"
  if [ -n "${ROLE:-}" ]; then echo "mkdir-p /etc/cluster"; echo "write /etc/cluster/role \"$ROLE\\n\""; fi
} >"$work/script"
guestfish --rw -a "$img" -m /dev/sda2 -f "$work/script"
mv -f "$img" "$out/$name.qcow2"
