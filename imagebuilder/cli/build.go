package cli

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"imagebuilder/imagebuilder/build"
)

func newBuildCmd(g *globals) *cobra.Command {
	var o build.Options
	var fromFile imagesFlags
	cmd := &cobra.Command{
		Use:   "build [IMAGES.hcl] --base BASE --bundle BUNDLE --out DIR",
		Short: "Layer a cluster bundle onto a base root filesystem and write disk images",
		Long: `build stages the base root filesystem, detects its distribution, applies
that family's fixups, installs the cluster bundle at its prefix, links the
cluster units, and writes every requested format from that one tree. No
root privileges, loop devices or mounts are used: owners, modes and device
nodes come from the inputs.

Formats (--format, several at once; default raw,qcow2):
  raw    GPT disk: EFI system partition (systemd-boot) + ext4 root, and with
         --boot hybrid (default) also BIOS boot (GRUB in the MBR and a BIOS
         boot partition); the root grows to fill a larger disk on first boot
  qcow2  the raw disk for QEMU/KVM/OpenStack
  vmdk   streamOptimized VMDK (importable as an EC2 snapshot)
  vhd    fixed VHD, whole MiB (Azure)
  tar    the root filesystem as a deterministic tar
  oci    an OCI image layout (NAME.oci/) holding the rootfs as one layer;
         --oci-push REF also pushes it to a registry
  pxe    NAME.pxe/: vmlinuz + rootfs.cpio.gz (the whole root as initramfs)
         + boot.ipxe; boot with: kernel vmlinuz rdinit=/sbin/init <console>,
         initrd rootfs.cpio.gz (the host runs from RAM)
  bash   NAME.bash/: the cluster bundle + the install.sh genconf wrote
         beside it, for the bash path on running hosts
  iso    installer for bare metal without PXE (BIOS and UEFI El Torito):
         boots a static installer that writes the raw disk to the first
         empty disk (or installer.disk=vdb on the kernel command line),
         verifies it by reading it back and reboots into it

In place (--in-place, for vendor images whose layout must be kept, such as
RHEL KVM guest images with an XFS root): --base is a raw or qcow2 disk and
is never modified. A copy gets the bundle, unit links and role from a
small appliance VM (the kernel of --appliance-kernel, a rootfs tarball,
plus a static /init) that mounts the root, applies them, resets the
machine identity, drops host keys, logs and caches, asks for an SELinux
relabel when SELinux is on, and powers off. Partitions, boot loader and
file system stay the vendor's. Formats: raw and qcow2. No root, loop
devices or mounts on the build machine; needs qemu-system-x86_64.

The base's root filesystem, after its distribution's fixups, is formatted
once and kept as a base layer in the cache (--cache-dir, default
$IMAGEBUILDER_CACHE or ~/.cache/imagebuilder; the 4 most recently used are
kept). Later builds of the same base copy it into the disk and add only
their own files (bundle, unit links, fstab) with debugfs: a rebuild after a
config change takes seconds. Outputs are the same bytes with or without the
cache; --no-cache makes the layer in the staging folder.

Every output is listed with its sha256 and size in NAME.manifest.json
(with the base and bundle digests, config hash, formats, disk layout) and
in SHA256SUMS. Same inputs and SOURCE_DATE_EPOCH give the same bytes for
raw, qcow2, tar and oci. Check an image later with "imagebuilder verify".`,
		Example: `  imagebuilder build --base build/base-debian12.tar \
    --bundle build/serve/cluster-bundle-*.tar.zst --role master --out build/images

  # leave the role to the boot (kernel cmdline cluster.role= or SMBIOS credential)
  imagebuilder build --base base.tar.zst --bundle cb.tar.zst --format qcow2 --out out

  # every cloud format plus a container image pushed to a registry
  imagebuilder build --base base.tar --bundle cb.tar.zst --out out \
    --format raw,qcow2,vmdk,vhd,tar,oci --oci-push 127.0.0.1:5000/cluster/host:1

  # UEFI only, console on the second serial port, extra kernel arguments
  imagebuilder build --base base.tar --bundle cb.tar.zst --out out \
    --boot uefi --console ttyS1,115200 --cmdline "quiet cluster.role=agent"

  # keep a vendor image's layout (XFS root, its own boot loader)
  imagebuilder build --in-place --base rhel-9-kvm.qcow2 --bundle cb.tar.zst \
    --role agent --format qcow2 --appliance-kernel build/base-debian12.tar --out out

  # the images of a Packer template (images.hcl), without Packer
  imagebuilder build images.hcl --only debian-master --var out=build/images`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				return buildImagesFile(cmd, g, args[0], &fromFile)
			}
			if matches, _ := filepath.Glob(o.Bundle); len(matches) == 1 {
				o.Bundle = matches[0]
			}
			log := g.logger()
			var pr *stageProgress
			if isTerminal(g.stderr) && !g.verbose {
				// Spinners per stage instead of the stage log lines.
				pr = newStageProgress(g.stderr)
				o.OnStage = pr.stage
				log = slog.New(slog.NewTextHandler(g.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
			}
			res, err := build.Run(cmd.Context(), log, o)
			if pr != nil {
				pr.wait()
			}
			if err != nil {
				return err
			}
			if g.json {
				return g.printJSON(res)
			}
			w := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintf(w, "image %s (%s, prefix %s, role %s)\n", res.Name, res.Distro, res.Prefix, orDash(res.Role))
			for _, a := range res.Artifacts {
				fmt.Fprintf(w, "  %s\t%s\t%s\tsha256:%s\n", a.Format, a.Path, humanBytes(a.Size), a.SHA256[:16])
			}
			for _, s := range res.Stages {
				fmt.Fprintf(w, "  stage\t%s\t%.1fs\t\n", s.Name, s.Seconds)
			}
			return w.Flush()
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Base, "base", "", "base: rootfs tarball (tar, .gz, .zst), directory, oci:PATH[:TAG], docker-archive:PATH[:TAG], docker://REF, raw or qcow2 disk image (ext4 root)")
	f.StringVar(&o.Bundle, "bundle", "", "cluster bundle made by `imagebuilder genconf`")
	f.StringVar(&o.Role, "role", "", "bake this role (master, agent, agent_public); empty: decided at boot")
	f.StringVar(&o.OutDir, "out", "", "output folder")
	f.StringVar(&o.Name, "name", "host", "base name of the output files")
	f.StringSliceVar(&o.Formats, "format", []string{"raw", "qcow2"}, "output formats: "+strings.Join(build.Formats, ", "))
	f.StringVar(&o.KernelCmdline, "cmdline", "", "extra kernel command line (after root=… ro and the console settings)")
	f.StringVar(&o.Console, "console", "", `serial console: "ttyS0,115200" (default) or "none"; ignored when --cmdline names a console=`)
	f.StringVar(&o.Boot, "boot", build.BootHybrid, "disk boot: hybrid (UEFI + BIOS) or uefi")
	f.BoolVar(&o.NoGrowRoot, "no-grow-root", false, "do not grow the root partition and filesystem to fill the disk on first boot")
	f.Int64Var(&o.SourceDateEpoch, "source-date-epoch", 0, "timestamp of every output (default $SOURCE_DATE_EPOCH, else 1980-01-01)")
	f.StringVar(&o.InstallerBinary, "installer-bin", "", "static installer for --format iso (default: imagebuilder-installer beside this program, else in PATH)")
	f.StringVar(&o.OCIPush, "oci-push", "", "push the oci format to this registry reference (needs --format oci)")
	f.Int64Var(&o.SizeMiB, "size", 0, "disk size in MiB (0: fit the content)")
	f.BoolVar(&o.InPlace, "in-place", false, "keep the vendor disk image's partitions, boot loader, LVM and file system (XFS or ext4): apply the bundle to a copy inside an appliance VM")
	f.StringVar(&o.ApplianceKernel, "appliance-kernel", "", "with --in-place: rootfs tarball whose /boot/vmlinuz-* and modules run the appliance (e.g. the Debian base)")
	f.StringVar(&o.InPlaceRoot, "in-place-root", "", `with --in-place: the root when several file systems hold an os-release: "VG/LV" (LVM) or a partition ("vda3")`)
	f.StringVar(&o.ApplianceBinary, "appliance-bin", "", "with --in-place: static appliance /init (default: imagebuilder-appliance beside this program, else in PATH)")
	f.StringVar(&o.CacheDir, "cache-dir", "", "folder of base layers and base digests (default $IMAGEBUILDER_CACHE, else ~/.cache/imagebuilder)")
	f.BoolVar(&o.NoCache, "no-cache", false, "neither reuse nor keep the base layer; hash the base in full")
	fromFile.add(cmd)
	return cmd
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
