package inplace

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"path"
	"regexp"
	"strings"

	"imagebuilder/imagebuilder/base"
)

// Kernel is a kernel and the modules the appliance loads, in load order.
type Kernel struct {
	Version string
	Linux   []byte
	Modules []Module
}

// Module is one kernel module file.
type Module struct {
	Name string
	Data []byte
}

// wanted are the modules the appliance needs when they are not built in;
// optional ones may be missing.
var wanted = []struct {
	name     string
	optional bool
}{
	{"virtio_pci", true}, {"virtio_blk", true}, {"crc32c_generic", true}, {"crc32c-intel", true},
	{"xfs", false}, {"ext4", true}, {"dm_mod", true},
}

var vmlinuzRE = regexp.MustCompile(`^(?:\./)?boot/vmlinuz-(.+)$`)

// KernelFromBase reads a kernel and its modules from a rootfs tarball (for
// example the Debian base the tests use).
func KernelFromBase(baseTar string) (*Kernel, error) {
	k := &Kernel{}
	var dep string
	// First pass: the kernel and modules.dep.
	err := eachEntry(baseTar, func(hdr *tar.Header, r io.Reader) error {
		if hdr.Typeflag != tar.TypeReg {
			return nil
		}
		if m := vmlinuzRE.FindStringSubmatch(hdr.Name); m != nil && k.Version == "" {
			k.Version = m[1]
			data, err := io.ReadAll(r)
			k.Linux = data
			return err
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if k.Version == "" {
		return nil, fmt.Errorf("%s has no /boot/vmlinuz-<version>", baseTar)
	}
	modDir := "usr/lib/modules/" + k.Version + "/"
	err = eachEntry(baseTar, func(hdr *tar.Header, r io.Reader) error {
		if strings.TrimPrefix(hdr.Name, "./") == modDir+"modules.dep" {
			data, err := io.ReadAll(r)
			dep = string(data)
			return err
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if dep == "" {
		return nil, fmt.Errorf("%s has no /%smodules.dep", baseTar, modDir)
	}
	order, err := loadOrder(dep)
	if err != nil {
		return nil, err
	}
	need := map[string]int{}
	for i, p := range order {
		need[modDir+p] = i
	}
	k.Modules = make([]Module, len(order))
	err = eachEntry(baseTar, func(hdr *tar.Header, r io.Reader) error {
		i, ok := need[strings.TrimPrefix(hdr.Name, "./")]
		if !ok || hdr.Typeflag != tar.TypeReg {
			return nil
		}
		data, err := io.ReadAll(r)
		k.Modules[i] = Module{Name: path.Base(hdr.Name), Data: data}
		return err
	})
	for i, m := range k.Modules {
		if m.Data == nil {
			return nil, fmt.Errorf("%s: module %s is listed in modules.dep but missing", baseTar, order[i])
		}
	}
	return k, err
}

// loadOrder resolves the wanted modules and their dependencies from
// modules.dep into a load order (dependencies first).
func loadOrder(dep string) ([]string, error) {
	deps := map[string][]string{}
	byName := map[string]string{}
	for _, line := range strings.Split(dep, "\n") {
		mod, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		deps[mod] = strings.Fields(rest)
		byName[modName(mod)] = mod
	}
	var order []string
	seen := map[string]bool{}
	var add func(string)
	add = func(m string) {
		if seen[m] {
			return
		}
		seen[m] = true
		ds := deps[m]
		for i := len(ds) - 1; i >= 0; i-- {
			add(ds[i])
		}
		order = append(order, m)
	}
	for _, w := range wanted {
		m, ok := byName[modName(w.name)]
		if !ok {
			continue // built in, or optional and absent
		}
		add(m)
	}
	if len(order) == 0 {
		return nil, errors.New("modules.dep lists none of the modules the appliance needs")
	}
	return order, nil
}

// modName is a module's name from its path, with - and _ alike.
func modName(p string) string {
	n := path.Base(p)
	for _, ext := range []string{".xz", ".zst", ".gz"} {
		n = strings.TrimSuffix(n, ext)
	}
	return strings.ReplaceAll(strings.TrimSuffix(n, ".ko"), "-", "_")
}

func eachEntry(p string, fn func(*tar.Header, io.Reader) error) error {
	r, err := base.OpenTar(p)
	if err != nil {
		return err
	}
	defer r.Close()
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading %s: %w", p, err)
		}
		if err := fn(hdr, tr); err != nil {
			return err
		}
	}
}
