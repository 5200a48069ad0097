package installer

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	imgdisk "imagebuilder/imagebuilder/disk"
)

// TestISOIsHybrid makes an isohybrid ISO around a real GRUB core.img and
// checks it as a disk: sfdisk (the oracle) reads an active whole-image
// entry and an ESP entry whose sectors are the El Torito EFI image;
// boot.img in sector 0 points at core.img's first sector, whose blocklist
// points at the rest; two builds are identical; xorriso still sees both
// El Torito entries.
func TestISOIsHybrid(t *testing.T) {
	for _, tool := range []string{"grub-mkimage", "sfdisk", "xorriso"} {
		if _, err := exec.LookPath(tool); err != nil {
			if _, err := os.Stat("/usr/sbin/" + tool); err != nil {
				t.Fatalf("%s not found: apt-get install grub-pc-bin fdisk xorriso (make deps)", tool)
			}
		}
	}
	tools := imgdisk.DefaultTools()
	bootImg, err := os.ReadFile(filepath.Join(tools.GrubPCDir, "boot.img"))
	if err != nil {
		t.Fatalf("%v (apt-get install grub-pc-bin)", err)
	}
	core, err := tools.MakeGrubCoreImg(context.Background(), t.TempDir(), grubISOConfig("console=ttyS0"), hybridModules)
	if err != nil {
		t.Fatal(err)
	}
	efi := bytes.Repeat([]byte("EFI-IMAGE-SECTOR"), (1<<20)/16)
	build := func() string {
		ws := t.TempDir()
		os.MkdirAll(filepath.Join(ws, "boot/grub"), 0o755)
		os.WriteFile(filepath.Join(ws, isoBIOSBoot), bytes.Repeat([]byte{0xeb}, 5000), 0o644)
		os.WriteFile(filepath.Join(ws, isoEFIImage), efi, 0o644)
		os.WriteFile(filepath.Join(ws, isoHybridCore), core, 0o644)
		os.WriteFile(filepath.Join(ws, isoKernel), []byte("kernel"), 0o644)
		out := filepath.Join(t.TempDir(), "x.iso")
		h := &hybridBoot{BootImg: bootImg, CoreImg: isoHybridCore, EFIImg: isoEFIImage, DiskID: 0x1234abcd}
		if err := writeISO9660(ws, out, 1700000000, h); err != nil {
			t.Fatal(err)
		}
		return out
	}
	p := build()
	img, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := os.ReadFile(build()); !bytes.Equal(img, again) {
		t.Fatal("two isohybrid ISOs of the same files differ")
	}

	out, err := exec.Command("sfdisk", "--json", p).CombinedOutput()
	if err != nil {
		t.Fatalf("sfdisk: %v\n%s", err, out)
	}
	var pt struct {
		PartitionTable struct {
			Label      string `json:"label"`
			ID         string `json:"id"`
			Partitions []struct {
				Start, Size int64
				Type        string
				Bootable    bool
			} `json:"partitions"`
		} `json:"partitiontable"`
	}
	if err := json.Unmarshal(out, &pt); err != nil {
		t.Fatalf("sfdisk output: %v\n%s", err, out)
	}
	parts := pt.PartitionTable.Partitions
	if pt.PartitionTable.Label != "dos" || pt.PartitionTable.ID != "0x1234abcd" || len(parts) != 2 {
		t.Fatalf("partition table: want dos, id 0x1234abcd, 2 partitions; sfdisk says:\n%s", out)
	}
	if w := parts[0]; w.Start != 0 || w.Size != int64(len(img))/512 || !w.Bootable || w.Type != "0" {
		t.Errorf("partition 1 = %+v, want the whole image (%d sectors), bootable, type 0", w, len(img)/512)
	}
	esp := parts[1]
	if esp.Type != "ef" || esp.Size != int64(len(efi))/512 || esp.Bootable {
		t.Errorf("partition 2 = %+v, want type ef, %d sectors", esp, len(efi)/512)
	} else if !bytes.Equal(img[esp.Start*512:(esp.Start+esp.Size)*512], efi) {
		t.Errorf("partition 2 (sector %d) does not hold the EFI image", esp.Start)
	}

	if !bytes.Equal(img[0x5a:0x5c], bootImg[0x5a:0x5c]) || !bytes.Equal(img[0x68:0x1b8], bootImg[0x68:0x1b8]) || img[510] != 0x55 || img[511] != 0xaa {
		t.Error("sector 0 does not hold GRUB's boot.img code")
	}
	coreLBA := binary.LittleEndian.Uint64(img[0x5c:])
	first := img[coreLBA*512 : coreLBA*512+512]
	if !bytes.Equal(first[:0x200-12], core[:0x200-12]) {
		t.Fatalf("boot.img points at sector %d, which is not core.img's first sector", coreLBA)
	}
	if next := binary.LittleEndian.Uint64(first[0x200-12:]); next != coreLBA+1 {
		t.Errorf("core.img's blocklist starts at sector %d, want %d", next, coreLBA+1)
	}
	if !bytes.Equal(img[(coreLBA+1)*512:(coreLBA*512)+uint64(len(core))], core[512:]) {
		t.Error("the rest of core.img does not follow its first sector")
	}

	rep, err := exec.Command("xorriso", "-indev", p, "-report_el_torito", "plain").CombinedOutput()
	if err != nil {
		t.Fatalf("xorriso: %v\n%s", err, rep)
	}
	for _, want := range []string{"El Torito boot img :   1  BIOS", "El Torito boot img :   2  UEFI"} {
		if !strings.Contains(string(rep), want) {
			t.Errorf("xorriso report lacks %q:\n%s", want, rep)
		}
	}
}
