package imagebuilder

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"imagebuilder/genconf"
	"imagebuilder/imagebuilder/build"
	"imagebuilder/imagebuilder/images"
	"imagebuilder/pkgbuild/atomicfile"
)

func TestArtifactListsEveryFileWithChecksum(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) (string, string) {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		sum, err := atomicfile.SHA256(p)
		if err != nil {
			t.Fatal(err)
		}
		return p, sum
	}
	qcow, qsum := write("m.qcow2", "qcow2 bytes")
	raw, rsum := write("m.raw", "raw bytes")
	_, msum := write("m.manifest.json", "{}")
	cb, csum := write("cluster-bundle-abc.tar.zst", "bundle")
	a := newArtifact(&images.Built{
		Result: &build.Result{Name: "m", Distro: "debian 12", Role: "master", BundleSHA256: csum, Artifacts: []build.Artifact{
			{Format: "raw", Path: raw, SHA256: rsum}, {Format: "qcow2", Path: qcow, SHA256: qsum},
		}},
		Genconf: &genconf.Output{Bundle: cb, BundleSHA256: csum},
	})
	files := a.Files()
	if len(files) != 4 || files[0] != raw || files[1] != qcow || files[2] != filepath.Join(dir, "m.manifest.json") || files[3] != cb {
		t.Fatalf("files %v", files)
	}
	s := a.String()
	for _, want := range []string{"raw " + raw + " sha256:" + rsum, "qcow2 " + qcow + " sha256:" + qsum, "sha256:" + msum, "cluster-bundle " + cb + " sha256:" + csum, "role master"} {
		if !strings.Contains(s, want) {
			t.Errorf("String() lacks %q:\n%s", want, s)
		}
	}
	if a.Id() != "m@sha256:"+rsum || a.BuilderId() != BuilderID {
		t.Errorf("id %s builder %s", a.Id(), a.BuilderId())
	}
	if a.State("sha256:"+qcow) != qsum || a.State("result").(*build.Result).Name != "m" || a.State("nope") != nil {
		t.Errorf("state answers wrong")
	}
	if err := a.Destroy(); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if _, err := os.Stat(f); !os.IsNotExist(err) {
			t.Errorf("%s survived Destroy", f)
		}
	}
}
