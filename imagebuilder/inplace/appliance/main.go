// Command appliance is the /init of the in-place appliance VM: it finds
// the disk image's root — XFS or ext4 on a partition of /dev/vda or on an
// LVM2 logical volume it maps with device-mapper (root.go, lvm.go, dm.go) —
// mounts it, extracts the overlay tar from /dev/vdb onto it without ever
// leaving the root (whiteout entries remove paths: whiteout.go), asks for
// an SELinux relabel when the image enforces SELinux, and powers off.
// ib.mode=skeleton mounts the root read-only and writes its skeleton to
// /dev/vdb instead (skeleton.go: what the build machine needs to run the
// distro fixups); ib.mode=list prints the root's entries (for tests);
// ib.root=VG/LV or ib.root=vdaN picks the root. It prints one final line,
// "IMAGEBUILDER-APPLIANCE: OK" or "IMAGEBUILDER-APPLIANCE: FAILED: why".
package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	err := func() (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("appliance crashed: %v", r)
			}
		}()
		return run()
	}()
	unix.Sync()
	if err != nil {
		fmt.Printf("\nIMAGEBUILDER-APPLIANCE: FAILED: %v\n", err)
	} else {
		fmt.Printf("\nIMAGEBUILDER-APPLIANCE: OK\n")
	}
	time.Sleep(200 * time.Millisecond)
	unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
}

func run() error {
	for _, m := range []struct{ src, dst, fs string }{
		{"proc", "/proc", "proc"}, {"sysfs", "/sys", "sysfs"}, {"devtmpfs", "/dev", "devtmpfs"},
	} {
		os.MkdirAll(m.dst, 0o755)
		if err := unix.Mount(m.src, m.dst, m.fs, 0, ""); err != nil {
			return fmt.Errorf("mounting %s: %w", m.dst, err)
		}
	}
	if c, err := os.OpenFile("/dev/console", os.O_RDWR, 0); err == nil {
		unix.Dup2(int(c.Fd()), 1)
		unix.Dup2(int(c.Fd()), 2)
	}
	if err := loadModules("/modules.order"); err != nil {
		return err
	}
	cmdline, _ := os.ReadFile("/proc/cmdline")
	mode := param(string(cmdline), "ib.mode")
	if mode != "" && mode != "list" && mode != "skeleton" {
		return fmt.Errorf("ib.mode=%s: list or skeleton", mode)
	}
	if mode == "" {
		quietWriteback()
	}
	if err := waitFor("/sys/class/block/vda", 30*time.Second); err != nil {
		return err
	}
	root, dev, unmount, err := mountRoot("/mnt", param(string(cmdline), "ib.root"), mode != "")
	if err != nil {
		return err
	}
	fmt.Printf("appliance: root file system %s mounted\n", dev)
	switch mode {
	case "list":
		err = listTree(root)
	case "skeleton":
		err = writeSkeleton("/mnt")
	default:
		err = applyOverlay(root)
	}
	root.Close()
	if uerr := unmount(); err == nil {
		err = uerr
	}
	return err
}

// quietWriteback keeps the kernel from writing back dirty data or pushing
// the XFS log on timers while the overlay is applied, so block allocation
// and log traffic depend on the operations only (data and log are written
// at the syncs applyOverlay makes every syncEvery entries, and at unmount).
func quietWriteback() {
	for p, v := range map[string]string{
		"/proc/sys/vm/dirty_writeback_centisecs": "0",
		"/proc/sys/vm/dirty_expire_centisecs":    "360000",
		"/proc/sys/vm/dirty_background_ratio":    "90",
		"/proc/sys/vm/dirty_ratio":               "90",
		"/proc/sys/fs/xfs/xfssyncd_centisecs":    "720000",
	} {
		if err := os.WriteFile(p, []byte(v), 0o644); err != nil {
			fmt.Printf("appliance: %s: %v\n", p, err)
		}
	}
}

// param returns the value of key=value on the kernel command line.
func param(cmdline, key string) string {
	for _, f := range strings.Fields(cmdline) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			return v
		}
	}
	return ""
}

// loadModules loads the kernel modules listed (in order) in file.
func loadModules(file string) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil // a kernel with everything built in
	}
	for _, m := range strings.Fields(string(data)) {
		f, err := os.Open(m)
		if err != nil {
			return err
		}
		err = unix.FinitModule(int(f.Fd()), "", 0)
		f.Close()
		if err != nil && err != unix.EEXIST {
			fmt.Printf("appliance: loading %s: %v\n", m, err)
		}
	}
	return nil
}

func waitFor(p string, d time.Duration) error {
	end := time.Now().Add(d)
	for {
		if _, err := os.Stat(p); err == nil {
			return nil
		}
		if time.Now().After(end) {
			return fmt.Errorf("%s did not appear in %s", p, d)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
