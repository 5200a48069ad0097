package build

import (
	"archive/tar"
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"imagebuilder/pkgbuild/atomicfile"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"imagebuilder/imagebuilder/disk"
	"imagebuilder/overlay"
)

// bundleInfo is what the pipeline needs to know about a cluster bundle
// before installing it.
type bundleInfo struct {
	Prefix     string
	ConfigHash string
}

// inspectBundle reads the bundle's manifest.json and etc/cluster.env.
func inspectBundle(path string) (*bundleInfo, error) {
	r, err := openTar(path)
	if err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	defer r.Close()
	tr := tar.NewReader(r)
	var manifest, env []byte
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("bundle %s: reading: %w", path, err)
		}
		switch strings.TrimPrefix(hdr.Name, "./") {
		case "manifest.json":
			manifest, err = io.ReadAll(io.LimitReader(tr, 256<<20))
		case "etc/cluster.env":
			env, err = io.ReadAll(io.LimitReader(tr, 1<<20))
		}
		if err != nil {
			return nil, fmt.Errorf("bundle %s: %w", path, err)
		}
	}
	if manifest == nil {
		return nil, fmt.Errorf("bundle %s: no manifest.json (is it a bundle made by `imagebuilder pkg build`?)", path)
	}
	if env == nil {
		return nil, fmt.Errorf("bundle %s: no etc/cluster.env: it carries no cluster configuration; run `imagebuilder genconf` on it first", path)
	}
	var m struct {
		Prefix     string `json:"prefix"`
		ConfigHash string `json:"config_hash"`
	}
	if err := json.Unmarshal(manifest, &m); err != nil {
		return nil, fmt.Errorf("bundle %s: manifest.json: %w", path, err)
	}
	info := &bundleInfo{Prefix: m.Prefix, ConfigHash: m.ConfigHash}
	sc := bufio.NewScanner(bytes.NewReader(env))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "CLUSTER_PREFIX="); ok && info.Prefix == "" {
			info.Prefix = strings.Trim(v, `"`)
		}
	}
	if info.Prefix == "" {
		return nil, fmt.Errorf("bundle %s: manifest.json names no prefix", path)
	}
	return info, nil
}

// writeFstab mounts the root and the EFI system partition by UUID; with
// grow, the root filesystem grows to fill its partition on boot.
func writeFstab(t *overlay.Tree, u disk.UUIDs, grow bool) error {
	fstab := "# Written by imagebuilder.\n" + u.Fstab("/boot/efi")
	if grow {
		fstab = strings.Replace(fstab, "defaults,errors=remount-ro", "defaults,errors=remount-ro,x-systemd.growfs", 1)
	}
	if err := t.MkdirAll("boot/efi", 0o755, 0, 0); err != nil {
		return err
	}
	return t.WriteFile("etc/fstab", []byte(fstab), 0o644, 0, 0)
}

// writeManifest writes <name>.manifest.json and SHA256SUMS atomically.
// The manifest holds no timings and no folder names, so the same inputs give
// the same manifest wherever and whenever they are built.
func writeManifest(dir string, res *Result) error {
	m := *res
	m.Stages = nil
	m.Artifacts = make([]Artifact, len(res.Artifacts))
	for i, a := range res.Artifacts {
		a.Path = relPath(dir, a.Path)
		m.Artifacts[i] = a
	}
	data, err := json.MarshalIndent(&m, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicWrite(filepath.Join(dir, res.Name+".manifest.json"), append(data, '\n')); err != nil {
		return err
	}
	sums := map[string]string{}
	if old, err := os.ReadFile(filepath.Join(dir, "SHA256SUMS")); err == nil {
		for _, line := range strings.Split(string(old), "\n") {
			if sum, name, ok := strings.Cut(line, "  "); ok {
				sums[name] = sum
			}
		}
	}
	for _, a := range res.Artifacts {
		sums[relPath(dir, a.Path)] = a.SHA256
	}
	names := make([]string, 0, len(sums))
	for n := range sums {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "%s  %s\n", sums[n], n)
	}
	return atomicWrite(filepath.Join(dir, "SHA256SUMS"), []byte(b.String()))
}

func atomicWrite(p string, data []byte) error { return atomicfile.WriteFile(p, data, 0o644) }

// relPath is p relative to dir, with slashes (artifacts lie inside dir).
func relPath(dir, p string) string {
	r, err := filepath.Rel(dir, p)
	if err != nil {
		return filepath.Base(p)
	}
	return filepath.ToSlash(r)
}
