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
// modules, the Go build cache) are kept between runs.
func cacheDir(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("IMAGEBUILDER_CACHE"); d != "" {
		return filepath.Join(d, "pkgbuild-cache")
	}
	d, err := os.UserCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(d, "imagebuilder", "pkgbuild-cache")
}

// sandboxBuild builds the named package and its requirements with pkgbuild,
// in the bubblewrap sandbox, into a fresh store.
func sandboxBuild(t *testing.T, name string) pkgbuild.Result {
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
	rs, err := b.Build(context.Background(), name)
	if err != nil {
		t.Fatalf("building %s: %v\nlog:\n%s", name, err, log.String())
	}
	for _, r := range rs {
		if r.Name == name {
			return r
		}
	}
	t.Fatalf("no result for %s", name)
	return pkgbuild.Result{}
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

// TestEtcd builds etcd and etcdctl from the module proxy (go_module sources
// pinned by go.sum) twice in the sandbox: same bytes, static binaries that
// report version 3.6.6.
func TestEtcd(t *testing.T) {
	bi := readBuildinfo(t, "etcd")
	for name, want := range map[string]string{"server": "go.etcd.io/etcd/server/v3@v3.6.6", "etcdctl": "go.etcd.io/etcd/etcdctl/v3@v3.6.6"} {
		s := bi.Sources[name]
		if s.Kind != "go_module" || s.Module+"@"+s.Version != want || s.GoSum == "" {
			t.Errorf("source %s: %+v, want go_module %s with a go_sum", name, s, want)
		}
	}
	first := sandboxBuild(t, "etcd")
	second := sandboxBuild(t, "etcd")
	if first.ID != second.ID {
		t.Fatalf("ids %s and %s", first.ID, second.ID)
	}
	a, err := os.ReadFile(first.Tarball)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(second.Tarball)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) || first.SHA256 != second.SHA256 {
		t.Errorf("etcd built twice: %s and %s", first.SHA256, second.SHA256)
	}
	root := extract(t, first.Tarball)
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
