// Package genconf owns the cluster configuration: it reads config.yaml and the
// ip-detect script, validates them into a report that names every problem
// by its field path, and turns them into the immutable config package that
// is baked into the per-cluster bundle (etc/cluster.env, etc/master_list,
// etc/ip-detect).
package genconf
