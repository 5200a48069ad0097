// Command imagebuilder builds immutable cluster host images; see `imagebuilder --help`.
package main

import (
	"os"

	"imagebuilder/imagebuilder/cli"
)

func main() { os.Exit(cli.Main(os.Stdin, os.Stdout, os.Stderr, os.Args[1:])) }
