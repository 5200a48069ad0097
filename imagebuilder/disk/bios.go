package disk

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// BIOS boot: GRUB's boot.img in the protective MBR loads core.img from the
// BIOS boot partition; core.img carries the modules it needs and an
// embedded configuration that boots the same kernel, initrd and command
// line as the systemd-boot entry, from the ESP. Nothing is installed with
// grub-install (which wants a mounted device): the two sectors grub-setup
// would patch are patched here.

// biosBootPartition lies between the GPT entries (LBA 2-33) and the ESP at
// 1 MiB: sectors 40-2047, about 1 MiB, enough for core.img.
var biosBootPartition = Partition{Start: 40 * 512, Size: (2048 - 40) * 512}

// grubModules are built into core.img. Dependencies (extcmd, …) are added by
// grub-mkimage from moddep.lst.
var grubModules = []string{"biosdisk", "part_gpt", "fat", "search", "search_fs_uuid", "linux", "boot", "echo"}

// Offsets in boot.img and diskboot.img (GRUB's include/grub/i386/pc/boot.h).
const (
	grubBPBStart      = 0x3
	grubBPBEnd        = 0x5a
	grubKernelSector  = 0x5c
	grubDriveCheck    = 0x66
	grubNTMagic       = 0x1b8 // disk signature + partition table follow
	grubPartEnd       = 0x1fe
	grubBlocklistOffs = 0x200 - 12 // first blocklist entry of diskboot.img
)

// grubConfig is core.img's embedded configuration.
func grubConfig(espVolumeID, dir, cmdline string) string {
	return fmt.Sprintf(`echo "imagebuilder: BIOS boot via GRUB"
search --no-floppy --fs-uuid --set=root %s
linux %s/linux %s
initrd %s/initrd
boot
`, strings.ToLower(espVolumeID), dir, cmdline, dir)
}

// makeCoreImg runs grub-mkimage and returns core.img.
func (t Tools) makeCoreImg(ctx context.Context, work, config string) ([]byte, error) {
	return t.MakeGrubCoreImg(ctx, work, config, grubModules)
}

// MakeGrubCoreImg runs grub-mkimage -O i386-pc with modules built in and
// config embedded (work is scratch space) and returns core.img, ready for
// InstallBIOSBoot.
func (t Tools) MakeGrubCoreImg(ctx context.Context, work, config string, modules []string) ([]byte, error) {
	t = t.withDefaults()
	cfg := filepath.Join(work, "grub-early.cfg")
	if err := os.WriteFile(cfg, []byte(config), 0o644); err != nil {
		return nil, err
	}
	out := filepath.Join(work, "core.img")
	args := append([]string{"-O", "i386-pc", "-d", t.GrubPCDir, "-c", cfg, "-p", "", "-o", out}, modules...)
	if _, _, err := t.Runner.Run(ctx, Cmd{Tool: t.GrubMkimage, Args: args}); err != nil {
		return nil, fmt.Errorf("making GRUB core.img: %w (apt-get install grub-pc-bin)", err)
	}
	return os.ReadFile(out)
}

// InstallBIOSBoot writes coreImg at byte start of f (room bytes are free
// there, whole 512-byte sectors) and GRUB's bootImg into sector 0, keeping
// the BPB and the partition table already in sector 0: the MBR loads
// core.img, which loads the rest of itself. The installer ISO's isohybrid
// MBR is made with it.
func InstallBIOSBoot(f *os.File, bootImg, coreImg []byte, start, room int64) error {
	if start%512 != 0 {
		return fmt.Errorf("GRUB core.img at byte %d: not on a sector boundary", start)
	}
	return installBIOSBoot(f, bootImg, coreImg, Partition{Start: start, Size: room})
}

// installBIOSBoot writes core.img into its partition and boot.img into the
// protective MBR of f, pointing each at the next stage.
func installBIOSBoot(f *os.File, bootImg, coreImg []byte, part Partition) error {
	if len(bootImg) != 512 {
		return fmt.Errorf("GRUB boot.img is %d bytes, want 512", len(bootImg))
	}
	if int64(len(coreImg)) > part.Size {
		return fmt.Errorf("GRUB core.img (%d bytes) does not fit the %d-byte BIOS boot partition", len(coreImg), part.Size)
	}
	if len(coreImg) < 512 {
		return fmt.Errorf("GRUB core.img is only %d bytes", len(coreImg))
	}
	coreLBA := uint64(part.Start / 512)
	core := append([]byte(nil), coreImg...)
	// diskboot.img loads the rest of core.img from the following sectors;
	// grub-mkimage filled in the length and segment.
	binary.LittleEndian.PutUint64(core[grubBlocklistOffs:], coreLBA+1)
	if _, err := f.WriteAt(core, part.Start); err != nil {
		return fmt.Errorf("writing GRUB core.img: %w", err)
	}
	mbr := make([]byte, 512)
	if _, err := f.ReadAt(mbr, 0); err != nil {
		return fmt.Errorf("reading the protective MBR: %w", err)
	}
	boot := append([]byte(nil), bootImg...)
	copy(boot[grubBPBStart:grubBPBEnd], mbr[grubBPBStart:grubBPBEnd])
	copy(boot[grubNTMagic:grubPartEnd], mbr[grubNTMagic:grubPartEnd])
	binary.LittleEndian.PutUint64(boot[grubKernelSector:], coreLBA)
	// Trust the BIOS's boot drive only for floppies: what grub-setup does
	// for a hard disk.
	boot[grubDriveCheck], boot[grubDriveCheck+1] = 0x90, 0x90
	if _, err := f.WriteAt(boot, 0); err != nil {
		return fmt.Errorf("writing GRUB boot.img into the MBR: %w", err)
	}
	return nil
}
