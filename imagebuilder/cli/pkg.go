package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"imagebuilder/imagebuilder/build"
	"imagebuilder/pkgbuild"
	"imagebuilder/pkgbuild/atomicfile"
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

func defaultCacheDir() string { return build.DefaultCacheDir() }

func newPkgBuildCmd(g *globals) *cobra.Command {
	var (
		packagesDir, storeDir, out, prefix, repo, cache string
		jobs                                            int
		epoch                                           int64
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
configuration yet: that is genconf's job. Beside it, BUNDLE.spdx.json is its
SPDX 2.3 SBOM: every package with its id and tarball sha256, and every
source with its location and digest.

With --cache oci://HOST[:PORT]/REPOSITORY, packages missing from the store
are pulled from that OCI registry (digests verified) before anything is
built, and every package built (or found locally but missing there) is
pushed there, so builders share work. A
missing or corrupt remote entry is built instead. Loopback and private
registries are spoken to over HTTP; credentials come from ~/.docker/config.json.`,
		Example: `  imagebuilder pkg build --out build/bundle.tar.zst
  imagebuilder pkg build clusterd --store /var/cache/ib-store --out /tmp/b.tar.zst -j 4
  imagebuilder pkg build --cache oci://127.0.0.1:5000/imagebuilder/packages --out build/bundle.tar.zst`,
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
				CacheURL:        cache,
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
			sbom, err := pkgbuild.SBOM(pkgbuild.SBOMInput{
				BundleName:      filepath.Base(out),
				BundleSHA256:    digest,
				Prefix:          m.Prefix,
				SourceDateEpoch: epoch,
				Packages:        results,
			})
			if err != nil {
				return err
			}
			sbomPath := out + ".spdx.json"
			if err := atomicfile.WriteFile(sbomPath, sbom, 0o644); err != nil {
				return fmt.Errorf("writing the sbom: %w", err)
			}
			type built struct {
				Name  string `json:"name"`
				ID    string `json:"id"`
				State string `json:"state"` // built, cached or pulled
			}
			var states []built
			for _, r := range results {
				state := "built"
				switch {
				case r.Pulled:
					state = "pulled"
				case r.Cached:
					state = "cached"
				}
				states = append(states, built{r.Name, r.ID, state})
			}
			if g.json {
				return g.printJSON(map[string]any{"bundle": out, "sha256": digest, "sbom": sbomPath, "packages": m.Packages, "builds": states})
			}
			w := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			for _, b := range states {
				fmt.Fprintf(w, "  %s\t%s\n", b.ID, b.State)
			}
			fmt.Fprintf(w, "bundle %s sha256:%s (%d packages, prefix %s)\nsbom %s\n", out, digest, len(m.Packages), m.Prefix, sbomPath)
			return w.Flush()
		},
	}
	f := cmd.Flags()
	f.StringVar(&repo, "repo", ".", "repository root; dir sources must stay inside it")
	f.StringVar(&packagesDir, "packages", "packages", "folder holding the package definitions")
	f.StringVar(&storeDir, "store", filepath.Join(defaultCacheDir(), "store"), "content-addressed package store (shared between runs)")
	f.StringVar(&out, "out", "", "bundle file to write (tar.zst)")
	f.StringVar(&prefix, "prefix", pkgbuild.DefaultPrefix, "on-host install prefix the packages are built for")
	f.StringVar(&cache, "cache", "", "remote package cache, oci://HOST[:PORT]/REPOSITORY (pull before building, push after)")
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
