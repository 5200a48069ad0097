// Package bundle owns the bundle: the one deterministic tar.zst that, extracted at
// the install prefix, is the whole installation. Entry paths are relative to the
// prefix: packages/<id>/..., active/<name> symlinks, the bin/ sbin/ lib/ symlink
// farms, systemd/ unit copies plus the generated cluster-<role>.target files, etc/
// (config files), active.json and manifest.json. Assemble builds it from package
// tarballs, Extend derives a per-cluster bundle from a base bundle by replacing
// etc/ files, ReadManifest reads its manifest and Digest names it.
package bundle
