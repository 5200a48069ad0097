package build

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"imagebuilder/imagebuilder/disk"
	"imagebuilder/imagebuilder/installer"
	"imagebuilder/imagebuilder/output"
	"imagebuilder/overlay"
)

// DiskLayout is the partition table of the disk formats, recorded in the
// manifest so `imagebuilder verify` can compare a disk against it.
type DiskLayout struct {
	GUID       string          `json:"guid"`
	SizeBytes  int64           `json:"size_bytes"`
	Partitions []PartitionInfo `json:"partitions"`
	Kernel     string          `json:"kernel"`
}

// PartitionInfo is one GPT entry.
type PartitionInfo struct {
	Number     int    `json:"number"`
	Name       string `json:"name"`
	Type       string `json:"type"`
	GUID       string `json:"guid"`
	StartBytes int64  `json:"start_bytes"`
	SizeBytes  int64  `json:"size_bytes"`
	// SHA256 is the digest of the partition's bytes, so a drifted disk
	// says which partition changed.
	SHA256 string `json:"sha256"`
}

// HashRange is the sha256 of size bytes at off of the file at p.
func HashRange(p string, off, size int64) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.CopyBuffer(h, io.NewSectionReader(f, off, size), make([]byte, 4<<20))
	if err != nil {
		return "", fmt.Errorf("hashing %s at %d: %w", p, off, err)
	}
	if n != size {
		return "", fmt.Errorf("hashing %s: %d bytes at %d, only %d there", p, size, off, n)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// HashRanges reads the file at p once and returns the sha256 of each
// [offset, size] range and, with whole, of the whole file.
func HashRanges(p string, ranges [][2]int64, whole bool) (string, []string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", nil, err
	}
	defer f.Close()
	all := sha256.New()
	hs := make([]hash.Hash, len(ranges))
	for i := range hs {
		hs[i] = sha256.New()
	}
	buf := make([]byte, 4<<20)
	var pos int64
	for {
		n, err := f.Read(buf)
		if n > 0 {
			chunk := buf[:n]
			if whole {
				all.Write(chunk)
			}
			for i, r := range ranges {
				lo, hi := max(pos, r[0]), min(pos+int64(n), r[0]+r[1])
				if lo < hi {
					hs[i].Write(chunk[lo-pos : hi-pos])
				}
			}
			pos += int64(n)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", nil, fmt.Errorf("hashing %s: %w", p, err)
		}
	}
	sums := make([]string, len(ranges))
	for i, r := range ranges {
		if r[0]+r[1] > pos {
			return "", nil, fmt.Errorf("hashing %s: %d bytes at %d, the file ends at %d", p, r[1], r[0], pos)
		}
		sums[i] = hex.EncodeToString(hs[i].Sum(nil))
	}
	if !whole {
		return "", sums, nil
	}
	return hex.EncodeToString(all.Sum(nil)), sums, nil
}

type outputStep struct {
	name string
	when bool
	fn   func() error
}

// cmdline is the kernel command line after root=… ro: the console settings
// (unless the caller's line names a console itself), no_timer_check (as
// cloud images carry: a slow hypervisor, TCG on a busy host, otherwise fails
// the kernel's IO-APIC timer check and panics) and the caller's line.
func (o *Options) cmdline() string {
	if o.Console == "none" || strings.Contains(o.KernelCmdline, "console=") {
		return strings.TrimSpace(o.KernelCmdline)
	}
	console := o.Console
	if console == "" {
		console = "ttyS0,115200"
	}
	return strings.TrimSpace("console=tty0 console=" + console + " no_timer_check " + o.KernelCmdline)
}

// outputSteps are the writers of the requested formats, in order: the tree
// formats (from the staged tree as is), then the disk, whose own files
// (fstab, grow-root configuration) are added to the tree just before it.
// layered is the base layer the disk formats start from and the entries
// it holds.
type layered struct {
	layer *disk.Layer
	lower map[string]*overlay.Entry
}

// outputSteps lists the steps that write the outputs. The digests of the
// raw disk and its partitions are computed in the background while the
// conversions read the same disk; wait returns when they are in res (call
// it before the manifest, and before the staging folder goes).
func outputSteps(ctx context.Context, log *slog.Logger, o *Options, tree *overlay.Tree, base layered, info *bundleInfo, res *Result, stage string) ([]outputStep, func() error) {
	wait := func() error { return nil }
	want := func(f ...string) bool {
		for _, x := range f {
			if slices.Contains(o.Formats, x) {
				return true
			}
		}
		return false
	}
	path := func(ext string) string { return filepath.Join(o.OutDir, o.Name+"."+ext) }
	add := func(format, p string) error {
		a, err := describe(format, p)
		if err != nil {
			return err
		}
		res.Artifacts = append(res.Artifacts, a)
		return nil
	}
	tarPath := path("tar")
	if !want("tar") {
		tarPath = filepath.Join(stage, "rootfs.tar")
	}
	cmdline := o.cmdline()
	rawPath := path("raw")
	if !want("raw") {
		rawPath = filepath.Join(stage, o.Name+".raw")
	}
	res.Boot = o.Boot
	res.KernelCmdline = cmdline
	res.GrowRoot = want(append(diskFormats, "iso")...) && !o.NoGrowRoot
	seed := strings.Join([]string{res.BaseSHA256, res.BundleSHA256, o.Role, cmdline, fmt.Sprint(o.SizeMiB),
		o.Boot, fmt.Sprint(res.GrowRoot), fmt.Sprint(o.SourceDateEpoch)}, "\n")
	ids := disk.ConvertIDs{Seed: seed, SourceDateEpoch: o.SourceDateEpoch}

	return []outputStep{
		{"write rootfs tar", want("tar", "oci"), func() error {
			if err := output.WriteTarFile(ctx, tarPath, tree, o.SourceDateEpoch); err != nil {
				return err
			}
			if want("tar") {
				return add("tar", tarPath)
			}
			return nil
		}},
		{"write oci layout", want("oci"), func() error {
			img, err := output.OCIImage(tarPath, filepath.Join(stage, "layer.tar.gz"), output.OCIOptions{
				RefName: o.Name, Epoch: o.SourceDateEpoch,
				Labels: map[string]string{
					"org.opencontainers.image.title": o.Name,
					"io.imagebuilder.base.sha256":    res.BaseSHA256,
					"io.imagebuilder.bundle.sha256":  res.BundleSHA256,
					"io.imagebuilder.config.hash":    res.ConfigHash,
				},
			})
			if err != nil {
				return err
			}
			dir := path("oci")
			if err := output.WriteOCILayout(img, dir, o.Name); err != nil {
				return err
			}
			if err := add("oci", filepath.Join(dir, "index.json")); err != nil {
				return err
			}
			a := &res.Artifacts[len(res.Artifacts)-1]
			if a.Size, err = dirSize(dir); err != nil {
				return err
			}
			d, err := img.Digest()
			if err != nil {
				return err
			}
			a.Digest = d.String()
			if o.OCIPush != "" {
				log.Info("pushing the OCI image", "ref", o.OCIPush)
				if a.Pushed, err = output.PushOCI(ctx, img, o.OCIPush); err != nil {
					return err
				}
			}
			return nil
		}},
		{"write pxe", want("pxe"), func() error {
			k, err := disk.FindKernel(tree)
			if err != nil {
				return err
			}
			files, err := output.WritePXE(ctx, path("pxe"), tree, output.PXEOptions{Kernel: k.Linux, Cmdline: cmdline, Epoch: o.SourceDateEpoch})
			if err != nil {
				return err
			}
			for _, f := range files {
				if err := add("pxe", f); err != nil {
					return err
				}
			}
			return nil
		}},
		{"export bash path", want("bash"), func() error {
			files, err := output.WriteBashExport(path("bash"), o.Bundle)
			if err != nil {
				return err
			}
			for _, f := range files {
				if err := add("bash", f); err != nil {
					return err
				}
			}
			return nil
		}},
		{"write raw disk", want(append(diskFormats, "iso")...), func() error {
			uuids := disk.PlanUUIDs(seed)
			if err := writeFstab(tree, uuids, res.GrowRoot); err != nil {
				return err
			}
			if res.GrowRoot {
				if err := writeGrowRoot(tree); err != nil {
					return err
				}
			}
			dcmd := cmdline
			if dcmd == "" {
				dcmd = " " // not the disk writer's default: no console at all
			}
			dr, err := disk.WriteRawLayered(ctx, log, base.layer, base.lower, tree, rawPath, disk.Options{
				Seed:            seed,
				KernelCmdline:   dcmd,
				SizeBytes:       o.SizeMiB << 20,
				SourceDateEpoch: o.SourceDateEpoch,
				BIOS:            o.Boot == BootHybrid,
				TempDir:         stage,
				NoSync:          !want("raw"),
			})
			if err != nil {
				return err
			}
			res.Disk = diskLayout(dr)
			ranges := make([][2]int64, len(res.Disk.Partitions))
			for i, p := range res.Disk.Partitions {
				ranges[i] = [2]int64{p.StartBytes, p.SizeBytes}
			}
			raw := -1
			if want("raw") {
				fi, err := os.Stat(rawPath)
				if err != nil {
					return err
				}
				res.Artifacts = append(res.Artifacts, Artifact{Format: "raw", Path: rawPath, Size: fi.Size()})
				raw = len(res.Artifacts) - 1
			}
			// One read of the disk for the digests of its partitions and,
			// when it is an output, of the whole.
			type sums struct {
				whole string
				parts []string
				err   error
			}
			done := make(chan sums, 1)
			go func() {
				var s sums
				s.whole, s.parts, s.err = HashRanges(rawPath, ranges, raw >= 0)
				done <- s
			}()
			wait = func() error {
				s := <-done
				done <- sums{err: errors.New("digests already taken")}
				if s.err != nil {
					return fmt.Errorf("write raw disk: %w", s.err)
				}
				for i := range res.Disk.Partitions {
					res.Disk.Partitions[i].SHA256 = s.parts[i]
				}
				if raw >= 0 {
					res.Artifacts[raw].SHA256 = s.whole
				}
				return nil
			}
			return nil
		}},
		{"convert qcow2", want("qcow2"), func() error { return convert(ctx, rawPath, path("qcow2"), "qcow2", ids, res) }},
		{"convert vmdk", want("vmdk"), func() error { return convert(ctx, rawPath, path("vmdk"), "vmdk", ids, res) }},
		{"convert vhd", want("vhd"), func() error { return convert(ctx, rawPath, path("vhd"), "vhd", ids, res) }},
		{"write installer iso", want("iso"), func() error {
			k, err := disk.FindKernel(tree)
			if err != nil {
				return err
			}
			err = installer.WriteISO(ctx, path("iso"), installer.ISOOptions{
				Raw: rawPath, Tree: tree, Kernel: k, InstallerBinary: o.InstallerBinary,
				Cmdline: cmdline, Epoch: o.SourceDateEpoch, WorkDir: stage, Seed: seed,
			})
			if err != nil {
				return err
			}
			return add("iso", path("iso"))
		}},
	}, func() error { return wait() }
}

func convert(ctx context.Context, raw, out, format string, ids disk.ConvertIDs, res *Result) error {
	sum, err := disk.DefaultTools().ConvertSum(ctx, raw, out, format, ids)
	if err != nil {
		return err
	}
	fi, err := os.Stat(out)
	if err != nil {
		return err
	}
	res.Artifacts = append(res.Artifacts, Artifact{Format: format, Path: out, Size: fi.Size(), SHA256: sum})
	return nil
}

func diskLayout(r *disk.Result) *DiskLayout {
	l := &DiskLayout{GUID: r.UUIDs.Disk, SizeBytes: r.SizeBytes, Kernel: r.Kernel.Version}
	add := func(n int, name, typ, guid string, p disk.Partition) {
		l.Partitions = append(l.Partitions, PartitionInfo{Number: n, Name: name, Type: strings.ToUpper(typ), GUID: strings.ToUpper(guid), StartBytes: p.Start, SizeBytes: p.Size})
	}
	add(1, "ESP", "C12A7328-F81F-11D2-BA4B-00A0C93EC93B", r.UUIDs.ESPPart, r.ESP)
	add(2, "root", string(disk.LinuxRootX86_64), r.UUIDs.RootPart, r.Root)
	if r.BIOS.Size > 0 {
		add(3, "BIOS", "21686148-6449-6E6F-744E-656564454649", r.UUIDs.BIOSPart, r.BIOS)
	}
	return l
}

func dirSize(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		n += fi.Size()
		return nil
	})
	return n, err
}

// growRootRepart makes systemd-repart (enabled in sysinit.target by
// Debian's systemd) grow the root partition into the free space behind it
// on boot; x-systemd.growfs in fstab then grows the filesystem
// (systemd-growfs-root.service, ordered after systemd-repart.service).
const growRootRepart = `# Written by imagebuilder: grow the root partition to fill the disk.
[Partition]
Type=root
`

func writeGrowRoot(t *overlay.Tree) error {
	if err := t.MkdirAll("usr/lib/repart.d", 0o755, 0, 0); err != nil {
		return err
	}
	return t.WriteFile("usr/lib/repart.d/50-imagebuilder-root.conf", []byte(growRootRepart), 0o644, 0, 0)
}

// findInstaller looks for imagebuilder-installer next to the running
// program, then in PATH.
func findInstaller() string {
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), "imagebuilder-installer")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("imagebuilder-installer"); err == nil {
		return p
	}
	return ""
}
