// Package genconf owns the cluster configuration: it reads config.yaml and
// the files it names (ip-detect scripts, secret files), validates them into a
// report that names every problem by its field path with a hint, and turns
// them into the immutable config package baked into the per-cluster bundle
// (etc/cluster.env, etc/master_list, etc/ip-detect, etc/secrets.env with mode
// 0600) together with the packages' rendered templates. Generate also writes
// install.sh (package installsh), SHA256SUMS and a human summary. The fields
// are documented in schema/README.md and schema/config.schema.json.
package genconf
