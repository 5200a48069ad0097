#!/usr/bin/env bash
# get-packer.sh — build Packer and packer-plugin-qemu from the Go module proxy,
# once, into the user's cache, and print the paths.
#
#   packer-plugin/tools/get-packer.sh            # prints PACKER=... and PACKER_PLUGIN_QEMU=...
#   packer-plugin/tools/get-packer.sh packer     # prints only the packer binary's path
#   packer-plugin/tools/get-packer.sh qemu       # prints only the qemu plugin binary's path
#   packer-plugin/tools/get-packer.sh sdc        # packer-sdc (code generator of the SDK), its path
#
# Why build: Debian's packer (1.6.6) is too old for SDK plugins and the proxy
# refuses version lists, so `go install pkg@latest` does not work. Each tool is
# built in a throwaway module with the go-cty replace every SDK-based binary
# needs. Idempotent (an existing binary is reused) and atomic (built under a
# temporary name and renamed), so parallel callers never see half a binary.
set -euo pipefail

PACKER_VERSION=v1.15.0
QEMU_PLUGIN_VERSION=v1.0.9
GO_CTY_REPLACE=github.com/nywilken/go-cty@v1.13.3
GO=${GO:-go}
TOOLS="${XDG_CACHE_HOME:-$HOME/.cache}/imagebuilder/tools"
PACKER_BIN="$TOOLS/packer-$PACKER_VERSION"
QEMU_BIN="$TOOLS/packer-plugin-qemu-$QEMU_PLUGIN_VERSION"
SDK_VERSION=v0.6.7
SDC_BIN="$TOOLS/packer-sdc-$SDK_VERSION"

# build MODULE@VERSION PACKAGE OUT
build() {
	local mod=$1 version=$2 pkg=$3 out=$4
	if [ -x "$out" ]; then return 0; fi
	mkdir -p "$(dirname "$out")"
	local tmp
	tmp=$(mktemp -d)
	# shellcheck disable=SC2064
	trap "rm -rf '$tmp' '$out.tmp.$$'" RETURN
	echo "get-packer: building $mod@$version (a few minutes, once)" >&2
	(
		cd "$tmp"
		"$GO" mod init tmp >/dev/null 2>&1
		"$GO" mod edit -replace "github.com/zclconf/go-cty=$GO_CTY_REPLACE"
		"$GO" get "$pkg@$version" >&2
		CGO_ENABLED=0 "$GO" build -trimpath -o "$out.tmp.$$" "$pkg" >&2
	)
	mv -f "$out.tmp.$$" "$out"
}

want=${1:-all}
case "$want" in
all | packer) build github.com/hashicorp/packer "$PACKER_VERSION" github.com/hashicorp/packer "$PACKER_BIN" ;;
esac
case "$want" in
all | qemu) build github.com/hashicorp/packer-plugin-qemu "$QEMU_PLUGIN_VERSION" github.com/hashicorp/packer-plugin-qemu "$QEMU_BIN" ;;
esac
case "$want" in
sdc) build github.com/hashicorp/packer-plugin-sdk "$SDK_VERSION" github.com/hashicorp/packer-plugin-sdk/cmd/packer-sdc "$SDC_BIN" ;;
esac
case "$want" in
all) echo "PACKER=$PACKER_BIN"; echo "PACKER_PLUGIN_QEMU=$QEMU_BIN" ;;
packer) echo "$PACKER_BIN" ;;
qemu) echo "$QEMU_BIN" ;;
sdc) echo "$SDC_BIN" ;;
*) echo "usage: $0 [all|packer|qemu|sdc]" >&2; exit 2 ;;
esac
