package cli

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestBuildInPlaceFlags: --in-place, --appliance-kernel and --appliance-bin
// reach the build, whose in-place checks name what is wrong; nothing is
// written.
func TestBuildInPlaceFlags(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "base.tar")
	writeTar(t, base, map[string]string{"etc/os-release": "ID=debian\nVERSION_ID=12\n"})
	cb := filepath.Join(dir, "cb.tar")
	writeTar(t, cb, map[string]string{"manifest.json": `{"prefix":"/opt/cluster"}`, "etc/cluster.env": "CLUSTER_PREFIX=/opt/cluster\n"})
	out := filepath.Join(dir, "out")
	code, _, stderr := run(t, "build", "--in-place", "--base", base, "--bundle", cb, "--out", out, "--format", "qcow2,tar",
		"--appliance-kernel", filepath.Join(dir, "nokernel.tar"), "--appliance-bin", filepath.Join(dir, "noappliance"))
	if code == 0 {
		t.Fatal("in-place build of a tarball base succeeded")
	}
	for _, want := range []string{"is a tar; the in-place path takes a raw or qcow2 disk image", `format "tar": the in-place path writes raw and qcow2 only`,
		"appliance kernel: stat " + filepath.Join(dir, "nokernel.tar"), "appliance binary: stat " + filepath.Join(dir, "noappliance")} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	noArtifacts(t, out)
}
