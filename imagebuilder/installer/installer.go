// Package installer is the PXE-less bare-metal path: the logic of the small
// static program that runs as /init from the installer ISO's initramfs
// (choose the target disk, write the embedded host image, verify it), and
// the writer of that ISO.
//
// The program itself is cmd/installer (built with CGO_ENABLED=0); it imports
// only this package, the standard library, golang.org/x/sys and zstd.
package installer

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Files the ISO's initramfs holds beside /init.
const (
	ImagePath   = "/image.raw.zst" // the host image, zstd-compressed raw disk
	ImageSHA256 = "/image.sha256"  // "<sha256 of the raw disk> <size in bytes>\n"
	ModulesDir  = "/modules"       // kernel modules, loaded in the order of…
	ModuleOrder = "/modules/order" // …this list of file names
)

// Config is what the kernel command line says to the installer.
type Config struct {
	// Disk is installer.disk=: a device name ("vdb", "/dev/nvme0n1");
	// empty picks the first empty disk.
	Disk string
	// NoReboot (installer.noreboot) powers off instead of rebooting.
	NoReboot bool
}

// ParseCmdline reads installer.* arguments from a kernel command line.
func ParseCmdline(cmdline string) Config {
	var c Config
	for _, f := range strings.Fields(cmdline) {
		switch {
		case strings.HasPrefix(f, "installer.disk="):
			c.Disk = strings.TrimPrefix(strings.TrimPrefix(f, "installer.disk="), "/dev/")
		case f == "installer.noreboot" || f == "installer.noreboot=1":
			c.NoReboot = true
		}
	}
	return c
}

// Disk is one candidate block device.
type Disk struct {
	Name     string // "vda"
	Size     int64  // bytes
	ReadOnly bool
	// Empty means its first MiB is all zero: no partition table, no boot
	// sector, no filesystem superblock.
	Empty bool
}

// ChooseDisk applies the rule: the named disk if c.Disk is set, else the
// first empty disk in name order; either must be writable and hold need
// bytes.
func ChooseDisk(disks []Disk, c Config, need int64) (Disk, error) {
	sort.Slice(disks, func(i, j int) bool { return disks[i].Name < disks[j].Name })
	fits := func(d Disk) error {
		if d.ReadOnly {
			return fmt.Errorf("disk %s is read-only", d.Name)
		}
		if d.Size < need {
			return fmt.Errorf("disk %s holds %d bytes, the image needs %d", d.Name, d.Size, need)
		}
		return nil
	}
	var names []string
	for _, d := range disks {
		names = append(names, d.Name)
	}
	if c.Disk != "" {
		for _, d := range disks {
			if d.Name == c.Disk {
				return d, fits(d)
			}
		}
		return Disk{}, fmt.Errorf("installer.disk=%s: no such disk (found: %s)", c.Disk, strings.Join(names, ", "))
	}
	var why []string
	for _, d := range disks {
		if !d.Empty {
			why = append(why, d.Name+" is not empty")
			continue
		}
		if err := fits(d); err != nil {
			why = append(why, err.Error())
			continue
		}
		return d, nil
	}
	if len(disks) == 0 {
		return Disk{}, errors.New("no disks found")
	}
	return Disk{}, fmt.Errorf("no empty disk to install on (%s); name one with installer.disk=", strings.Join(why, "; "))
}

// ScanDisks lists the block devices under sysBlock (/sys/block) with their
// size and emptiness read from devDir (/dev). Loop, RAM, optical and
// device-mapper devices are left out.
func ScanDisks(sysBlock, devDir string) ([]Disk, error) {
	ents, err := os.ReadDir(sysBlock)
	if err != nil {
		return nil, err
	}
	var out []Disk
	for _, e := range ents {
		n := e.Name()
		if strings.HasPrefix(n, "loop") || strings.HasPrefix(n, "ram") || strings.HasPrefix(n, "sr") ||
			strings.HasPrefix(n, "zram") || strings.HasPrefix(n, "dm-") || strings.HasPrefix(n, "md") {
			continue
		}
		sectors, err := readInt(filepath.Join(sysBlock, n, "size"))
		if err != nil || sectors == 0 {
			continue
		}
		ro, _ := readInt(filepath.Join(sysBlock, n, "ro"))
		d := Disk{Name: n, Size: sectors * 512, ReadOnly: ro == 1}
		d.Empty, err = isEmpty(filepath.Join(devDir, n))
		if err != nil {
			continue
		}
		out = append(out, d)
	}
	return out, nil
}

func readInt(p string) (int64, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}

func isEmpty(dev string) (bool, error) {
	f, err := os.Open(dev)
	if err != nil {
		return false, err
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	n, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return false, err
	}
	for _, b := range buf[:n] {
		if b != 0 {
			return false, nil
		}
	}
	return true, nil
}

// ZeroFunc zeroes n bytes at off of the target (BLKZEROOUT on a block
// device: no data crosses the bus, and thin disks stay thin).
type ZeroFunc func(off, n int64) error

// chunk is the unit of writing and comparing.
const chunk = 4 << 20

// Write copies the image stream onto dst from offset 0, zeroing all-zero
// chunks with zero when it is not nil, and syncs; it returns the bytes
// written. The stream's own integrity is the zstd frame checksum.
func Write(dst io.WriterAt, zero ZeroFunc, sync func() error, src io.Reader) (int64, error) {
	buf := make([]byte, chunk)
	var off int64
	for {
		n, err := io.ReadFull(src, buf)
		if n > 0 {
			if zero != nil && allZero(buf[:n]) && zero(off, int64(n)) == nil {
				// zeroed without writing
			} else if _, werr := dst.WriteAt(buf[:n], off); werr != nil {
				return off, fmt.Errorf("writing at %d: %w", off, werr)
			}
			off += int64(n)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			return off, fmt.Errorf("reading the image: %w", err)
		}
	}
	if err := sync(); err != nil {
		return off, fmt.Errorf("syncing: %w", err)
	}
	return off, nil
}

// Compare reads the target back and compares it byte for byte with a
// second pass over the image stream (cheaper than hashing both under
// emulation); it returns the number of bytes compared.
func Compare(dev io.ReaderAt, src io.Reader) (int64, error) {
	a, b := make([]byte, chunk), make([]byte, chunk)
	var off int64
	for {
		n, err := io.ReadFull(src, a)
		if n > 0 {
			m, rerr := dev.ReadAt(b[:n], off)
			if m != n {
				return off, fmt.Errorf("reading back at %d: %w", off, rerr)
			}
			if !bytes.Equal(a[:n], b[:n]) {
				for i := range n {
					if a[i] != b[i] {
						return off, fmt.Errorf("the disk differs from the image at byte %d", off+int64(i))
					}
				}
			}
			off += int64(n)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			return off, fmt.Errorf("reading the image: %w", err)
		}
	}
	return off, nil
}

func allZero(b []byte) bool {
	for len(b) >= 8 {
		if b[0]|b[1]|b[2]|b[3]|b[4]|b[5]|b[6]|b[7] != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// ParseImageSum reads the ImageSHA256 file.
func ParseImageSum(b []byte) (sum string, size int64, err error) {
	f := strings.Fields(string(b))
	if len(f) != 2 || len(f[0]) != 64 {
		return "", 0, fmt.Errorf("%s: want \"<sha256> <size>\", got %q", ImageSHA256, b)
	}
	size, err = strconv.ParseInt(f[1], 10, 64)
	return f[0], size, err
}
