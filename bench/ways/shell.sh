#!/usr/bin/env bash
# shell.sh — the shell baseline: the same host image imagebuilder builds, made
# by hand with the usual tools (run as root):
#   tar -x base and bundle (numeric owners, xattrs) → the Debian fixups and the
#   bundle's unit links (what distros.Debian.Fixup and overlay.InstallBundle do)
#   → mkfs.ext4 -d → mkfs.vfat + mtools ESP with systemd-boot and a Boot Loader
#   Spec entry → sgdisk GPT → dd → qemu-img convert.
#
#   bench/ways/shell.sh BASE.tar BUNDLE.tar.zst|- OUTDIR [NAME]
#
# BUNDLE "-" writes the base alone (the starting image of the libguestfs and
# Packer ways). Environment: ROLE (bake a role; default none, it comes at
# boot), PREFIX (default /opt/cluster), KEEP_SSH_HOST_KEYS=1 (Packer's base
# needs sshd to start), AUTHORIZED_KEYS=FILE (root's, for Packer's base),
# FORMATS ("raw qcow2" by default).
set -euo pipefail
base=${1:?usage: shell.sh BASE.tar BUNDLE.tar.zst|- OUTDIR [NAME]}
bundle=${2:?bundle (or -)}
out=${3:?output folder}
name=${4:-host}
prefix=${PREFIX:-/opt/cluster}
formats=${FORMATS:-raw qcow2}
efi=/usr/lib/systemd/boot/efi/systemd-bootx64.efi
[ "$(id -u)" = 0 ] || { echo "shell.sh: run as root (tar keeps owners and device nodes only as root)" >&2; exit 1; }
for t in tar zstd mkfs.ext4 mkfs.vfat mmd mcopy sgdisk qemu-img; do
  command -v $t >/dev/null || { echo "shell.sh: $t missing (apt-get install e2fsprogs dosfstools mtools gdisk qemu-utils zstd)" >&2; exit 1; }
done
[ -s $efi ] || { echo "shell.sh: $efi missing (apt-get install systemd-boot-efi)" >&2; exit 1; }

mkdir -p "$out"
work=$(mktemp -d "$out/.shell-XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root
mkdir "$root"

# 1. The base and the bundle.
tar -x --numeric-owner -p --xattrs --xattrs-include='*' -f "$base" -C "$root"
if [ "$bundle" != - ]; then
  mkdir -p "$root$prefix"
  zstd -dcq "$bundle" | tar -x --numeric-owner -p -C "$root$prefix"
fi

# 2. Debian fixups: networkd with DHCP on every Ethernet NIC.
sys=$root/etc/systemd/system
mkdir -p "$sys/multi-user.target.wants" "$sys/sockets.target.wants" "$sys/network-online.target.wants" "$root/etc/systemd/network"
ln -sfn /lib/systemd/system/systemd-networkd.service "$sys/multi-user.target.wants/systemd-networkd.service"
ln -sfn /lib/systemd/system/systemd-networkd.socket "$sys/sockets.target.wants/systemd-networkd.socket"
ln -sfn /lib/systemd/system/systemd-networkd-wait-online.service "$sys/network-online.target.wants/systemd-networkd-wait-online.service"
printf '[Match]\nType=ether\n\n[Network]\nDHCP=yes\n' >"$root/etc/systemd/network/80-imagebuilder-dhcp.network"

# 3. Hygiene: empty machine-id, no host keys, no apt lists or caches.
: >"$root/etc/machine-id"; chmod 0444 "$root/etc/machine-id"
[ "${KEEP_SSH_HOST_KEYS:-}" = 1 ] || rm -f "$root"/etc/ssh/ssh_host_*
find "$root/var/lib/apt/lists" -maxdepth 1 -type f ! -name lock -delete 2>/dev/null || true
rm -f "$root"/var/cache/apt/*.bin "$root/var/lib/dbus/machine-id" "$root/etc/hostname"
if [ -n "${AUTHORIZED_KEYS:-}" ]; then
  install -d -m 0700 "$root/root/.ssh"
  install -m 0600 "$AUTHORIZED_KEYS" "$root/root/.ssh/authorized_keys"
fi

# 4. The bundle's units, linked like overlay.InstallBundle does; the role.
if [ "$bundle" != - ]; then
  for u in "$root$prefix"/systemd/*; do
    [ -f "$u" ] && [ ! -L "$u" ] || continue
    ln -sfn "$prefix/systemd/${u##*/}" "$sys/${u##*/}"
  done
  ln -sfn /etc/systemd/system/cluster.target "$sys/multi-user.target.wants/cluster.target"
  if [ -n "${ROLE:-}" ]; then
    mkdir -p "$root/etc/cluster"; echo "$ROLE" >"$root/etc/cluster/role"
  fi
fi

# 5. Identifiers, fstab, the boot entry.
root_uuid=$(cat /proc/sys/kernel/random/uuid)
part_uuid=$(cat /proc/sys/kernel/random/uuid)
esp_id=$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')
esp_uuid=$(echo "${esp_id:0:4}-${esp_id:4:4}" | tr a-f A-F)
mkdir -p "$root/boot/efi"
printf 'UUID=%s / ext4 defaults,errors=remount-ro 0 1\nUUID=%s /boot/efi vfat umask=0077,nofail 0 2\n' "$root_uuid" "$esp_uuid" >"$root/etc/fstab"
kver=$(cd "$root/boot" && ls vmlinuz-* | sed 's/^vmlinuz-//' | sort -V | tail -1)
[ -n "$kver" ] && [ -f "$root/boot/initrd.img-$kver" ] || { echo "shell.sh: no kernel+initrd in the base's /boot" >&2; exit 1; }
title=$(. "$root/etc/os-release"; echo "$PRETTY_NAME")

# 6. ESP (FAT32) with systemd-boot, loader.conf, the entry, kernel and initrd.
esp=$work/esp.img
mkfs.vfat -C -F 32 -S 512 -s 1 -n ESP -i "$esp_id" "$esp" $((128 * 1024)) >/dev/null
export MTOOLS_SKIP_CHECK=1
mmd -i "$esp" ::/EFI ::/EFI/BOOT ::/loader ::/loader/entries ::/imagebuilder "::/imagebuilder/$kver"
mcopy -i "$esp" $efi ::/EFI/BOOT/BOOTX64.EFI
printf 'timeout 0\ndefault imagebuilder.conf\neditor no\n' >"$work/loader.conf"
printf 'title %s\nversion %s\nlinux /imagebuilder/%s/linux\ninitrd /imagebuilder/%s/initrd\noptions root=PARTUUID=%s ro console=tty0 console=ttyS0,115200\n' \
  "$title" "$kver" "$kver" "$kver" "$part_uuid" >"$work/entry.conf"
mcopy -i "$esp" "$work/loader.conf" ::/loader/loader.conf
mcopy -i "$esp" "$work/entry.conf" ::/loader/entries/imagebuilder.conf
mcopy -i "$esp" "$root/boot/vmlinuz-$kver" "::/imagebuilder/$kver/linux"
mcopy -i "$esp" "$root/boot/initrd.img-$kver" "::/imagebuilder/$kver/initrd"

# 7. ext4 root sized to the content + 30% + ROOT_EXTRA_MIB (default 64),
#    populated from the tree. The Packer way's base sets more: its guest
#    holds the uploaded bundle and the extracted one at once.
used_mib=$(du -s --block-size=1M "$root" | cut -f1)
root_mib=$((used_mib * 13 / 10 + ${ROOT_EXTRA_MIB:-64}))
mkfs.ext4 -q -F -L root -U "$root_uuid" -d "$root" "$work/root.img" "${root_mib}M" >/dev/null

# 8. GPT disk: 1 MiB, ESP 128 MiB, root, 1 MiB backup GPT.
raw=$work/$name.raw
truncate -s $(((1 + 128 + root_mib + 1) * 1024 * 1024)) "$raw"
sgdisk -o -n 1:2048:+128M -t 1:ef00 -c 1:ESP -n 2:0:0 -t 2:4f68bce3-e8cd-4db1-96e7-fbcaf984b709 -u "2:$part_uuid" -c 2:root "$raw" >/dev/null
dd if="$esp" of="$raw" bs=1M seek=1 conv=notrunc,sparse status=none
dd if="$work/root.img" of="$raw" bs=1M seek=129 conv=notrunc,sparse status=none

# 9. Outputs.
case " $formats " in *" qcow2 "*) qemu-img convert -f raw -O qcow2 "$raw" "$work/$name.qcow2"; mv -f "$work/$name.qcow2" "$out/$name.qcow2" ;; esac
case " $formats " in *" raw "*) mv -f "$raw" "$out/$name.raw" ;; esac
