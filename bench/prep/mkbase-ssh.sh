#!/usr/bin/env bash
# mkbase-ssh.sh OUT.tar — the Debian 12 base of distros/debian/mkbase.sh plus
# openssh-server: the starting point of the Packer way, whose provisioner
# reaches the VM over SSH. Same approach as mkbase.sh (mmdebstrap from this
# machine's own apt sources file), cached under a key of the recipe in
# ${XDG_CACHE_HOME:-~/.cache}/imagebuilder/base/.
set -euo pipefail
out=${1:?usage: mkbase-ssh.sh OUT.tar}
suite=bookworm
include=systemd-sysv,udev,linux-image-cloud-amd64,iproute2,kmod,openssh-server
sources=${APT_SOURCES:-}
if [ -z "$sources" ]; then
  for f in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
    if [ -s "$f" ]; then sources=$f; break; fi
  done
fi
[ -n "$sources" ] || { echo "mkbase-ssh: no apt sources file found" >&2; exit 1; }
command -v mmdebstrap >/dev/null || { echo "mkbase-ssh: mmdebstrap missing: apt-get install mmdebstrap" >&2; exit 1; }
cache=${XDG_CACHE_HOME:-$HOME/.cache}/imagebuilder/base
key=$(printf '%s\n' "v1-ssh" "$suite" "$include" "$(cat "$sources")" | sha256sum | cut -c1-16)
cached=$cache/debian-$suite-ssh-$key.tar
mkdir -p "$cache"
if [ ! -s "$cached" ]; then
  echo "mkbase-ssh: building Debian $suite base with openssh-server (cache miss: $cached)" >&2
  tmp=$(mktemp "$cache/.build.XXXXXX.tar")
  trap 'rm -f "$tmp"' EXIT
  SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1700000000} \
    mmdebstrap --quiet --variant=minbase --include="$include" \
      --customize-hook='rm -f "$1"/etc/hostname "$1"/etc/resolv.conf' \
      "$suite" "$tmp" "$sources"
  chmod 0644 "$tmp"
  mv -f "$tmp" "$cached"
  trap - EXIT
fi
mkdir -p "$(dirname "$out")"
ln -sfn "$cached" "$out"
echo "$out"
