package packages_test

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"imagebuilder/pkgbuild"
	"imagebuilder/pkgbuild/archive"
)

// cacheDir is where slow, content-addressed build inputs (sources, Go
// modules, the Go build cache) are kept between runs: the cache of the store
// that "imagebuilder pkg build" and the boot tests use by default, so they
// share one warm Go build cache.
func cacheDir(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("IMAGEBUILDER_CACHE"); d != "" {
		return filepath.Join(d, "store", "cache")
	}
	d, err := os.UserCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(d, "imagebuilder", "store", "cache")
}

// sandboxBuild builds the named packages (all with none) and their
// requirements with pkgbuild, in the bubblewrap sandbox, into a fresh store.
func sandboxBuild(t *testing.T, names ...string) []pkgbuild.Result {
	t.Helper()
	if _, err := exec.LookPath("bwrap"); err != nil {
		t.Fatal("bwrap not found: apt-get install bubblewrap")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Fatal("go not on PATH: go_module packages need the Go toolchain (Go 1.26 from go.dev)")
	}
	var log bytes.Buffer
	b, err := pkgbuild.New(pkgbuild.Options{
		RepoRoot:    "..",
		PackagesDir: ".",
		StoreDir:    t.TempDir(),
		CacheDir:    cacheDir(t),
		Logger:      slog.New(slog.NewTextHandler(&log, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	rs, err := b.Build(context.Background(), names...)
	if err != nil {
		t.Fatalf("building %v: %v\nlog:\n%s", names, err, log.String())
	}
	return rs
}

func extract(t *testing.T, tarball string) string {
	t.Helper()
	f, err := os.Open(tarball)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := archive.NewDecompressor(f)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	dir := t.TempDir()
	if err := archive.Extract(archive.NewReader(zr, archive.Policy{Prefix: prefix}), dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// sandboxBuildAll builds every reference package with pkgbuild into a fresh
// store and returns the results by name.
func sandboxBuildAll(t *testing.T) map[string]pkgbuild.Result {
	t.Helper()
	names, err := filepath.Glob("*/buildinfo.json")
	if err != nil || len(names) == 0 {
		t.Fatalf("no */buildinfo.json: %v", err)
	}
	out := map[string]pkgbuild.Result{}
	for _, r := range sandboxBuild(t) {
		out[r.Name] = r
	}
	if len(out) != len(names) {
		t.Fatalf("built %d packages, want %d (%v)", len(out), len(names), names)
	}
	return out
}

// TestReferenceSetInSandbox builds the whole reference set twice, each time
// into an empty store, in the bubblewrap sandbox: every package tarball is
// the same bytes both times. Then it runs what was built.
func TestReferenceSetInSandbox(t *testing.T) {
	first := sandboxBuildAll(t)
	second := sandboxBuildAll(t)
	for name, a := range first {
		b := second[name]
		ab, err := os.ReadFile(a.Tarball)
		if err != nil {
			t.Fatal(err)
		}
		bb, err := os.ReadFile(b.Tarball)
		if err != nil {
			t.Fatal(err)
		}
		if a.ID != b.ID || !bytes.Equal(ab, bb) || a.SHA256 != b.SHA256 {
			t.Errorf("%s built twice: %s %s and %s %s", name, a.ID, a.SHA256, b.ID, b.SHA256)
		}
	}
	t.Run("etcd", func(t *testing.T) { checkEtcd(t, first["etcd"]) })
	t.Run("tcpwait", func(t *testing.T) { checkTCPWait(t, first["tcpwait"]) })
}

// checkEtcd: etcd and etcdctl from the module proxy (go_module sources pinned
// by go.sum) are static and report version 3.6.6.
func checkEtcd(t *testing.T, res pkgbuild.Result) {
	bi := readBuildinfo(t, "etcd")
	for name, want := range map[string]string{"server": "go.etcd.io/etcd/server/v3@v3.6.6", "etcdctl": "go.etcd.io/etcd/etcdctl/v3@v3.6.6"} {
		s := bi.Sources[name]
		if s.Kind != "go_module" || s.Module+"@"+s.Version != want || s.GoSum == "" {
			t.Errorf("source %s: %+v, want go_module %s with a go_sum", name, s, want)
		}
	}
	root := extract(t, res.Tarball)
	got := tree(t, root)
	var paths []string
	for p := range got {
		paths = append(paths, p)
	}
	if len(paths) != 4 || got["bin/etcd"] == "" || got["bin/etcdctl"] == "" {
		t.Errorf("package holds %v, want bin/etcd and bin/etcdctl", paths)
	}
	for bin, args := range map[string][]string{"etcd": {"--version"}, "etcdctl": {"version"}} {
		p := filepath.Join(root, "bin", bin)
		assertStatic(t, p)
		out, err := exec.Command(p, args...).CombinedOutput()
		if err != nil || !strings.Contains(string(out), bin+" version: 3.6.6") && !strings.Contains(string(out), "etcd Version: 3.6.6") {
			t.Errorf("%s %v: %v\n%s", bin, args, err, out)
		}
	}
}
