package build

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"imagebuilder/distros"
	"imagebuilder/imagebuilder/base"
	"imagebuilder/imagebuilder/inplace"
	"imagebuilder/overlay"
)

// The in-place path (Options.InPlace) keeps a vendor disk image's layout:
// the partition table, boot loader, LVM metadata and file system (XFS,
// ext4, on a partition or an LVM2 logical volume) stay as the vendor made
// them. The build machine cannot read that root without mounting it, so
// the appliance VM (imagebuilder/inplace) runs twice over a copy of the
// image:
//
//  1. it mounts the root read-only and writes its skeleton: every entry's
//     metadata, and the contents of /etc and the dpkg status;
//  2. here, the skeleton is staged as a tree and gets exactly what a
//     rebuilt image gets: the distro profile detected from its os-release
//     and its Fixup (prerequisites, network stack, cloud-init, SELinux
//     relabel, kernel exposure, hygiene: machine-id, SSH host keys, logs,
//     caches, leftovers, resolv.conf), then the bundle, unit links and
//     role. The difference is the overlay: added and changed entries, and
//     whiteouts for what was removed;
//  3. the appliance applies that overlay to the root, every path resolved
//     inside it;
//  4. an XFS root is normalized so the same inputs give the same bytes:
//     the inodes the run touched get SOURCE_DATE_EPOCH timestamps,
//     generation numbers derived from their number, no LSN, and the log is
//     rewritten (inplace.MakeReproducible). ext4 roots and striped logical
//     volumes are left as the run made them, with a warning.

func (o *Options) validateInPlace() error {
	var errs []error
	if kind, _, err := base.Parse(o.Base); err == nil && kind != base.KindRaw && kind != base.KindQcow2 {
		errs = append(errs, fmt.Errorf("in-place: base %s is a %s; the in-place path takes a raw or qcow2 disk image", o.Base, kind))
	}
	for _, f := range o.Formats {
		if f != "raw" && f != "qcow2" {
			errs = append(errs, fmt.Errorf("in-place: format %q: the in-place path writes raw and qcow2 only (the vendor's layout is kept)", f))
		}
	}
	if o.ApplianceKernel == "" {
		errs = append(errs, errors.New("in-place: appliance kernel: required (a rootfs tarball with /boot/vmlinuz-* and its modules, e.g. the Debian base)"))
	} else if _, err := os.Stat(o.ApplianceKernel); err != nil {
		errs = append(errs, fmt.Errorf("in-place: appliance kernel: %w", err))
	}
	if o.ApplianceBinary == "" {
		o.ApplianceBinary = findBeside("imagebuilder-appliance")
	}
	if o.ApplianceBinary == "" {
		errs = append(errs, errors.New("in-place: no appliance binary: build it with CGO_ENABLED=0 go build -o bin/imagebuilder-appliance ./imagebuilder/inplace/appliance, or pass --appliance-bin"))
	} else if _, err := os.Stat(o.ApplianceBinary); err != nil {
		errs = append(errs, fmt.Errorf("in-place: appliance binary: %w", err))
	}
	return errors.Join(errs...)
}

// runInPlace copies the vendor image (never changing it), applies the
// overlay to the copy in the appliance and writes the requested formats.
func runInPlace(ctx context.Context, log *slog.Logger, o Options, res *Result, timed func(string, func() error) error) error {
	stage, err := os.MkdirTemp(o.OutDir, ".stage-")
	if err != nil {
		return fmt.Errorf("creating staging folder: %w", err)
	}
	defer os.RemoveAll(stage)
	kind, imgPath, err := base.Parse(o.Base)
	if err != nil {
		return err
	}
	var info *bundleInfo
	var kernel *inplace.Kernel
	var skel *inplace.Skeleton
	overlayTar := filepath.Join(stage, "overlay.tar")
	work := filepath.Join(stage, "work.raw")
	var console string
	steps := []struct {
		name string
		fn   func() error
	}{
		{"inspect inputs", func() error {
			res.BaseKind = string(kind)
			if res.BaseSHA256, err = fileSHA256(imgPath); err != nil {
				return fmt.Errorf("base: %w", err)
			}
			if res.BundleSHA256, err = fileSHA256(o.Bundle); err != nil {
				return fmt.Errorf("bundle: %w", err)
			}
			if info, err = inspectBundle(o.Bundle); err != nil {
				return err
			}
			res.Prefix, res.ConfigHash = info.Prefix, info.ConfigHash
			kernel, err = inplace.KernelFromBase(o.ApplianceKernel)
			return err
		}},
		{"copy vendor image", func() error {
			return qemuImg(ctx, "convert", "-q", "-f", string(kind), "-O", "raw", imgPath, work)
		}},
		{"read vendor root", func() error {
			skelTar := filepath.Join(stage, "skeleton.tar")
			if _, err := inplace.Run(ctx, log, inplace.Options{
				Image: work, Format: "raw", Skeleton: skelTar, Root: o.InPlaceRoot,
				Kernel: kernel, InitBinary: o.ApplianceBinary,
			}); err != nil {
				return fmt.Errorf("reading the root of %s: %w", o.Base, err)
			}
			root := filepath.Join(stage, "root")
			if err := os.Mkdir(root, 0o755); err != nil {
				return err
			}
			skel, err = inplace.ReadSkeleton(skelTar, root)
			os.Remove(skelTar)
			return err
		}},
		{"fixups and overlay", func() error {
			p, osr, err := distros.Detect(skel.Tree)
			if err != nil {
				return fmt.Errorf("base %s: %w", o.Base, err)
			}
			res.Distro = p.Name() + " " + osr["VERSION_ID"]
			log.Info("base distribution", "profile", p.Name(), "release", osr.Pretty())
			if err := p.Fixup(skel.Tree, osr); err != nil {
				return fmt.Errorf("base %s: %w", o.Base, err)
			}
			r, err := openTar(o.Bundle)
			if err != nil {
				return fmt.Errorf("bundle: %w", err)
			}
			defer r.Close()
			if err := skel.Tree.InstallBundle(r, overlay.HostLayout{Prefix: info.Prefix, Role: o.Role}); err != nil {
				return err
			}
			f, err := os.Create(overlayTar)
			if err != nil {
				return err
			}
			bw := bufio.NewWriterSize(f, 1<<20)
			c, err := skel.WriteChanges(bw, o.SourceDateEpoch)
			if err == nil {
				err = bw.Flush()
			}
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("writing the in-place overlay: %w", err)
			}
			log.Info("in-place overlay", "added", c.Added, "changed", c.Changed, "removed", c.Removed)
			return nil
		}},
		{"apply in place", func() error {
			console, err = inplace.Run(ctx, log, inplace.Options{
				Image: work, Format: "raw", Overlay: overlayTar, Root: o.InPlaceRoot,
				Kernel: kernel, InitBinary: o.ApplianceBinary,
			})
			if err != nil {
				return err
			}
			log.Info("applied in place", "selinux_relabel", strings.Contains(console, "/.autorelabel written"))
			return nil
		}},
		{"normalize root", func() error {
			root, err := inplace.ParseRoot(console)
			if err != nil {
				return err
			}
			vendorRaw := imgPath
			if kind != base.KindRaw && root.FS == "xfs" {
				vendorRaw = filepath.Join(stage, "vendor.raw")
				if err := qemuImg(ctx, "convert", "-q", "-f", string(kind), "-O", "raw", imgPath, vendorRaw); err != nil {
					return err
				}
				defer os.Remove(vendorRaw)
			}
			n, err := inplace.MakeReproducible(ctx, work, vendorRaw, root, o.SourceDateEpoch, stage)
			if errors.Is(err, inplace.ErrNotNormalized) {
				log.Warn("the in-place output is not bit-reproducible", "why", err.Error())
				return nil
			}
			if err != nil {
				return err
			}
			log.Info("root normalized for reproducibility", "root", root.Name, "fs", root.FS, "inodes", n)
			return nil
		}},
	}
	for _, s := range steps {
		if err := timed(s.name, s.fn); err != nil {
			return err
		}
	}
	for _, f := range o.Formats {
		out := filepath.Join(o.OutDir, o.Name+"."+f)
		if err := timed("write "+f, func() error {
			tmp := filepath.Join(stage, "out."+f)
			args := []string{"convert", "-q", "-f", "raw", "-O", f}
			if f == "raw" {
				args = append(args, "-S", "4k")
			}
			if err := qemuImg(ctx, append(args, work, tmp)...); err != nil {
				return err
			}
			if err := syncAndRename(tmp, out); err != nil {
				return err
			}
			a, err := describe(f, out)
			if err != nil {
				return err
			}
			res.Artifacts = append(res.Artifacts, a)
			return nil
		}); err != nil {
			return err
		}
	}
	return nil
}

func qemuImg(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, "qemu-img", args...).CombinedOutput()
	if errors.Is(err, exec.ErrNotFound) {
		return errors.New("qemu-img is needed: apt-get install qemu-utils")
	}
	if err != nil {
		return fmt.Errorf("qemu-img %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func syncAndRename(tmp, out string) error {
	f, err := os.Open(tmp)
	if err != nil {
		return err
	}
	err = f.Sync()
	f.Close()
	if err != nil {
		return err
	}
	return os.Rename(tmp, out)
}

// findBeside looks for a program next to the running one, then in PATH.
func findBeside(name string) string {
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	return ""
}
