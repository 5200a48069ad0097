package main

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"imagebuilder/imagebuilder/inplace/lvm"
)

// A root candidate is a file system holding an os-release: a partition of
// /dev/vda (or the whole disk), or an LVM2 logical volume activated with
// device-mapper.
type candidate struct {
	node, name, fs string
	// dm is the device-mapper name of an activated logical volume.
	dm string
	// ranges are the byte ranges of /dev/vda the file system occupies, in
	// order (nil for a striped logical volume).
	ranges [][2]uint64
}

func (c candidate) String() string { return c.name + " (" + c.fs + ")" }

// rootNames are logical volume names preferred when several hold an
// os-release (RHEL and Azure images: rootvg/rootlv; Fedora: root;
// older RHEL: lv_root).
var rootNames = []string{"root", "rootlv", "lv_root"}

// mountRoot finds the image's root and mounts it at at (read-write unless
// readOnly). want
// ("VG/LV" or a partition such as "vda3", from ib.root=) picks one when
// several file systems hold an os-release. The returned function unmounts
// it and deactivates a logical volume.
func mountRoot(at, want string, readOnly bool) (*os.File, string, func() error, error) {
	os.MkdirAll(at, 0o755)
	var devs []string
	entries, _ := os.ReadDir("/sys/class/block/vda")
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "vda") {
			devs = append(devs, e.Name())
		}
	}
	devs = append(devs, "vda")
	var cands []candidate
	var tried []string
	var pvs []foundPV
	for _, d := range devs {
		pv, err := readPV(d)
		if err == nil {
			pvs = append(pvs, pv)
			continue
		}
		if !errors.Is(err, lvm.ErrNoLabel) {
			return nil, "", nil, fmt.Errorf("/dev/%s: %w", d, err)
		}
		c, why := probe("/dev/"+d, "/dev/"+d)
		if why != "" {
			tried = append(tried, why)
			continue
		}
		start, size, err := partRange(d)
		if err != nil {
			return nil, "", nil, err
		}
		c.ranges = [][2]uint64{{start, size}}
		cands = append(cands, c)
	}
	lvCands, notes, err := activateLVs(pvs, want)
	cands = append(cands, lvCands...)
	tried = append(tried, notes...)
	release := func(keep candidate) {
		for _, c := range cands {
			if c.dm != "" && c.dm != keep.dm {
				dmRemove(c.dm)
			}
		}
	}
	if err != nil {
		release(candidate{})
		return nil, "", nil, err
	}
	c, err := choose(cands, want, tried)
	if err != nil {
		release(candidate{})
		return nil, "", nil, err
	}
	release(c)
	var flags uintptr = unix.MS_NOATIME
	if readOnly {
		flags = unix.MS_RDONLY
	}
	if err := unix.Mount(c.node, at, c.fs, flags, ""); err != nil {
		if c.dm != "" {
			dmRemove(c.dm)
		}
		return nil, "", nil, fmt.Errorf("mounting %s: %w", c, err)
	}
	f, err := os.Open(at)
	if err != nil {
		return nil, "", nil, err
	}
	done := func() error {
		unix.Sync()
		if err := unix.Unmount(at, 0); err != nil {
			return fmt.Errorf("unmounting %s: %w", c, err)
		}
		if c.dm != "" {
			return dmRemove(c.dm)
		}
		return nil
	}
	kind := "partition"
	if c.dm != "" {
		kind = "lvm"
	}
	fmt.Printf("IBROOT %s %s %s\n", kind, c.name, c.fs)
	for _, r := range c.ranges {
		fmt.Printf("IBRANGE %d %d\n", r[0], r[1])
	}
	return f, c.String(), done, nil
}

func joinCands(cs []candidate) string {
	var s []string
	for _, c := range cs {
		s = append(s, c.String())
	}
	return strings.Join(s, ", ")
}

// probe mounts node read-only as XFS, then ext4, and reports whether it
// holds an os-release; it leaves nothing mounted.
func probe(node, name string) (candidate, string) {
	const at = "/probe"
	os.MkdirAll(at, 0o755)
	for _, fs := range []string{"xfs", "ext4"} {
		if err := unix.Mount(node, at, fs, unix.MS_RDONLY, ""); err != nil {
			continue
		}
		found := false
		for _, osr := range []string{"/etc/os-release", "/usr/lib/os-release"} {
			if _, err := os.Lstat(at + osr); err == nil {
				found = true
			}
		}
		unix.Unmount(at, 0)
		if found {
			return candidate{node: node, name: name, fs: fs}, ""
		}
		return candidate{}, name + " (" + fs + ", no os-release)"
	}
	return candidate{}, name + " (no XFS or ext4)"
}

// choose picks the root among the candidates: the one named by want
// (ib.root=), else the only one, else the only logical volume with a root
// name. tried lists what was probed, for the error.
func choose(cands []candidate, want string, tried []string) (candidate, error) {
	var pick []candidate
	for _, c := range cands {
		if want == "" || c.name == want || c.name == "/dev/"+want {
			pick = append(pick, c)
		}
	}
	if len(pick) > 1 {
		var named []candidate
		for _, c := range pick {
			if _, lv, ok := strings.Cut(c.name, "/"); ok && c.dm != "" && slices.Contains(rootNames, lv) {
				named = append(named, c)
			}
		}
		if len(named) == 1 {
			pick = named
		}
	}
	switch {
	case len(pick) == 0 && want != "":
		return candidate{}, fmt.Errorf("root %q (ib.root=): no such file system with an os-release (found: %s; tried: %s)", want, joinCands(cands), strings.Join(tried, ", "))
	case len(pick) == 0:
		return candidate{}, fmt.Errorf("no XFS or ext4 root with an os-release on /dev/vda (tried %s)", strings.Join(tried, ", "))
	case len(pick) > 1:
		return candidate{}, fmt.Errorf("several file systems hold an os-release: %s; choose the root with --in-place-root (ib.root=VG/LV or a partition such as vda3)", joinCands(pick))
	}
	return pick[0], nil
}

// partRange is where partition dev (or the whole disk) lies on /dev/vda,
// in bytes.
func partRange(dev string) (start, size uint64, err error) {
	read := func(p string) (uint64, error) {
		data, err := os.ReadFile(p)
		if err != nil {
			return 0, err
		}
		return strconv.ParseUint(strings.TrimSpace(string(data)), 10, 64)
	}
	if dev != "vda" {
		if start, err = read("/sys/class/block/" + dev + "/start"); err != nil {
			return 0, 0, fmt.Errorf("start of %s: %w", dev, err)
		}
	}
	if size, err = read("/sys/class/block/" + dev + "/size"); err != nil {
		return 0, 0, fmt.Errorf("size of %s: %w", dev, err)
	}
	return start * 512, size * 512, nil
}
