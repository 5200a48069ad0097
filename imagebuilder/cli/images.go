package cli

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"imagebuilder/imagebuilder/images"
)

// imagesFlags select and parameterize the images of an images.hcl file
// (the same flags Packer has: -only, -var).
type imagesFlags struct {
	only []string
	vars []string
}

func (f *imagesFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringSliceVar(&f.only, "only", nil, "with an images.hcl file: build only these sources (NAME or imagebuilder.NAME, globs allowed)")
	cmd.Flags().StringArrayVar(&f.vars, "var", nil, "with an images.hcl file: set a variable, KEY=VALUE (repeatable)")
}

func (f *imagesFlags) varMap() (map[string]string, error) {
	m := map[string]string{}
	for _, kv := range f.vars {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--var %q: want KEY=VALUE", kv)
		}
		m[k] = v
	}
	return m, nil
}

// loadImages parses and validates an images.hcl file.
func (f *imagesFlags) load(path string) (*images.File, []*images.Source, error) {
	vars, err := f.varMap()
	if err != nil {
		return nil, nil, err
	}
	file, err := images.Load(path, vars, f.only)
	if err != nil {
		return nil, nil, err
	}
	sel := file.Selected(f.only)
	if len(sel) == 0 {
		var names []string
		for _, s := range file.Selected(nil) {
			names = append(names, s.Name)
		}
		return nil, nil, fmt.Errorf("%s: --only %s matches none of the imagebuilder sources the build uses (%s)",
			path, strings.Join(f.only, ","), strings.Join(names, ", "))
	}
	return file, sel, nil
}

// buildImagesFile builds the selected images of an images.hcl file, one
// after the other, without Packer.
func buildImagesFile(cmd *cobra.Command, g *globals, path string, f *imagesFlags) error {
	for _, name := range []string{"base", "bundle", "role", "out", "name", "format", "cmdline", "size"} {
		if fl := cmd.Flags().Lookup(name); fl != nil && fl.Changed {
			return fmt.Errorf("--%s: set it in %s (or through a variable and --var), not as a flag, when building from a file", name, path)
		}
	}
	file, sel, err := f.load(path)
	if err != nil {
		return err
	}
	log := g.logger()
	for _, s := range file.Skipped() {
		log.Warn("skipping a source of another type (build it with packer)", "source", s)
	}
	var all []*images.Built
	for _, s := range sel {
		log.Info("building image", "source", s.Name, "out", s.OutputDirectory)
		b, err := images.Build(cmd.Context(), log, *s)
		if err != nil {
			return err
		}
		all = append(all, b)
	}
	if g.json {
		return g.printJSON(all)
	}
	w := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	for _, b := range all {
		res := b.Result
		fmt.Fprintf(w, "image %s (%s, prefix %s, role %s)\n", res.Name, res.Distro, res.Prefix, orDash(res.Role))
		for _, a := range res.Artifacts {
			fmt.Fprintf(w, "  %s\t%s\t%s\tsha256:%s\n", a.Format, a.Path, humanBytes(a.Size), a.SHA256)
		}
	}
	return w.Flush()
}
