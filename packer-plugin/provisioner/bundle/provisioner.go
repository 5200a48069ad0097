package bundle

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path"
	"strings"

	"github.com/hashicorp/hcl/v2/hcldec"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
	"github.com/hashicorp/packer-plugin-sdk/template/interpolate"
)

// Provisioner is the "imagebuilder-bundle" provisioner.
type Provisioner struct {
	config Config
}

var _ packersdk.Provisioner = (*Provisioner)(nil)

// ConfigSpec is the HCL2 schema of the configuration.
func (p *Provisioner) ConfigSpec() hcldec.ObjectSpec { return p.config.FlatMapstructure().HCL2Spec() }

// Prepare validates the configuration.
func (p *Provisioner) Prepare(raws ...interface{}) error { return p.config.Prepare(raws...) }

// executeData is what execute_command can use.
type executeData struct {
	Path, Vars, Args, Bundle, Role string
}

// Provision uploads the bundle and the installer and runs it. The bundle is
// checked locally first with the offline builder's own install code.
func (p *Provisioner) Provision(ctx context.Context, ui packersdk.Ui, comm packersdk.Communicator, _ map[string]interface{}) error {
	c := &p.config
	stage := c.StagingDirectory
	var (
		scriptBody              []byte
		bundleSrc, remoteBundle string
	)
	script := c.installScript()
	var args []string
	if script != "" {
		// genconf's install.sh: stage into the root file system, as for an
		// image (no systemctl calls: the machine must not join while it is
		// being baked).
		args = append(args, "--root", "/", "--bundle", shellQuote(path.Join(stage, path.Base(c.Bundle))))
		if c.Role != "" {
			args = append(args, "--role", shellQuote(c.Role))
		}
		ui.Say(fmt.Sprintf("Installing %s with %s", c.Bundle, script))
		body, err := os.ReadFile(script)
		if err != nil {
			return fmt.Errorf("install_script: %w", err)
		}
		scriptBody = body
		bundleSrc = c.Bundle
		remoteBundle = path.Join(stage, path.Base(c.Bundle))
	} else {
		ui.Say(fmt.Sprintf("Checking %s and generating its installer (no install.sh beside the bundle)", c.Bundle))
		l, err := prepareLocal(c.Bundle, c.Role)
		if err != nil {
			return fmt.Errorf("bundle %s: %w", c.Bundle, err)
		}
		defer l.Close()
		if scriptBody, err = generateScript(l); err != nil {
			return err
		}
		bundleSrc = l.Tar
		remoteBundle = path.Join(stage, "bundle.tar")
		ui.Say(fmt.Sprintf("prefix %s, %d unit links, bundle tar %d MiB sha256:%s", l.Prefix, len(l.Links), l.Size>>20, l.SHA256))
	}

	remoteScript := path.Join(stage, "install.sh")
	if err := run(ctx, ui, comm, fmt.Sprintf("rm -rf %s && mkdir -p %s", shellQuote(stage), shellQuote(stage))); err != nil {
		return fmt.Errorf("creating staging_directory %s: %w", stage, err)
	}
	ui.Say(fmt.Sprintf("uploading %s to %s", bundleSrc, remoteBundle))
	if err := upload(comm, bundleSrc, remoteBundle); err != nil {
		return fmt.Errorf("uploading bundle: %w", err)
	}
	if err := comm.Upload(remoteScript, bytes.NewReader(scriptBody), nil); err != nil {
		return fmt.Errorf("uploading installer: %w", err)
	}
	vars := []string{
		"CLUSTER_BUNDLE=" + shellQuote(remoteBundle),
		"CLUSTER_ROLE=" + shellQuote(c.Role),
	}
	c.ctx.Data = &executeData{Path: shellQuote(remoteScript), Vars: strings.Join(vars, " "), Args: strings.Join(args, " "), Bundle: shellQuote(remoteBundle), Role: shellQuote(c.Role)}
	command, err := interpolate.Render(c.ExecuteCommand, &c.ctx)
	if err != nil {
		return fmt.Errorf("execute_command: %w", err)
	}
	ui.Say("Running the installer")
	runErr := run(ctx, ui, comm, command)
	// Remove the uploads whatever happened; an install error wins.
	cleanErr := run(ctx, ui, comm, "rm -rf "+shellQuote(stage))
	if runErr != nil {
		return fmt.Errorf("installing the bundle: %w", runErr)
	}
	if cleanErr != nil {
		return fmt.Errorf("removing staging_directory %s: %w", stage, cleanErr)
	}
	return nil
}

func upload(comm packersdk.Communicator, src, dst string) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	return comm.Upload(dst, f, &fi)
}

// run runs command on the machine and fails on a non-zero exit status.
func run(ctx context.Context, ui packersdk.Ui, comm packersdk.Communicator, command string) error {
	cmd := &packersdk.RemoteCmd{Command: command}
	if err := cmd.RunWithUi(ctx, comm, ui); err != nil {
		return err
	}
	if s := cmd.ExitStatus(); s != 0 {
		return fmt.Errorf("%q exited with status %d", command, s)
	}
	return nil
}
