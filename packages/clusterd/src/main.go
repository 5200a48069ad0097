// Command clusterd is the reference cluster daemon of the demo package set:
// masters serve a member registry over HTTP (GET/POST /v1/members) on
// $DETECTED_IP:7070 and register themselves; agents register with every
// master in $MASTER_LIST and keep re-registering. "clusterd check --role R"
// is the join check: it exits 0 once a master lists this host's IP.
//
// It is stdlib-only and imports nothing of the project, so the package build
// compiles it as its own module.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
