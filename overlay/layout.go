package overlay

import (
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
)

// Roles a host can have.
var Roles = []string{"master", "agent", "agent_public"}

// ValidRole reports whether r is one of Roles.
func ValidRole(r string) bool {
	for _, x := range Roles {
		if x == r {
			return true
		}
	}
	return false
}

// HostLayout is what the overlay adds to a base root besides the bundle.
type HostLayout struct {
	// Prefix is the absolute on-host path of the bundle ("/opt/cluster").
	Prefix string
	// Role, when set, is baked into /etc/cluster/role; empty leaves the role
	// to the kernel command line or the systemd credential at boot.
	Role string
}

// InstallBundle extracts the uncompressed bundle tar stream at the prefix and
// links its units into /etc/systemd/system, so the host starts
// cluster.target at boot. Links in the bundle must stay under the prefix.
func (t *Tree) InstallBundle(bundle io.Reader, l HostLayout) error {
	if !path.IsAbs(l.Prefix) || CleanRel(l.Prefix) == "" {
		return fmt.Errorf("prefix %q: must be an absolute path below /", l.Prefix)
	}
	if l.Role != "" && !ValidRole(l.Role) {
		return fmt.Errorf("role %q: must be one of %s", l.Role, strings.Join(Roles, ", "))
	}
	prefix := CleanRel(l.Prefix)
	if e, ok := t.Entries[prefix]; ok && e.Kind == KindDir {
		for k := range t.Entries {
			if strings.HasPrefix(k, prefix+"/") {
				return fmt.Errorf("prefix %q is already populated in the base (found %q)", l.Prefix, "/"+k)
			}
		}
	}
	if err := t.Apply(bundle, prefix, ApplyOptions{Confine: true}); err != nil {
		return fmt.Errorf("installing bundle at %s: %w", l.Prefix, err)
	}
	if err := t.LinkUnits(l.Prefix); err != nil {
		return err
	}
	if l.Role != "" {
		if err := t.WriteFile("etc/cluster/role", []byte(l.Role+"\n"), 0o644, 0, 0); err != nil {
			return fmt.Errorf("baking role: %w", err)
		}
	}
	return nil
}

// UnitLinks returns, for the unit files under <prefix>/systemd in the tree,
// the symlinks to create: /etc/systemd/system/<unit> -> <prefix>/systemd/<unit>,
// multi-user.target.wants/cluster.target, and /etc/<dir>/<name>.conf ->
// <prefix>/<dir>/<name>.conf for each of ConfigDirs. Keys are tree paths, values
// link targets; sorted iteration is the caller's.
func (t *Tree) UnitLinks(prefix string) (map[string]string, error) {
	dir := path.Join(CleanRel(prefix), "systemd")
	if e, ok := t.Entries[dir]; !ok || e.Kind != KindDir {
		return nil, fmt.Errorf("bundle has no systemd/ directory at %s", "/"+dir)
	}
	links := map[string]string{}
	for p, e := range t.Entries {
		if path.Dir(p) != dir || e.Kind != KindFile {
			continue
		}
		name := path.Base(p)
		links[path.Join("etc/systemd/system", name)] = "/" + p
	}
	if _, ok := links["etc/systemd/system/cluster.target"]; !ok {
		return nil, fmt.Errorf("bundle ships no cluster.target in %s (is the firstboot package in the bundle?)", "/"+dir)
	}
	links["etc/systemd/system/multi-user.target.wants/cluster.target"] = "/etc/systemd/system/cluster.target"
	// System users and state folders the packages declare: systemd creates
	// them at boot (systemd-sysusers, systemd-tmpfiles-setup) from /etc.
	for _, d := range ConfigDirs {
		cdir := path.Join(CleanRel(prefix), d)
		for p, e := range t.Entries {
			if path.Dir(p) != cdir || (e.Kind != KindFile && e.Kind != KindSymlink) || !strings.HasSuffix(p, ".conf") {
				continue
			}
			links[path.Join("etc", d, path.Base(p))] = "/" + p
		}
	}
	return links, nil
}

// ConfigDirs are the bundle's folders of systemd configuration linked into
// /etc/<dir>/ beside the units: the packages' system users (username in
// buildinfo.json) and state folders (state_directory).
var ConfigDirs = []string{"sysusers.d", "tmpfiles.d"}

// LinkUnits creates the links UnitLinks names.
func (t *Tree) LinkUnits(prefix string) error {
	links, err := t.UnitLinks(prefix)
	if err != nil {
		return err
	}
	keys := make([]string, 0, len(links))
	for k := range links {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := t.MkdirAll(path.Dir(k), 0o755, 0, 0); err != nil {
			return err
		}
		if err := t.Symlink(links[k], k); err != nil {
			return fmt.Errorf("linking unit: %w", err)
		}
	}
	return nil
}
