package distros

import (
	"archive/tar"
	"bytes"
	"fmt"
	"path"
	"sort"
	"strings"

	"imagebuilder/overlay"
)

// ExposedKernel is a kernel found under /usr/lib/modules/<version>/ and
// linked into /boot.
type ExposedKernel struct {
	Version, Linux, Initrd string
}

// ExposeKernels makes every kernel that ships only as
// /usr/lib/modules/<version>/vmlinuz (RHEL 9's kernel-core before its
// scriptlets run, bootc-style OCI images) visible where boot loaders and the
// disk writer look: /boot/vmlinuz-<version>, and its initramfs.img (or
// initrd.img) as /boot/<initrdName % version>. They are hardlinks, so the
// image holds the bytes once. Kernels already in /boot are left alone.
func ExposeKernels(t *overlay.Tree, initrdName string) ([]ExposedKernel, error) {
	var out []ExposedKernel
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	link := func(name, target string) error {
		return tw.WriteHeader(&tar.Header{Name: name, Linkname: target, Typeflag: tar.TypeLink, Mode: 0o644})
	}
	for _, dir := range moduleDirs(t) {
		version := path.Base(dir)
		linux := fileTarget(t, dir+"/vmlinuz")
		if linux == "" {
			continue
		}
		k := ExposedKernel{Version: version, Linux: "boot/vmlinuz-" + version}
		_, inBoot := t.Entries[k.Linux]
		if inBoot && hasInitrd(t, version) {
			continue
		}
		if err := t.MkdirAll("boot", 0o755, 0, 0); err != nil {
			return nil, err
		}
		if !inBoot {
			if err := link(k.Linux, linux); err != nil {
				return nil, err
			}
		}
		for _, name := range []string{"initramfs.img", "initrd.img"} {
			if initrd := fileTarget(t, dir+"/"+name); initrd != "" {
				k.Initrd = fmt.Sprintf(initrdName, version)
				if _, ok := t.Entries[k.Initrd]; ok {
					break
				}
				if err := link(k.Initrd, initrd); err != nil {
					return nil, err
				}
				break
			}
		}
		out = append(out, k)
	}
	if len(out) == 0 {
		return nil, nil
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := t.Apply(&buf, "", overlay.ApplyOptions{}); err != nil {
		return nil, fmt.Errorf("linking kernels into /boot: %w", err)
	}
	return out, nil
}

// hasInitrd reports whether /boot holds an initrd for version under any
// family's name.
func hasInitrd(t *overlay.Tree, version string) bool {
	for _, pat := range []string{"boot/initrd.img-%s", "boot/initramfs-%s.img", "boot/initrd-%s"} {
		if _, ok := t.Entries[fmt.Sprintf(pat, version)]; ok {
			return true
		}
	}
	return false
}

// moduleDirs lists the tree paths of /usr/lib/modules/<version> (or
// /lib/modules/<version> on a base without merged /usr), sorted.
func moduleDirs(t *overlay.Tree) []string {
	base := "usr/lib/modules"
	if r, err := t.Resolve("lib/modules"); err == nil && r != base {
		if e, ok := t.Entries[r]; ok && e.Kind == overlay.KindDir {
			base = r
		}
	}
	var out []string
	for p, e := range t.Entries {
		if e.Kind == overlay.KindDir && path.Dir(p) == base && !strings.Contains(strings.TrimPrefix(p, base+"/"), "/") {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

// fileTarget returns the tree path of the regular file at p (symlinks
// resolved, hardlinks to their first name), or "".
func fileTarget(t *overlay.Tree, p string) string {
	r, err := t.Resolve(p)
	if err != nil {
		return ""
	}
	e, ok := t.Entries[r]
	switch {
	case !ok:
		return ""
	case e.Kind == overlay.KindFile:
		return r
	case e.Kind == overlay.KindHardlink:
		return e.Link
	}
	return ""
}
