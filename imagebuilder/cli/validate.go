package cli

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newValidateCmd(g *globals) *cobra.Command {
	var f imagesFlags
	cmd := &cobra.Command{
		Use:   "validate IMAGES.hcl",
		Short: "Check an images.hcl file: syntax, variables, sources and their inputs",
		Long: `validate reads an images.hcl file (the Packer template that
` + "`imagebuilder build FILE`" + ` and ` + "`packer build`" + ` both read) and checks every
imagebuilder source its build uses: known fields, values of the right type,
base and bundle files that exist, roles, formats, and outputs that do not
collide. Each problem is printed as FILE:LINE:COL: message; the exit code is
1 when there is any.`,
		Example: `  imagebuilder validate images.hcl
  imagebuilder validate images.hcl --var debian_base=/srv/bases/debian12.tar --only 'debian-*'`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, sel, err := f.load(args[0])
			if err != nil {
				return err
			}
			if g.json {
				names := make([]string, len(sel))
				for i, s := range sel {
					names[i] = s.Name
				}
				return g.printJSON(map[string]any{"file": args[0], "valid": true, "sources": names})
			}
			for _, s := range sel {
				fmt.Fprintf(g.stdout, "%s: source %q OK (%s)\n", args[0], s.Name, s.OutputDirectory)
			}
			return nil
		},
	}
	f.add(cmd)
	return cmd
}
