// Package images reads image definitions from images.hcl — the same Packer
// HCL2 template that `packer build` reads — and builds them without Packer.
// It understands only what it needs: variables (defaults and overrides),
// sources of type "imagebuilder" and the build blocks' sources lists.
// The source's fields and their validation are shared with the Packer
// plugin's builder, so both entry points accept and refuse the same input.
package images

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"imagebuilder/genconf"
	"imagebuilder/imagebuilder/build"
	"imagebuilder/overlay"
)

// SourceType is the Packer source (builder) type the images are declared with.
const SourceType = "imagebuilder"

// Source is one image definition: the fields of a `source "imagebuilder"`
// block, named as in HCL.
type Source struct {
	// Name is the source's label ("debian-master").
	Name string
	// Base is the base root filesystem tarball.
	Base string
	// Bundle is the cluster bundle; with GenconfConfig it is the base bundle
	// that genconf bakes the configuration into first.
	Bundle string
	// GenconfConfig is a genconf config.yaml; IPDetect overrides the
	// ip-detect script the config names.
	GenconfConfig, IPDetect string
	// Role is baked into the image; empty leaves it to the boot.
	Role string
	// Formats to write (build.Formats); empty means raw and qcow2.
	Formats []string
	// OutputDirectory receives the artifacts, named ImageName.<format>.
	OutputDirectory, ImageName string
	// KernelCmdline is appended to the kernel command line.
	KernelCmdline string
	// DiskSizeMiB is the disk size; 0 fits the content.
	DiskSizeMiB int64
}

// Problem is one thing wrong with a field of a source.
type Problem struct {
	Field   string
	Message string
}

func (p Problem) Error() string { return p.Field + ": " + p.Message }

// Problems checks every field and returns all problems, in field order.
// It reads the file system (stat) but changes nothing.
func (s *Source) Problems() []Problem {
	var ps []Problem
	add := func(field, format string, args ...any) {
		ps = append(ps, Problem{Field: field, Message: fmt.Sprintf(format, args...)})
	}
	checkFile := func(field, p, what string) {
		if p == "" {
			add(field, "required (%s)", what)
			return
		}
		fi, err := os.Stat(p)
		switch {
		case err != nil:
			add(field, "%s: %v", p, unwrapPath(err))
		case fi.IsDir():
			add(field, "%s is a directory; expected %s", p, what)
		}
	}
	checkFile("base", s.Base, "a root filesystem tarball: tar, tar.gz or tar.zst")
	bundleWhat := "a cluster bundle made by `imagebuilder genconf`"
	if s.GenconfConfig != "" {
		bundleWhat = "the bundle made by `imagebuilder pkg build`; genconf_config is baked into it"
	}
	checkFile("bundle", s.Bundle, bundleWhat)
	if s.GenconfConfig != "" {
		checkFile("genconf_config", s.GenconfConfig, "a genconf config.yaml")
	}
	if s.IPDetect != "" {
		if s.GenconfConfig == "" {
			add("ip_detect", "needs genconf_config: ip_detect replaces the script the genconf config names")
		} else {
			checkFile("ip_detect", s.IPDetect, "an ip-detect script")
		}
	}
	if s.Role != "" && !overlay.ValidRole(s.Role) {
		add("role", "%q is not a role; use one of %s, or leave it empty to decide at boot", s.Role, strings.Join(overlay.Roles, ", "))
	}
	seen := map[string]bool{}
	for _, f := range s.Formats {
		switch {
		case !slices.Contains(build.Formats, f):
			add("formats", "%q is not a format; supported: %s", f, strings.Join(build.Formats, ", "))
		case seen[f]:
			add("formats", "%q is listed twice (each format is written once, as %s.%s)", f, s.imageName(), f)
		}
		seen[f] = true
	}
	if s.Formats != nil && len(s.Formats) == 0 {
		add("formats", "empty: list at least one of %s, or leave formats out for raw and qcow2", strings.Join(build.Formats, ", "))
	}
	if s.OutputDirectory == "" {
		add("output_directory", "required (the folder that receives the images)")
	}
	if n := s.imageName(); n == "" || n == "." || n == ".." || strings.ContainsAny(n, "/\\ ") {
		add("image_name", "%q must be a plain file name (no slashes or spaces)", n)
	}
	if s.DiskSizeMiB < 0 {
		add("disk_size_mib", "%d is negative; use 0 to fit the content", s.DiskSizeMiB)
	}
	return ps
}

// Validate returns the problems as one error, or nil.
func (s *Source) Validate() error {
	ps := s.Problems()
	if len(ps) == 0 {
		return nil
	}
	msgs := make([]string, len(ps))
	for i, p := range ps {
		msgs[i] = p.Error()
	}
	return fmt.Errorf("source %q: %s", s.Name, strings.Join(msgs, "; "))
}

func (s *Source) imageName() string {
	if s.ImageName != "" {
		return s.ImageName
	}
	return s.Name
}

// Outputs are the files the source writes, one per format, plus the manifest.
func (s *Source) Outputs() []string {
	formats := s.Formats
	if len(formats) == 0 {
		formats = build.Formats
	}
	var out []string
	for _, f := range formats {
		out = append(out, filepath.Join(s.OutputDirectory, s.imageName()+"."+f))
	}
	return out
}

// Options are the engine's options for this source, given the cluster
// bundle to install.
func (s *Source) Options(clusterBundle string) build.Options {
	return build.Options{
		Base:          s.Base,
		Bundle:        clusterBundle,
		Role:          s.Role,
		OutDir:        s.OutputDirectory,
		Name:          s.imageName(),
		Formats:       slices.Clone(s.Formats),
		KernelCmdline: s.KernelCmdline,
		SizeMiB:       s.DiskSizeMiB,
	}
}

// Built is the result of Build.
type Built struct {
	// Result is the engine's result: artifacts with checksums.
	Result *build.Result `json:"result"`
	// Genconf is set when the source ran genconf first.
	Genconf *genconf.Output `json:"genconf,omitempty"`
}

// Build validates the source, runs genconf when genconf_config is set
// (writing the cluster bundle under <output_directory>/genconf/), and builds
// the images.
func Build(ctx context.Context, log *slog.Logger, s Source) (*Built, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	out := &Built{}
	cb := s.Bundle
	if s.GenconfConfig != "" {
		cfg, err := loadGenconf(s.GenconfConfig, s.IPDetect)
		if err != nil {
			return nil, fmt.Errorf("source %q: genconf_config: %w", s.Name, err)
		}
		g, err := genconf.Generate(log, cfg, s.Bundle, filepath.Join(s.OutputDirectory, "genconf"))
		if err != nil {
			return nil, fmt.Errorf("source %q: genconf: %w", s.Name, err)
		}
		out.Genconf, cb = g, g.Bundle
	}
	res, err := build.Run(ctx, log, s.Options(cb))
	if err != nil {
		return nil, fmt.Errorf("source %q: %w", s.Name, err)
	}
	out.Result = res
	return out, nil
}

// loadGenconf reads a genconf config; a non-empty ipDetect replaces the
// ip-detect script the config names.
func loadGenconf(configPath, ipDetect string) (*genconf.Resolved, error) {
	data, err := os.ReadFile(configPath)
	if err != nil {
		return nil, err
	}
	read := os.ReadFile
	if ipDetect != "" {
		read = func(string) ([]byte, error) { return os.ReadFile(ipDetect) }
	}
	return genconf.Parse(configPath, data, read)
}

func unwrapPath(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}
