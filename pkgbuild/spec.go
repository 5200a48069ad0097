package pkgbuild

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"

	"imagebuilder/pkgbuild/archive"
)

// Paths inside the sandbox.
const (
	sandboxSrc      = "/tmp/src"
	sandboxHome     = "/tmp/home"
	sandboxWork     = "/tmp/work"
	sandboxGoCache  = "/tmp/gocache"
	sandboxModCache = "/tmp/gomodcache"
	sandboxScript   = "/tmp/pkgbuild/build"
)

// sandboxSpec prepares work (output dir, script copy), the sources and the
// requirement trees, and describes the sandbox.
func (b *Builder) sandboxSpec(ctx context.Context, p *Package, deps map[string]Result, work string) (SandboxSpec, error) {
	prefix := b.opts.Prefix
	pkgPath := OnHostPath(prefix, p.ID)
	out := filepath.Join(work, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		return SandboxSpec{}, err
	}
	script := filepath.Join(work, "build")
	if err := os.WriteFile(script, p.Def.Script, 0o644); err != nil {
		return SandboxSpec{}, err
	}
	goCache := filepath.Join(b.opts.CacheDir, "gocache")
	if err := os.MkdirAll(goCache, 0o755); err != nil {
		return SandboxSpec{}, err
	}
	mounts := []Mount{{Source: out, Target: pkgPath, Writable: true}}
	for _, c := range p.Closure {
		tree, err := b.tree(deps[c])
		if err != nil {
			return SandboxSpec{}, err
		}
		mounts = append(mounts, Mount{Source: tree, Target: OnHostPath(prefix, deps[c].ID)})
	}
	hasGoModule := false
	for _, sn := range sortedKeys(p.Def.Info.Sources) {
		s := p.Def.Info.Sources[sn]
		target := sandboxSrc + "/" + sn
		switch s.Kind {
		case KindDir:
			mounts = append(mounts, Mount{Source: p.Def.DirSources[sn], Target: target})
		case KindURL:
			file, err := b.src.fetch(ctx, s.URL, s.SHA256)
			if err != nil {
				return SandboxSpec{}, fmt.Errorf("source %s: %w", sn, err)
			}
			mounts = append(mounts, Mount{Source: file, Target: target + "/" + urlBase(s.URL)})
		case KindGoModule:
			dir, err := b.gomod.fetch(ctx, s, p.Def.GoSums[sn])
			if err != nil {
				return SandboxSpec{}, fmt.Errorf("source %s: %w", sn, err)
			}
			mounts = append(mounts, Mount{Source: dir, Target: target})
			hasGoModule = true
		case KindGit:
			dir, err := b.src.gitTree(ctx, gitURL(p.Def.Dir, s.URL), s.Commit)
			if err != nil {
				return SandboxSpec{}, fmt.Errorf("source %s: %w", sn, err)
			}
			mounts = append(mounts, Mount{Source: dir, Target: target})
		case KindURLExtract:
			dir, err := b.src.extract(ctx, s.URL, s.SHA256)
			if err != nil {
				return SandboxSpec{}, fmt.Errorf("source %s: %w", sn, err)
			}
			mounts = append(mounts, Mount{Source: dir, Target: target})
		default:
			return SandboxSpec{}, fmt.Errorf("source %s: kind %s is not supported yet", sn, s.Kind)
		}
	}
	mounts = append(mounts,
		Mount{Source: goCache, Target: sandboxGoCache, Writable: true},
		Mount{Source: script, Target: sandboxScript},
	)
	dirs := []string{OnHostPath(prefix, ""), sandboxSrc, sandboxHome, sandboxWork}
	if hasGoModule {
		// Read-only: the build may read the modules go.sum pins, never add any.
		mounts = append(mounts, Mount{Source: b.gomod.modCache, Target: sandboxModCache})
	} else {
		dirs = append(dirs, sandboxModCache)
	}
	bash, err := exec.LookPath("bash")
	if err != nil {
		return SandboxSpec{}, fmt.Errorf("bash not found: %w", err)
	}
	return SandboxSpec{
		Argv:    []string{bash, sandboxScript},
		Env:     b.environment(p),
		Dir:     sandboxWork,
		Hide:    prefix,
		Mounts:  mounts,
		Dirs:    dirs,
		Network: p.Def.Info.Network,
	}, nil
}

// environment is the complete build environment: the contract's variables,
// <REQ>_PATH for each direct requirement, then buildinfo "environment".
func (b *Builder) environment(p *Package) []string {
	pkgPath := OnHostPath(b.opts.Prefix, p.ID)
	env := map[string]string{
		"SRC":               sandboxSrc,
		"OUT":               pkgPath,
		"PKG_PATH":          pkgPath,
		"PKG_ID":            p.ID,
		"PKG_NAME":          p.Name,
		"CLUSTER_PREFIX":    b.opts.Prefix,
		"SOURCE_DATE_EPOCH": strconv.FormatInt(b.opts.SourceDateEpoch, 10),
		"HOME":              sandboxHome,
		"TMPDIR":            "/tmp",
		"PATH":              b.opts.Path,
		"GOCACHE":           sandboxGoCache,
		"GOFLAGS":           "-mod=mod -trimpath -buildvcs=false",
		"GOPROXY":           "off",
		"GOSUMDB":           "off",
		"GOMODCACHE":        sandboxModCache,
		"GOTOOLCHAIN":       "local",
		"CGO_ENABLED":       "0",
	}
	for r, id := range p.Requires {
		env[EnvName(r)] = OnHostPath(b.opts.Prefix, id)
	}
	for k, v := range p.Def.Info.Environment {
		env[k] = v
	}
	list := make([]string, 0, len(env))
	for _, k := range sortedKeys(env) {
		list = append(list, k+"="+env[k])
	}
	return list
}

// tree returns the extracted tree of a built package, extracting it once into
// <store>/trees/<id>.
func (b *Builder) tree(r Result) (string, error) {
	b.treeMu.Lock()
	defer b.treeMu.Unlock()
	dest := b.store.treePath(r.ID)
	if fi, err := os.Stat(dest); err == nil && fi.IsDir() {
		return dest, nil
	}
	parent := filepath.Dir(dest)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", fmt.Errorf("extracting %s: %w", r.ID, err)
	}
	tmp, err := os.MkdirTemp(parent, ".tmp-"+r.ID+"-")
	if err != nil {
		return "", fmt.Errorf("extracting %s: %w", r.ID, err)
	}
	defer removeAll(tmp)
	root := filepath.Join(tmp, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		return "", fmt.Errorf("extracting %s: %w", r.ID, err)
	}
	f, err := os.Open(r.Tarball)
	if err != nil {
		return "", fmt.Errorf("extracting %s: %w", r.ID, err)
	}
	defer f.Close()
	zr, err := archive.NewDecompressor(f)
	if err != nil {
		return "", fmt.Errorf("extracting %s: %w", r.ID, err)
	}
	defer zr.Close()
	if err := archive.Extract(archive.NewReader(zr, archive.Policy{Prefix: b.opts.Prefix}), root); err != nil {
		return "", fmt.Errorf("extracting %s: %w", r.ID, err)
	}
	if err := os.Rename(root, dest); err != nil {
		return "", fmt.Errorf("extracting %s: %w", r.ID, err)
	}
	return dest, nil
}
