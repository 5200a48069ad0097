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
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"imagebuilder/distros"
	"imagebuilder/imagebuilder/base"
	"imagebuilder/imagebuilder/disk"
	"imagebuilder/overlay"
)

// Formats the pipeline writes, in the order it writes them: the tree
// formats first, then the raw disk and its conversions.
var Formats = []string{"tar", "oci", "pxe", "bash", "raw", "qcow2", "vmdk", "vhd", "iso"}

// diskFormats need the raw disk.
// DefaultFormats are written when Options.Formats is empty.
var DefaultFormats = []string{"raw", "qcow2"}

var diskFormats = []string{"raw", "qcow2", "vmdk", "vhd"}

// Boot modes of the disk formats.
const (
	BootHybrid = "hybrid" // UEFI (systemd-boot) and BIOS (GRUB)
	BootUEFI   = "uefi"   // UEFI only
)

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

	// Console is the serial console of the kernel command line
	// ("ttyS0,115200", the default; "none" for none). It is not added when
	// KernelCmdline already names a console=.
	Console string
	// Boot is BootHybrid (default) or BootUEFI.
	Boot string
	// NoGrowRoot leaves the root partition and filesystem at their built
	// size; by default they grow to fill the disk on first boot.
	NoGrowRoot bool
	// SourceDateEpoch is every timestamp in the outputs; 0 takes
	// $SOURCE_DATE_EPOCH, else disk.DefaultEpoch.
	SourceDateEpoch int64
	// InstallerBinary is the static installer program for the iso format
	// (CGO_ENABLED=0 build of imagebuilder/installer/cmd/installer);
	// default: imagebuilder-installer next to the running program, else in
	// PATH.
	InstallerBinary string
	// OnStage, when set, hears each step start (finished false) and end
	// (progress display).
	OnStage func(name string, finished bool)
	// OCIPush, when set with the oci format, is a registry reference the
	// image is pushed to ("127.0.0.1:5000/cluster/host:1").
	OCIPush string

	// InPlace keeps a raw or qcow2 vendor image's partitions, boot loader
	// and file system (XFS or ext4): the overlay is applied to a copy of it
	// by the in-place appliance VM (see inplace.go). ApplianceKernel is a
	// rootfs tarball whose kernel and modules run the appliance;
	// ApplianceBinary the static appliance (default: imagebuilder-appliance
	// next to the running program, else in PATH).
	InPlace                          bool
	ApplianceKernel, ApplianceBinary string
	// InPlaceRoot picks the root when several file systems of the vendor
	// image hold an os-release: "VG/LV" (LVM) or a partition ("vda3").
	InPlaceRoot string

	// CacheDir holds the base layers (CacheDir/layers: each base's root
	// filesystem made once, see disk.Layer) and the digests of local bases
	// (CacheDir/digests); default DefaultCacheDir(). NoCache makes the
	// layer in the staging folder and hashes every base in full.
	CacheDir string
	NoCache  bool
}

// Artifact is one output file.
type Artifact struct {
	Format string `json:"format"`
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	// Digest is the OCI image manifest digest (oci only).
	Digest string `json:"digest,omitempty"`
	// Pushed is the reference the OCI image was pushed to.
	Pushed string `json:"pushed,omitempty"`
}

// Stage is one timed step.
type Stage struct {
	Name    string  `json:"name"`
	Seconds float64 `json:"seconds"`
}

// Result describes a finished build; it is also written as <name>.manifest.json.
type Result struct {
	Name         string `json:"name"`
	Distro       string `json:"distro"`
	BaseKind     string `json:"base_kind,omitempty"`
	BaseSHA256   string `json:"base_sha256"`
	BundleSHA256 string `json:"bundle_sha256"`
	ConfigHash   string `json:"config_hash"`
	Prefix       string `json:"prefix"`
	Role         string `json:"role,omitempty"`
	// Formats are the requested formats; Boot the disk boot mode.
	Formats         []string `json:"formats"`
	Boot            string   `json:"boot,omitempty"`
	KernelCmdline   string   `json:"kernel_cmdline,omitempty"`
	GrowRoot        bool     `json:"grow_root,omitempty"`
	SourceDateEpoch int64    `json:"source_date_epoch"`
	// Disk is the partition layout of the disk formats.
	Disk *DiskLayout `json:"disk,omitempty"`
	// InPlace: the vendor image's layout was kept (Options.InPlace).
	InPlace   bool       `json:"in_place,omitempty"`
	Artifacts []Artifact `json:"artifacts"`
	Stages    []Stage    `json:"stages,omitempty"`
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
		o.Formats = slices.Clone(DefaultFormats)
	}
	var formats []string
	for _, f := range o.Formats {
		switch {
		case !slices.Contains(Formats, f):
			errs = append(errs, fmt.Errorf("format %q: supported formats are %s", f, strings.Join(Formats, ", ")))
		case !slices.Contains(formats, f):
			formats = append(formats, f)
		}
	}
	// In pipeline order, so the manifest does not depend on flag order.
	slices.SortFunc(formats, func(a, b string) int { return slices.Index(Formats, a) - slices.Index(Formats, b) })
	o.Formats = formats
	if slices.Contains(o.Formats, "iso") {
		if o.InstallerBinary == "" {
			o.InstallerBinary = findInstaller()
		}
		if o.InstallerBinary == "" {
			errs = append(errs, errors.New("format iso: no installer binary: build it with `make build` (bin/imagebuilder-installer) or pass --installer-bin"))
		} else if _, err := os.Stat(o.InstallerBinary); err != nil {
			errs = append(errs, fmt.Errorf("format iso: installer binary: %w", err))
		}
	}
	if o.OCIPush != "" && !slices.Contains(o.Formats, "oci") {
		errs = append(errs, errors.New("oci-push: needs --format oci"))
	}
	switch o.Boot {
	case "":
		o.Boot = BootHybrid
	case BootHybrid, BootUEFI:
	default:
		errs = append(errs, fmt.Errorf("boot %q: must be %s or %s", o.Boot, BootHybrid, BootUEFI))
	}
	if strings.ContainsAny(o.Console+o.KernelCmdline, "\n\r") {
		errs = append(errs, errors.New("console and kernel command line: must be one line"))
	}
	if strings.ContainsAny(o.Console, " \t") {
		errs = append(errs, fmt.Errorf("console %q: one console device and its settings, like ttyS0,115200", o.Console))
	}
	if o.SourceDateEpoch == 0 {
		if v := os.Getenv("SOURCE_DATE_EPOCH"); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				errs = append(errs, fmt.Errorf("SOURCE_DATE_EPOCH %q: must be seconds since 1970", v))
			}
			o.SourceDateEpoch = n
		}
	}
	if o.SourceDateEpoch <= 0 {
		o.SourceDateEpoch = disk.DefaultEpoch
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
	if o.InPlace {
		errs = append(errs, o.validateInPlace())
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
		if o.OnStage != nil {
			o.OnStage(name, false)
			defer o.OnStage(name, true)
		}
		err := fn()
		s := time.Since(start).Seconds()
		res.Stages = append(res.Stages, Stage{Name: name, Seconds: s})
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		log.Info("stage done", "stage", name, "seconds", fmt.Sprintf("%.2f", s))
		return ctx.Err()
	}
	if o.InPlace {
		res.Formats, res.SourceDateEpoch, res.InPlace = o.Formats, o.SourceDateEpoch, true
		if err := runInPlace(ctx, log, o, res, timed); err != nil {
			return nil, err
		}
		if err := timed("checksums and manifest", func() error { return writeManifest(o.OutDir, res) }); err != nil {
			return nil, err
		}
		return res, nil
	}

	err := runLayered(ctx, log, o, res, timed)
	var corrupt *disk.LayerCorruptError
	if errors.As(err, &corrupt) {
		// A cached layer went bad on disk: drop it and make it again.
		log.Warn("base layer is corrupt; making it again", "dir", corrupt.Dir, "error", err)
		if rerr := os.RemoveAll(corrupt.Dir); rerr != nil {
			return nil, errors.Join(err, rerr)
		}
		*res = Result{Name: o.Name, Role: o.Role, Stages: res.Stages}
		err = runLayered(ctx, log, o, res, timed)
	}
	if err != nil {
		return nil, err
	}
	return res, nil
}

// sparseFormats need no staged base: the disk formats come from the base
// layer plus the build's changes, the bash export from the bundle.
var sparseFormats = []string{"raw", "qcow2", "vmdk", "vhd", "bash"}

// runLayered stages what the build needs and writes the outputs. The base
// layer (disk.Layer: the base's root filesystem after its distro fixups) is
// found in the cache by layerKey or made from the staged base. When only
// sparseFormats are asked for and the layer is cached, the base is not
// staged at all: the tree holds the layer's entries and the build writes
// only its own files (bundle, unit links, fstab).
func runLayered(ctx context.Context, log *slog.Logger, o Options, res *Result, timed func(string, func() error) error) error {
	stage, err := os.MkdirTemp(o.OutDir, ".stage-")
	if err != nil {
		return fmt.Errorf("creating staging folder: %w", err)
	}
	defer os.RemoveAll(stage)
	root := filepath.Join(stage, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		return err
	}
	cache := o.CacheDir
	if cache == "" {
		cache = DefaultCacheDir()
	}
	digests := &digestCache{}
	if !o.NoCache {
		digests.dir = filepath.Join(cache, "digests")
	}

	var (
		info  *bundleInfo
		b     *base.Base
		tree  *overlay.Tree
		key   string
		lay   *disk.Layer
		lower map[string]*overlay.Entry // the entries the layer holds
	)
	defer func() {
		if b != nil {
			b.Close()
		}
	}()
	if err := timed("inspect inputs", func() error {
		var err error
		if b, err = base.OpenWith(ctx, o.Base, log, base.Options{FileDigest: digests.sum}); err != nil {
			return err
		}
		res.BaseKind, res.BaseSHA256 = string(b.Kind), b.Hex()
		if res.BundleSHA256, err = fileSHA256(o.Bundle); err != nil {
			return fmt.Errorf("bundle: %w", err)
		}
		if info, err = inspectBundle(o.Bundle); err != nil {
			return err
		}
		res.Prefix, res.ConfigHash = info.Prefix, info.ConfigHash
		if key, err = layerKey(ctx, digests, res.BaseSHA256, o.SourceDateEpoch); err != nil {
			return err
		}
		if !o.NoCache {
			if l, err := disk.OpenLayer(layerDir(cache, key), key); err == nil {
				lay = l
				touchLayer(l.Dir)
			} else if !errors.Is(err, os.ErrNotExist) {
				log.Warn("base layer unusable; making it again", "error", err)
				if err := os.RemoveAll(layerDir(cache, key)); err != nil {
					return err
				}
			}
		}
		return nil
	}); err != nil {
		return err
	}

	sparse := lay != nil && !slices.ContainsFunc(o.Formats, func(f string) bool { return !slices.Contains(sparseFormats, f) })
	var steps []struct {
		name string
		fn   func() error
	}
	add := func(name string, fn func() error) {
		steps = append(steps, struct {
			name string
			fn   func() error
		}{name, fn})
	}
	if sparse {
		add("reuse base layer", func() error {
			lower = lay.EntryMap()
			tree = overlay.NewSparseTree(root, lower)
			res.Distro = lay.Meta.Info["distro"]
			log.Info("base layer reused", "dir", lay.Dir, "distribution", res.Distro)
			return nil
		})
	} else {
		tree = overlay.NewTree(root)
		add("stage base", func() error { return b.Apply(ctx, tree) })
		add("detect distro", func() error {
			p, osr, err := distros.Detect(tree)
			if err != nil {
				return fmt.Errorf("base %s: %w", o.Base, err)
			}
			res.Distro = p.Name() + " " + osr["VERSION_ID"]
			log.Info("base distribution", "profile", p.Name(), "release", osr.Pretty())
			return p.Fixup(tree, osr)
		})
		add("base layer", func() error {
			lower = maps.Clone(tree.Entries)
			dir := filepath.Join(stage, "layer")
			if !o.NoCache {
				dir = layerDir(cache, key)
				defer pruneLayers(log, cache, keepLayers)
			}
			if lay != nil {
				p := lay.SameEntries(tree.Entries)
				if p == "" {
					return nil
				}
				log.Warn("cached base layer differs from the staged base; making it again", "dir", lay.Dir, "path", p)
				if err := os.RemoveAll(lay.Dir); err != nil {
					return err
				}
			}
			// Another build may be making the same layer: BuildLayer then
			// returns the one that landed first.
			var err error
			lay, err = disk.BuildLayer(ctx, log, tree, dir, disk.LayerOptions{
				Key: key, Seed: res.BaseSHA256, SourceDateEpoch: o.SourceDateEpoch, Tools: disk.DefaultTools(),
				Info: map[string]string{"distro": res.Distro},
			})
			return err
		})
	}
	add("install bundle", func() error {
		r, err := openTar(o.Bundle)
		if err != nil {
			return fmt.Errorf("bundle: %w", err)
		}
		defer r.Close()
		return tree.InstallBundle(r, overlay.HostLayout{Prefix: info.Prefix, Role: o.Role})
	})
	for _, s := range steps {
		if err := timed(s.name, s.fn); err != nil {
			return err
		}
	}

	res.Formats, res.SourceDateEpoch = o.Formats, o.SourceDateEpoch
	outs, wait := outputSteps(ctx, log, &o, tree, layered{lay, lower}, info, res, stage)
	for _, step := range outs {
		if !step.when {
			continue
		}
		if err := timed(step.name, step.fn); err != nil {
			wait()
			return err
		}
	}
	if err := timed("checksums and manifest", func() error {
		if err := wait(); err != nil {
			return err
		}
		return writeManifest(o.OutDir, res)
	}); err != nil {
		return err
	}
	return nil
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
