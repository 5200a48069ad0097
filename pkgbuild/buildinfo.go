package pkgbuild

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// Source kinds.
const (
	KindURL        = "url"
	KindURLExtract = "url_extract"
	KindGit        = "git"
	KindDir        = "dir"
)

// Roles a unit may belong to.
var validRoles = map[string]bool{"master": true, "agent": true, "agent_public": true}

// Source is one entry of buildinfo.json "sources".
type Source struct {
	Kind   string `json:"kind"`
	URL    string `json:"url,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
	Ref    string `json:"ref,omitempty"`
	// Path of a dir source, relative to the package folder.
	Path string `json:"path,omitempty"`
}

// BuildInfo is packages/<name>/buildinfo.json.
type BuildInfo struct {
	Sources        map[string]Source   `json:"sources,omitempty"`
	Requires       []string            `json:"requires,omitempty"`
	Environment    map[string]string   `json:"environment,omitempty"`
	Network        bool                `json:"network,omitempty"`
	StateDirectory bool                `json:"state_directory,omitempty"`
	Username       []string            `json:"username,omitempty"`
	Units          map[string][]string `json:"units,omitempty"`
}

// Definition is a loaded, validated package definition.
type Definition struct {
	Name string
	// Dir is the package folder, packages/<name>.
	Dir  string
	Info BuildInfo
	// BuildInfoJSON and Script are the exact bytes of buildinfo.json and build.
	BuildInfoJSON []byte
	Script        []byte
	// DirSources maps each dir source to its resolved absolute path.
	DirSources map[string]string
}

// DefinitionError lists every problem found in one buildinfo.json, each with its
// field path.
type DefinitionError struct {
	File     string
	Problems []string
}

func (e *DefinitionError) Error() string {
	return fmt.Sprintf("%s: %s", e.File, strings.Join(e.Problems, "; "))
}

var (
	nameRE       = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)
	sourceNameRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]*$`)
	envNameRE    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	sha256RE     = regexp.MustCompile(`^[0-9a-f]{64}$`)
	userRE       = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)
	unitRE       = regexp.MustCompile(`^[A-Za-z0-9:_.@-]+\.(service|socket|target|timer|path|mount|automount|slice|scope|swap|device)$`)
)

// reservedEnv are variables the builder sets that buildinfo "environment" may not
// override: they carry the package's identity and layout.
var reservedEnv = map[string]bool{
	"SRC": true, "OUT": true, "PKG_PATH": true, "PKG_ID": true, "PKG_NAME": true,
	"CLUSTER_PREFIX": true, "SOURCE_DATE_EPOCH": true, "GOCACHE": true, "HOME": true, "TMPDIR": true,
}

// CheckName reports whether name can name a package: lowercase letters, digits
// and single dashes ("--" separates name and hash in a package id).
func CheckName(name string) error {
	if !nameRE.MatchString(name) || strings.Contains(name, "--") {
		return fmt.Errorf("package name %q: want lowercase letters, digits and single dashes", name)
	}
	return nil
}

// EnvName is the variable that carries a required package's on-host path:
// upper case, dashes to underscores, plus _PATH.
func EnvName(pkg string) string {
	return strings.ToUpper(strings.ReplaceAll(pkg, "-", "_")) + "_PATH"
}

// LoadDefinition loads and validates packagesDir/<name>. repoRoot bounds dir
// sources: their resolved paths must stay inside it.
func LoadDefinition(repoRoot, packagesDir, name string) (*Definition, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	dir := filepath.Join(packagesDir, name)
	file := filepath.Join(dir, "buildinfo.json")
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("loading package %s: %w", name, err)
	}
	script, err := os.ReadFile(filepath.Join(dir, "build"))
	if err != nil {
		return nil, fmt.Errorf("loading package %s: %w", name, err)
	}
	var info BuildInfo
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&info); err != nil {
		return nil, &DefinitionError{File: file, Problems: []string{err.Error()}}
	}
	if dec.More() {
		return nil, &DefinitionError{File: file, Problems: []string{"trailing data after the JSON object"}}
	}
	d := &Definition{Name: name, Dir: dir, Info: info, BuildInfoJSON: raw, Script: script, DirSources: map[string]string{}}
	if probs := d.validate(repoRoot); len(probs) > 0 {
		return nil, &DefinitionError{File: file, Problems: probs}
	}
	return d, nil
}

func (d *Definition) validate(repoRoot string) []string {
	var probs []string
	add := func(format string, args ...any) { probs = append(probs, fmt.Sprintf(format, args...)) }
	realRoot, err := filepath.EvalSymlinks(repoRoot)
	if err != nil {
		add("repository root %s: %v", repoRoot, err)
	}
	for _, sn := range sortedKeys(d.Info.Sources) {
		s := d.Info.Sources[sn]
		field := "sources." + sn
		if !sourceNameRE.MatchString(sn) {
			add("%s: source name must be letters, digits, '.', '_' or '-'", field)
		}
		unused := func(names ...string) {
			vals := map[string]string{"url": s.URL, "sha256": s.SHA256, "ref": s.Ref, "path": s.Path}
			for _, n := range names {
				if vals[n] != "" {
					add("%s.%s: not used by kind %q", field, n, s.Kind)
				}
			}
		}
		switch s.Kind {
		case KindURL, KindURLExtract:
			if s.URL == "" {
				add("%s.url: required for kind %q", field, s.Kind)
			}
			if !sha256RE.MatchString(s.SHA256) {
				add("%s.sha256: required for kind %q, 64 lowercase hex digits (got %q)", field, s.Kind, s.SHA256)
			}
			unused("ref", "path")
		case KindGit:
			if s.URL == "" {
				add("%s.url: required for kind git", field)
			}
			if s.Ref == "" {
				add("%s.ref: required for kind git", field)
			}
			unused("sha256", "path")
		case KindDir:
			unused("url", "sha256", "ref")
			if s.Path == "" {
				add("%s.path: required for kind dir", field)
				continue
			}
			if filepath.IsAbs(s.Path) {
				add("%s.path: %q must be relative to the package folder", field, s.Path)
				continue
			}
			if realRoot == "" {
				continue
			}
			p, err := resolveInside(realRoot, filepath.Join(d.Dir, s.Path))
			if err != nil {
				add("%s.path: %v", field, err)
				continue
			}
			d.DirSources[sn] = p
		case "":
			add("%s.kind: required (url, url_extract, git or dir)", field)
		default:
			add("%s.kind: unknown kind %q (want url, url_extract, git or dir)", field, s.Kind)
		}
	}
	seen, requireEnv := map[string]bool{}, map[string]bool{}
	for i, r := range d.Info.Requires {
		requireEnv[EnvName(r)] = true
		switch {
		case CheckName(r) != nil:
			add("requires[%d]: %q is not a package name", i, r)
		case r == d.Name:
			add("requires[%d]: a package cannot require itself", i)
		case seen[r]:
			add("requires[%d]: %q listed twice", i, r)
		}
		seen[r] = true
	}
	for _, k := range sortedKeys(d.Info.Environment) {
		if !envNameRE.MatchString(k) {
			add("environment.%s: not a valid variable name", k)
		} else if reservedEnv[k] || requireEnv[k] {
			add("environment.%s: set by the builder, cannot be overridden", k)
		}
	}
	for i, u := range d.Info.Username {
		if !userRE.MatchString(u) {
			add("username[%d]: %q is not a valid user name", i, u)
		}
	}
	for _, u := range sortedKeys(d.Info.Units) {
		if !unitRE.MatchString(u) {
			add("units.%s: not a unit file name", u)
		}
		for i, r := range d.Info.Units[u] {
			if !validRoles[r] {
				add("units.%s[%d]: unknown role %q (want master, agent or agent_public)", u, i, r)
			}
		}
	}
	return probs
}

// resolveInside resolves p (following symlinks) and requires the result to be a
// directory inside realRoot.
func resolveInside(realRoot, p string) (string, error) {
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("%s does not exist", p)
		}
		return "", err
	}
	rel, err := filepath.Rel(realRoot, real)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) || filepath.IsAbs(rel) {
		return "", fmt.Errorf("%s resolves to %s, outside the repository %s", p, real, realRoot)
	}
	fi, err := os.Stat(real)
	if err != nil {
		return "", err
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("%s is not a directory", p)
	}
	return real, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
