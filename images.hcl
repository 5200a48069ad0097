# images.hcl — the host images of the example cluster, one file with two
# entry points:
#
#   imagebuilder build images.hcl --only debian-master      # no Packer needed
#   packer plugins install --path bin/packer-plugin-imagebuilder github.com/imagebuilder/imagebuilder
#   packer build -only=imagebuilder.debian-master images.hcl
#
# Both read the same variables (-var / --var overrides the defaults) and the
# same `source "imagebuilder"` blocks, and build the same bytes. Relative
# paths are relative to the current folder. Each image runs genconf on the
# base bundle first (genconf_config), so only the output of
# `imagebuilder pkg build` is needed; set bundle to a cluster bundle and drop
# genconf_config to use one made by `imagebuilder genconf` instead.

packer {
  required_plugins {
    imagebuilder = {
      source  = "github.com/imagebuilder/imagebuilder"
      version = ">= 0.1.0"
    }
  }
}

variable "debian_base" {
  type        = string
  default     = "build/base-debian12.tar"
  description = "Debian 12 root filesystem tarball (distros/debian/mkbase.sh)"
}

variable "ubuntu_base" {
  type        = string
  default     = "build/base-ubuntu2404.tar"
  description = "Ubuntu 24.04 root filesystem tarball"
}

variable "rhel_base" {
  type        = string
  default     = "build/base-rhel9.tar"
  description = "RHEL 9 (or a rebuild) root filesystem tarball"
}

variable "bundle" {
  type        = string
  default     = "build/bundle.tar.zst"
  description = "the bundle from `imagebuilder pkg build`"
}

variable "cluster_config" {
  type        = string
  default     = "examples/config.yaml"
  description = "genconf config.yaml baked into the bundle (it names its ip-detect)"
}

variable "kernel_cmdline" {
  type        = string
  default     = "console=tty0 console=ttyS0,115200 no_timer_check"
  description = "kernel command line after root=; no_timer_check skips the IO-APIC timer check that fails on loaded hypervisors (QEMU TCG)"
}

variable "out" {
  type        = string
  default     = "build/images"
  description = "folder that receives one sub-folder per image"
}

# Debian 12: a master (qcow2 for KVM) and an agent whose role is decided at boot.
source "imagebuilder" "debian-master" {
  base             = var.debian_base
  bundle           = var.bundle
  genconf_config   = var.cluster_config
  role             = "master"
  formats          = ["qcow2"]
  kernel_cmdline   = var.kernel_cmdline
  output_directory = "${var.out}/debian-master"
}

source "imagebuilder" "debian-agent" {
  base             = var.debian_base
  bundle           = var.bundle
  genconf_config   = var.cluster_config
  formats          = ["raw", "qcow2"]
  kernel_cmdline   = var.kernel_cmdline
  output_directory = "${var.out}/debian-agent"
}

# Ubuntu 24.04: public agents.
source "imagebuilder" "ubuntu-agent-public" {
  base             = var.ubuntu_base
  bundle           = var.bundle
  genconf_config   = var.cluster_config
  role             = "agent_public"
  formats          = ["qcow2"]
  kernel_cmdline   = var.kernel_cmdline
  output_directory = "${var.out}/ubuntu-agent-public"
}

# RHEL 9: agents, as raw disks for bare metal.
source "imagebuilder" "rhel-agent" {
  base             = var.rhel_base
  bundle           = var.bundle
  genconf_config   = var.cluster_config
  role             = "agent"
  formats          = ["raw"]
  kernel_cmdline   = var.kernel_cmdline
  output_directory = "${var.out}/rhel-agent"
}

build {
  sources = [
    "source.imagebuilder.debian-master",
    "source.imagebuilder.debian-agent",
    "source.imagebuilder.ubuntu-agent-public",
    "source.imagebuilder.rhel-agent",
  ]
}
