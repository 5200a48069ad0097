package cli

import (
	"errors"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"imagebuilder/imagebuilder/verify"
)

// errDrift makes the command exit 1 after its report is printed.
var errDrift = errors.New("drift found")

func newVerifyCmd(g *globals) *cobra.Command {
	var o verify.Options
	cmd := &cobra.Command{
		Use:   "verify IMAGE",
		Short: "Check an image against its build manifest and report any drift",
		Long: `verify compares an artifact of "imagebuilder build" with the manifest the
build wrote beside it (NAME.manifest.json): its size and sha256. When those
differ (or with --deep), it finds what drifted: for disks (raw, qcow2, vmdk,
vhd) the partition table and the digest of every partition, and when the
root partition changed, every path of the cluster payload (the bundle at its
prefix, read with debugfs, nothing mounted) against the bundle's own
manifest.json; for a rootfs tar, that payload check on the tar.

IMAGE may also be an oci, pxe or bash folder: each file the manifest lists
in it is checked. Exit status 0: as built; 1: drift (or an error).`,
		Example: `  imagebuilder verify build/images/host.qcow2
  imagebuilder verify --deep --json build/images/host.raw
  imagebuilder verify --manifest /srv/images/host.manifest.json /mnt/usb/host.raw`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Log = g.logger()
			reports, err := verify.Image(cmd.Context(), args[0], o)
			if err != nil {
				return err
			}
			drift := false
			for _, r := range reports {
				drift = drift || r.Drift
			}
			if g.json {
				if err := g.printJSON(reports); err != nil {
					return err
				}
			} else {
				w := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
				for _, r := range reports {
					state := "as built"
					if r.Drift {
						state = "DRIFT"
					}
					fmt.Fprintf(w, "%s (%s): %s\n", r.Image, r.Format, state)
					for _, c := range r.Checks {
						mark := "ok"
						if !c.OK {
							mark = "DRIFT"
						}
						fmt.Fprintf(w, "  %s\t%s\t%s\n", mark, c.Name, c.Detail)
					}
				}
				if err := w.Flush(); err != nil {
					return err
				}
			}
			if drift {
				return errDrift
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Manifest, "manifest", "", "build manifest (default: the *.manifest.json beside IMAGE that lists it)")
	f.BoolVar(&o.Deep, "deep", false, "check partitions and the cluster payload even when the digest matches")
	f.StringVar(&o.TempDir, "tmp", "", "scratch folder for a raw view of qcow2/vmdk/vhd disks (default $TMPDIR)")
	return cmd
}
