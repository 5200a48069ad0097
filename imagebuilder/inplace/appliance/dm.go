package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"

	"imagebuilder/imagebuilder/inplace/lvm"
)

// Device-mapper through its ioctls on /dev/mapper/control
// (include/uapi/linux/dm-ioctl.h): struct dm_ioctl is 312 bytes, followed
// by the command's data; a table is a list of dm_target_spec (40 bytes)
// each followed by its NUL-terminated parameters, padded to 8 bytes.
const (
	dmIoctlSize  = 312
	dmSpecSize   = 40
	dmDevCreate  = 3
	dmDevRemove  = 4
	dmDevSuspend = 6
	dmTableLoad  = 9
	dmControl    = "/dev/mapper/control"
)

func dmCmd(nr uintptr) uintptr {
	// _IOWR(0xfd, nr, struct dm_ioctl)
	return 3<<30 | dmIoctlSize<<16 | 0xfd<<8 | nr
}

// dmIoctl runs one device-mapper command on the device called name and
// returns the kernel's reply header.
func dmIoctl(nr uintptr, name string, targets int, data []byte) ([]byte, error) {
	fd, err := unix.Open(dmControl, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("device-mapper is not available (%s: %w; the appliance needs dm-mod)", dmControl, err)
	}
	defer unix.Close(fd)
	size := max(16384, dmIoctlSize+len(data))
	buf := make([]byte, size)
	le := binary.LittleEndian
	le.PutUint32(buf[0:], 4) // interface version 4.0.0
	le.PutUint32(buf[12:], uint32(size))
	le.PutUint32(buf[16:], dmIoctlSize)
	le.PutUint32(buf[20:], uint32(targets))
	if len(name) > 127 {
		return nil, fmt.Errorf("device-mapper name %q is too long", name)
	}
	copy(buf[48:], name)
	copy(buf[dmIoctlSize:], data)
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), dmCmd(nr), uintptr(unsafe.Pointer(&buf[0])))
	if errno != 0 {
		return nil, errno
	}
	return buf[:dmIoctlSize], nil
}

// dmCreate makes a device-mapper device called name with the table,
// activates it and returns the path of a block device node for it.
func dmCreate(name string, table []lvm.Target) (string, error) {
	reply, err := dmIoctl(dmDevCreate, name, 0, nil)
	if err != nil {
		return "", fmt.Errorf("creating device-mapper device %s: %w", name, err)
	}
	dev := binary.LittleEndian.Uint64(reply[40:])
	var data []byte
	le := binary.LittleEndian
	for _, t := range table {
		params := append([]byte(t.Params), 0)
		n := dmSpecSize + len(params)
		n = (n + 7) &^ 7
		spec := make([]byte, n)
		le.PutUint64(spec[0:], t.Start)
		le.PutUint64(spec[8:], t.Length)
		le.PutUint32(spec[20:], uint32(n))
		copy(spec[24:40], t.Type)
		copy(spec[dmSpecSize:], params)
		data = append(data, spec...)
	}
	if _, err := dmIoctl(dmTableLoad, name, len(table), data); err != nil {
		dmIoctl(dmDevRemove, name, 0, nil)
		return "", fmt.Errorf("loading the table of %s (%v): %w", name, table, err)
	}
	if _, err := dmIoctl(dmDevSuspend, name, 0, nil); err != nil { // no DM_SUSPEND_FLAG: resume
		dmIoctl(dmDevRemove, name, 0, nil)
		return "", fmt.Errorf("activating %s: %w", name, err)
	}
	node := "/dev/" + name
	os.Remove(node)
	if err := unix.Mknod(node, unix.S_IFBLK|0o600, int(dev)); err != nil {
		dmIoctl(dmDevRemove, name, 0, nil)
		return "", fmt.Errorf("device node for %s: %w", name, err)
	}
	return node, nil
}

// dmRemove removes a device made by dmCreate.
func dmRemove(name string) error {
	os.Remove("/dev/" + name)
	if _, err := dmIoctl(dmDevRemove, name, 0, nil); err != nil && !errors.Is(err, unix.ENXIO) {
		return fmt.Errorf("removing device-mapper device %s: %w", name, err)
	}
	return nil
}
