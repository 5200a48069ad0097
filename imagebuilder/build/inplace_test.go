package build

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestValidateInPlace: the in-place path takes a disk image only, writes
// raw and qcow2 only, and needs an appliance kernel and binary; each
// problem is named.
func TestValidateInPlace(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "base.tar")
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	tw.WriteHeader(&tar.Header{Name: "etc/", Typeflag: tar.TypeDir, Mode: 0o755})
	tw.Close()
	os.WriteFile(base, tb.Bytes(), 0o644)
	bundle := filepath.Join(dir, "cb.tar.zst")
	os.WriteFile(bundle, nil, 0o644)
	t.Setenv("PATH", dir) // no imagebuilder-appliance anywhere
	o := Options{Base: base, Bundle: bundle, OutDir: dir, Formats: []string{"qcow2", "vmdk"}, InPlace: true}
	err := o.validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		"in-place: base " + base + " is a tar; the in-place path takes a raw or qcow2 disk image",
		`in-place: format "vmdk": the in-place path writes raw and qcow2 only`,
		"in-place: appliance kernel: required",
		"in-place: no appliance binary",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	o = Options{Base: base, Bundle: bundle, OutDir: dir, InPlace: true,
		ApplianceKernel: filepath.Join(dir, "missing.tar"), ApplianceBinary: filepath.Join(dir, "missing-appliance")}
	err = o.validate()
	for _, want := range []string{"in-place: appliance kernel: stat " + filepath.Join(dir, "missing.tar"), "in-place: appliance binary: stat "} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}
