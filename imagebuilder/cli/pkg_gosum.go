package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"imagebuilder/pkgbuild"
)

func newPkgGoSumCmd(g *globals) *cobra.Command {
	var storeDir string
	cmd := &cobra.Command{
		Use:   "go-sum MODULE@VERSION [PACKAGE...]",
		Short: "Print the go.sum a go_module source needs (resolved through the module proxy)",
		Long: `go-sum resolves MODULE@VERSION through the Go module proxy, checking every
download against the checksum database as the go command does, and prints the
go.sum that pins every module the named packages (default: the module itself)
import. Commit it beside buildinfo.json and name it in the source's "go_sum":
builds then fetch exactly these modules and refuse anything else.`,
		Example: `  imagebuilder pkg go-sum go.etcd.io/etcd/server/v3@v3.6.6 > packages/etcd/server.go.sum
  imagebuilder pkg go-sum golang.org/x/tools@v0.30.0 golang.org/x/tools/cmd/stringer > packages/stringer/go.sum`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			module, version, ok := strings.Cut(args[0], "@")
			if !ok {
				return fmt.Errorf("%q: want MODULE@VERSION with an exact version, e.g. go.etcd.io/etcd/server/v3@v3.6.6", args[0])
			}
			tmp, err := os.MkdirTemp("", "imagebuilder-gosum-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(tmp)
			b, err := pkgbuild.New(pkgbuild.Options{RepoRoot: tmp, StoreDir: storeDir, Logger: g.logger()})
			if err != nil {
				return err
			}
			sum, err := b.GoSum(cmd.Context(), module, version, args[1:])
			if err != nil {
				return err
			}
			_, err = g.stdout.Write(sum)
			return err
		},
	}
	cmd.Flags().StringVar(&storeDir, "store", filepath.Join(defaultCacheDir(), "store"), "package store; its cache/ keeps the downloaded modules")
	return cmd
}
