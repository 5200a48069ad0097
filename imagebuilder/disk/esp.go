package disk

import (
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"

	"github.com/diskfs/go-diskfs/disk"
	"github.com/diskfs/go-diskfs/filesystem"
)

// espFile is one file of the EFI system partition: its contents come from
// a host file (src) or from data.
type espFile struct {
	Path string // absolute ESP path ("/EFI/BOOT/BOOTX64.EFI")
	Src  string
	Data []byte
}

// DefaultKernelCmdline follows root=... ro when Options.KernelCmdline is
// empty. The serial console comes last so that it is /dev/console and
// systemd's status output reaches it.
const DefaultKernelCmdline = "console=tty0 console=ttyS0,115200"

// bootEntry is the text of the Boot Loader Specification entry.
func bootEntry(title, entryID string, k Kernel, rootPartUUID, cmdline string) string {
	dir := espDir(entryID, k.Version)
	options := kernelOptions(rootPartUUID, cmdline)
	return fmt.Sprintf("title %s\nversion %s\nlinux %s/linux\ninitrd %s/initrd\noptions %s\n",
		title, k.Version, dir, dir, options)
}

// kernelOptions is the whole kernel command line of the image, the same
// for the UEFI and the BIOS boot.
func kernelOptions(rootPartUUID, cmdline string) string {
	return strings.TrimSpace("root=PARTUUID=" + rootPartUUID + " ro " + cmdline)
}

// loaderConf boots the entry at once; the editor is off because the
// command line of an immutable host is part of the image.
func loaderConf(entryID string) string {
	return fmt.Sprintf("timeout 0\ndefault %s.conf\neditor no\n", entryID)
}

// espLayout lists the files of the EFI system partition.
func espLayout(linux, initrd string, k Kernel, u UUIDs, o Options) []espFile {
	dir := espDir(o.EntryID, k.Version)
	return []espFile{
		{Path: "/EFI/BOOT/BOOTX64.EFI", Src: o.Tools.SystemdBootEFI},
		{Path: "/loader/loader.conf", Data: []byte(loaderConf(o.EntryID))},
		{Path: "/loader/entries/" + o.EntryID + ".conf", Data: []byte(bootEntry(o.Title, o.EntryID, k, u.RootPart, o.KernelCmdline))},
		{Path: dir + "/linux", Src: linux},
		{Path: dir + "/initrd", Src: initrd},
	}
}

// espPayload is the number of bytes the ESP files hold.
func espPayload(files []espFile) (int64, error) {
	var n int64
	for _, f := range files {
		if f.Src == "" {
			n += int64(len(f.Data))
			continue
		}
		fi, err := os.Stat(f.Src)
		if err != nil {
			return 0, espSourceError(f, err)
		}
		n += fi.Size()
	}
	return n, nil
}

func espSourceError(f espFile, err error) error {
	if f.Path == "/EFI/BOOT/BOOTX64.EFI" {
		return fmt.Errorf("systemd-boot EFI binary: %w (apt-get install systemd-boot-efi)", err)
	}
	return fmt.Errorf("ESP file %s: %w", f.Path, err)
}

// writeESP creates a FAT32 filesystem on partition part of d and copies the
// files into it, directories first, in path order.
func writeESP(ctx context.Context, d *disk.Disk, part int, files []espFile) error {
	fs, err := d.CreateFilesystem(disk.FilesystemSpec{Partition: part, FSType: filesystem.TypeFat32, VolumeLabel: "ESP"})
	if err != nil {
		return fmt.Errorf("creating FAT32 ESP: %w", err)
	}
	sorted := append([]espFile(nil), files...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Path < sorted[j].Path })
	dirs := map[string]bool{}
	for _, f := range sorted {
		for d := path.Dir(f.Path); d != "/" && !dirs[d]; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	dirList := make([]string, 0, len(dirs))
	for d := range dirs {
		dirList = append(dirList, d)
	}
	sort.Strings(dirList)
	for _, d := range dirList {
		if err := fs.Mkdir(d); err != nil {
			return fmt.Errorf("ESP mkdir %s: %w", d, err)
		}
	}
	for _, f := range sorted {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := copyIntoESP(fs, f); err != nil {
			return err
		}
	}
	return nil
}

func copyIntoESP(fs filesystem.FileSystem, f espFile) error {
	var src io.Reader
	if f.Src != "" {
		in, err := os.Open(f.Src)
		if err != nil {
			return espSourceError(f, err)
		}
		defer in.Close()
		src = in
	} else {
		src = strings.NewReader(string(f.Data))
	}
	out, err := fs.OpenFile(f.Path, os.O_CREATE|os.O_RDWR|os.O_TRUNC)
	if err != nil {
		return fmt.Errorf("ESP create %s: %w", f.Path, err)
	}
	// Large writes (no ReaderFrom/WriterTo shortcut): go-diskfs allocates
	// clusters and rewrites the FAT per Write call.
	if _, err := io.CopyBuffer(struct{ io.Writer }{out}, struct{ io.Reader }{src}, make([]byte, 4<<20)); err != nil {
		out.Close()
		return fmt.Errorf("ESP write %s: %w", f.Path, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("ESP write %s: %w", f.Path, err)
	}
	return nil
}
