// Package build is the image pipeline: base root filesystem + cluster bundle
// → staged tree → distro fixups → disk images, as an ordered list of small
// steps, each timed.
package build

import (
	"context"
	"errors"
	"fmt"
	"imagebuilder/pkgbuild/atomicfile"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"imagebuilder/distros"
	"imagebuilder/imagebuilder/base"
	"imagebuilder/imagebuilder/disk"
	"imagebuilder/overlay"
)

// Formats the pipeline writes.
var Formats = []string{"raw", "qcow2"}

// Options say what to build.
type Options struct {
	// Base is any reference imagebuilder/base opens: a rootfs tarball
	// (plain, gzip or zstd), a directory, oci:PATH[:TAG],
	// docker-archive:PATH[:TAG], docker://REF, a raw or qcow2 disk image.
	Base string
	// Bundle is the per-cluster bundle made by genconf.
	Bundle string
	// Role, when set, is baked into the image; else it comes at boot.
	Role string
	// OutDir receives the artifacts; Name is their base name.
	OutDir, Name string
	// Formats to write, from Formats.
	Formats []string
	// KernelCmdline is appended to the root= argument.
	KernelCmdline string
	// SizeMiB is the disk size; 0 sizes it to the content.
	SizeMiB int64
}

// Artifact is one output file.
type Artifact struct {
	Format string `json:"format"`
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Stage is one timed step.
type Stage struct {
	Name    string  `json:"name"`
	Seconds float64 `json:"seconds"`
}

// Result describes a finished build; it is also written as <name>.manifest.json.
type Result struct {
	Name         string     `json:"name"`
	Distro       string     `json:"distro"`
	BaseKind     string     `json:"base_kind,omitempty"`
	BaseSHA256   string     `json:"base_sha256"`
	BundleSHA256 string     `json:"bundle_sha256"`
	ConfigHash   string     `json:"config_hash"`
	Prefix       string     `json:"prefix"`
	Role         string     `json:"role,omitempty"`
	Artifacts    []Artifact `json:"artifacts"`
	Stages       []Stage    `json:"stages,omitempty"`
}

func (o *Options) validate() error {
	var errs []error
	if o.Base == "" {
		errs = append(errs, errors.New("base: required (a rootfs tarball, directory, oci:PATH, docker-archive:PATH, docker://REF, raw or qcow2 disk image)"))
	} else if _, _, err := base.Parse(o.Base); err != nil {
		errs = append(errs, err)
	}
	if o.Bundle == "" {
		errs = append(errs, errors.New("bundle: required (the cluster bundle from `imagebuilder genconf`)"))
	} else if _, err := os.Stat(o.Bundle); err != nil {
		errs = append(errs, fmt.Errorf("bundle %s: %w", o.Bundle, err))
	}
	if o.Role != "" && !overlay.ValidRole(o.Role) {
		errs = append(errs, fmt.Errorf("role %q: must be one of %s", o.Role, strings.Join(overlay.Roles, ", ")))
	}
	if len(o.Formats) == 0 {
		o.Formats = []string{"raw", "qcow2"}
	}
	for _, f := range o.Formats {
		if !slices.Contains(Formats, f) {
			errs = append(errs, fmt.Errorf("format %q: supported formats are %s", f, strings.Join(Formats, ", ")))
		}
	}
	if o.Name == "" {
		o.Name = "host"
	}
	if strings.ContainsAny(o.Name, "/\\ ") {
		errs = append(errs, fmt.Errorf("name %q: must be a plain file name", o.Name))
	}
	if o.OutDir == "" {
		errs = append(errs, errors.New("out: required (the output folder)"))
	}
	return errors.Join(errs...)
}

// Run builds the images. Artifacts appear under their final names only when
// complete; on error none is left half-written.
func Run(ctx context.Context, log *slog.Logger, o Options) (*Result, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
		return nil, fmt.Errorf("creating output folder: %w", err)
	}
	res := &Result{Name: o.Name, Role: o.Role}
	timed := func(name string, fn func() error) error {
		start := time.Now()
		log.Info("stage start", "stage", name)
		err := fn()
		s := time.Since(start).Seconds()
		res.Stages = append(res.Stages, Stage{Name: name, Seconds: s})
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		log.Info("stage done", "stage", name, "seconds", fmt.Sprintf("%.2f", s))
		return ctx.Err()
	}

	stage, err := os.MkdirTemp(o.OutDir, ".stage-")
	if err != nil {
		return nil, fmt.Errorf("creating staging folder: %w", err)
	}
	defer os.RemoveAll(stage)
	root := filepath.Join(stage, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		return nil, err
	}
	tree := overlay.NewTree(root)

	var info *bundleInfo
	var b *base.Base
	defer func() {
		if b != nil {
			b.Close()
		}
	}()
	steps := []struct {
		name string
		fn   func() error
	}{
		{"inspect inputs", func() error {
			var err error
			if b, err = base.Open(ctx, o.Base, log); err != nil {
				return err
			}
			res.BaseKind, res.BaseSHA256 = string(b.Kind), b.Hex()
			if res.BundleSHA256, err = fileSHA256(o.Bundle); err != nil {
				return fmt.Errorf("bundle: %w", err)
			}
			info, err = inspectBundle(o.Bundle)
			if err != nil {
				return err
			}
			res.Prefix, res.ConfigHash = info.Prefix, info.ConfigHash
			return nil
		}},
		{"stage base", func() error {
			return b.Apply(ctx, tree)
		}},
		{"detect distro", func() error {
			p, osr, err := distros.Detect(tree)
			if err != nil {
				return fmt.Errorf("base %s: %w", o.Base, err)
			}
			res.Distro = p.Name() + " " + osr["VERSION_ID"]
			log.Info("base distribution", "profile", p.Name(), "release", osr.Pretty())
			return p.Fixup(tree, osr)
		}},
		{"install bundle", func() error {
			r, err := openTar(o.Bundle)
			if err != nil {
				return fmt.Errorf("bundle: %w", err)
			}
			defer r.Close()
			return tree.InstallBundle(r, overlay.HostLayout{Prefix: info.Prefix, Role: o.Role})
		}},
	}
	for _, s := range steps {
		if err := timed(s.name, s.fn); err != nil {
			return nil, err
		}
	}

	seed := strings.Join([]string{res.BaseSHA256, res.BundleSHA256, o.Role, o.KernelCmdline, fmt.Sprint(o.SizeMiB)}, "\n")
	uuids := disk.PlanUUIDs(seed)
	raw := filepath.Join(o.OutDir, o.Name+".raw")
	if err := timed("write raw disk", func() error {
		if err := writeFstab(tree, uuids); err != nil {
			return err
		}
		_, err := disk.WriteRaw(ctx, log, tree, raw, disk.Options{
			Seed:          seed,
			KernelCmdline: o.KernelCmdline,
			SizeBytes:     o.SizeMiB << 20,
		})
		return err
	}); err != nil {
		return nil, err
	}
	if slices.Contains(o.Formats, "qcow2") {
		if err := timed("convert qcow2", func() error {
			return disk.ConvertQcow2(ctx, raw, filepath.Join(o.OutDir, o.Name+".qcow2"))
		}); err != nil {
			return nil, err
		}
	}
	if !slices.Contains(o.Formats, "raw") {
		os.Remove(raw)
	}
	if err := timed("checksums and manifest", func() error {
		for _, f := range Formats {
			if !slices.Contains(o.Formats, f) {
				continue
			}
			p := filepath.Join(o.OutDir, o.Name+"."+f)
			a, err := describe(f, p)
			if err != nil {
				return err
			}
			res.Artifacts = append(res.Artifacts, a)
		}
		return writeManifest(o.OutDir, res)
	}); err != nil {
		return nil, err
	}
	return res, nil
}

func fileSHA256(p string) (string, error) { return atomicfile.SHA256(p) }

func describe(format, p string) (Artifact, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return Artifact{}, err
	}
	sum, err := fileSHA256(p)
	if err != nil {
		return Artifact{}, err
	}
	return Artifact{Format: format, Path: p, Size: fi.Size(), SHA256: sum}, nil
}
