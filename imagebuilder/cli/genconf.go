package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"imagebuilder/genconf"
)

func newGenconfCmd(g *globals) *cobra.Command {
	var cfgPath, bundlePath, out string
	var check, printSchema bool
	cmd := &cobra.Command{
		Use:   "genconf --config config.yaml --bundle BUNDLE --out DIR",
		Short: "Validate the cluster configuration and bake it into a per-cluster bundle",
		Long: `genconf reads config.yaml and the scripts and secret files it names, reports
every problem at once with its field path and a hint (master_list[2],
ip_detect_path, secrets.join_token, ...), renders the packages' templates
(templates/*.tmpl in a package -> etc/<package>/...) and writes the immutable
config package (etc/cluster.env, etc/master_list, etc/ip-detect, and
etc/secrets.env with mode 0600) into a copy of the bundle.

Output in --out (default genconf/serve):
  cluster-bundle-<digest12>.tar.zst   (.tar.gz with bundle_compression: gzip)
  install.sh                          the bash path, with the bundle's sha256 baked in
  SHA256SUMS, config-summary.txt      (secrets by name only)
The same config and bundle always give the same cluster bundle digest.
Fields: genconf/schema/README.md; JSON Schema: --print-schema.

On a host without an image: copy install.sh and the bundle (or serve the
folder at bootstrap_url) and run, as root:
  ./install.sh --role master            # or agent, agent_public
  ./install.sh --upgrade                # from a newer genconf output
  ./install.sh --rollback | --uninstall`,
		Example: `  imagebuilder genconf --config examples/config.yaml --bundle build/bundle.tar.zst --out build/serve
  imagebuilder genconf --config config.yaml --check      # validate only
  imagebuilder genconf --print-schema > config.schema.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if printSchema {
				_, err := g.stdout.Write(genconf.Schema)
				return err
			}
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
			fmt.Fprintf(g.stdout, "cluster bundle %s\n  sha256 %s\n  config hash %s\ninstall.sh %s\n", res.Bundle, res.BundleSHA256, res.ConfigHash, res.InstallSh)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfgPath, "config", "config.yaml", "cluster configuration")
	f.StringVar(&bundlePath, "bundle", "", "bundle made by `imagebuilder pkg build`")
	f.StringVar(&out, "out", "genconf/serve", "output folder")
	f.BoolVar(&check, "check", false, "only validate the configuration")
	f.BoolVar(&printSchema, "print-schema", false, "print the JSON Schema of config.yaml and exit")
	return cmd
}
