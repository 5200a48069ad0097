package installer

import (
	"encoding/binary"
	"fmt"
	"os"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/iso9660"

	imgdisk "imagebuilder/imagebuilder/disk"
)

// Isohybrid: the ISO is also a disk. Sector 0 (in the ISO's unused system
// area) holds GRUB's boot.img and an MBR partition table:
//
//  1. bootable, type 0x00, covering the whole image: what BIOSes that look
//     for an active partition want. Type 0 because UEFI ignores such an
//     entry; an entry of another type would overlap the ESP and UEFI would
//     reject the whole table (xorriso's isohybrid does the same).
//  2. type 0xEF over the El Torito EFI image (a FAT filesystem holding
//     EFI/BOOT/BOOTX64.EFI): UEFI boots it as an ESP.
//
// boot.img loads isoHybridCore, a GRUB i386-pc core.img stored as a file in
// the ISO that reads ISO9660 from the BIOS disk; grubISOConfig is embedded
// in it, as in the CD's GRUBs.

// isoHybridCore is GRUB's core.img for booting the ISO as a BIOS disk.
const isoHybridCore = "/boot/grub/hybrid.img"

// hybridModules are built into isoHybridCore.
var hybridModules = []string{"biosdisk", "part_msdos", "iso9660", "search", "search_fs_file", "linux", "boot", "echo", "serial", "terminal"}

// hybridBoot is what makeHybrid writes into a finished ISO.
type hybridBoot struct {
	BootImg []byte // GRUB's boot.img
	CoreImg string // path of core.img inside the ISO
	EFIImg  string // path of the El Torito EFI image inside the ISO
	DiskID  uint32 // MBR disk signature
}

// isoExtent returns the byte offset and size of the file p in the ISO
// filesystem on f (size bytes).
func isoExtent(f *os.File, size int64, p string) (int64, int64, error) {
	fs, err := iso9660.Read(file.New(f, true), size, 0, 2048)
	if err != nil {
		return 0, 0, fmt.Errorf("reading the ISO back: %w", err)
	}
	fl, err := fs.OpenFile(p, os.O_RDONLY)
	if err != nil {
		return 0, 0, fmt.Errorf("ISO file %s: %w", p, err)
	}
	defer fl.Close()
	isoFile, ok := fl.(*iso9660.File)
	if !ok {
		return 0, 0, fmt.Errorf("ISO file %s: not an ISO9660 file", p)
	}
	return int64(isoFile.Location()) * 2048, isoFile.Size(), nil
}

// MBR partition types and layout.
const (
	mbrTypeEmpty = 0x00
	mbrTypeESP   = 0xef
	mbrDiskID    = 0x1b8
	mbrTable     = 0x1be
)

// mbrEntry is one 16-byte MBR partition entry over sectors [lba, lba+n).
func mbrEntry(active bool, typ byte, lba, n uint32) []byte {
	e := make([]byte, 16)
	if active {
		e[0] = 0x80
	}
	copy(e[1:4], chs(lba))
	e[4] = typ
	copy(e[5:8], chs(lba+n-1))
	binary.LittleEndian.PutUint32(e[8:12], lba)
	binary.LittleEndian.PutUint32(e[12:16], n)
	return e
}

// chs is the CHS address of sector lba with 255 heads and 63 sectors a
// track, or the "beyond CHS" marker.
func chs(lba uint32) []byte {
	c, rest := lba/(255*63), lba%(255*63)
	if c > 1023 {
		return []byte{0xfe, 0xff, 0xff}
	}
	h, s := rest/63, rest%63+1
	return []byte{byte(h), byte(s) | byte(c>>8)<<6, byte(c)}
}

// makeHybrid turns the finished ISO f (size bytes) into an isohybrid disk:
// a partition table in sector 0, then GRUB's boot.img pointed at the
// core.img file (by imagebuilder/disk, as on the raw disk).
func makeHybrid(f *os.File, size int64, h *hybridBoot) error {
	coreOff, coreSize, err := isoExtent(f, size, h.CoreImg)
	if err != nil {
		return err
	}
	efiOff, efiSize, err := isoExtent(f, size, h.EFIImg)
	if err != nil {
		return err
	}
	if size%512 != 0 || efiSize%512 != 0 || efiSize == 0 {
		return fmt.Errorf("isohybrid: ISO (%d bytes) or EFI image (%d bytes) not in whole sectors", size, efiSize)
	}
	mbr := make([]byte, 512)
	if _, err := f.ReadAt(mbr, 0); err != nil {
		return err
	}
	for _, b := range mbr {
		if b != 0 {
			return fmt.Errorf("isohybrid: the ISO's sector 0 is not free")
		}
	}
	binary.LittleEndian.PutUint32(mbr[mbrDiskID:], h.DiskID)
	copy(mbr[mbrTable:], mbrEntry(true, mbrTypeEmpty, 0, uint32(size/512)))
	copy(mbr[mbrTable+16:], mbrEntry(false, mbrTypeESP, uint32(efiOff/512), uint32(efiSize/512)))
	mbr[510], mbr[511] = 0x55, 0xaa
	if _, err := f.WriteAt(mbr, 0); err != nil {
		return err
	}
	core := make([]byte, coreSize)
	if _, err := f.ReadAt(core, coreOff); err != nil {
		return fmt.Errorf("isohybrid: reading %s: %w", h.CoreImg, err)
	}
	if err := imgdisk.InstallBIOSBoot(f, h.BootImg, core, coreOff, coreSize); err != nil {
		return fmt.Errorf("isohybrid: %w", err)
	}
	return nil
}
