// Command cluster-firstboot is the on-host agent: it detects this host's IP
// with the cluster's ip-detect script and joins the cluster. See
// firstboot/README.md for the contract.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"imagebuilder/firstboot/agent"
)

// prefix is the install prefix the binary was built for; the firstboot
// package's build script sets it with -ldflags "-X main.prefix=...".
var prefix = agent.DefaultPrefix

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := agent.Main(ctx, os.Args[1:], os.Stdout, os.Stderr, prefix)
	stop()
	os.Exit(code)
}
