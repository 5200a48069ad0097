#!/usr/bin/env bash
# get-packer.sh — Packer v1.15.0 and packer-plugin-qemu v1.0.9 for the Packer
# way; prints PACKER=... and PACKER_PLUGIN_QEMU=... . The project's own
# packer-plugin/tools/get-packer.sh builds and caches them.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
exec "$here/../../packer-plugin/tools/get-packer.sh" "$@"
