package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"imagebuilder/pkgbuild/ocicache/ocitest"
)

// TestPkgBuildRemoteCacheJSON: pkg build --cache pushes; a second builder with
// an empty store pulls (reported as "pulled" in --json); the SBOM lies beside
// the bundle.
func TestPkgBuildRemoteCacheJSON(t *testing.T) {
	reg := ocitest.StartRegistry(t)
	repo := t.TempDir()
	pkg := filepath.Join(repo, "packages", "hello")
	os.MkdirAll(pkg, 0o755)
	os.WriteFile(filepath.Join(pkg, "buildinfo.json"), []byte(`{"username": ["hello"]}`), 0o644)
	os.WriteFile(filepath.Join(pkg, "build"), []byte("#!/bin/bash\nmkdir -p $OUT/bin\nprintf '#!/bin/sh\\necho hi\\n' > $OUT/bin/hello\nchmod 755 $OUT/bin/hello\n"), 0o755)
	cache := "oci://" + reg.Addr + "/imagebuilder/packages"
	type output struct {
		Bundle, SHA256, SBOM string
		Builds               []struct{ Name, ID, State string }
	}
	build := func() output {
		out := filepath.Join(t.TempDir(), "bundle.tar.zst")
		code, stdout, stderr := run(t, "--json", "pkg", "build", "--repo", repo, "--packages", filepath.Join(repo, "packages"),
			"--store", filepath.Join(t.TempDir(), "store"), "--cache", cache, "--out", out)
		if code != 0 {
			t.Fatalf("exit %d:\n%s", code, stderr)
		}
		var o output
		if err := json.Unmarshal([]byte(stdout), &o); err != nil {
			t.Fatalf("%v:\n%s", err, stdout)
		}
		if o.Bundle != out || o.SBOM != out+".spdx.json" {
			t.Errorf("output %+v", o)
		}
		sbom, err := os.ReadFile(o.SBOM)
		if err != nil || !strings.Contains(string(sbom), `"spdxVersion": "SPDX-2.3"`) || !strings.Contains(string(sbom), o.SHA256) {
			t.Errorf("sbom: %v\n%s", err, sbom)
		}
		return o
	}
	first, second := build(), build()
	if len(first.Builds) != 1 || first.Builds[0].State != "built" || len(second.Builds) != 1 || second.Builds[0].State != "pulled" {
		t.Errorf("builds: %+v then %+v", first.Builds, second.Builds)
	}
	if first.SHA256 != second.SHA256 {
		t.Errorf("bundles differ: %s and %s", first.SHA256, second.SHA256)
	}
	code, _, stderr := run(t, "pkg", "build", "--repo", repo, "--cache", "s3://x", "--out", filepath.Join(t.TempDir(), "b"))
	if code == 0 || !strings.Contains(stderr, "s3://x") {
		t.Errorf("bad --cache: %d %s", code, stderr)
	}
}
