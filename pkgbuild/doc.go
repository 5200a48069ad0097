// Package pkgbuild owns package builds: it loads package definitions
// (packages/<name>/buildinfo.json and build), validates them strictly, computes
// content-addressed package ids, fetches and verifies sources, runs each build
// script in a sandbox (bubblewrap), and normalises the output into deterministic
// package tarballs kept in a store next to their metadata and build logs.
// The bundle writer is in pkgbuild/bundle, the shared tar format in
// pkgbuild/archive.
package pkgbuild
