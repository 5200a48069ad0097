package cli

import (
	"fmt"
	"path/filepath"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"imagebuilder/imagebuilder/build"
)

func newBuildCmd(g *globals) *cobra.Command {
	var o build.Options
	var fromFile imagesFlags
	cmd := &cobra.Command{
		Use:   "build [IMAGES.hcl] --base BASE --bundle BUNDLE --out DIR",
		Short: "Layer a cluster bundle onto a base root filesystem and write disk images",
		Long: `build stages the base root filesystem, detects its distribution, applies
that family's fixups, installs the cluster bundle at its prefix, links the
cluster units, and writes a GPT disk (EFI system partition with
systemd-boot + ext4 root) as raw and qcow2. No root privileges, loop devices
or mounts are used: owners, modes and device nodes come from the inputs.

Outputs in --out: NAME.raw, NAME.qcow2, NAME.manifest.json, SHA256SUMS.`,
		Example: `  imagebuilder build --base build/base-debian12.tar \
    --bundle build/serve/cluster-bundle-*.tar.zst --role master --out build/images

  # leave the role to the boot (kernel cmdline cluster.role= or SMBIOS credential)
  imagebuilder build --base base.tar.zst --bundle cb.tar.zst --format qcow2 --out out

  # the images of a Packer template (images.hcl), without Packer
  imagebuilder build images.hcl --only debian-master --var out=build/images`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				return buildImagesFile(cmd, g, args[0], &fromFile)
			}
			if matches, _ := filepath.Glob(o.Bundle); len(matches) == 1 {
				o.Bundle = matches[0]
			}
			res, err := build.Run(cmd.Context(), g.logger(), o)
			if err != nil {
				return err
			}
			if g.json {
				return g.printJSON(res)
			}
			w := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintf(w, "image %s (%s, prefix %s, role %s)\n", res.Name, res.Distro, res.Prefix, orDash(res.Role))
			for _, a := range res.Artifacts {
				fmt.Fprintf(w, "  %s\t%s\t%s\tsha256:%s\n", a.Format, a.Path, humanBytes(a.Size), a.SHA256[:16])
			}
			for _, s := range res.Stages {
				fmt.Fprintf(w, "  stage\t%s\t%.1fs\t\n", s.Name, s.Seconds)
			}
			return w.Flush()
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Base, "base", "", "base root filesystem tarball (tar, tar.gz or tar.zst)")
	f.StringVar(&o.Bundle, "bundle", "", "cluster bundle made by `imagebuilder genconf`")
	f.StringVar(&o.Role, "role", "", "bake this role (master, agent, agent_public); empty: decided at boot")
	f.StringVar(&o.OutDir, "out", "", "output folder")
	f.StringVar(&o.Name, "name", "host", "base name of the output files")
	f.StringSliceVar(&o.Formats, "format", []string{"raw", "qcow2"}, "output formats: raw, qcow2")
	f.StringVar(&o.KernelCmdline, "cmdline", "", "extra kernel command line (default console settings: console=tty0 console=ttyS0,115200)")
	f.Int64Var(&o.SizeMiB, "size", 0, "disk size in MiB (0: fit the content)")
	fromFile.add(cmd)
	return cmd
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
