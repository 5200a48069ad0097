//go:generate packer-sdc mapstructure-to-hcl2 -type Config

// Package imagebuilder is the Packer builder "imagebuilder": it runs
// imagebuilder's offline engine (base root filesystem + cluster bundle →
// disk images) with no VM and no root privileges, and returns every file it
// wrote with its SHA-256.
package imagebuilder

import (
	"fmt"
	"os"

	"github.com/hashicorp/packer-plugin-sdk/common"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
	"github.com/hashicorp/packer-plugin-sdk/template/config"
	"github.com/hashicorp/packer-plugin-sdk/template/interpolate"

	"imagebuilder/imagebuilder/images"
)

// Config is the builder's configuration; the fields are those of a
// `source "imagebuilder"` block in images.hcl, which `imagebuilder build`
// reads too.
type Config struct {
	common.PackerConfig `mapstructure:",squash"`

	// Base root filesystem tarball (tar, tar.gz or tar.zst) of Debian,
	// Ubuntu or RHEL.
	Base string `mapstructure:"base" required:"true"`
	// Cluster bundle made by `imagebuilder genconf`; with genconf_config,
	// the bundle made by `imagebuilder pkg build` that genconf bakes the
	// configuration into first.
	Bundle string `mapstructure:"bundle" required:"true"`
	// A genconf config.yaml: run genconf on bundle before building; the
	// cluster bundle is written under output_directory/genconf/.
	GenconfConfig string `mapstructure:"genconf_config"`
	// An ip-detect script replacing the one genconf_config names.
	IPDetect string `mapstructure:"ip_detect"`
	// Role baked into the image: master, agent or agent_public. Empty
	// leaves the role to the boot (kernel cmdline cluster.role= or the
	// systemd credential cluster.role).
	Role string `mapstructure:"role"`
	// Formats to write: raw, qcow2. Default: both.
	Formats []string `mapstructure:"formats"`
	// Folder that receives the images. Default: output-<build name>.
	OutputDirectory string `mapstructure:"output_directory"`
	// Base name of the image files. Default: the build's name.
	ImageName string `mapstructure:"image_name"`
	// Extra kernel command line.
	KernelCmdline string `mapstructure:"kernel_cmdline"`
	// Disk size in MiB; 0 fits the content.
	DiskSizeMiB int64 `mapstructure:"disk_size_mib"`

	ctx interpolate.Context
}

// Prepare decodes and validates raws into c, reporting every problem at
// once. It reads the file system (stat) but changes nothing.
func (c *Config) Prepare(raws ...interface{}) ([]string, error) {
	*c = Config{}
	err := config.Decode(c, &config.DecodeOpts{
		PluginType:         BuilderID,
		Interpolate:        true,
		InterpolateContext: &c.ctx,
	}, raws...)
	if err != nil {
		return nil, err
	}
	if c.OutputDirectory == "" {
		c.OutputDirectory = "output-" + c.PackerBuildName
	}
	if c.ImageName == "" {
		c.ImageName = c.PackerBuildName
	}
	var errs *packersdk.MultiError
	s := c.Source()
	for _, p := range s.Problems() {
		errs = packersdk.MultiErrorAppend(errs, p)
	}
	if !c.PackerForce {
		for _, out := range s.Outputs() {
			if _, err := os.Stat(out); err == nil {
				errs = packersdk.MultiErrorAppend(errs, fmt.Errorf("output_directory: %s already exists; remove it or run packer build -force to replace it", out))
			}
		}
	}
	if errs != nil && len(errs.Errors) > 0 {
		return nil, errs
	}
	var warnings []string
	if c.Role == "" {
		warnings = append(warnings, "role is empty: the image takes its role at boot (kernel cmdline cluster.role= or the systemd credential cluster.role)")
	}
	return warnings, nil
}

// Source is the image definition the configuration describes.
func (c *Config) Source() images.Source {
	name := c.PackerBuildName
	if name == "" {
		name = c.ImageName
	}
	return images.Source{
		Name: name, Base: c.Base, Bundle: c.Bundle,
		GenconfConfig: c.GenconfConfig, IPDetect: c.IPDetect, Role: c.Role,
		Formats: c.Formats, OutputDirectory: c.OutputDirectory, ImageName: c.ImageName,
		KernelCmdline: c.KernelCmdline, DiskSizeMiB: c.DiskSizeMiB,
	}
}

func (c *Config) String() string { return fmt.Sprintf("imagebuilder %s", c.ImageName) }
