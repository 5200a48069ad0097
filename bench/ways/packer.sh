#!/usr/bin/env bash
# packer.sh — the Packer way: Packer's qemu builder boots a qcow2 of the base
# (with sshd), a file provisioner uploads the bundle over SSH and a shell
# provisioner extracts it at the prefix and links its units (what
# overlay.InstallBundle does), then cleans the host keys and the machine-id
# the build boot made; Packer shuts the VM down and writes the qcow2.
#
#   bench/ways/packer.sh BASE-SSH.qcow2 SSH-KEY BUNDLE.tar.zst OUTDIR [NAME]
#
# BASE-SSH.qcow2 is the shell baseline's image of bench/prep/mkbase-ssh.sh's
# base (host keys kept, SSH-KEY.pub authorized for root). Guest networking is
# QEMU user networking with restrict=on (the guest reaches nothing outside
# QEMU) and one hostfwd to the guest's sshd: set through qemuargs, which
# replaces the builder's default -netdev. QEMU runs TCG (KVM does not work
# here). Env: PACKER, PACKER_PLUGIN_QEMU (from bench/prep/get-packer.sh),
# PREFIX, ROLE as in shell.sh.
set -euo pipefail
base=${1:?usage: packer.sh BASE-SSH.qcow2 SSH-KEY BUNDLE.tar.zst OUTDIR [NAME]}
key=${2:?ssh private key}
bundle=${3:?bundle}
out=${4:?output folder}
name=${5:-host}
prefix=${PREFIX:-/opt/cluster}
: "${PACKER:?set PACKER (bench/prep/get-packer.sh prints it)}"
: "${PACKER_PLUGIN_QEMU:?set PACKER_PLUGIN_QEMU (bench/prep/get-packer.sh prints it)}"
export PACKER_CHECKPOINT_DISABLE=1 CHECKPOINT_DISABLE=1
export PACKER_PLUGIN_PATH=${PACKER_PLUGIN_PATH:-${XDG_CACHE_HOME:-$HOME/.cache}/imagebuilder/tools/packer-plugins}
export PACKER_CONFIG_DIR=$PACKER_PLUGIN_PATH/config
# Install the locally built plugin where Packer looks for it (idempotent).
if ! ls "$PACKER_PLUGIN_PATH"/github.com/hashicorp/qemu/packer-plugin-qemu_v1.0.9_x5.0_linux_amd64 >/dev/null 2>&1; then
  "$PACKER" plugins install --path "$PACKER_PLUGIN_QEMU" github.com/hashicorp/qemu >&2
fi
ovmf_code=/usr/share/OVMF/OVMF_CODE_4M.fd
ovmf_vars=/usr/share/OVMF/OVMF_VARS_4M.fd

mkdir -p "$out"
work=$(mktemp -d "$out/.packer-XXXXXX")
trap 'rm -rf "$work"' EXIT
zstd -dcq "$bundle" >"$work/bundle.tar"
cat >"$work/provision.sh" <<PROVISION
set -eu
mkdir -p $prefix
tar -x --numeric-owner -p -f /tmp/bundle.tar -C $prefix
rm -f /tmp/bundle.tar
for u in $prefix/systemd/*; do
  [ -f "\$u" ] && [ ! -L "\$u" ] || continue
  ln -sfn "$prefix/systemd/\${u##*/}" "/etc/systemd/system/\${u##*/}"
done
mkdir -p /etc/systemd/system/multi-user.target.wants
ln -sfn /etc/systemd/system/cluster.target /etc/systemd/system/multi-user.target.wants/cluster.target
if [ -n "${ROLE:-}" ]; then mkdir -p /etc/cluster; echo "${ROLE:-}" >/etc/cluster/role; fi
# Hygiene after the build boot: no host keys, no machine-id, no build key.
rm -f /etc/ssh/ssh_host_* /root/.ssh/authorized_keys
: >/etc/machine-id
sync
PROVISION
cat >"$work/bench.pkr.hcl" <<HCL
packer {
  required_plugins {
    qemu = {
      version = "= 1.0.9"
      source  = "github.com/hashicorp/qemu"
    }
  }
}

source "qemu" "bench" {
  disk_image           = true
  iso_url              = "$(readlink -f "$base")"
  iso_checksum         = "none"
  use_backing_file     = false
  skip_resize_disk     = true
  format               = "qcow2"
  output_directory     = "$work/out"
  vm_name              = "$name.qcow2"
  accelerator          = "tcg"
  machine_type         = "q35"
  cpus                 = 2
  memory               = 1024
  headless             = true
  efi_firmware_code    = "$ovmf_code"
  efi_firmware_vars    = "$ovmf_vars"
  net_device           = "virtio-net"
  disk_interface       = "virtio"
  # restrict=on: the guest reaches nothing outside QEMU; hostfwd to sshd only.
  qemuargs = [
    ["-netdev", "user,id=user.0,restrict=on,hostfwd=tcp:127.0.0.1:{{ .SSHHostPort }}-:22"],
    ["-serial", "file:$work/console.log"],
  ]
  communicator         = "ssh"
  ssh_username         = "root"
  ssh_private_key_file = "$(readlink -f "$key")"
  ssh_timeout          = "10m"
  shutdown_command     = "systemctl poweroff"
  shutdown_timeout     = "5m"
}

build {
  sources = ["source.qemu.bench"]
  provisioner "file" {
    source      = "$work/bundle.tar"
    destination = "/tmp/bundle.tar"
  }
  provisioner "shell" {
    script = "$work/provision.sh"
  }
}
HCL
if ! PACKER_LOG=1 "$PACKER" build -color=false "$work/bench.pkr.hcl" >"$work/packer.log" 2>&1; then
  cat "$work/packer.log" >&2
  echo "packer.sh: packer build failed; guest console:" >&2; tail -20 "$work/console.log" >&2 || true
  exit 1
fi
mv -f "$work/out/$name.qcow2" "$out/$name.qcow2"
# Keep Packer's log (its QEMU command line shows restrict=on) and the console.
cp "$work/packer.log" "$out/packer.log"; cp "$work/console.log" "$out/console.log" 2>/dev/null || true
