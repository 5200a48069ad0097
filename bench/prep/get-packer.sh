#!/usr/bin/env bash
# get-packer.sh — Packer v1.15.0 and packer-plugin-qemu v1.0.9 for the Packer
# way; prints PACKER=... and PACKER_PLUGIN_QEMU=... . Uses the project's
# packer-plugin/tools/get-packer.sh when the tree has it; otherwise builds
# both the same way, into the same cache paths
# (${XDG_CACHE_HOME:-~/.cache}/imagebuilder/tools/packer-<v>,
# packer-plugin-qemu-<v>): a throwaway module with the go-cty replace every
# SDK binary needs (the module proxy refuses version lists, so no @latest).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
project=$here/../../packer-plugin/tools/get-packer.sh
if [ -x "$project" ]; then exec "$project" "$@"; fi
PACKER_VERSION=v1.15.0
QEMU_PLUGIN_VERSION=v1.0.9
GO=${GO:-go}
tools=${XDG_CACHE_HOME:-$HOME/.cache}/imagebuilder/tools
build() { # MODULE VERSION OUT
  [ -x "$3" ] && return 0
  mkdir -p "$tools"
  local tmp; tmp=$(mktemp -d)
  echo "get-packer: building $1@$2 (a few minutes, once)" >&2
  (cd "$tmp" && "$GO" mod init tmp >/dev/null 2>&1 &&
    "$GO" mod edit -replace github.com/zclconf/go-cty=github.com/nywilken/go-cty@v1.13.3 &&
    "$GO" get "$1@$2" >&2 && CGO_ENABLED=0 "$GO" build -trimpath -o "$3.tmp.$$" "$1" >&2)
  rm -rf "$tmp"
  mv -f "$3.tmp.$$" "$3"
}
build github.com/hashicorp/packer $PACKER_VERSION "$tools/packer-$PACKER_VERSION"
build github.com/hashicorp/packer-plugin-qemu $QEMU_PLUGIN_VERSION "$tools/packer-plugin-qemu-$QEMU_PLUGIN_VERSION"
echo "PACKER=$tools/packer-$PACKER_VERSION"
echo "PACKER_PLUGIN_QEMU=$tools/packer-plugin-qemu-$QEMU_PLUGIN_VERSION"
