package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"imagebuilder/genconf"
)

func newGenconfCmd(g *globals) *cobra.Command {
	var cfgPath, bundlePath, out string
	var check bool
	cmd := &cobra.Command{
		Use:   "genconf --config config.yaml --bundle BUNDLE --out DIR",
		Short: "Validate the cluster configuration and bake it into a per-cluster bundle",
		Long: `genconf reads config.yaml and the ip-detect script it names, reports every
problem at once (with the field path: master_list[2], ip_detect_path, ...),
and writes the immutable config package (etc/cluster.env, etc/master_list,
etc/ip-detect) into a copy of the bundle. Output in --out:
cluster-bundle-<digest>.tar.zst, SHA256SUMS and config-summary.txt.
The same config and bundle always give the same cluster bundle digest.`,
		Example: `  imagebuilder genconf --config examples/config.yaml --bundle build/bundle.tar.zst --out build/serve
  imagebuilder genconf --config config.yaml --check      # validate only`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := genconf.Load(cfgPath)
			if err != nil {
				return err
			}
			if check {
				fmt.Fprintf(g.stdout, "%s: valid (cluster %s, %d master(s), prefix %s)\n", cfgPath, cfg.ClusterName, len(cfg.MasterList), cfg.Prefix)
				return nil
			}
			if bundlePath == "" || out == "" {
				return fmt.Errorf("--bundle and --out are required (or use --check)")
			}
			res, err := genconf.Generate(g.logger(), cfg, bundlePath, out)
			if err != nil {
				return err
			}
			if g.json {
				return g.printJSON(res)
			}
			fmt.Fprintf(g.stdout, "cluster bundle %s\n  sha256 %s\n  config hash %s\n", res.Bundle, res.BundleSHA256, res.ConfigHash)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfgPath, "config", "config.yaml", "cluster configuration")
	f.StringVar(&bundlePath, "bundle", "", "bundle made by `imagebuilder pkg build`")
	f.StringVar(&out, "out", "genconf/serve", "output folder")
	f.BoolVar(&check, "check", false, "only validate the configuration")
	return cmd
}
