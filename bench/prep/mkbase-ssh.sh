#!/usr/bin/env bash
# mkbase-ssh.sh OUT.tar — the Debian 12 base plus openssh-server, the
# starting point of the Packer way (its provisioner reaches the VM over SSH).
# The project's packer-plugin/tools/mkbase-ssh.sh builds and caches it (the
# same base the Packer provisioner test boots); this links it at OUT.
set -euo pipefail
out=${1:?usage: mkbase-ssh.sh OUT.tar}
here=$(cd "$(dirname "$0")" && pwd)
base=$("$here/../../packer-plugin/tools/mkbase-ssh.sh")
ln -f "$base" "$out" 2>/dev/null || cp --reflink=auto "$base" "$out"
