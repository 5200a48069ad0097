#!/usr/bin/env bash
# mkbase.sh OUT.tar — build the Debian 12 base rootfs tarball used by the demo and the tests.
#
# The recipe is fixed below; the result is cached in ${XDG_CACHE_HOME:-~/.cache}/imagebuilder/base/
# under a key made of the recipe itself, so a second run (or CI's fresh clone) is a copy.
# mmdebstrap reads this machine's own apt sources file, so no mirror is named here.
set -euo pipefail
out=${1:?usage: mkbase.sh OUT.tar}
suite=bookworm
include=systemd-sysv,udev,linux-image-cloud-amd64,iproute2,kmod
sources=${APT_SOURCES:-}
if [ -z "$sources" ]; then
  for f in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
    if [ -s "$f" ]; then sources=$f; break; fi
  done
fi
[ -n "$sources" ] || { echo "mkbase: no apt sources file found (looked in /etc/apt/sources.list.d/debian.sources, /etc/apt/sources.list)" >&2; exit 1; }
command -v mmdebstrap >/dev/null || { echo "mkbase: mmdebstrap missing: apt-get install mmdebstrap" >&2; exit 1; }
cache=${XDG_CACHE_HOME:-$HOME/.cache}/imagebuilder/base
key=$(printf '%s\n' "v1" "$suite" "$include" "$(cat "$sources")" | sha256sum | cut -c1-16)
cached=$cache/debian-$suite-$key.tar
mkdir -p "$cache"
if [ ! -s "$cached" ]; then
  echo "mkbase: building Debian $suite base with mmdebstrap (cache miss: $cached)" >&2
  tmp=$(mktemp "$cache/.build.XXXXXX.tar")
  trap 'rm -f "$tmp"' EXIT
  SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1700000000} \
    mmdebstrap --quiet --variant=minbase --include="$include" \
      --customize-hook='rm -f "$1"/etc/hostname "$1"/etc/resolv.conf' \
      "$suite" "$tmp" "$sources"
  chmod 0644 "$tmp"; sync "$tmp"
  mv -f "$tmp" "$cached"
  trap - EXIT
fi
if [ "$(readlink -f "$out")" != "$(readlink -f "$cached")" ]; then
  tmpout=$(mktemp "$(dirname "$out")/.base.XXXXXX")
  cp --reflink=auto "$cached" "$tmpout" && mv -f "$tmpout" "$out"
fi
echo "$out"
