package installer

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/cavaliergopher/cpio"
	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/disk"
	"github.com/diskfs/go-diskfs/filesystem"
	"github.com/diskfs/go-diskfs/filesystem/iso9660"
	"github.com/klauspost/compress/zstd"

	imgdisk "imagebuilder/imagebuilder/disk"
	"imagebuilder/overlay"
	"imagebuilder/pkgbuild/atomicfile"
)

// Paths inside the ISO (Rock Ridge names).
const (
	isoKernel   = "/boot/vmlinuz"
	isoInitrd   = "/boot/initrd.img"
	isoMarker   = "/boot/imagebuilder-installer"
	isoBIOSBoot = "/boot/grub/eltorito.img"
	isoEFIImage = "/boot/efiboot.img"
)

// DiskModules are the drivers the installer loads (with their
// dependencies) when the kernel has them as modules: virtio, NVMe, SATA,
// SCSI, Xen and USB disks.
var DiskModules = []string{"virtio_pci", "virtio_blk", "virtio_scsi", "sd_mod", "nvme", "ahci", "ata_piix", "xen_blkfront",
	"xhci_pci", "ehci_pci", "usb_storage", "uas"}

// ISOOptions say what goes into the installer ISO.
type ISOOptions struct {
	// Raw is the host image to install (a raw disk from disk.WriteRaw).
	Raw string
	// Tree and Kernel are the image's tree and kernel: the installer
	// boots the same kernel and takes its disk drivers from the tree.
	Tree   *overlay.Tree
	Kernel imgdisk.Kernel
	// InstallerBinary is cmd/installer built static (CGO_ENABLED=0).
	InstallerBinary string
	// Cmdline is the installer kernel's command line (console settings).
	Cmdline string
	Epoch   int64
	// WorkDir is scratch space (as large as the compressed image twice).
	WorkDir string
	// Seed fixes the EFI image's volume serial.
	Seed  string
	Tools imgdisk.Tools
	// GrubEFIDir holds GRUB's x86_64-efi modules (grub-efi-amd64-bin).
	GrubEFIDir string
}

// DefaultGrubEFIDir is where Debian's grub-efi-amd64-bin puts the modules.
const DefaultGrubEFIDir = "/usr/lib/grub/x86_64-efi"

// grubISOConfig boots the installer from the ISO, for both GRUBs.
func grubISOConfig(cmdline string) string {
	return fmt.Sprintf(`serial --unit=0 --speed=115200
terminal_output console serial
echo "imagebuilder installer: loading the kernel and the image"
search --no-floppy --set=root --file %s
linux %s %s
initrd %s
boot
`, isoMarker, isoKernel, strings.TrimSpace(cmdline), isoInitrd)
}

// WriteISO writes the installer ISO to out: ISO9660 with Rock Ridge and an
// El Torito catalog with a BIOS entry (GRUB's i386-pc-eltorito image) and a
// UEFI entry (a FAT image holding GRUB as EFI/BOOT/BOOTX64.EFI). Both GRUBs
// boot the image's kernel with an initramfs holding the installer as /init,
// the disk drivers and the zstd-compressed raw image. The ISO is also
// isohybrid (see hybrid.go): written raw to a USB stick it boots under
// BIOS and UEFI. out appears complete or not at all.
func WriteISO(ctx context.Context, out string, o ISOOptions) error {
	o.Tools = o.Tools.WithDefaults()
	if o.GrubEFIDir == "" {
		o.GrubEFIDir = DefaultGrubEFIDir
	}
	if _, err := os.Stat(o.InstallerBinary); err != nil {
		return fmt.Errorf("installer binary: %w (build it: CGO_ENABLED=0 go build -o bin/imagebuilder-installer ./imagebuilder/installer/cmd/installer)", err)
	}
	work, err := os.MkdirTemp(o.WorkDir, ".iso-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	ws := filepath.Join(work, "iso") // the ISO's tree, given to go-diskfs as its workspace
	for _, d := range []string{"boot/grub"} {
		if err := os.MkdirAll(filepath.Join(ws, d), 0o755); err != nil {
			return err
		}
	}
	if err := atomicfile.Copy(filepath.Join(o.Tree.Root, filepath.FromSlash(o.Kernel.Linux)), filepath.Join(ws, isoKernel), 0o644); err != nil {
		return fmt.Errorf("iso kernel: %w", err)
	}
	if err := os.WriteFile(filepath.Join(ws, isoMarker), []byte("imagebuilder installer\n"), 0o644); err != nil {
		return err
	}
	if err := o.writeInitrd(ctx, filepath.Join(work, "image.raw.zst"), filepath.Join(ws, isoInitrd)); err != nil {
		return err
	}
	cfg := filepath.Join(work, "grub.cfg")
	if err := os.WriteFile(cfg, []byte(grubISOConfig(o.Cmdline)), 0o644); err != nil {
		return err
	}
	bios := []string{"-O", "i386-pc-eltorito", "-d", o.Tools.GrubPCDir, "-c", cfg, "-p", "/boot/grub", "-o", filepath.Join(ws, isoBIOSBoot),
		"biosdisk", "iso9660", "search", "search_fs_file", "linux", "boot", "echo", "serial", "terminal"}
	efiBin := filepath.Join(work, "BOOTX64.EFI")
	efi := []string{"-O", "x86_64-efi", "-d", o.GrubEFIDir, "-c", cfg, "-p", "/boot/grub", "-o", efiBin,
		"iso9660", "search", "search_fs_file", "linux", "boot", "echo", "part_gpt", "fat", "serial", "terminal"}
	for _, args := range [][]string{bios, efi} {
		if _, _, err := o.Tools.Runner.Run(ctx, imgdisk.Cmd{Tool: o.Tools.GrubMkimage, Args: args}); err != nil {
			return fmt.Errorf("making the %s GRUB image: %w (apt-get install grub-pc-bin grub-efi-amd64-bin)", args[1], err)
		}
	}
	hybrid, err := o.hybridBoot(ctx, work, ws)
	if err != nil {
		return err
	}
	h := sha256.Sum256([]byte("iso-efi-serial\x00" + o.Seed))
	if err := imgdisk.WriteFATImage(ctx, filepath.Join(ws, isoEFIImage), 40<<20,
		map[string]string{"/EFI/BOOT/BOOTX64.EFI": efiBin}, binary.BigEndian.Uint32(h[:4]), o.Epoch); err != nil {
		return err
	}
	return writeISO9660(ws, out, o.Epoch, hybrid)
}

// hybridBoot makes the isohybrid GRUB core.img in the workspace ws and
// returns what makeHybrid needs.
func (o ISOOptions) hybridBoot(ctx context.Context, work, ws string) (*hybridBoot, error) {
	bootImg, err := os.ReadFile(filepath.Join(o.Tools.GrubPCDir, "boot.img"))
	if err != nil {
		return nil, fmt.Errorf("GRUB boot.img for the isohybrid MBR: %w (apt-get install grub-pc-bin)", err)
	}
	core, err := o.Tools.MakeGrubCoreImg(ctx, work, grubISOConfig(o.Cmdline), hybridModules)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(ws, isoHybridCore), core, 0o644); err != nil {
		return nil, err
	}
	h := sha256.Sum256([]byte("iso-mbr-disk-id\x00" + o.Seed))
	return &hybridBoot{BootImg: bootImg, CoreImg: isoHybridCore, EFIImg: isoEFIImage, DiskID: binary.LittleEndian.Uint32(h[:4])}, nil
}

// writeInitrd writes the installer's initramfs: an uncompressed newc cpio
// (its big member is compressed already) with /init, the modules and the
// compressed image.
func (o ISOOptions) writeInitrd(ctx context.Context, zpath, out string) error {
	sum, err := atomicfile.SHA256(o.Raw)
	if err != nil {
		return err
	}
	fi, err := os.Stat(o.Raw)
	if err != nil {
		return err
	}
	if err := compressZstd(ctx, o.Raw, zpath); err != nil {
		return fmt.Errorf("compressing the image: %w", err)
	}
	mods, err := moduleOrder(o.Tree, o.Kernel.Version, DiskModules)
	if err != nil {
		return err
	}
	mtime := time.Unix(o.Epoch, 0)
	return atomicfile.Write(out, 0o644, func(w io.Writer) error {
		bw := bufio.NewWriterSize(w, 1<<20)
		cw := cpio.NewWriter(bw)
		dir := func(name string) error {
			return cw.WriteHeader(&cpio.Header{Name: name, Mode: cpio.TypeDir | 0o755, ModTime: mtime, Links: 2})
		}
		file := func(name string, mode cpio.FileMode, src string, data []byte) error {
			var r io.Reader = strings.NewReader(string(data))
			size := int64(len(data))
			if src != "" {
				f, err := os.Open(src)
				if err != nil {
					return err
				}
				defer f.Close()
				st, err := f.Stat()
				if err != nil {
					return err
				}
				r, size = f, st.Size()
			}
			if err := cw.WriteHeader(&cpio.Header{Name: name, Mode: cpio.TypeReg | mode, ModTime: mtime, Size: size, Links: 1}); err != nil {
				return err
			}
			n, err := io.Copy(cw, r)
			if err == nil && n != size {
				err = fmt.Errorf("%s: %d bytes, expected %d", name, n, size)
			}
			return err
		}
		for _, d := range []string{"dev", "modules", "proc", "sys"} {
			if err := dir(d); err != nil {
				return err
			}
		}
		if err := file("image.raw.zst", 0o644, zpath, nil); err != nil {
			return err
		}
		if err := file("image.sha256", 0o644, "", fmt.Appendf(nil, "%s %d\n", sum, fi.Size())); err != nil {
			return err
		}
		if err := file("init", 0o755, o.InstallerBinary, nil); err != nil {
			return err
		}
		var order []string
		for _, m := range mods {
			name := path.Base(m)
			order = append(order, name)
			if err := file("modules/"+name, 0o644, filepath.Join(o.Tree.Root, filepath.FromSlash(m)), nil); err != nil {
				return err
			}
		}
		if err := file("modules/order", 0o644, "", []byte(strings.Join(order, "\n")+"\n")); err != nil {
			return err
		}
		if err := cw.Close(); err != nil {
			return err
		}
		return bw.Flush()
	})
}

// moduleOrder returns the tree paths of the wanted modules that exist,
// each after its dependencies (from modules.dep).
func moduleOrder(tree *overlay.Tree, kver string, want []string) ([]string, error) {
	base := ""
	for _, b := range []string{"usr/lib/modules/" + kver, "lib/modules/" + kver} {
		if _, ok := tree.Entries[b+"/modules.dep"]; ok {
			base = b
			break
		}
	}
	if base == "" {
		return nil, nil // a kernel without modules: everything is built in
	}
	data, err := tree.ReadFile(base + "/modules.dep")
	if err != nil {
		return nil, err
	}
	deps := map[string][]string{}
	byName := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		mod, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		deps[mod] = strings.Fields(rest)
		n := strings.TrimSuffix(path.Base(mod), ".ko")
		byName[strings.ReplaceAll(n, "-", "_")] = mod
	}
	var order []string
	seen := map[string]bool{}
	var visit func(m string, depth int)
	visit = func(m string, depth int) {
		if seen[m] || depth > 32 {
			return
		}
		seen[m] = true
		for _, d := range deps[m] {
			visit(d, depth+1)
		}
		order = append(order, base+"/"+m)
	}
	names := append([]string(nil), want...)
	sort.Strings(names)
	for _, n := range want {
		if m, ok := byName[n]; ok {
			visit(m, 0)
		}
	}
	for _, m := range order {
		if _, ok := tree.Entries[m]; !ok {
			return nil, fmt.Errorf("module /%s listed in modules.dep is not in the tree", m)
		}
		if strings.HasSuffix(m, ".ko.xz") || strings.HasSuffix(m, ".ko.zst") || strings.HasSuffix(m, ".ko.gz") {
			return nil, fmt.Errorf("module /%s is compressed; the installer loads plain .ko files only", m)
		}
	}
	return order, nil
}

func compressZstd(ctx context.Context, src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	defer out.Close()
	zw, err := zstd.NewWriter(out, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedDefault))
	if err != nil {
		return err
	}
	buf := make([]byte, 4<<20)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := in.Read(buf)
		if n > 0 {
			if _, werr := zw.Write(buf[:n]); werr != nil {
				return werr
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return out.Close()
}

// writeISO9660 lays the workspace ws out as an ISO at out, isohybrid when
// hybrid is not nil.
func writeISO9660(ws, out string, epoch int64, hybrid *hybridBoot) error {
	var total int64
	t := time.Unix(epoch, 0)
	err := filepath.Walk(ws, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		total += (fi.Size() + 2047) &^ 2047
		return os.Chtimes(p, t, t)
	})
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".tmp-")
	if err != nil {
		return err
	}
	tmpName := tmp.Name()
	tmp.Close()
	os.Remove(tmpName)
	ok := false
	defer func() {
		if !ok {
			os.Remove(tmpName)
		}
	}()
	d, err := diskfs.Create(tmpName, total+4<<20, diskfs.SectorSizeDefault)
	if err != nil {
		return fmt.Errorf("creating the ISO: %w", err)
	}
	d.LogicalBlocksize = 2048
	fs, err := d.CreateFilesystem(disk.FilesystemSpec{Partition: 0, FSType: filesystem.TypeISO9660, VolumeLabel: "IMAGEBUILDER", WorkDir: ws})
	if err != nil {
		return fmt.Errorf("creating the ISO filesystem: %w", err)
	}
	iso, okType := fs.(*iso9660.FileSystem)
	if !okType {
		return fmt.Errorf("go-diskfs made no ISO9660 filesystem")
	}
	err = iso.Finalize(iso9660.FinalizeOptions{
		RockRidge:        true,
		VolumeIdentifier: "IMAGEBUILDER",
		ElTorito: &iso9660.ElTorito{
			BootCatalog:     "/boot/boot.catalog",
			HideBootCatalog: true,
			Entries: []*iso9660.ElToritoEntry{
				{Platform: iso9660.BIOS, Emulation: iso9660.NoEmulation, BootFile: isoBIOSBoot, BootTable: true, LoadSize: 4},
				{Platform: iso9660.EFI, Emulation: iso9660.NoEmulation, BootFile: isoEFIImage},
			},
		},
	})
	if err != nil {
		return fmt.Errorf("writing the ISO: %w", err)
	}
	d.Close()
	if err := fixISO(tmpName, t, hybrid); err != nil {
		return err
	}
	if err := os.Rename(tmpName, out); err != nil {
		return err
	}
	ok = true
	return atomicfile.SyncDir(filepath.Dir(out))
}

// isoPadding follows the last file: GRUB's cdboot reads the BIOS boot image
// in whole chunks, which must not run past the end of the medium (go-diskfs
// puts the boot image last); xorriso pads the same way.
const isoPadding = 150 // sectors of 2048 bytes

// fixISO sets the volume size to the files plus isoPadding, trims the file
// to it, and sets the volume descriptor's four dates (go-diskfs writes the
// wall clock) to t, so the same inputs give the same ISO; then makes it
// isohybrid when hybrid is not nil.
func fixISO(p string, t time.Time, hybrid *hybridBoot) error {
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	pvd := make([]byte, 2048)
	if _, err := f.ReadAt(pvd, 16*2048); err != nil {
		return err
	}
	if pvd[0] != 1 || string(pvd[1:6]) != "CD001" {
		return fmt.Errorf("ISO: no primary volume descriptor at sector 16")
	}
	date := []byte(t.UTC().Format("20060102150405") + "00")
	date = append(date, 0) // GMT offset
	for _, off := range []int{813, 830, 847, 864} {
		copy(pvd[off:off+17], date)
	}
	blocks := binary.LittleEndian.Uint32(pvd[80:84]) + isoPadding
	binary.LittleEndian.PutUint32(pvd[80:84], blocks)
	binary.BigEndian.PutUint32(pvd[84:88], blocks)
	if _, err := f.WriteAt(pvd, 16*2048); err != nil {
		return err
	}
	if err := f.Truncate(int64(blocks) * 2048); err != nil {
		return err
	}
	root := pvd[156 : 156+34]
	if err := fixDirDates(f, binary.LittleEndian.Uint32(root[2:6]), binary.LittleEndian.Uint32(root[10:14]), t, 0); err != nil {
		return fmt.Errorf("ISO: %w", err)
	}
	if hybrid != nil {
		if err := makeHybrid(f, int64(blocks)*2048, hybrid); err != nil {
			return err
		}
	}
	return f.Sync()
}

// fixDirDates sets the recording date of every directory record below the
// directory extent at lba, and every Rock Ridge TF timestamp (go-diskfs
// takes them from the workspace, ctime included, which cannot be set), to
// t.
func fixDirDates(f *os.File, lba, size uint32, t time.Time, depth int) error {
	if depth > 64 {
		return fmt.Errorf("directories nest too deep")
	}
	buf := make([]byte, size)
	if _, err := f.ReadAt(buf, int64(lba)*2048); err != nil {
		return err
	}
	u := t.UTC()
	short := []byte{byte(u.Year() - 1900), byte(u.Month()), byte(u.Day()), byte(u.Hour()), byte(u.Minute()), byte(u.Second()), 0}
	long := append([]byte(u.Format("20060102150405")+"00"), 0)
	for off := 0; off < len(buf); {
		n := int(buf[off])
		if n == 0 { // no record crosses a sector: skip to the next one
			off = (off/2048 + 1) * 2048
			continue
		}
		if off+n > len(buf) || n < 34 {
			return fmt.Errorf("bad directory record at sector %d", lba)
		}
		rec := buf[off : off+n]
		copy(rec[18:25], short)
		nameLen := int(rec[32])
		su := 33 + nameLen
		if nameLen%2 == 0 {
			su++
		}
		for i := su; i+4 <= len(rec); {
			l := int(rec[i+2])
			if l < 4 || i+l > len(rec) {
				break
			}
			if rec[i] == 'T' && rec[i+1] == 'F' {
				flags, size := rec[i+4], 7
				if flags&0x80 != 0 {
					size = 17
				}
				for p := i + 5; p+size <= i+l; p += size {
					if size == 7 {
						copy(rec[p:p+7], short)
					} else {
						copy(rec[p:p+17], long)
					}
				}
			}
			i += l
		}
		isDir := rec[25]&2 != 0
		self := nameLen == 1 && (rec[33] == 0 || rec[33] == 1)
		if isDir && !self {
			if err := fixDirDates(f, binary.LittleEndian.Uint32(rec[2:6]), binary.LittleEndian.Uint32(rec[10:14]), t, depth+1); err != nil {
				return err
			}
		}
		off += n
	}
	_, err := f.WriteAt(buf, int64(lba)*2048)
	return err
}
