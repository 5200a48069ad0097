package imagebuilder

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPrepareReportsEveryField(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	var b Builder
	_, _, err := b.Prepare(map[string]interface{}{
		"packer_build_name": "debian-master",
		"base":              dir,
		"bundle":            filepath.Join(dir, "missing.tar.zst"),
		"role":              "boss",
		"formats":           []string{"qcow2", "vhdx", "qcow2"},
		"output_directory":  out,
		"disk_size_mib":     -5,
		"ip_detect":         "x",
	})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		"base: " + dir + " is a directory",
		"bundle: " + filepath.Join(dir, "missing.tar.zst") + ": no such file or directory",
		`role: "boss" is not a role`,
		`formats: "vhdx" is not a format`,
		`formats: "qcow2" is listed twice`,
		"disk_size_mib: -5 is negative",
		"ip_detect: needs genconf_config",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("Prepare created %s: %v", out, err)
	}
	if _, _, err := b.Prepare(map[string]interface{}{"bsae": "x"}); err == nil || !strings.Contains(err.Error(), `unknown configuration key: '"bsae"'`) {
		t.Errorf("misspelled key: %v", err)
	}
	if _, _, err := b.Prepare(map[string]interface{}{}); err == nil ||
		!strings.Contains(err.Error(), "base: required") || !strings.Contains(err.Error(), "bundle: required") {
		t.Errorf("empty config: %v", err)
	}
}

func TestPrepareDefaults(t *testing.T) {
	dir := t.TempDir()
	base, bundle := filepath.Join(dir, "base.tar"), filepath.Join(dir, "cb.tar.zst")
	os.WriteFile(base, []byte("x"), 0o644)
	os.WriteFile(bundle, []byte("x"), 0o644)
	var b Builder
	_, warns, err := b.Prepare(map[string]interface{}{"packer_build_name": "deb", "base": base, "bundle": bundle})
	if err != nil {
		t.Fatal(err)
	}
	if len(warns) != 1 || !strings.Contains(warns[0], "role is empty") {
		t.Errorf("warnings %v", warns)
	}
	// An existing image is not replaced without -force.
	out := filepath.Join(dir, "out")
	os.MkdirAll(out, 0o755)
	os.WriteFile(filepath.Join(out, "deb.qcow2"), nil, 0o644)
	cfg := map[string]interface{}{"packer_build_name": "deb", "base": base, "bundle": bundle, "output_directory": out}
	if _, _, err := b.Prepare(cfg); err == nil || !strings.Contains(err.Error(), "output_directory: "+filepath.Join(out, "deb.qcow2")+" already exists") {
		t.Errorf("existing output: %v", err)
	}
	cfg["packer_force"] = true
	if _, _, err := b.Prepare(cfg); err != nil {
		t.Errorf("existing output with -force: %v", err)
	}
	if _, _, err := b.Prepare(map[string]interface{}{"packer_build_name": "deb", "base": base, "bundle": bundle}); err != nil {
		t.Fatal(err)
	}
	s := b.config.Source()
	if s.OutputDirectory != "output-deb" || s.ImageName != "deb" || s.Name != "deb" {
		t.Errorf("defaults: %+v", s)
	}
	o := s.Options(bundle)
	if o.Name != "deb" || o.OutDir != "output-deb" || o.Base != base {
		t.Errorf("options %+v", o)
	}
}
