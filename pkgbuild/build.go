package pkgbuild

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"imagebuilder/pkgbuild/bundle"
	"imagebuilder/pkgbuild/ocicache"
)

// logTailLines is how many lines of a failed build's log the error carries.
const logTailLines = 20

// Builder builds packages into a store.
type Builder struct {
	opts   Options
	store  Store
	src    *sourceCache
	gomod  *goModules
	remote *ocicache.Cache
	treeMu sync.Mutex
}

// New returns a Builder; see Options for the defaults.
func New(opts Options) (*Builder, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	var remote *ocicache.Cache
	if o.CacheURL != "" {
		if remote, err = ocicache.Open(o.CacheURL, o.HTTPClient); err != nil {
			return nil, err
		}
	}
	return &Builder{
		opts:   o,
		remote: remote,
		store:  Store{Dir: o.StoreDir},
		src:    &sourceCache{dir: filepath.Join(o.CacheDir, "sources"), client: o.HTTPClient, log: o.Logger},
		gomod: &goModules{
			dir:      filepath.Join(o.CacheDir, "sources", "gomod"),
			modCache: filepath.Join(o.CacheDir, "gomodcache"),
			env:      o.GoEnv,
			log:      o.Logger,
		},
	}, nil
}

// Store is the builder's package store.
func (b *Builder) Store() Store { return b.store }

// Result is one package of a Build.
type Result struct {
	Name     string
	ID       string
	Tarball  string
	SHA256   string
	Metadata *Metadata
	// Cached is true when the package was not built: the store already held
	// it, or it was pulled from the remote cache.
	Cached bool
	// Pulled is true when the package came from the remote cache.
	Pulled bool
}

// BundlePackage is the bundle input for this package.
func (r Result) BundlePackage() bundle.Package {
	return bundle.Package{Name: r.Name, ID: r.ID, Tarball: r.Tarball, SHA256: r.SHA256, Units: r.Metadata.Units}
}

// BundlePackages converts build results into bundle inputs.
func BundlePackages(rs []Result) []bundle.Package {
	out := make([]bundle.Package, 0, len(rs))
	for _, r := range rs {
		out = append(out, r.BundlePackage())
	}
	return out
}

// Build plans and builds the named packages (all with no names) and their
// requirements; see BuildPlan.
func (b *Builder) Build(ctx context.Context, names ...string) ([]Result, error) {
	pl, err := b.Plan(names...)
	if err != nil {
		return nil, err
	}
	return b.BuildPlan(ctx, pl)
}

func (b *Builder) buildOne(ctx context.Context, p *Package, deps map[string]Result) (Result, error) {
	log := b.opts.Logger.With("package", p.Name, "id", p.ID)
	md, err := b.store.Lookup(p.ID)
	switch {
	case err == nil:
		log.Info("cache hit, not rebuilding")
		b.share(ctx, log, md)
		return b.result(md, true), nil
	case errors.Is(err, ErrCorrupt):
		log.Warn("store entry does not verify; rebuilding", "err", err)
	case errors.Is(err, fs.ErrNotExist):
	default:
		return Result{}, fmt.Errorf("package %s: %w", p.Name, err)
	}
	corrupt := false // the remote cache serves a corrupted blob of p
	if b.remote != nil {
		md, err := b.pull(ctx, p)
		corrupt = errors.Is(err, ocicache.ErrCorrupt)
		switch {
		case err == nil:
			log.Info("pulled from the remote cache", "cache", b.remote.String(), "sha256", md.TarballSHA256)
			r := b.result(md, true)
			r.Pulled = true
			return r, nil
		case errors.Is(err, ocicache.ErrNotFound):
			log.Info("not in the remote cache", "cache", b.remote.String())
		default:
			log.Warn("remote cache entry unusable; building", "cache", b.remote.String(), "err", err)
		}
	}
	start := time.Now()
	log.Info("building")
	md, err = b.build(ctx, p, deps)
	if err != nil {
		return Result{}, err
	}
	log.Info("built", "sha256", md.TarballSHA256, "duration", time.Since(start).Round(time.Millisecond))
	switch {
	case b.remote == nil:
	case corrupt:
		if err := b.repair(ctx, md); err != nil {
			log.Warn("repairing the remote cache entry failed; the package stays local", "cache", b.remote.String(), "err", err)
		} else {
			log.Info("repaired the remote cache entry", "cache", b.remote.String())
		}
	default:
		if err := b.push(ctx, md); err != nil {
			log.Warn("pushing to the remote cache failed; the package stays local", "cache", b.remote.String(), "err", err)
		} else {
			log.Info("pushed to the remote cache", "cache", b.remote.String())
		}
	}
	return b.result(md, false), nil
}

// share pushes a package found in the local store to the remote cache when
// the remote cache lacks it (a store filled before the cache was used).
func (b *Builder) share(ctx context.Context, log *slog.Logger, md *Metadata) {
	if b.remote == nil {
		return
	}
	has, err := b.remote.Has(ctx, md.ID)
	switch {
	case err != nil:
		log.Warn("remote cache lookup failed", "cache", b.remote.String(), "err", err)
	case !has:
		if err := b.push(ctx, md); err != nil {
			log.Warn("pushing to the remote cache failed; the package stays local", "cache", b.remote.String(), "err", err)
		} else {
			log.Info("pushed to the remote cache", "cache", b.remote.String())
		}
	}
}

func (b *Builder) result(md *Metadata, cached bool) Result {
	return Result{Name: md.Name, ID: md.ID, Tarball: b.store.TarballPath(md.ID), SHA256: md.TarballSHA256, Metadata: md, Cached: cached}
}

func (b *Builder) build(ctx context.Context, p *Package, deps map[string]Result) (*Metadata, error) {
	fail := func(err error) (*Metadata, error) {
		return nil, fmt.Errorf("building package %s (%s): %w", p.Name, p.ID, err)
	}
	tmpRoot := filepath.Join(b.store.Dir, "tmp")
	if err := os.MkdirAll(tmpRoot, 0o755); err != nil {
		return fail(err)
	}
	work, err := os.MkdirTemp(tmpRoot, p.ID+"-")
	if err != nil {
		return fail(err)
	}
	defer removeAll(work)
	spec, err := b.sandboxSpec(ctx, p, deps, work)
	if err != nil {
		return fail(err)
	}
	logPath := b.store.LogPath(p.ID)
	var runErr error
	err = writeAtomic(logPath, 0o644, func(w io.Writer) error {
		net := "disabled"
		if spec.Network {
			net = "enabled"
		}
		fmt.Fprintf(w, "pkgbuild: building %s as %s (network %s)\n", p.Name, p.ID, net)
		runErr = b.opts.Sandbox.Run(ctx, spec, w)
		if runErr != nil {
			fmt.Fprintf(w, "pkgbuild: build failed: %v\n", runErr)
		}
		return nil
	})
	if err != nil {
		return fail(err)
	}
	if runErr != nil {
		return nil, fmt.Errorf("building package %s (%s) failed: %w; log %s; last %d lines:\n%s",
			p.Name, p.ID, runErr, logPath, logTailLines, tail(logPath, logTailLines))
	}
	if err := addHostFiles(p, filepath.Join(work, "out")); err != nil {
		return fail(err)
	}
	sum, err := writePackageTarball(filepath.Join(work, "out"), b.store.TarballPath(p.ID), b.opts.Prefix, b.opts.SourceDateEpoch)
	if err != nil {
		return fail(err)
	}
	md := &Metadata{
		Name:            p.Name,
		ID:              p.ID,
		BuilderVersion:  BuilderVersion,
		Prefix:          b.opts.Prefix,
		SourceDateEpoch: b.opts.SourceDateEpoch,
		Requires:        p.Requires,
		Units:           p.Def.Info.Units,
		StateDirectory:  p.Def.Info.StateDirectory,
		Username:        p.Def.Info.Username,
		Sources:         p.Sources,
		TarballSHA256:   sum,
	}
	if err := b.store.writeMetadata(md); err != nil {
		return fail(err)
	}
	return md, nil
}

// tail returns the last n lines of a file.
func tail(file string, n int) string {
	b, err := os.ReadFile(file)
	if err != nil {
		return fmt.Sprintf("(cannot read log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// removeAll removes a work tree even where a build left directories read-only.
func removeAll(dir string) {
	if os.RemoveAll(dir) == nil {
		return
	}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			os.Chmod(p, 0o700)
		}
		return nil
	})
	os.RemoveAll(dir)
}
