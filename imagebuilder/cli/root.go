// Package cli is the imagebuilder command line (cobra): one file per command,
// each a thin layer over the engine's packages.
package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// globals are the flags every command shares.
type globals struct {
	verbose bool
	json    bool
	stdout  io.Writer
	stderr  io.Writer
	stdin   io.Reader
}

func (g *globals) logger() *slog.Logger {
	level := slog.LevelInfo
	if g.verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(g.stderr, &slog.HandlerOptions{Level: level}))
}

// printJSON writes v as indented JSON on stdout, for machines.
func (g *globals) printJSON(v any) error {
	enc := json.NewEncoder(g.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// Main runs the command line and returns the exit code.
func Main(stdin io.Reader, stdout, stderr io.Writer, args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRoot(&globals{stdin: stdin, stdout: stdout, stderr: stderr})
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintf(stderr, "imagebuilder: %v\n", err)
		return 1
	}
	return 0
}

func newRoot(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:   "imagebuilder",
		Short: "Build immutable cluster host images from one content-addressed bundle",
		Long: `imagebuilder builds every component of a cluster from source into one
content-addressed bundle, bakes an immutable cluster configuration into it,
and layers it onto a base distribution as a bootable host image. On each host
a systemd firstboot unit runs ip-detect and joins the cluster.

The usual flow:
  imagebuilder pkg build --packages packages --out build/bundle.tar.zst
  imagebuilder genconf --config examples/config.yaml --bundle build/bundle.tar.zst --out build/serve
  imagebuilder build --base base.tar --bundle build/serve/cluster-bundle-*.tar.zst --role master --out build/images
  imagebuilder boot build/images/host.qcow2`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().BoolVarP(&g.verbose, "verbose", "v", false, "log debug detail")
	root.PersistentFlags().BoolVar(&g.json, "json", false, "print the result as JSON on stdout (for scripts)")
	root.AddCommand(newPkgCmd(g), newGenconfCmd(g), newBuildCmd(g), newBootCmd(g), newValidateCmd(g))
	return root
}
