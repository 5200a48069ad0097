package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// prepared is what the preparation found, for the report.
type prepared struct {
	// PackagesBuilt and PackagesCached are the states of the first
	// `pkg build` (not measured).
	PackagesBuilt  []string `json:"packages_built_in_preparation"`
	PackagesCached []string `json:"packages_cached_in_preparation"`
	BaseQcow2      string   `json:"libguestfs_base_qcow2,omitempty"`
	PackerBase     string   `json:"packer_base_qcow2,omitempty"`
}

// prepare makes every input the measured ways need; none of it is timed.
// Slow inputs (base images of the libguestfs and Packer ways, Packer
// itself) are cached under cache/bench keyed by what they are made from.
func prepare(ctx context.Context, log *slog.Logger, in *inputs, ways []string, cache string) (*prepared, error) {
	p := &prepared{}
	run := func(name string, env []string, args ...string) (string, error) {
		log.Info("prepare", "step", name)
		r, err := runStep(ctx, log, io.Discard, step{Name: name, Args: args, Env: env})
		return r.Stdout, err
	}
	out, err := run("pkg build", nil, in.pkgBuildStep().Args...)
	if err != nil {
		return nil, err
	}
	p.PackagesBuilt, p.PackagesCached = packageStates(out)
	serve := filepath.Join(in.Work, "serve")
	if err := os.RemoveAll(serve); err != nil {
		return nil, err
	}
	if _, err := run("genconf", nil, in.Bin, "genconf", "--config", in.Config, "--bundle", in.Bundle, "--out", serve); err != nil {
		return nil, err
	}
	m, _ := filepath.Glob(filepath.Join(serve, "cluster-bundle-*.tar.zst"))
	if len(m) != 1 {
		return nil, fmt.Errorf("genconf wrote %d cluster bundles in %s, want 1", len(m), serve)
	}
	in.ClusterBundle = m[0]
	if slices.Contains(ways, wayWarm) || slices.Contains(ways, wayCached) {
		// The warm way starts from a finished build in its output folder;
		// both start with the base layer in the cache.
		if err := os.RemoveAll(in.outDir(wayWarm)); err != nil {
			return nil, err
		}
		if _, err := run("imagebuilder build (warm-up)", nil, in.buildStep(in.ClusterBundle, in.outDir(wayWarm)).Args...); err != nil {
			return nil, err
		}
	}
	shell := filepath.Join(in.Scripts, "ways", "shell.sh")
	dir := filepath.Join(cache, "bench")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if slices.Contains(ways, wayLibguestfs) {
		key, err := hashFiles(in.Base, shell)
		if err != nil {
			return nil, err
		}
		key += "-" + baseRootExtraMiB
		in.BaseQcow2 = filepath.Join(dir, "base-"+key+".qcow2")
		if err := cached(in.BaseQcow2, func(tmp string) error {
			_, err := run("libguestfs base qcow2 (shell.sh, no bundle)", []string{"FORMATS=qcow2", "ROOT_EXTRA_MIB=" + baseRootExtraMiB}, shell, in.Base, "-", tmp, "base")
			return err
		}); err != nil {
			return nil, err
		}
		p.BaseQcow2 = in.BaseQcow2
	}
	if slices.Contains(ways, wayPacker) {
		if err := preparePacker(ctx, in, dir, run); err != nil {
			return nil, err
		}
		p.PackerBase = in.PackerBase
	}
	return p, nil
}

func preparePacker(ctx context.Context, in *inputs, dir string, run func(string, []string, ...string) (string, error)) error {
	out, err := run("get-packer", nil, filepath.Join(in.Scripts, "prep", "get-packer.sh"))
	if err != nil {
		return err
	}
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(l, "PACKER="); ok {
			in.Packer = v
		}
		if v, ok := strings.CutPrefix(l, "PACKER_PLUGIN_QEMU="); ok {
			in.PackerPluginQemu = v
		}
	}
	if in.Packer == "" || in.PackerPluginQemu == "" {
		return fmt.Errorf("get-packer.sh printed no PACKER=/PACKER_PLUGIN_QEMU= lines: %q", out)
	}
	sshBase := filepath.Join(in.Work, "base-ssh.tar")
	if _, err := run("Debian base with openssh-server (mkbase-ssh.sh)", nil, filepath.Join(in.Scripts, "prep", "mkbase-ssh.sh"), sshBase); err != nil {
		return err
	}
	in.SSHKey = filepath.Join(dir, "ssh", "id_ed25519")
	if _, err := os.Stat(in.SSHKey); err != nil {
		if err := os.MkdirAll(filepath.Dir(in.SSHKey), 0o700); err != nil {
			return err
		}
		if _, err := run("ssh-keygen", nil, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "imagebuilder-bench", "-f", in.SSHKey); err != nil {
			return err
		}
	}
	shell := filepath.Join(in.Scripts, "ways", "shell.sh")
	key, err := hashFiles(sshBase, shell, in.SSHKey+".pub")
	key += "-" + baseRootExtraMiB
	if err != nil {
		return err
	}
	in.PackerBase = filepath.Join(dir, "base-ssh-"+key+".qcow2")
	return cached(in.PackerBase, func(tmp string) error {
		_, err := run("packer base qcow2 (shell.sh, sshd, no bundle)",
			[]string{"FORMATS=qcow2", "KEEP_SSH_HOST_KEYS=1", "AUTHORIZED_KEYS=" + in.SSHKey + ".pub", "ROOT_EXTRA_MIB=" + baseRootExtraMiB},
			shell, sshBase, "-", tmp, "base")
		return err
	})
}

// baseRootExtraMiB is the free room of the libguestfs and Packer ways'
// base images beyond 30% of the base: the bundle (80 MiB) goes in after
// the image was sized, Packer's upload of it sits beside the extracted copy,
// and etcd preallocates a 64 MiB WAL on first boot (imagebuilder and the
// shell way size the root with the bundle already in it).
const baseRootExtraMiB = "320"

// cached makes path with make (which writes base.qcow2 into a scratch
// folder) unless it exists; path appears complete or not at all.
func cached(path string, make func(tmpDir string) error) error {
	if fi, err := os.Stat(path); err == nil && fi.Size() > 0 {
		return nil
	}
	tmp, err := os.MkdirTemp(filepath.Dir(path), ".make-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := make(tmp); err != nil {
		return err
	}
	return os.Rename(filepath.Join(tmp, "base.qcow2"), path)
}

// hashFiles is a short key over the contents of files.
func hashFiles(files ...string) (string, error) {
	h := sha256.New()
	for _, f := range files {
		r, err := os.Open(f)
		if err != nil {
			return "", err
		}
		_, err = io.Copy(h, r)
		r.Close()
		if err != nil {
			return "", fmt.Errorf("hashing %s: %w", f, err)
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// lookTools reports every missing program a way needs, with the package.
func lookTools(ways []string) error {
	need := map[string]string{"qemu-system-x86_64": "qemu-system-x86", "qemu-img": "qemu-utils", "zstd": "zstd"}
	for _, w := range ways {
		switch w {
		case wayShell, wayLibguestfs, wayPacker:
			for t, p := range map[string]string{"mkfs.ext4": "e2fsprogs", "mkfs.vfat": "dosfstools", "mcopy": "mtools", "sgdisk": "gdisk"} {
				need[t] = p
			}
		}
		switch w {
		case wayLibguestfs:
			need["guestfish"] = "libguestfs-tools linux-image-cloud-amd64"
		case wayPacker:
			need["mmdebstrap"] = "mmdebstrap"
			need["ssh-keygen"] = "openssh-client"
		}
	}
	var missing []string
	for t, p := range need {
		if _, err := exec.LookPath(t); err != nil {
			missing = append(missing, fmt.Sprintf("%s (apt-get install %s)", t, p))
		}
	}
	slices.Sort(missing)
	if len(missing) > 0 {
		return fmt.Errorf("missing tools: %s", strings.Join(missing, ", "))
	}
	return nil
}
