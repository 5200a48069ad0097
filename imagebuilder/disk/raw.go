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
	// Title is the boot entry's title; default the base's os-release
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
	// NoSync skips the fsync of the image: for a scratch image that is
	// only converted to other formats.
	NoSync bool
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

func (o Options) withDefaults(title string) Options {
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
		o.Title = title
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
// mounted. out appears complete or not at all. It is WriteRawLayered on a
// layer made from the whole tree in a scratch folder.
func WriteRaw(ctx context.Context, log *slog.Logger, tree *overlay.Tree, out string, opts Options) (*Result, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := opts.withDefaults("-").validate(); err != nil {
		return nil, fmt.Errorf("disk options: %w", err)
	}
	work, err := os.MkdirTemp(opts.tempBase(out), ".imagebuilder-layer-")
	if err != nil {
		return nil, fmt.Errorf("creating scratch dir: %w", err)
	}
	defer os.RemoveAll(work)
	start := time.Now()
	layer, err := BuildLayer(ctx, log, tree, filepath.Join(work, "layer"), LayerOptions{
		Key: "tree\x00" + opts.Seed, SourceDateEpoch: opts.SourceDateEpoch, Tools: opts.Tools,
	})
	if err != nil {
		return nil, err
	}
	made := time.Since(start)
	res, err := WriteRawLayered(ctx, log, layer, tree.Entries, tree, out, opts)
	if err != nil {
		return nil, err
	}
	res.Timings.Mkfs += made
	return res, nil
}

func (o Options) tempBase(out string) string {
	if o.TempDir != "" {
		return o.TempDir
	}
	return filepath.Dir(out)
}

// WriteRawLayered writes the disk image of tree to out from layer, a base
// root filesystem whose entries are base: the layer's image is copied into
// the root partition (its digest checked on the way), grown to fit, given
// the image's filesystem UUID, and debugfs applies what differs between base
// and the tree's entries (planDelta). The ESP boots the layer's kernel.
// Nothing runs as root and nothing is mounted; out appears complete or not
// at all. A layer whose image does not match its digest is a
// *LayerCorruptError.
func WriteRawLayered(ctx context.Context, log *slog.Logger, layer *Layer, base map[string]*overlay.Entry, tree *overlay.Tree, out string, opts Options) (*Result, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t0 := time.Now()
	mark := func(step string) {
		log.Debug("disk step", "step", step, "at", time.Since(t0).Round(time.Millisecond))
	}
	opts = opts.withDefaults(layer.Meta.Title)
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("disk options: %w", err)
	}
	res := &Result{Path: out, UUIDs: PlanUUIDs(opts.Seed)}
	k := layer.Meta.Kernel
	res.Kernel = k
	files := espLayout(filepath.Join(layer.Dir, layerLinuxFile), filepath.Join(layer.Dir, layerInitrdFile), k, res.UUIDs, opts)
	payload, err := espPayload(files)
	if err != nil {
		return nil, err
	}
	// FAT32 with 512-byte clusters, two FATs, some slack.
	if need := payload + payload/50 + 4*mib; need > opts.ESPSizeBytes {
		return nil, fmt.Errorf("ESP of %d MiB cannot hold kernel, initrd and boot loader (%d MiB): raise ESPSizeBytes", opts.ESPSizeBytes/mib, need/mib)
	}

	work, err := os.MkdirTemp(opts.tempBase(out), ".imagebuilder-disk-")
	if err != nil {
		return nil, fmt.Errorf("creating scratch dir: %w", err)
	}
	defer os.RemoveAll(work)
	// debugfs runs in work and reads the paths of its script from there.
	if work, err = filepath.Abs(work); err != nil {
		return nil, err
	}

	start := time.Now()
	d, err := planDelta(base, tree, opts.SourceDateEpoch, filepath.Join(work, "xattrs"))
	if err != nil {
		return nil, err
	}
	res.Timings.Scan = time.Since(start)
	mark("delta planned")

	plan := planBlocks(layer.Meta.DataBlocks+d.Blocks, int64(len(tree.Entries)))
	rootBytes := max(plan.Bytes, layer.Meta.Bytes)
	if opts.SizeBytes > 0 {
		root := opts.SizeBytes - planLayout(opts.ESPSizeBytes, 0).Size
		if need := max(plan.MinBytes, layer.Meta.Bytes); root < need {
			return nil, fmt.Errorf("disk size %d MiB is too small: the root filesystem needs at least %d MiB besides the %d MiB ESP",
				opts.SizeBytes/mib, need/mib, opts.ESPSizeBytes/mib+2)
		}
		rootBytes = root
	}
	layout := planLayout(opts.ESPSizeBytes, rootBytes)
	var bootImg []byte
	if opts.BIOS {
		layout.BIOS = biosBootPartition
		if bootImg, err = os.ReadFile(filepath.Join(opts.Tools.GrubPCDir, "boot.img")); err != nil {
			return nil, fmt.Errorf("GRUB boot.img for BIOS boot: %w (apt-get install grub-pc-bin)", err)
		}
	}
	res.ESP, res.Root, res.SizeBytes = layout.ESP, layout.Root, layout.Size
	res.BIOS = layout.BIOS
	res.FixupCommands = d.Commands
	log.Info("writing raw disk", "out", out, "size_mib", layout.Size/mib, "root_mib", rootBytes/mib,
		"esp_mib", layout.ESP.Size/mib, "kernel", k.Version, "layer", layer.Dir,
		"added", d.Added, "removed", d.Removed, "changed", d.Changed)

	// The image's own filesystem UUID (metadata_csum_seed keeps the
	// checksums valid). "close -a" writes the superblock to the backups
	// too: debugfs otherwise writes only the primary, and a backup that
	// still holds the layer's UUID makes e2fsck force a full check at the
	// first boot, which on the root filesystem ends in a reboot.
	script := append([]byte("ssv uuid "+res.UUIDs.RootFS+"\n"), d.Script...)
	script = append(script, "close -a\n"...)
	if err := writeScript(work, script, d.Blobs); err != nil {
		return nil, err
	}
	mark("script written")
	var coreImg []byte
	if opts.BIOS {
		cfg := grubConfig(res.UUIDs.ESPVolumeID, espDir(opts.EntryID, k.Version), kernelOptions(res.UUIDs.RootPart, opts.KernelCmdline))
		if coreImg, err = opts.Tools.makeCoreImg(ctx, work, cfg); err != nil {
			return nil, err
		}
	}

	mark("core.img made")
	err = writeAtomic(out, !opts.NoSync, func(f *os.File) error {
		// The root filesystem first, alone at the start of the file: the
		// e2fsprogs tools see a plain image (resize2fs sets the size of a
		// regular file to the filesystem's, so an offset would not do).
		start := time.Now()
		digest, err := copyBlocks(ctx, f, 0, layer.Image())
		if err != nil {
			return fmt.Errorf("copying the base layer: %w", err)
		}
		if digest != layer.Meta.Digest {
			return &LayerCorruptError{Dir: layer.Dir, Want: layer.Meta.Digest, Got: digest}
		}
		if err := f.Truncate(layer.Meta.Bytes); err != nil {
			return err
		}
		mark("layer copied")
		res.Timings.Assemble = time.Since(start)
		start = time.Now()
		if err := finishRoot(ctx, opts, work, f.Name(), rootBytes, rootBytes > layer.Meta.Bytes); err != nil {
			return err
		}
		if res.RootInodes, err = ext4InodeCount(f, 0); err != nil {
			return err
		}
		res.Timings.Debugfs = time.Since(start)
		mark("root finished")
		// Then the room for the GPT, the ESP and the BIOS boot partition
		// in front of it, and the backup GPT behind.
		start = time.Now()
		if err := shiftRight(ctx, f, rootBytes, layout.Root.Start); err != nil {
			return fmt.Errorf("moving the root filesystem to its partition: %w", err)
		}
		res.Timings.Assemble += time.Since(start)
		mark("shifted")
		if err := f.Truncate(layout.Size); err != nil {
			return err
		}
		dk, err := diskfs.OpenBackend(file.New(f, false), diskfs.WithSectorSize(diskfs.SectorSize512))
		if err != nil {
			return fmt.Errorf("opening disk image: %w", err)
		}
		if err := dk.Partition(layout.gptTable(res.UUIDs)); err != nil {
			return fmt.Errorf("writing GPT: %w", err)
		}
		mark("gpt written")
		start = time.Now()
		if err := writeESP(ctx, dk, 1, files); err != nil {
			return err
		}
		if err := normalizeFAT32(f, layout.ESP.Start, res.UUIDs.ESPSerial, time.Unix(opts.SourceDateEpoch, 0)); err != nil {
			return fmt.Errorf("normalizing ESP: %w", err)
		}
		res.Timings.ESP = time.Since(start)
		mark("esp written")

		if opts.BIOS {
			if err := installBIOSBoot(f, bootImg, coreImg, layout.BIOS); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	log.Info("raw disk written", "out", out, "layer_copy", res.Timings.Assemble.Round(time.Millisecond),
		"delta", res.Timings.Debugfs.Round(time.Millisecond), "esp", res.Timings.ESP.Round(time.Millisecond),
		"fixups", d.Commands)
	return res, nil
}
