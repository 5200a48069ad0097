// Command clusterd is the reference cluster daemon of the demo package set.
// With the etcd store (the default) masters run etcd as a static cluster
// from $MASTER_LIST bound to $DETECTED_IP ("clusterd etcd", run by
// cluster-etcd.service), and every host keeps the key
// /cluster/members/<ip> alive under a lease in the masters' etcd; "clusterd
// check --role R" is the join check, from the cluster's point of view: a
// master must be a started member in etcd's member list, any other host's
// key must be there. With --store registry (no etcd) masters serve a member
// registry over HTTP (GET/POST /v1/members) on $DETECTED_IP:7070 instead.
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
