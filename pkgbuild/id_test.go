package pkgbuild

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// idRepo is the repository the id tests mutate: dep, and app requiring dep with a
// dir source holding a file, an executable and a symlink.
func idRepo(t *testing.T) *testRepo {
	r := newRepo(t)
	r.pkg("dep", `{}`, "mkdir -p $OUT\n", nil)
	r.pkg("app", `{"requires": ["dep"], "sources": {"src": {"kind": "dir", "path": "src"}}}`, "cp -r $SRC/src $OUT/\n",
		map[string]string{"src/file": "content\n", "src/sub/run": "#!/bin/sh\n"})
	if err := os.Chmod(filepath.Join(r.root, "packages/app/src/sub/run"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("file", filepath.Join(r.root, "packages/app/src/link")); err != nil {
		t.Fatal(err)
	}
	return r
}

func planIDs(t *testing.T, r *testRepo, mod func(*Options)) map[string]string {
	t.Helper()
	pl, err := r.builder(t.TempDir(), nil, mod).Plan()
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{}
	for n, p := range pl.Packages {
		ids[n] = p.ID
	}
	return ids
}

func TestPackageID(t *testing.T) {
	base := planIDs(t, idRepo(t), nil)
	if again := planIDs(t, idRepo(t), nil); again["app"] != base["app"] || again["dep"] != base["dep"] {
		t.Fatalf("same inputs, different ids: %v vs %v", base, again)
	}
	if !strings.HasPrefix(base["app"], "app--") || len(base["app"]) != len("app--")+32 {
		t.Fatalf("id %q is not app--<32 hex>", base["app"])
	}
	pkg := func(r *testRepo, p string) string { return filepath.Join(r.root, "packages", p) }
	tests := []struct {
		name    string
		mutate  func(t *testing.T, r *testRepo)
		opts    func(*Options)
		changes bool // whether app's id must change
		depToo  bool // whether dep's id must change
	}{
		{"buildinfo", func(t *testing.T, r *testRepo) {
			r.write(filepath.Join(pkg(r, "app"), "buildinfo.json"), `{"requires": ["dep"], "sources": {"src": {"kind": "dir", "path": "src"}}, "environment": {"X": "1"}}`, 0o644)
		}, nil, true, false},
		{"build script", func(t *testing.T, r *testRepo) {
			r.write(filepath.Join(pkg(r, "app"), "build"), "cp -r $SRC/src $OUT/ # changed\n", 0o644)
		}, nil, true, false},
		{"source content", func(t *testing.T, r *testRepo) {
			r.write(filepath.Join(pkg(r, "app"), "src/file"), "other\n", 0o644)
		}, nil, true, false},
		{"source new empty dir", func(t *testing.T, r *testRepo) {
			os.Mkdir(filepath.Join(pkg(r, "app"), "src/empty"), 0o755)
		}, nil, true, false},
		{"source exec bit", func(t *testing.T, r *testRepo) {
			os.Chmod(filepath.Join(pkg(r, "app"), "src/file"), 0o755)
		}, nil, true, false},
		{"source symlink target", func(t *testing.T, r *testRepo) {
			l := filepath.Join(pkg(r, "app"), "src/link")
			os.Remove(l)
			os.Symlink("sub/run", l)
		}, nil, true, false},
		{"source file renamed", func(t *testing.T, r *testRepo) {
			os.Rename(filepath.Join(pkg(r, "app"), "src/file"), filepath.Join(pkg(r, "app"), "src/file2"))
		}, nil, true, false},
		{"required package", func(t *testing.T, r *testRepo) {
			r.write(filepath.Join(pkg(r, "dep"), "build"), "mkdir -p $OUT/x\n", 0o644)
		}, nil, true, true},
		{"prefix", nil, func(o *Options) { o.Prefix = "/opt/other" }, true, true},
		{"source date epoch", nil, func(o *Options) { o.SourceDateEpoch = 1 }, true, true},
		{"mtime only", func(t *testing.T, r *testRepo) {
			old := time.Unix(1000, 0)
			os.Chtimes(filepath.Join(pkg(r, "app"), "src/file"), old, old)
		}, nil, false, false},
		{"non-exec mode bits only", func(t *testing.T, r *testRepo) {
			os.Chmod(filepath.Join(pkg(r, "app"), "src/file"), 0o600)
		}, nil, false, false},
		{"unrelated package added", func(t *testing.T, r *testRepo) {
			r.pkg("other", `{}`, "true\n", nil)
		}, nil, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := idRepo(t)
			if tc.mutate != nil {
				tc.mutate(t, r)
			}
			got := planIDs(t, r, tc.opts)
			if changed := got["app"] != base["app"]; changed != tc.changes {
				t.Errorf("app id changed=%v, want %v (%s -> %s)", changed, tc.changes, base["app"], got["app"])
			}
			if changed := got["dep"] != base["dep"]; changed != tc.depToo {
				t.Errorf("dep id changed=%v, want %v", changed, tc.depToo)
			}
		})
	}
}
