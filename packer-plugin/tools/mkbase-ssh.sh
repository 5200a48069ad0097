#!/usr/bin/env bash
# mkbase-ssh.sh — a Debian 12 base root filesystem tarball with openssh-server,
# for the provisioner's boot test: a machine Packer can reach over SSH.
# Prints the tarball's path. Cached in ${XDG_CACHE_HOME:-~/.cache}/imagebuilder/base/
# under a key made of the recipe and this machine's apt sources (the file is
# passed to mmdebstrap, so no mirror is named here); built to a temporary name
# and renamed. Same recipe as distros/debian/mkbase.sh plus openssh-server and
# zstd (genconf's install.sh, when beside the bundle, decompresses on the host).
set -euo pipefail
suite=bookworm
include=systemd-sysv,udev,linux-image-cloud-amd64,iproute2,kmod,openssh-server,zstd
sources=${APT_SOURCES:-}
if [ -z "$sources" ]; then
  for f in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
    if [ -s "$f" ]; then sources=$f; break; fi
  done
fi
[ -n "$sources" ] || { echo "mkbase-ssh: no apt sources file found" >&2; exit 1; }
command -v mmdebstrap >/dev/null || { echo "mkbase-ssh: mmdebstrap missing: apt-get install mmdebstrap" >&2; exit 1; }
cache=${IMAGEBUILDER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/imagebuilder}/base
key=$(printf '%s\n' "v1" "$suite" "$include" "$(cat "$sources")" | sha256sum | cut -c1-16)
cached=$cache/debian-$suite-ssh-$key.tar
mkdir -p "$cache"
if [ ! -s "$cached" ]; then
  echo "mkbase-ssh: building Debian $suite + openssh-server with mmdebstrap (cache miss: $cached)" >&2
  tmp=$(mktemp "$cache/.build-ssh.XXXXXX.tar")
  trap 'rm -f "$tmp"' EXIT; trap 'exit 1' INT TERM
  SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1700000000} \
    mmdebstrap --quiet --variant=minbase --include="$include" \
      --customize-hook='rm -f "$1"/etc/hostname "$1"/etc/resolv.conf' \
      "$suite" "$tmp" "$sources" >&2
  chmod 0644 "$tmp"; sync "$tmp"
  mv -f "$tmp" "$cached"
  trap - EXIT
fi
echo "$cached"
