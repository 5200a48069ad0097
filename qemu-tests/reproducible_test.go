package qemutests

import (
	"os"
	"path/filepath"
	"testing"
)

// TestReproducibleImage builds the same image twice, in different folders
// and at different times, and compares every output byte for byte.
func TestReproducibleImage(t *testing.T) {
	cb := clusterBundle(t, "")
	a := buildImage(t, cb, "master", "raw", "qcow2")
	b := buildImage(t, cb, "master", "raw", "qcow2")
	if len(a.Artifacts) != 2 || len(b.Artifacts) != 2 {
		t.Fatalf("artifacts: %+v / %+v", a.Artifacts, b.Artifacts)
	}
	for i := range a.Artifacts {
		if a.Artifacts[i].SHA256 != b.Artifacts[i].SHA256 {
			t.Errorf("%s differs between two builds: %s vs %s", a.Artifacts[i].Format, a.Artifacts[i].SHA256, b.Artifacts[i].SHA256)
		}
	}
	ma, err := os.ReadFile(filepath.Join(filepath.Dir(a.Artifacts[0].Path), "host.manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	mb, err := os.ReadFile(filepath.Join(filepath.Dir(b.Artifacts[0].Path), "host.manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	if string(ma) != string(mb) {
		t.Errorf("build manifests differ:\n%s\n---\n%s", ma, mb)
	}
}
