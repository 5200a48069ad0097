package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestValidateImagesFile(t *testing.T) {
	dir := t.TempDir()
	base, bundle := filepath.Join(dir, "base.tar"), filepath.Join(dir, "b.tar.zst")
	writeTar(t, base, map[string]string{"etc/os-release": "ID=debian\n"})
	os.WriteFile(bundle, []byte("x"), 0o644)
	file := filepath.Join(dir, "images.hcl")
	os.WriteFile(file, []byte(`variable "base" {}
source "imagebuilder" "deb" {
  base = var.base
  bundle = "`+bundle+`"
  role = "master"
  output_directory = "`+dir+`/out"
}
build { sources = ["source.imagebuilder.deb"] }
`), 0o644)

	code, out, errb := run(t, "validate", file, "--var", "base="+base, "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb)
	}
	var res struct {
		Valid   bool
		Sources []string
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || !res.Valid || len(res.Sources) != 1 || res.Sources[0] != "deb" {
		t.Fatalf("output %q: %v", out, err)
	}

	// A missing base: the error points at the field's line.
	code, _, errb = run(t, "validate", file, "--var", "base="+filepath.Join(dir, "nope.tar"))
	if code != 1 || !strings.Contains(errb, file+":3:10: ") || !strings.Contains(errb, "base: ") || !strings.Contains(errb, "no such file") {
		t.Fatalf("exit %d, stderr %q", code, errb)
	}
	// --only that matches nothing says what exists.
	code, _, errb = run(t, "build", file, "--var", "base="+base, "--only", "rhel*")
	if code != 1 || !strings.Contains(errb, "matches none") || !strings.Contains(errb, "deb") {
		t.Fatalf("exit %d, stderr %q", code, errb)
	}
	// Flags of the flag-driven build do not mix with a file.
	code, _, errb = run(t, "build", file, "--var", "base="+base, "--role", "agent")
	if code != 1 || !strings.Contains(errb, "--role: set it in "+file) {
		t.Fatalf("exit %d, stderr %q", code, errb)
	}
	if _, err := os.Stat(filepath.Join(dir, "out")); !os.IsNotExist(err) {
		t.Errorf("output folder created by a refused build: %v", err)
	}
}
