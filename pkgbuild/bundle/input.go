package bundle

import (
	"fmt"
	"io/fs"
	"path"
	"strings"

	"imagebuilder/pkgbuild/archive"
)

// Bundle paths with a fixed meaning.
const (
	manifestPath = "manifest.json"
	activePath   = "active.json"
)

// Roles returns the cluster roles, each of which gets a systemd/cluster-<role>.target.
func Roles() []string { return []string{"master", "agent", "agent_public"} }

// farmDirs are the package directories whose top-level entries get symlinks in the
// bundle directory of the same name.
// sysusers.d and tmpfiles.d hold one <package>.conf per package (made by
// pkgbuild from "username" and "state_directory").
var farmDirs = [...]string{"bin", "lib", "sbin", "sysusers.d", "tmpfiles.d"}

// topDirs are the directories every bundle has.
var topDirs = [...]string{"active", "bin", "etc", "lib", "packages", "sbin", "systemd", "sysusers.d", "tmpfiles.d"}

// Package is one built package to put into the bundle.
type Package struct {
	Name string
	ID   string
	// Tarball is the path of the package's <id>.tar.zst.
	Tarball string
	// SHA256 is the expected digest of Tarball; empty skips the comparison.
	SHA256 string
	// Units maps a unit file name in the package's systemd/ to its roles.
	Units map[string][]string
}

// File is a config file placed under etc/.
type File struct {
	// Path is relative to the prefix and starts with "etc/", e.g. "etc/cluster.env".
	Path string
	// Mode holds permission bits; 0 means 0644.
	Mode fs.FileMode
	Data []byte
}

// Input is everything Assemble puts into a bundle.
type Input struct {
	// Prefix is the absolute install path, e.g. /opt/cluster.
	Prefix     string
	Packages   []Package
	Files      []File
	ConfigHash string
	// SourceDateEpoch is the mtime of every entry (seconds, default 0).
	SourceDateEpoch int64
}

func checkPrefix(p string) error {
	if !path.IsAbs(p) || path.Clean(p) != p || p == "/" {
		return fmt.Errorf("prefix %q must be a clean absolute path other than /", p)
	}
	return nil
}

func checkComponent(what, s string) error {
	if s == "" || s == "." || s == ".." || strings.ContainsAny(s, "/\x00") {
		return fmt.Errorf("%s %q is not a single path component", what, s)
	}
	return nil
}

func isRole(r string) bool {
	for _, x := range Roles() {
		if r == x {
			return true
		}
	}
	return false
}

func checkPackages(pkgs []Package) error {
	names, ids := map[string]bool{}, map[string]bool{}
	for _, p := range pkgs {
		if err := checkComponent("package name", p.Name); err != nil {
			return err
		}
		if err := checkComponent("package id", p.ID); err != nil {
			return err
		}
		if !strings.HasPrefix(p.ID, p.Name+"--") || strings.Contains(p.Name, "--") {
			return fmt.Errorf("package %s: id %q is not <name>--<hash>", p.Name, p.ID)
		}
		if names[p.Name] {
			return fmt.Errorf("package %s listed twice", p.Name)
		}
		if ids[p.ID] {
			return fmt.Errorf("package id %s listed twice", p.ID)
		}
		names[p.Name], ids[p.ID] = true, true
		for unit, roles := range p.Units {
			if err := checkComponent("unit", unit); err != nil {
				return fmt.Errorf("package %s: %w", p.Name, err)
			}
			for _, r := range roles {
				if !isRole(r) {
					return fmt.Errorf("package %s: unit %s: unknown role %q (want one of %s)", p.Name, unit, r, strings.Join(Roles(), ", "))
				}
			}
		}
	}
	return nil
}

func checkFile(f File) error {
	if err := archive.CheckName(f.Path); err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	if !strings.HasPrefix(f.Path, "etc/") {
		return fmt.Errorf("config file %q must be under etc/", f.Path)
	}
	if f.Mode&^fs.ModePerm != 0 {
		return fmt.Errorf("config file %q: mode %v has bits beyond permissions", f.Path, f.Mode)
	}
	return nil
}

func fileMode(m fs.FileMode) fs.FileMode {
	if m == 0 {
		return 0o644
	}
	return m
}
