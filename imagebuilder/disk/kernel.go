package disk

import (
	"fmt"
	"path"
	"strings"

	"imagebuilder/overlay"
)

// Kernel is the kernel and initrd of a tree that the boot entry starts.
type Kernel struct {
	Version string
	// Linux and Initrd are tree paths ("boot/vmlinuz-6.1.0-13-amd64"),
	// with symlinks already resolved.
	Linux  string
	Initrd string
}

// initrdNames are the initrd names distributions give a kernel version.
var initrdNames = []string{
	"boot/initrd.img-%s",    // Debian, Ubuntu
	"boot/initramfs-%s.img", // RHEL, Fedora
	"boot/initrd-%s",        // SUSE
}

// FindKernel picks the newest /boot/vmlinuz-<version> of the tree and its
// initrd. A tree without a kernel, or whose newest kernel has no initrd, is
// an error that says so.
func FindKernel(tree *overlay.Tree) (Kernel, error) {
	var best string
	for p := range tree.Entries {
		v, ok := strings.CutPrefix(p, "boot/vmlinuz-")
		if !ok || v == "" || strings.Contains(v, "/") {
			continue
		}
		if best == "" || compareVersions(v, best) > 0 {
			best = v
		}
	}
	if best == "" {
		return Kernel{}, fmt.Errorf("the tree has no kernel: no /boot/vmlinuz-<version> (install a kernel package in the base, e.g. linux-image-cloud-amd64)")
	}
	linux, err := regularFile(tree, "boot/vmlinuz-"+best)
	if err != nil {
		return Kernel{}, err
	}
	for _, pat := range initrdNames {
		p := fmt.Sprintf(pat, best)
		if _, ok := tree.Entries[p]; !ok {
			continue
		}
		initrd, err := regularFile(tree, p)
		if err != nil {
			return Kernel{}, err
		}
		return Kernel{Version: best, Linux: linux, Initrd: initrd}, nil
	}
	return Kernel{}, fmt.Errorf("kernel /boot/vmlinuz-%s has no initrd (looked for /boot/initrd.img-%[1]s, /boot/initramfs-%[1]s.img, /boot/initrd-%[1]s); the base must ship one (Debian: initramfs-tools)", best)
}

// regularFile resolves symlinks at tree path p and checks that a regular
// file is staged there.
func regularFile(tree *overlay.Tree, p string) (string, error) {
	r, err := tree.Resolve(p)
	if err != nil {
		return "", err
	}
	e, ok := tree.Entries[r]
	if !ok || (e.Kind != overlay.KindFile && e.Kind != overlay.KindHardlink) {
		return "", fmt.Errorf("/%s is not a regular file in the tree", p)
	}
	return r, nil
}

// compareVersions orders version strings the way package managers roughly
// do: runs of digits compare as numbers, other runs as text, "~" sorts before
// anything (so 6.1~rc1 < 6.1).
func compareVersions(a, b string) int {
	for a != "" || b != "" {
		var x, y string
		x, a = nextSegment(a)
		y, b = nextSegment(b)
		if c := compareSegment(x, y); c != 0 {
			return c
		}
	}
	return 0
}

func nextSegment(s string) (seg, rest string) {
	if s == "" {
		return "", ""
	}
	digit := isDigit(s[0])
	i := 1
	for i < len(s) && isDigit(s[i]) == digit && s[i-1] != '~' && s[i] != '~' {
		i++
	}
	return s[:i], s[i:]
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func compareSegment(x, y string) int {
	switch {
	case x == y:
		return 0
	case x == "~":
		return -1
	case y == "~":
		return 1
	case x == "":
		return -1
	case y == "":
		return 1
	}
	if isDigit(x[0]) && isDigit(y[0]) {
		x, y = strings.TrimLeft(x, "0"), strings.TrimLeft(y, "0")
		if len(x) != len(y) {
			if len(x) < len(y) {
				return -1
			}
			return 1
		}
	}
	// A digit run sorts after text (6.1.0-13 > 6.1.0-rc).
	if isDigit(x[0]) != isDigit(y[0]) {
		if isDigit(x[0]) {
			return 1
		}
		return -1
	}
	return strings.Compare(x, y)
}

// espDir is the ESP directory holding one kernel version's files.
func espDir(entryID, version string) string {
	return path.Join("/", entryID, version)
}
