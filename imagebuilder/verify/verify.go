// Package verify checks a built image against its build manifest
// (<name>.manifest.json) and reports drift: the artifact's size and sha256;
// for disks the partition table and the digest of every partition; for
// disks and rootfs tars, the cluster payload at the prefix file by file
// against the bundle's own manifest.json.
package verify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"imagebuilder/imagebuilder/build"
	"imagebuilder/imagebuilder/disk"
	"imagebuilder/pkgbuild/atomicfile"
)

// Check is one comparison.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
}

// Report is the outcome for one artifact.
type Report struct {
	Image    string  `json:"image"`
	Manifest string  `json:"manifest"`
	Format   string  `json:"format"`
	Drift    bool    `json:"drift"`
	Checks   []Check `json:"checks"`
}

func (r *Report) add(name string, ok bool, detail string, args ...any) {
	if len(args) > 0 {
		detail = fmt.Sprintf(detail, args...)
	}
	r.Checks = append(r.Checks, Check{Name: name, OK: ok, Detail: detail})
	if !ok {
		r.Drift = true
	}
}

// Options tune Image.
type Options struct {
	// Manifest is the build manifest; default the *.manifest.json beside
	// the image that lists it.
	Manifest string
	// Deep runs the partition and payload checks even when the artifact's
	// digest matches.
	Deep bool
	// Tools are qemu-img (to read qcow2, vmdk and vhd) and debugfs (to read
	// the root filesystem).
	Tools disk.Tools
	// TempDir holds scratch copies (a raw view of a converted disk).
	TempDir string
	Log     *slog.Logger
}

// Image verifies the artifact at image (a file, or an oci/pxe/bash folder,
// whose every listed file is checked) and returns one report per artifact.
// Drift is in the reports, not an error; errors are inputs that cannot be
// checked at all.
func Image(ctx context.Context, image string, o Options) ([]*Report, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	o.Tools = o.Tools.WithDefaults()
	abs, err := filepath.Abs(image)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	mpath, m, err := findManifest(abs, o.Manifest)
	if err != nil {
		return nil, err
	}
	mdir := filepath.Dir(mpath)
	rel, err := filepath.Rel(mdir, abs)
	if err != nil {
		return nil, err
	}
	rel = filepath.ToSlash(rel)
	var arts []build.Artifact
	for _, a := range m.Artifacts {
		if a.Path == rel || (fi.IsDir() && strings.HasPrefix(a.Path, rel+"/")) {
			arts = append(arts, a)
		}
	}
	if len(arts) == 0 {
		return nil, fmt.Errorf("image %s: not an artifact of %s (it lists %s)", image, mpath, artifactNames(m))
	}
	var reports []*Report
	for _, a := range arts {
		r, err := verifyArtifact(ctx, filepath.Join(mdir, filepath.FromSlash(a.Path)), mpath, m, a, o)
		if err != nil {
			return nil, err
		}
		reports = append(reports, r)
	}
	return reports, nil
}

func artifactNames(m *build.Result) string {
	var names []string
	for _, a := range m.Artifacts {
		names = append(names, a.Path)
	}
	return strings.Join(names, ", ")
}

// findManifest reads the given manifest, or the one beside image (or beside
// its folder) that lists it.
func findManifest(image, given string) (string, *build.Result, error) {
	if given != "" {
		m, err := readManifest(given)
		return given, m, err
	}
	for _, dir := range []string{filepath.Dir(image), filepath.Dir(filepath.Dir(image))} {
		cands, _ := filepath.Glob(filepath.Join(dir, "*.manifest.json"))
		slices.Sort(cands)
		for _, c := range cands {
			m, err := readManifest(c)
			if err != nil {
				continue
			}
			rel, _ := filepath.Rel(dir, image)
			rel = filepath.ToSlash(rel)
			for _, a := range m.Artifacts {
				if a.Path == rel || strings.HasPrefix(a.Path, rel+"/") {
					return c, m, nil
				}
			}
		}
	}
	return "", nil, fmt.Errorf("image %s: no *.manifest.json beside it lists it; pass --manifest", image)
}

func readManifest(p string) (*build.Result, error) {
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	var m build.Result
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("manifest %s: %w", p, err)
	}
	if len(m.Artifacts) == 0 {
		return nil, fmt.Errorf("manifest %s: lists no artifacts", p)
	}
	return &m, nil
}

func verifyArtifact(ctx context.Context, p, mpath string, m *build.Result, a build.Artifact, o Options) (*Report, error) {
	r := &Report{Image: p, Manifest: mpath, Format: a.Format}
	fi, err := os.Stat(p)
	if errors.Is(err, os.ErrNotExist) {
		r.add("exists", false, "missing")
		return r, nil
	} else if err != nil {
		return nil, err
	}
	sum, err := atomicfile.SHA256(p)
	if err != nil {
		return nil, err
	}
	same := sum == a.SHA256 && fi.Size() == a.Size
	if a.Format == "oci" {
		same = sum == a.SHA256 // the size is the whole layout's
	}
	if same {
		r.add("sha256", true, "%s", sum)
	} else {
		r.add("sha256", false, "sha256 %s size %d, the manifest says sha256 %s size %d", sum, fi.Size(), a.SHA256, a.Size)
	}
	if same && !o.Deep {
		return r, nil
	}
	switch a.Format {
	case "raw", "qcow2", "vmdk", "vhd":
		if m.Disk == nil {
			r.add("partition table", false, "the manifest records no disk layout")
			return r, nil
		}
		return r, checkDisk(ctx, r, p, a.Format, m, o)
	case "tar":
		return r, checkTarPayload(r, p, m)
	}
	return r, nil
}
