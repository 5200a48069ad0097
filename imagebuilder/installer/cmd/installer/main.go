// Command installer is /init of the installer ISO: it mounts the kernel
// filesystems, loads the disk drivers, picks the target disk (installer.disk=
// or the first empty disk), writes the embedded host image, reads it back
// to verify it, and reboots into it. Built static (CGO_ENABLED=0).
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unsafe"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"

	"imagebuilder/imagebuilder/installer"
)

func main() {
	err := run()
	if err != nil {
		say("FAILED: %v", err)
		say("the disk was not switched; power off when done reading (the console stays here)")
		for {
			time.Sleep(time.Hour)
		}
	}
}

// withImage runs fn on a fresh decompressing reader of the embedded image;
// a corrupt image fails its zstd checksum.
func withImage(fn func(io.Reader) (int64, error)) (int64, error) {
	img, err := os.Open(installer.ImagePath)
	if err != nil {
		return 0, err
	}
	defer img.Close()
	zr, err := zstd.NewReader(img, zstd.WithDecoderConcurrency(1))
	if err != nil {
		return 0, err
	}
	defer zr.Close()
	return fn(zr)
}

func say(format string, args ...any) {
	fmt.Fprintf(os.Stdout, "installer: "+format+"\n", args...)
}

func run() error {
	for _, m := range []struct{ src, dst, typ string }{
		{"proc", "/proc", "proc"}, {"sysfs", "/sys", "sysfs"}, {"devtmpfs", "/dev", "devtmpfs"},
	} {
		os.MkdirAll(m.dst, 0o755)
		if err := unix.Mount(m.src, m.dst, m.typ, 0, ""); err != nil && !errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("mounting %s: %w", m.dst, err)
		}
	}
	cmdline, _ := os.ReadFile("/proc/cmdline")
	cfg := installer.ParseCmdline(string(cmdline))
	loadModules()
	sumFile, err := os.ReadFile(installer.ImageSHA256)
	if err != nil {
		return err
	}
	want, size, err := installer.ParseImageSum(sumFile)
	if err != nil {
		return err
	}
	var disk installer.Disk
	deadline := time.Now().Add(60 * time.Second)
	for {
		disks, err := installer.ScanDisks("/sys/block", "/dev")
		if err == nil {
			if disk, err = installer.ChooseDisk(disks, cfg, size); err == nil {
				break
			}
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(time.Second)
	}
	dev := filepath.Join("/dev", disk.Name)
	say("installing the host image (%d MiB, sha256 %.16s) on %s (%d MiB)", size>>20, want, dev, disk.Size>>20)
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	zero := func(off, n int64) error {
		r := [2]uint64{uint64(off), uint64(n)}
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.BLKZEROOUT, uintptr(unsafe.Pointer(&r[0])))
		if errno != 0 {
			return errno
		}
		return nil
	}
	start := time.Now()
	n, err := withImage(func(r io.Reader) (int64, error) { return installer.Write(f, zero, f.Sync, r) })
	if err != nil {
		return fmt.Errorf("%s: %w", dev, err)
	}
	if n != size {
		return fmt.Errorf("the embedded image is %d bytes, expected %d", n, size)
	}
	say("wrote %d MiB in %.1fs", n>>20, time.Since(start).Seconds())
	// Read back from the disk, not the page cache.
	unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
	os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0o644)
	start = time.Now()
	if n, err = withImage(func(r io.Reader) (int64, error) { return installer.Compare(f, r) }); err != nil {
		return fmt.Errorf("%s: %w", dev, err)
	}
	say("verified %s: %d bytes read back identical to the image (sha256 %s) in %.1fs", dev, n, want, time.Since(start).Seconds())
	f.Close()
	unix.Sync()
	if cfg.NoReboot {
		say("done; powering off (installer.noreboot)")
		return unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	}
	say("done; rebooting into the installed host")
	return unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
}

// loadModules inserts the drivers listed in ModuleOrder; already present
// (built-in or loaded) is fine.
func loadModules() {
	order, err := os.ReadFile(installer.ModuleOrder)
	if err != nil {
		return
	}
	for _, name := range strings.Fields(string(order)) {
		f, err := os.Open(filepath.Join(installer.ModulesDir, name))
		if err != nil {
			say("module %s: %v", name, err)
			continue
		}
		// EEXIST: built in or loaded; ENODEV: no such hardware here.
		if err := unix.FinitModule(int(f.Fd()), "", 0); err != nil && !errors.Is(err, unix.EEXIST) && !errors.Is(err, unix.ENODEV) {
			say("module %s: %v", name, err)
		}
		f.Close()
	}
}
