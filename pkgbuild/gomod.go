package pkgbuild

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
)

// goModules fetches go_module sources through the Go module proxy, outside the
// sandbox. Each source becomes a directory gomod/<key> holding a throwaway main
// module (go.mod requiring module@version, and the package's go.sum); key hashes
// everything that directory depends on. The modules themselves go into one
// shared GOMODCACHE, which the go command verifies against go.sum as it
// downloads (go.sum lines it lacks are an error, never added silently: the fetch
// runs with -mod=readonly). Builds mount that cache read-only with GOPROXY=off.
type goModules struct {
	dir      string // <cache>/sources/gomod
	modCache string // <cache>/gomodcache
	// env is added to the host environment of every go command (GOPROXY,
	// GOSUMDB, GONOSUMDB, ... for mirrors and tests).
	env []string
	log *slog.Logger

	once      sync.Once
	goVersion string
	goErr     error
}

// goModName is the module path of the throwaway main module: .invalid never
// resolves, so it cannot shadow a real module.
const goModName = "pkgbuild.invalid/gomodule"

// version returns the host toolchain's version ("1.26.8"), which becomes the go
// line of the throwaway module: a lower one would make the go command want to
// raise it for modules that declare a newer go.
func (g *goModules) version(ctx context.Context) (string, error) {
	g.once.Do(func() {
		out, err := g.goCmd(ctx, "", "env", "GOVERSION")
		if err != nil {
			g.goErr = err
			return
		}
		v := strings.TrimPrefix(strings.TrimSpace(out), "go")
		if !regexp.MustCompile(`^[0-9]+\.[0-9]+(\.[0-9]+)?$`).MatchString(v) {
			g.goErr = fmt.Errorf("go env GOVERSION = %q: not a release toolchain; go_module sources need one", strings.TrimSpace(out))
			return
		}
		g.goVersion = v
	})
	return g.goVersion, g.goErr
}

// goModFile is the go.mod of the throwaway module for s.
func goModFile(goVersion string, s Source) []byte {
	return fmt.Appendf(nil, "module %s\n\ngo %s\n\nrequire %s %s\n", goModName, goVersion, s.Module, s.Version)
}

// goPackages are the packages a go_module source builds.
func goPackages(s Source) []string {
	if len(s.Packages) == 0 {
		return []string{s.Module}
	}
	return s.Packages
}

// goModuleDigest identifies a go_module source: module, version, packages and
// the exact go.sum. It is the source digest in the package id and the key of
// the source cache.
func goModuleDigest(s Source, goSum []byte) string {
	h := sha256.New()
	field(h, "go_module", "1")
	field(h, "module", s.Module)
	field(h, "version", s.Version)
	for _, p := range goPackages(s) {
		field(h, "package", p)
	}
	field(h, "go.sum", string(goSum))
	return hex.EncodeToString(h.Sum(nil))
}

// fetch returns the directory of the throwaway module for s, downloading every
// module its packages import into the shared module cache first.
func (g *goModules) fetch(ctx context.Context, s Source, goSum []byte) (string, error) {
	key := goModuleDigest(s, goSum)
	goVersion, err := g.version(ctx)
	if err != nil {
		return "", err
	}
	final := filepath.Join(g.dir, key)
	if _, err := os.Stat(filepath.Join(final, "go.sum")); err == nil {
		return final, nil
	}
	for _, d := range []string{g.dir, g.modCache} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", fmt.Errorf("go module cache: %w", err)
		}
	}
	work, err := os.MkdirTemp(g.dir, ".tmp-"+key[:12]+"-")
	if err != nil {
		return "", fmt.Errorf("go module cache: %w", err)
	}
	defer os.RemoveAll(work)
	mod := goModFile(goVersion, s)
	if err := os.WriteFile(filepath.Join(work, "go.mod"), mod, 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(work, "go.sum"), goSum, 0o644); err != nil {
		return "", err
	}
	args := append([]string{"list", "-mod=readonly", "-deps", "-f", "{{.ImportPath}}"}, goPackages(s)...)
	if out, err := g.goCmd(ctx, work, args...); err != nil {
		return "", fmt.Errorf("fetching go module %s@%s: %w%s", s.Module, s.Version, err, goFetchHint(out, s))
	}
	// -mod=readonly guarantees this; check anyway that what is cached is what
	// the id covers.
	for name, want := range map[string][]byte{"go.mod": mod, "go.sum": goSum} {
		got, err := os.ReadFile(filepath.Join(work, name))
		if err != nil || !bytes.Equal(got, want) {
			return "", fmt.Errorf("fetching go module %s@%s: the go command changed %s", s.Module, s.Version, name)
		}
	}
	for _, name := range []string{"go.mod", "go.sum"} {
		if err := os.Chmod(filepath.Join(work, name), 0o444); err != nil {
			return "", err
		}
	}
	if err := os.Rename(work, final); err != nil {
		if _, serr := os.Stat(filepath.Join(final, "go.sum")); serr == nil {
			return final, nil // fetched by a parallel build meanwhile
		}
		return "", fmt.Errorf("go module cache: %w", err)
	}
	g.log.Info("fetched go module", "module", s.Module, "version", s.Version, "key", key)
	return final, nil
}

// GoSum resolves module@version through the module proxy (checking the
// checksum database as the go command does) and returns the go.sum that a
// go_module source building packages (default: the module itself) needs.
func (b *Builder) GoSum(ctx context.Context, module, version string, packages []string) ([]byte, error) {
	s := Source{Kind: KindGoModule, Module: module, Version: version, Packages: packages}
	if !moduleRE.MatchString(module) || !versionRE.MatchString(version) {
		return nil, fmt.Errorf("%s@%s: want an exact module@version like example.com/tool@v1.2.3", module, version)
	}
	return b.gomod.goSum(ctx, s)
}

func (g *goModules) goSum(ctx context.Context, s Source) ([]byte, error) {
	goVersion, err := g.version(ctx)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(g.modCache, 0o755); err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp("", "pkgbuild-gosum-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	if err := os.WriteFile(filepath.Join(work, "go.mod"), goModFile(goVersion, s), 0o644); err != nil {
		return nil, err
	}
	args := append([]string{"list", "-mod=mod", "-deps", "-f", "{{.ImportPath}}"}, goPackages(s)...)
	if out, err := g.goCmd(ctx, work, args...); err != nil {
		return nil, fmt.Errorf("resolving go module %s@%s: %w%s", s.Module, s.Version, err, goFetchHint(out, s))
	}
	mod, err := os.ReadFile(filepath.Join(work, "go.mod"))
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(mod, goModFile(goVersion, s)) {
		return nil, fmt.Errorf("resolving go module %s@%s: its build needs requirements beyond the module's own go.mod:\n%s", s.Module, s.Version, mod)
	}
	sum, err := os.ReadFile(filepath.Join(work, "go.sum"))
	if errors.Is(err, fs.ErrNotExist) {
		return []byte{}, nil
	}
	return sum, err
}

// goCmd runs the host's go command in dir with the fetch environment and
// returns its combined output.
func (g *goModules) goCmd(ctx context.Context, dir string, args ...string) (string, error) {
	bin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("go_module sources need the go command on PATH (Go 1.26 from go.dev or golang-go): %w", err)
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	cmd.Env = append(goFetchEnv(os.Environ(), g.modCache), g.env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	return out.String(), err
}

// goFetchEnv is the host environment minus what would make the fetch depend on
// the caller's settings, plus the fixed settings of a fetch.
func goFetchEnv(host []string, modCache string) []string {
	drop := map[string]bool{"GOFLAGS": true, "GOMODCACHE": true, "GOWORK": true, "GOTOOLCHAIN": true,
		"CGO_ENABLED": true, "GOOS": true, "GOARCH": true, "GO111MODULE": true}
	var env []string
	for _, kv := range host {
		k, _, _ := strings.Cut(kv, "=")
		if !drop[k] {
			env = append(env, kv)
		}
	}
	return append(env,
		"GOMODCACHE="+modCache,
		"GOFLAGS=-modcacherw", // the cache stays removable without chmod
		"GOWORK=off",
		"GOTOOLCHAIN=local",
		"GO111MODULE=on",
		"CGO_ENABLED=0",
	)
}

// goFetchHint returns the go command's output with advice for the usual
// failures.
func goFetchHint(out string, s Source) string {
	out = strings.TrimSpace(out)
	if len(out) > 4000 {
		out = "..." + out[len(out)-4000:]
	}
	msg := "\n" + out
	switch {
	case strings.Contains(out, "missing go.sum entry"):
		msg += "\ngo.sum (go_sum) lacks lines this build needs; " + goSumHint(s)
	case strings.Contains(out, "SECURITY ERROR") || strings.Contains(out, "checksum mismatch"):
		msg += "\na downloaded module does not match go.sum (go_sum): the proxy served different content than was pinned"
	}
	return msg
}
