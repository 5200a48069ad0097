package qemutests

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"imagebuilder/genconf"
	"imagebuilder/imagebuilder/build"
	"imagebuilder/pkgbuild"
	"imagebuilder/pkgbuild/bundle"
)

// repoRoot is the repository, one level up from this package.
const repoRoot = ".."

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p))
	return len(p), nil
}

// baseTar returns the Debian base tarball or fails with how to get one.
func baseTar(t testing.TB) string {
	t.Helper()
	p := os.Getenv("IMAGEBUILDER_BASE_TAR")
	if p == "" {
		t.Fatal("IMAGEBUILDER_BASE_TAR is not set: run the boot tests with `make test` (it builds the Debian base with distros/debian/mkbase.sh, cached)")
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("IMAGEBUILDER_BASE_TAR: %v (build it with distros/debian/mkbase.sh %s)", err, p)
	}
	return p
}

// baseBundle builds the reference packages (the store is cached across
// runs) and assembles the bundle, once per test binary.
var baseBundle = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "imagebuilder-qemu-tests-")
	if err != nil {
		return "", err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cache := os.Getenv("IMAGEBUILDER_CACHE")
	if cache == "" {
		c, _ := os.UserCacheDir()
		cache = filepath.Join(c, "imagebuilder")
	}
	b, err := pkgbuild.New(pkgbuild.Options{RepoRoot: repoRoot, StoreDir: filepath.Join(cache, "store"), Logger: log})
	if err != nil {
		return "", err
	}
	results, err := b.Build(context.Background())
	if err != nil {
		return "", err
	}
	path, _, _, err := bundle.AssembleFile(dir, bundle.Input{Prefix: pkgbuild.DefaultPrefix, Packages: pkgbuild.BundlePackages(results)})
	return path, err
})

// clusterBundle bakes examples/config.yaml into the base bundle, with the
// example's ip-detect or, when ipDetect is not empty, that script instead.
func clusterBundle(t *testing.T, ipDetect string) string {
	t.Helper()
	return clusterBundleConfig(t, "", ipDetect)
}

// clusterBundleConfig is clusterBundle with configYAML instead of
// examples/config.yaml when it is not empty (its ip_detect_path must be
// "ip-detect").
func clusterBundleConfig(t testing.TB, configYAML, ipDetect string) string {
	t.Helper()
	base, err := baseBundle()
	if err != nil {
		t.Fatalf("building the bundle: %v", err)
	}
	cfgDir := t.TempDir()
	for _, f := range []string{"config.yaml", "ip-detect"} {
		data, err := os.ReadFile(filepath.Join(repoRoot, "examples", f))
		if err != nil {
			t.Fatal(err)
		}
		if f == "ip-detect" && ipDetect != "" {
			data = []byte(ipDetect)
		}
		if f == "config.yaml" && configYAML != "" {
			data = []byte(configYAML)
		}
		if err := os.WriteFile(filepath.Join(cfgDir, f), data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := genconf.Load(filepath.Join(cfgDir, "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := genconf.Generate(testLogger(t), cfg, base, filepath.Join(t.TempDir(), "serve"))
	if err != nil {
		t.Fatal(err)
	}
	return out.Bundle
}

// buildImage runs the real pipeline into a fresh folder.
func buildImage(t *testing.T, cb, role string, formats ...string) *build.Result {
	t.Helper()
	res, err := build.Run(context.Background(), testLogger(t), build.Options{
		Base: baseTar(t), Bundle: cb, Role: role, OutDir: t.TempDir(), Name: "host", Formats: formats,
	})
	if err != nil {
		t.Fatalf("building the image: %v", err)
	}
	return res
}

func artifact(t testing.TB, res *build.Result, format string) string {
	t.Helper()
	for _, a := range res.Artifacts {
		if a.Format == format {
			return a.Path
		}
	}
	t.Fatalf("no %s artifact in %+v", format, res.Artifacts)
	return ""
}

// buildImageOpts is buildImage to qcow2 with a kernel command line.
func buildImageOpts(t testing.TB, cb, role, cmdline string) (*build.Result, error) {
	t.Helper()
	return build.Run(context.Background(), testLogger(t), build.Options{
		Base: baseTar(t), Bundle: cb, Role: role, OutDir: t.TempDir(), Name: "host", Formats: []string{"qcow2"}, KernelCmdline: cmdline,
	})
}
