package disk

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/partition/gpt"

	"imagebuilder/overlay"
)

// LinuxRootX86_64 is the Discoverable Partitions Specification type of an
// x86-64 root partition; systemd-gpt-auto-generator mounts it as /.
const LinuxRootX86_64 gpt.Type = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"

// DefaultEpoch is the time every file of an image carries when
// Options.SourceDateEpoch is 0: 1980-01-01, the earliest both FAT and ext4
// can hold.
const DefaultEpoch = 315532800

// DefaultESPSize is the size of the EFI system partition: room for a few
// kernels and initrds.
const DefaultESPSize = 128 * mib

// Options tune WriteRaw.
type Options struct {
	// Seed, required, is what every identifier of the image is derived from
	// (see PlanUUIDs): a content hash of the inputs.
	Seed string
	// SizeBytes is the size of the whole disk image; 0 fits the content
	// with about 30% free space in the root filesystem. Rounded up to MiB.
	SizeBytes int64
	// ESPSizeBytes is the EFI system partition's size; 0 is DefaultESPSize.
	ESPSizeBytes int64
	// KernelCmdline follows "root=PARTUUID=<root> ro" in the boot entry;
	// empty is DefaultKernelCmdline.
	KernelCmdline string
	// EntryID names the boot entry (loader/entries/<id>.conf) and the ESP
	// directory of its kernel; default "imagebuilder".
	EntryID string
	// Title is the boot entry's title; default the tree's os-release
	// PRETTY_NAME.
	Title string
	// SourceDateEpoch (seconds) is the atime, mtime and ctime of every
	// inode, the filesystem times and the ESP file times; 0 is DefaultEpoch.
	SourceDateEpoch int64
	// TempDir holds the scratch root filesystem image (as big as the root
	// partition); default the directory of the output.
	TempDir string
	// BIOS adds legacy BIOS boot next to UEFI: a BIOS boot partition with
	// GRUB's core.img and GRUB's boot.img in the protective MBR, booting
	// the same kernel, initrd and command line (needs grub-pc-bin).
	BIOS bool
	// Tools are the external programs; zero fields take DefaultTools.
	Tools Tools
}

// Partition is where a partition lies on the disk, in bytes.
type Partition struct {
	Start, Size int64
}

// Timings are how long WriteRaw's steps took.
type Timings struct {
	Scan, Mkfs, Debugfs, ESP, Assemble time.Duration
}

// Result describes a written image.
type Result struct {
	Path      string
	SizeBytes int64
	UUIDs     UUIDs
	Kernel    Kernel
	ESP, Root Partition
	// BIOS is the BIOS boot partition (Size 0 without Options.BIOS).
	BIOS Partition
	// RootInodes is the inode count of the root filesystem.
	RootInodes int64
	// FixupCommands counts the debugfs commands that fixed metadata.
	FixupCommands int
	Timings       Timings
}

func (o Options) withDefaults(tree *overlay.Tree) Options {
	o.Tools = o.Tools.withDefaults()
	if o.ESPSizeBytes == 0 {
		o.ESPSizeBytes = DefaultESPSize
	}
	o.ESPSizeBytes = roundUp(o.ESPSizeBytes, mib)
	if o.SizeBytes > 0 {
		o.SizeBytes = roundUp(o.SizeBytes, mib)
	}
	if o.KernelCmdline == "" {
		o.KernelCmdline = DefaultKernelCmdline
	}
	if o.EntryID == "" {
		o.EntryID = "imagebuilder"
	}
	if o.Title == "" {
		o.Title = prettyName(tree)
	}
	if o.SourceDateEpoch == 0 {
		o.SourceDateEpoch = DefaultEpoch
	}
	return o
}

// validate reports every option error at once.
func (o Options) validate() error {
	var errs []error
	if o.Seed == "" {
		errs = append(errs, errors.New("Options.Seed is required (identifiers are derived from it)"))
	}
	if o.ESPSizeBytes < 40*mib {
		errs = append(errs, fmt.Errorf("ESP size %d MiB is below the 40 MiB FAT32 needs with 512-byte clusters", o.ESPSizeBytes/mib))
	}
	if strings.ContainsAny(o.EntryID, "/\\ \n") || strings.HasPrefix(o.EntryID, ".") {
		errs = append(errs, fmt.Errorf("EntryID %q must be one plain file name", o.EntryID))
	}
	if strings.ContainsAny(o.KernelCmdline+o.Title, "\n\r") {
		errs = append(errs, errors.New("KernelCmdline and Title must be one line"))
	}
	if o.SourceDateEpoch < 0 {
		errs = append(errs, errors.New("SourceDateEpoch must not be negative"))
	}
	return errors.Join(errs...)
}

// prettyName is the tree's os-release PRETTY_NAME, or "Linux".
func prettyName(tree *overlay.Tree) string {
	for _, p := range []string{"etc/os-release", "usr/lib/os-release"} {
		data, err := tree.ReadFile(p)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(strings.NewReader(string(data)))
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "PRETTY_NAME="); ok {
				if v = strings.Trim(v, `"'`); v != "" {
					return v
				}
			}
		}
	}
	return "Linux"
}

// diskLayout places the partitions: 1 MiB for the GPT, the ESP, the root,
// 1 MiB at the end for the backup GPT; every partition is MiB aligned.
type diskLayout struct {
	ESP, Root Partition
	Size      int64
	// BIOS, when its Size is not 0, is the BIOS boot partition.
	BIOS Partition
}

func planLayout(espSize, rootSize int64) diskLayout {
	esp := Partition{Start: mib, Size: espSize}
	root := Partition{Start: esp.Start + esp.Size, Size: rootSize}
	return diskLayout{ESP: esp, Root: root, Size: root.Start + root.Size + mib}
}

// gptTable is the partition table of a layout, with identifiers from u.
func (l diskLayout) gptTable(u UUIDs) *gpt.Table {
	const sector = 512
	part := func(p Partition, typ gpt.Type, name, guid string) *gpt.Partition {
		return &gpt.Partition{
			Start: uint64(p.Start / sector),
			End:   uint64((p.Start+p.Size)/sector - 1),
			Size:  uint64(p.Size),
			Type:  typ,
			Name:  name,
			GUID:  guid,
		}
	}
	parts := []*gpt.Partition{
		part(l.ESP, gpt.EFISystemPartition, "ESP", u.ESPPart),
		part(l.Root, LinuxRootX86_64, "root", u.RootPart),
	}
	if l.BIOS.Size > 0 {
		// Third, so the ESP and the root keep their numbers (vda1, vda2).
		parts = append(parts, part(l.BIOS, gpt.BIOSBoot, "BIOS", u.BIOSPart))
	}
	return &gpt.Table{
		LogicalSectorSize:  sector,
		PhysicalSectorSize: sector,
		ProtectiveMBR:      true,
		GUID:               u.Disk,
		Partitions:         parts,
	}
}

// WriteRaw writes tree as a bootable raw GPT disk image to out: an EFI
// system partition with systemd-boot and a boot entry for the tree's newest
// kernel, and an ext4 root filesystem whose owners, modes, special files and
// xattrs are the tree's Entries. Nothing runs as root and nothing is
// mounted. out appears complete or not at all.
func WriteRaw(ctx context.Context, log *slog.Logger, tree *overlay.Tree, out string, opts Options) (*Result, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	opts = opts.withDefaults(tree)
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("disk options: %w", err)
	}
	res := &Result{Path: out, UUIDs: PlanUUIDs(opts.Seed)}
	k, err := FindKernel(tree)
	if err != nil {
		return nil, err
	}
	res.Kernel = k
	files := espLayout(tree, k, res.UUIDs, opts)
	payload, err := espPayload(files)
	if err != nil {
		return nil, err
	}
	// FAT32 with 512-byte clusters, two FATs, some slack.
	if need := payload + payload/50 + 4*mib; need > opts.ESPSizeBytes {
		return nil, fmt.Errorf("ESP of %d MiB cannot hold kernel, initrd and boot loader (%d MiB): raise ESPSizeBytes", opts.ESPSizeBytes/mib, need/mib)
	}

	start := time.Now()
	st, err := scanStaging(tree.Root)
	if err != nil {
		return nil, err
	}
	plan := planExt4(st, len(tree.Entries))
	res.Timings.Scan = time.Since(start)
	if opts.SizeBytes > 0 {
		root := opts.SizeBytes - planLayout(opts.ESPSizeBytes, 0).Size
		if root < plan.MinBytes {
			return nil, fmt.Errorf("disk size %d MiB is too small: the root filesystem needs at least %d MiB besides the %d MiB ESP",
				opts.SizeBytes/mib, plan.MinBytes/mib, opts.ESPSizeBytes/mib+2)
		}
		plan.Bytes = root
		plan.Inodes = max(plan.Inodes, root/16384)
	}
	layout := planLayout(opts.ESPSizeBytes, plan.Bytes)
	var bootImg []byte
	if opts.BIOS {
		layout.BIOS = biosBootPartition
		if bootImg, err = os.ReadFile(filepath.Join(opts.Tools.GrubPCDir, "boot.img")); err != nil {
			return nil, fmt.Errorf("GRUB boot.img for BIOS boot: %w (apt-get install grub-pc-bin)", err)
		}
	}
	res.ESP, res.Root, res.SizeBytes, res.RootInodes = layout.ESP, layout.Root, layout.Size, plan.Inodes
	res.BIOS = layout.BIOS
	log.Info("writing raw disk", "out", out, "size_mib", layout.Size/mib, "root_mib", plan.Bytes/mib,
		"esp_mib", layout.ESP.Size/mib, "inodes", plan.Inodes, "kernel", k.Version)

	tmpBase := opts.TempDir
	if tmpBase == "" {
		tmpBase = filepath.Dir(out)
	}
	work, err := os.MkdirTemp(tmpBase, ".imagebuilder-disk-")
	if err != nil {
		return nil, fmt.Errorf("creating scratch dir: %w", err)
	}
	defer os.RemoveAll(work)

	b := &ext4Build{Tools: opts.Tools, Tree: tree, Staged: st, Plan: plan, UUIDs: res.UUIDs, Epoch: opts.SourceDateEpoch, WorkDir: work}
	rootImg, fx, err := b.build(ctx, &res.Timings)
	if err != nil {
		return nil, err
	}
	res.FixupCommands = fx.Commands
	var coreImg []byte
	if opts.BIOS {
		cfg := grubConfig(res.UUIDs.ESPVolumeID, espDir(opts.EntryID, k.Version), kernelOptions(res.UUIDs.RootPart, opts.KernelCmdline))
		if coreImg, err = opts.Tools.makeCoreImg(ctx, work, cfg); err != nil {
			return nil, err
		}
	}
	log.Debug("root filesystem built", "mkfs", res.Timings.Mkfs, "debugfs", res.Timings.Debugfs, "fixups", fx.Commands)

	err = writeAtomic(out, func(f *os.File) error {
		if err := f.Truncate(layout.Size); err != nil {
			return err
		}
		d, err := diskfs.OpenBackend(file.New(f, false), diskfs.WithSectorSize(diskfs.SectorSize512))
		if err != nil {
			return fmt.Errorf("opening disk image: %w", err)
		}
		if err := d.Partition(layout.gptTable(res.UUIDs)); err != nil {
			return fmt.Errorf("writing GPT: %w", err)
		}
		start := time.Now()
		if err := writeESP(ctx, d, 1, files); err != nil {
			return err
		}
		if err := normalizeFAT32(f, layout.ESP.Start, res.UUIDs.ESPSerial, time.Unix(opts.SourceDateEpoch, 0)); err != nil {
			return fmt.Errorf("normalizing ESP: %w", err)
		}
		res.Timings.ESP = time.Since(start)
		if opts.BIOS {
			if err := installBIOSBoot(f, bootImg, coreImg, layout.BIOS); err != nil {
				return err
			}
		}
		start = time.Now()
		if err := copySparse(ctx, f, layout.Root.Start, rootImg); err != nil {
			return fmt.Errorf("copying root filesystem into the disk: %w", err)
		}
		res.Timings.Assemble = time.Since(start)
		return nil
	})
	if err != nil {
		return nil, err
	}
	log.Info("raw disk written", "out", out, "mkfs", res.Timings.Mkfs.Round(time.Millisecond),
		"debugfs", res.Timings.Debugfs.Round(time.Millisecond), "esp", res.Timings.ESP.Round(time.Millisecond),
		"assemble", res.Timings.Assemble.Round(time.Millisecond))
	return res, nil
}
