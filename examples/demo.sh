#!/usr/bin/env bash
# demo.sh — the main job end to end on the embedded example (run by `make demo`):
# reference packages → bundle → genconf(examples/) → Debian 12 image (raw + qcow2)
# → QEMU boot → firstboot detects the IP and joins. Ends with a summary.
set -euo pipefail
BIN=${BIN:-bin/imagebuilder}
BASE=${BASE:-build/base-debian12.tar}
BUILD=${BUILD:-build}
CACHE_DIR=${CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/imagebuilder}
demo=$BUILD/demo
rm -rf "$demo"; mkdir -p "$demo"
declare -a stages=()
stage() { # stage NAME CMD...
  local name=$1; shift
  local t0=$(date +%s.%N)
  echo "==> $name" >&2
  "$@"
  stages+=("$(awk -v n="$name" -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%-28s %6.1fs", n, b-a}')")
}
stage "debian base" distros/debian/mkbase.sh "$BASE" >/dev/null
stage "pkg build"     "$BIN" pkg build --packages packages --store "$CACHE_DIR/store" --out "$demo/bundle.tar.zst"
stage "genconf"       "$BIN" genconf --config examples/config.yaml --bundle "$demo/bundle.tar.zst" --out "$demo/serve"
cluster_bundle=$(ls "$demo"/serve/cluster-bundle-*.tar.zst)
stage "image build"   "$BIN" build --base "$BASE" --bundle "$cluster_bundle" --role master --out "$demo/images" --name demo
stage "boot test (join)" "$BIN" test "$demo/images/demo.qcow2" --timeout 6m \
  --check 'test -s /var/lib/cluster/joined' --junit "$demo/junit.xml" --artifacts "$demo/test"
cp "$demo/test/node-1/console.log" "$demo/console.log"
echo
echo "From the guest's console ($demo/console.log):"
grep -aE 'cluster-firstboot: (detected IP|role|joined)' "$demo/console.log" | sed 's/^/  /'
echo
echo "Artifacts:"
for f in "$demo/bundle.tar.zst" "$cluster_bundle" "$demo/images/demo.raw" "$demo/images/demo.qcow2"; do
  printf '  %-60s %10s  sha256:%s\n' "$f" "$(du -h --apparent-size "$f" | cut -f1)" "$(sha256sum "$f" | cut -c1-16)"
done
echo "Seconds per stage:"
printf '  %s\n' "${stages[@]}"
echo "demo: OK — the host booted, detected its IP and joined cluster demo."
