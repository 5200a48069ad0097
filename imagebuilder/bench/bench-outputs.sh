#!/usr/bin/env bash
# bench-outputs.sh — seconds and peak RSS from base + bundle to each output
# format (`imagebuilder build --format F`), next to the same work done by
# hand in the same run: tar -x of base and bundle + mkfs.ext4 -d + qemu-img
# convert. Run by `make bench-outputs`; prints a table and writes it as
# $BUILD/bench-outputs/results.tsv.
set -euo pipefail
BIN=${BIN:-bin/imagebuilder}
BASE=${BASE:-build/base-debian12.tar}
BUILD=${BUILD:-build}
CACHE_DIR=${CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/imagebuilder}
out=$BUILD/bench-outputs
rm -rf "$out"; mkdir -p "$out"
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1700000000}
[ -x /usr/bin/time ] || { echo "bench-outputs: /usr/bin/time not found: apt-get install time" >&2; exit 1; }

# Inputs: the reference bundle (package store cached) and the demo config.
"$BIN" pkg build --packages packages --store "$CACHE_DIR/store" --out "$out/bundle.tar.zst" >/dev/null
"$BIN" genconf --config examples/config.yaml --bundle "$out/bundle.tar.zst" --out "$out/serve" >/dev/null
cb=$(ls "$out"/serve/cluster-bundle-*.tar.zst)

results=$out/results.tsv
printf 'step\tseconds\tpeak_rss_mib\n' >"$results"
measure() { # measure NAME CMD...
  local name=$1; shift
  /usr/bin/time -f '%e %M' -o "$out/time.txt" "$@" >/dev/null
  read -r secs kib <"$out/time.txt"
  printf '%s\t%s\t%d\n' "$name" "$secs" $((kib / 1024)) | tee -a "$results" >&2
}
build() { # build NAME FORMAT [flags]
  local name=$1 fmt=$2; shift 2
  measure "$name" "$BIN" build --base "$BASE" --bundle "$cb" --role master --out "$out/img-$name" --format "$fmt" "$@"
  rm -rf "$out/img-$name"
}

for f in tar oci pxe raw qcow2 vmdk vhd; do build "imagebuilder $f" "$f"; done
build "imagebuilder raw,qcow2" raw,qcow2
measure "imagebuilder all formats" "$BIN" build --base "$BASE" --bundle "$cb" --role master --out "$out/img-all" \
  --format raw,qcow2,vmdk,vhd,tar,oci,pxe
root_bytes=$(python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); print(m["disk"]["partitions"][1]["size_bytes"])' "$out/img-all/host.manifest.json")
rm -rf "$out/img-all"
build "imagebuilder raw,qcow2 4 GiB" raw,qcow2 --size 4096

# The same work by hand: unpack, make the filesystem, convert.
root=$out/manual-root
mkdir -p "$root"
measure "manual: tar -x base + bundle" bash -c "tar -xf '$BASE' -C '$root' && mkdir -p '$root/opt/cluster' && zstd -dcq '$cb' | tar -x -C '$root/opt/cluster'"
measure "manual: mkfs.ext4 -d" mkfs.ext4 -q -F -d "$root" "$out/manual-root.img" "$((root_bytes / 1024))k"
measure "manual: qemu-img convert qcow2" qemu-img convert -O qcow2 "$out/manual-root.img" "$out/manual-root.qcow2"
rm -rf "$root" "$out/manual-root.img" "$out/manual-root.qcow2"

echo >&2
column -t -s $'\t' "$results" >&2
awk -F'\t' '
  $1=="imagebuilder raw,qcow2" {ib=$2}
  $1 ~ /^manual: / {man+=$2}
  END { if (man > 0) printf "\nimagebuilder raw,qcow2 / manual pipeline: %.2fx (%.1fs vs %.1fs)\n", ib/man, ib, man }' "$results" >&2
