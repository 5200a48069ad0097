//go:generate packer-sdc mapstructure-to-hcl2 -type Config

// Package bundle is the Packer provisioner "imagebuilder-bundle": it uploads
// a cluster bundle through the communicator of any builder (amazon-ebs, qemu,
// vsphere, null …) and installs it on the machine with the role set per
// build, so images baked by Packer's own builders carry the same tree as
// imagebuilder's images.
package bundle

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/hashicorp/packer-plugin-sdk/common"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
	"github.com/hashicorp/packer-plugin-sdk/template/config"
	"github.com/hashicorp/packer-plugin-sdk/template/interpolate"

	"imagebuilder/overlay"
)

// Config is the provisioner's configuration.
type Config struct {
	common.PackerConfig `mapstructure:",squash"`

	// Cluster bundle made by `imagebuilder genconf` (tar.zst or tar).
	Bundle string `mapstructure:"bundle" required:"true"`
	// Role baked into /etc/cluster/role: master, agent or agent_public.
	// Empty leaves the role to the boot.
	Role string `mapstructure:"role"`
	// Installer to run on the machine. Default: install.sh beside the bundle
	// when it exists (genconf's), else a script this provisioner generates
	// that installs exactly like imagebuilder's offline builder.
	InstallScript string `mapstructure:"install_script"`
	// Folder on the machine for the uploads; removed afterwards.
	// Default: /tmp/imagebuilder-bundle.
	StagingDirectory string `mapstructure:"staging_directory"`
	// How to run the installer: {{.Path}} is the uploaded script, {{.Vars}}
	// the environment (CLUSTER_BUNDLE, CLUSTER_ROLE), {{.Args}} the
	// arguments genconf's install.sh takes ("--root / --bundle B --role R";
	// empty for the generated installer), {{.Bundle}} and {{.Role}} the
	// uploaded bundle and the role; all shell-quoted.
	// Default: "{{.Vars}} bash {{.Path}} {{.Args}}"; with a non-root SSH
	// user use "sudo -n env {{.Vars}} bash {{.Path}} {{.Args}}".
	ExecuteCommand string `mapstructure:"execute_command"`

	ctx interpolate.Context
}

// ProvisionerType is the name users write in `provisioner "…"`.
const ProvisionerType = "imagebuilder-bundle"

// Prepare decodes and validates raws, reporting every problem at once.
func (c *Config) Prepare(raws ...interface{}) error {
	*c = Config{}
	err := config.Decode(c, &config.DecodeOpts{
		PluginType:         ProvisionerType,
		Interpolate:        true,
		InterpolateContext: &c.ctx,
		InterpolateFilter:  &interpolate.RenderFilter{Exclude: []string{"execute_command"}},
	}, raws...)
	if err != nil {
		return err
	}
	if c.StagingDirectory == "" {
		c.StagingDirectory = "/tmp/imagebuilder-bundle"
	}
	if c.ExecuteCommand == "" {
		c.ExecuteCommand = "{{.Vars}} bash {{.Path}} {{.Args}}"
	}
	var errs *packersdk.MultiError
	add := func(field, format string, args ...any) {
		errs = packersdk.MultiErrorAppend(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	checkFile := func(field, p, what string) {
		fi, err := os.Stat(p)
		switch {
		case err != nil:
			add(field, "%s: %v", p, unwrapPath(err))
		case fi.IsDir():
			add(field, "%s is a directory; expected %s", p, what)
		}
	}
	if c.Bundle == "" {
		add("bundle", "required (a cluster bundle made by `imagebuilder genconf`)")
	} else {
		checkFile("bundle", c.Bundle, "a cluster bundle")
	}
	if c.Role != "" && !overlay.ValidRole(c.Role) {
		add("role", "%q is not a role; use one of %s, or leave it empty to decide at boot", c.Role, strings.Join(overlay.Roles, ", "))
	}
	if c.InstallScript != "" {
		checkFile("install_script", c.InstallScript, "a shell script")
	}
	if !path.IsAbs(c.StagingDirectory) || path.Clean(c.StagingDirectory) == "/" || strings.ContainsAny(c.StagingDirectory, " '\"$\\`") {
		add("staging_directory", "%q must be an absolute path below / without spaces or quotes", c.StagingDirectory)
	}
	if !strings.Contains(c.ExecuteCommand, "{{.Path}}") {
		add("execute_command", "%q must run {{.Path}}", c.ExecuteCommand)
	}
	if errs != nil && len(errs.Errors) > 0 {
		return errs
	}
	return nil
}

// installScript is the script to upload: the configured one, else
// install.sh beside the bundle, else "" (generate one).
func (c *Config) installScript() string {
	if c.InstallScript != "" {
		return c.InstallScript
	}
	p := filepath.Join(filepath.Dir(c.Bundle), "install.sh")
	if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
		return p
	}
	return ""
}

func unwrapPath(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}
