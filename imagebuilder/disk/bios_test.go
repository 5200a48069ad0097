package disk

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestInstallBIOSBoot checks the two patches grub-setup would make: boot.img
// in the MBR points at core.img's first sector and keeps the disk's
// partition table; core.img's first blocklist points at its second sector.
func TestInstallBIOSBoot(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "disk"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(4 << 20); err != nil {
		t.Fatal(err)
	}
	// A protective MBR: partition entry 1 of type 0xEE, signature.
	mbr := make([]byte, 512)
	mbr[0x1be+4] = 0xee
	mbr[0x1b8] = 0x42 // disk signature byte
	mbr[0x1fe], mbr[0x1ff] = 0x55, 0xaa
	f.WriteAt(mbr, 0)
	boot := bytes.Repeat([]byte{0xb0}, 512)
	boot[0x1fe], boot[0x1ff] = 0x55, 0xaa
	core := bytes.Repeat([]byte{0xc0}, 3*512)
	part := Partition{Start: 40 * 512, Size: 2008 * 512}

	if err := installBIOSBoot(f, boot, core, part); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 512)
	f.ReadAt(got, 0)
	if lba := binary.LittleEndian.Uint64(got[0x5c:]); lba != 40 {
		t.Errorf("boot.img kernel sector = %d, want 40", lba)
	}
	if got[0x66] != 0x90 || got[0x67] != 0x90 {
		t.Errorf("boot drive check not disabled: % x", got[0x66:0x68])
	}
	if !bytes.Equal(got[0x1b8:0x200], mbr[0x1b8:0x200]) {
		t.Errorf("partition table or signature not kept")
	}
	if !bytes.Equal(got[0x3:0x5a], mbr[0x3:0x5a]) || got[0] != 0xb0 || got[0x100] != 0xb0 {
		t.Errorf("boot code not from boot.img / BPB not from the old MBR")
	}
	c := make([]byte, len(core))
	f.ReadAt(c, part.Start)
	if start := binary.LittleEndian.Uint64(c[0x1f4:]); start != 41 {
		t.Errorf("core.img blocklist start = %d, want 41", start)
	}
	if c[0x1fc] != 0xc0 || c[512] != 0xc0 {
		t.Errorf("core.img changed beyond its blocklist start")
	}

	tooBig := make([]byte, part.Size+512)
	if err := installBIOSBoot(f, boot, tooBig, part); err == nil || !strings.Contains(err.Error(), "does not fit") {
		t.Errorf("an oversized core.img: %v", err)
	}
	if err := installBIOSBoot(f, boot[:100], core, part); err == nil {
		t.Errorf("a short boot.img was accepted")
	}
}

func TestGrubConfigBootsTheBLSEntry(t *testing.T) {
	cfg := grubConfig("1A2B-3C4D", "/imagebuilder/6.1.0-13-amd64", kernelOptions("ROOT-GUID", "console=ttyS0,115200"))
	for _, want := range []string{
		"search --no-floppy --fs-uuid --set=root 1a2b-3c4d\n",
		"linux /imagebuilder/6.1.0-13-amd64/linux root=PARTUUID=ROOT-GUID ro console=ttyS0,115200\n",
		"initrd /imagebuilder/6.1.0-13-amd64/initrd\n",
		"boot\n",
	} {
		if !strings.Contains(cfg, want) {
			t.Errorf("grub config lacks %q:\n%s", want, cfg)
		}
	}
}

// TestInstallBIOSBootExported refuses a core.img that does not start on a
// sector, which boot.img could not address.
func TestInstallBIOSBootExported(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "disk"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	boot, core := make([]byte, 512), make([]byte, 1024)
	if err := InstallBIOSBoot(f, boot, core, 100, 4096); err == nil || !strings.Contains(err.Error(), "sector boundary") {
		t.Errorf("core.img at byte 100: err = %v, want a sector boundary error", err)
	}
}
