package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Way names, in the order of the table.
const (
	wayCold       = "imagebuilder-cold"
	wayCached     = "imagebuilder-cached"
	wayWarm       = "imagebuilder-warm"
	wayShell      = "shell"
	wayLibguestfs = "libguestfs"
	wayPacker     = "packer"
)

// allWays is every way, in table order.
var allWays = []string{wayCold, wayCached, wayWarm, wayShell, wayLibguestfs, wayPacker}

// slowWays run only -slow-n rounds.
var slowWays = map[string]bool{wayLibguestfs: true, wayPacker: true}

// wayLabels describe each way in the table and the JSON.
var wayLabels = map[string]string{
	wayCold:       "imagebuilder build --no-cache (cold: base staged, fixed up and formatted; package store warm)",
	wayCached:     "imagebuilder build with the base layer cached (the base formatted once, as the libguestfs and Packer ways start from a prepared base qcow2)",
	wayWarm:       "imagebuilder after a config-only change: pkg build + genconf + build",
	wayShell:      "shell: tar -x, fixups, mkfs.ext4 -d, mkfs.vfat+mtools ESP, sgdisk, qemu-img",
	wayLibguestfs: "libguestfs: copy base qcow2, guestfish tar-in bundle + unit links (TCG appliance)",
	wayPacker:     "packer qemu builder: boot base (TCG), upload + extract bundle over SSH, shutdown",
}

// inputs are the paths every way builds from, made by prepare.
type inputs struct {
	Bin, Base, Scripts, Work string
	// Bundle is the product bundle (pkg build); ClusterBundle the genconf
	// output of the reference config.
	Bundle, ClusterBundle string
	Config                string
	PackagesDir, Store    string
	// BaseQcow2 is the libguestfs way's starting image (the base alone).
	BaseQcow2 string
	// PackerBase, SSHKey, Packer, PackerPluginQemu are the Packer way's.
	PackerBase, SSHKey, Packer, PackerPluginQemu string
}

// outDir is where a way writes its image.
func (in *inputs) outDir(way string) string { return filepath.Join(in.Work, "out", way) }

// output is the qcow2 a way writes.
func (in *inputs) output(way string) string { return filepath.Join(in.outDir(way), "host.qcow2") }

// stepsFor returns the commands of one round of way. Work that is not part
// of the measurement (emptying the output folder, writing the changed
// config) is done here, before the clock starts.
func (in *inputs) stepsFor(way string, round int) ([]step, error) {
	out := in.outDir(way)
	if way != wayWarm {
		if err := os.RemoveAll(out); err != nil {
			return nil, err
		}
	}
	script := func(name string) string { return filepath.Join(in.Scripts, "ways", name) }
	switch way {
	case wayCold:
		return []step{in.buildStep(in.ClusterBundle, out, "--no-cache")}, nil
	case wayCached:
		return []step{in.buildStep(in.ClusterBundle, out)}, nil
	case wayWarm:
		cfg, err := in.changedConfig(round)
		if err != nil {
			return nil, err
		}
		serve := filepath.Join(in.Work, "serve-warm", fmt.Sprint(round))
		if err := os.RemoveAll(serve); err != nil {
			return nil, err
		}
		return []step{
			in.pkgBuildStep(),
			{Name: "genconf", Args: []string{in.Bin, "--json", "genconf", "--config", cfg, "--bundle", in.Bundle, "--out", serve}},
			in.buildStep(filepath.Join(serve, "cluster-bundle-*.tar.zst"), out),
		}, nil
	case wayShell:
		return []step{{Name: "shell.sh", Args: []string{script("shell.sh"), in.Base, in.ClusterBundle, out}}}, nil
	case wayLibguestfs:
		return []step{{Name: "libguestfs.sh", Args: []string{script("libguestfs.sh"), in.BaseQcow2, in.ClusterBundle, out}}}, nil
	case wayPacker:
		return []step{{Name: "packer.sh", Args: []string{script("packer.sh"), in.PackerBase, in.SSHKey, in.ClusterBundle, out},
			Env: []string{"PACKER=" + in.Packer, "PACKER_PLUGIN_QEMU=" + in.PackerPluginQemu}}}, nil
	}
	return nil, fmt.Errorf("unknown way %q (ways: %s)", way, strings.Join(allWays, ", "))
}

// buildStep builds the qcow2 every way writes (the raw disk is scratch).
func (in *inputs) buildStep(bundle, out string, flags ...string) step {
	args := []string{in.Bin, "--json", "build", "--base", in.Base, "--bundle", bundle, "--out", out, "--name", "host", "--format", "qcow2"}
	return step{Name: "imagebuilder build", Args: append(args, flags...)}
}

// pkgBuildStep rebuilds the product bundle; its table output says, per
// package, "built" or "cached".
func (in *inputs) pkgBuildStep() step {
	return step{Name: "pkg build", Args: []string{in.Bin, "pkg", "build", "--packages", in.PackagesDir, "--store", in.Store, "--out", in.Bundle}}
}

// changedConfig writes the reference config with one value changed per
// round (join_timeout), beside a copy of its ip-detect: a config-only
// change, so no package may be rebuilt.
func (in *inputs) changedConfig(round int) (string, error) {
	data, err := os.ReadFile(in.Config)
	if err != nil {
		return "", err
	}
	text := string(data)
	if !strings.Contains(text, "\njoin_timeout:") {
		return "", fmt.Errorf("config %s: no join_timeout line to change", in.Config)
	}
	var lines []string
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, "join_timeout:") {
			l = fmt.Sprintf("join_timeout: %dm", 6+round)
		}
		lines = append(lines, l)
	}
	dir := filepath.Join(in.Work, "config-warm")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	ipDetect, err := os.ReadFile(filepath.Join(filepath.Dir(in.Config), "ip-detect"))
	if err != nil {
		return "", fmt.Errorf("config %s: reading its ip-detect: %w", in.Config, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ip-detect"), ipDetect, 0o755); err != nil {
		return "", err
	}
	p := filepath.Join(dir, "config.yaml")
	return p, os.WriteFile(p, []byte(strings.Join(lines, "\n")), 0o644)
}

// packageStates reads `pkg build`'s table: "<id>  built|cached" lines.
func packageStates(stdout string) (built, cached []string) {
	for _, l := range strings.Split(stdout, "\n") {
		f := strings.Fields(l)
		if len(f) != 2 {
			continue
		}
		switch f[1] {
		case "built":
			built = append(built, f[0])
		case "cached":
			cached = append(cached, f[0])
		}
	}
	return built, cached
}
