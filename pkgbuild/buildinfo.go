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
	KindGoModule   = "go_module"
)

// kindList names the source kinds for error messages.
const kindList = "url, url_extract, git, dir or go_module"

// Roles a unit may belong to.
var validRoles = map[string]bool{"master": true, "agent": true, "agent_public": true}

// Source is one entry of buildinfo.json "sources".
type Source struct {
	Kind string `json:"kind"`
	// URL of a url, url_extract or git source (for git also a local path).
	URL string `json:"url,omitempty"`
	// SHA256 of the file a url or url_extract source downloads.
	SHA256 string `json:"sha256,omitempty"`
	// Commit is the full sha1 (40 hex digits) a git source checks out.
	Commit string `json:"commit,omitempty"`
	// Path of a dir source, relative to the package folder.
	Path string `json:"path,omitempty"`
	// Module and Version name a go_module source: module@version.
	Module  string `json:"module,omitempty"`
	Version string `json:"version,omitempty"`
	// GoSum is the go.sum file (relative to the package folder) that pins
	// every module a go_module source needs.
	GoSum string `json:"go_sum,omitempty"`
	// Packages are the Go packages a go_module build compiles (default: the
	// module path); the fetch downloads what they import.
	Packages []string `json:"packages,omitempty"`
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
	// GoSums maps each go_module source to the bytes of its go.sum.
	GoSums map[string][]byte
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
	commitRE     = regexp.MustCompile(`^[0-9a-f]{40}$`)
	// moduleRE and versionRE accept what the go command accepts for a module
	// path and a canonical semantic version (no queries like "latest").
	moduleRE  = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]*\.[a-z]{2,}(/[A-Za-z0-9._~+-]+)*$`)
	versionRE = regexp.MustCompile(`^v[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?(\+incompatible)?$`)
	goPkgRE   = regexp.MustCompile(`^[A-Za-z0-9._~+-]+(/[A-Za-z0-9._~+-]+)*$`)
	userRE    = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)
	unitRE    = regexp.MustCompile(`^[A-Za-z0-9:_.@-]+\.(service|socket|target|timer|path|mount|automount|slice|scope|swap|device)$`)
)

// reservedEnv are variables the builder sets that buildinfo "environment" may not
// override: they carry the package's identity and layout.
var reservedEnv = map[string]bool{
	"SRC": true, "OUT": true, "PKG_PATH": true, "PKG_ID": true, "PKG_NAME": true,
	"CLUSTER_PREFIX": true, "SOURCE_DATE_EPOCH": true, "GOCACHE": true, "HOME": true, "TMPDIR": true,
	"GOMODCACHE": true, "GOPROXY": true, "GOTOOLCHAIN": true, "GOSUMDB": true,
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
	d := &Definition{Name: name, Dir: dir, Info: info, BuildInfoJSON: raw, Script: script, DirSources: map[string]string{}, GoSums: map[string][]byte{}}
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
		probs = append(probs, d.validateSource(realRoot, field, sn, s)...)
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
func resolveInside(realRoot, p string) (string, error) { return resolveKind(realRoot, p, true) }

// resolveKind is resolveInside for a directory (dir) or a regular file.
func resolveKind(realRoot, p string, dir bool) (string, error) {
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
	if dir && !fi.IsDir() {
		return "", fmt.Errorf("%s is not a directory", p)
	}
	if !dir && !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file", p)
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
