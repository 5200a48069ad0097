package pkgbuild

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// validateSource checks one entry of "sources" (field is its path,
// "sources.<name>") and records what dir and go_module sources resolve to.
func (d *Definition) validateSource(realRoot, field, sn string, s Source) []string {
	var probs []string
	add := func(format string, args ...any) { probs = append(probs, fmt.Sprintf(format, args...)) }
	// unused reports fields set that the kind does not read.
	unused := func(allowed ...string) {
		vals := map[string]bool{
			"url": s.URL != "", "sha256": s.SHA256 != "", "commit": s.Commit != "", "path": s.Path != "",
			"module": s.Module != "", "version": s.Version != "", "go_sum": s.GoSum != "", "packages": len(s.Packages) > 0,
		}
		for _, n := range []string{"url", "sha256", "commit", "path", "module", "version", "go_sum", "packages"} {
			if vals[n] && !contains(allowed, n) {
				add("%s.%s: not used by kind %q", field, n, s.Kind)
			}
		}
	}
	// inRepo resolves a path relative to the package folder inside the repository.
	inRepo := func(key, rel string, dir bool) string {
		if filepath.IsAbs(rel) {
			add("%s.%s: %q must be relative to the package folder", field, key, rel)
			return ""
		}
		if realRoot == "" {
			return ""
		}
		p, err := resolveKind(realRoot, filepath.Join(d.Dir, rel), dir)
		if err != nil {
			add("%s.%s: %v", field, key, err)
			return ""
		}
		return p
	}
	switch s.Kind {
	case KindURL, KindURLExtract:
		if s.URL == "" {
			add("%s.url: required for kind %q", field, s.Kind)
		}
		if !sha256RE.MatchString(s.SHA256) {
			add("%s.sha256: required for kind %q, 64 lowercase hex digits (got %q)", field, s.Kind, s.SHA256)
		}
		unused("url", "sha256")
	case KindGit:
		if s.URL == "" {
			add("%s.url: required for kind git (a URL or a local path)", field)
		}
		if !commitRE.MatchString(s.Commit) {
			add("%s.commit: required for kind git, the full commit id (40 lowercase hex digits, got %q); branch and tag names are not accepted because they move", field, s.Commit)
		}
		unused("url", "commit")
	case KindDir:
		unused("path")
		if s.Path == "" {
			add("%s.path: required for kind dir", field)
			break
		}
		if p := inRepo("path", s.Path, true); p != "" {
			d.DirSources[sn] = p
		}
	case KindGoModule:
		unused("module", "version", "go_sum", "packages")
		if !moduleRE.MatchString(s.Module) {
			add("%s.module: required for kind go_module, a module path like example.com/tool/v2 (got %q)", field, s.Module)
		}
		if !versionRE.MatchString(s.Version) {
			add("%s.version: required for kind go_module, an exact version like v1.2.3 (got %q; queries such as latest are not accepted)", field, s.Version)
		}
		for i, p := range s.Packages {
			if !goPkgRE.MatchString(p) || (p != s.Module && !strings.HasPrefix(p, s.Module+"/")) {
				add("%s.packages[%d]: %q is not a package of module %s", field, i, p, s.Module)
			}
		}
		if s.GoSum == "" {
			add("%s.go_sum: required for kind go_module: a go.sum file in the package folder that pins every module the build needs (%s)", field, goSumHint(s))
			break
		}
		if p := inRepo("go_sum", s.GoSum, false); p != "" {
			b, err := os.ReadFile(p)
			if err != nil {
				add("%s.go_sum: %v", field, err)
				break
			}
			d.GoSums[sn] = b
		}
	case "":
		add("%s.kind: required (%s)", field, kindList)
	default:
		add("%s.kind: unknown kind %q (want %s)", field, s.Kind, kindList)
	}
	return probs
}

// goSumHint tells how to make the go.sum of a go_module source.
func goSumHint(s Source) string {
	pkgs := strings.Join(s.Packages, " ")
	if pkgs == "" {
		pkgs = s.Module
	}
	return fmt.Sprintf("make it with: imagebuilder pkg go-sum %s@%s %s > FILE", s.Module, s.Version, pkgs)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
