package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"imagebuilder/pkgbuild"
	"imagebuilder/pkgbuild/bundle"
)

func newPkgCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pkg",
		Short: "Build packages from packages/<name>/{buildinfo.json,build} and assemble the bundle",
		Long: `pkg works on package definitions: packages/<name>/buildinfo.json (sources,
requires, units, ...) and packages/<name>/build (a bash script that installs
into $OUT). See "imagebuilder pkg build --help".`,
		Example: `  imagebuilder pkg build --out build/bundle.tar.zst`,
	}
	cmd.AddCommand(newPkgBuildCmd(g), newPkgGoSumCmd(g))
	return cmd
}

func defaultCacheDir() string {
	if d := os.Getenv("IMAGEBUILDER_CACHE"); d != "" {
		return d
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return ".cache"
	}
	return filepath.Join(d, "imagebuilder")
}

func newPkgBuildCmd(g *globals) *cobra.Command {
	var (
		packagesDir, storeDir, out, prefix, repo string
		jobs                                     int
		epoch                                    int64
	)
	cmd := &cobra.Command{
		Use:   "build [NAME...] --out BUNDLE",
		Short: "Build packages in a bubblewrap sandbox and assemble the bundle (the master tarball)",
		Long: `build builds the named packages (all of packages/ when none is named) and
everything they require, in dependency order and in parallel, each inside a
bubblewrap sandbox with no network. A package's id is <name>--<hash> over all
its inputs; a package whose id is already in the store is not rebuilt.

The bundle written to --out holds every package under packages/<id>/, the
active/ links, the bin/ lib/ sbin/ symlink farms, the systemd units with one
target per role, active.json and manifest.json. It carries no cluster
configuration yet: that is genconf's job.`,
		Example: `  imagebuilder pkg build --out build/bundle.tar.zst
  imagebuilder pkg build clusterd --store /var/cache/ib-store --out /tmp/b.tar.zst -j 4`,
		RunE: func(cmd *cobra.Command, names []string) error {
			if out == "" {
				return fmt.Errorf("--out: required (where to write the bundle)")
			}
			log := g.logger()
			b, err := pkgbuild.New(pkgbuild.Options{
				RepoRoot:        repo,
				PackagesDir:     packagesDir,
				StoreDir:        storeDir,
				Prefix:          prefix,
				Jobs:            jobs,
				SourceDateEpoch: epoch,
				Logger:          log,
			})
			if err != nil {
				return err
			}
			results, err := b.Build(cmd.Context(), names...)
			if err != nil {
				return err
			}
			dir := filepath.Dir(out)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			path, digest, m, err := bundle.AssembleFile(dir, bundle.Input{
				Prefix:          prefix,
				Packages:        pkgbuild.BundlePackages(results),
				SourceDateEpoch: epoch,
			})
			if err != nil {
				return fmt.Errorf("assembling bundle: %w", err)
			}
			if err := os.Rename(path, out); err != nil {
				return err
			}
			if g.json {
				return g.printJSON(map[string]any{"bundle": out, "sha256": digest, "packages": m.Packages})
			}
			w := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			for _, r := range results {
				state := "built"
				if r.Cached {
					state = "cached"
				}
				fmt.Fprintf(w, "  %s\t%s\n", r.ID, state)
			}
			fmt.Fprintf(w, "bundle %s sha256:%s (%d packages, prefix %s)\n", out, digest, len(m.Packages), m.Prefix)
			return w.Flush()
		},
	}
	f := cmd.Flags()
	f.StringVar(&repo, "repo", ".", "repository root; dir sources must stay inside it")
	f.StringVar(&packagesDir, "packages", "packages", "folder holding the package definitions")
	f.StringVar(&storeDir, "store", filepath.Join(defaultCacheDir(), "store"), "content-addressed package store (shared between runs)")
	f.StringVar(&out, "out", "", "bundle file to write (tar.zst)")
	f.StringVar(&prefix, "prefix", pkgbuild.DefaultPrefix, "on-host install prefix the packages are built for")
	f.IntVarP(&jobs, "jobs", "j", runtime.NumCPU(), "builds to run at once")
	f.Int64Var(&epoch, "source-date-epoch", envEpoch(), "mtime of every archive entry (default $SOURCE_DATE_EPOCH or 0)")
	return cmd
}

func envEpoch() int64 {
	var n int64
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		fmt.Sscan(s, &n)
	}
	return n
}
