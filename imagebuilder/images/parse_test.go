package images

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
)

// files makes a base and a bundle file and returns their paths.
func files(t *testing.T) (base, bundle string) {
	t.Helper()
	dir := t.TempDir()
	base, bundle = filepath.Join(dir, "base.tar"), filepath.Join(dir, "bundle.tar.zst")
	for _, p := range []string{base, bundle} {
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return base, bundle
}

const good = `
packer {
  required_plugins {
    imagebuilder = { source = "github.com/imagebuilder/imagebuilder", version = ">= 0.1.0" }
  }
}
variable "base" {
  type    = string
  default = "nope.tar"
}
variable "bundle" { type = string }
variable "out" {
  default = "out"
}
source "imagebuilder" "debian-master" {
  base             = var.base
  bundle           = var.bundle
  role             = "master"
  formats          = ["qcow2"]
  output_directory = "${var.out}/m"
  disk_size_mib    = 2048
}
source "imagebuilder" "debian-agent" {
  base             = var.base
  bundle           = var.bundle
  output_directory = "${var.out}/a"
  image_name       = "agent"
}
source "null" "other" {
  communicator = "none"
}
build {
  sources = ["source.imagebuilder.debian-master", "source.null.other", "source.imagebuilder.debian-agent"]
  provisioner "shell-local" { inline = ["true"] }
}
`

func TestParseGood(t *testing.T) {
	base, bundle := files(t)
	f, diags := Parse("images.hcl", []byte(good), map[string]string{"base": base, "bundle": bundle})
	if diags.HasErrors() {
		t.Fatalf("diagnostics: %v", diags)
	}
	if d := f.Validate(nil); d.HasErrors() {
		t.Fatalf("validate: %v", d)
	}
	sel := f.Selected(nil)
	if len(sel) != 2 || sel[0].Name != "debian-master" || sel[1].Name != "debian-agent" {
		t.Fatalf("selected %+v", sel)
	}
	m := sel[0]
	if m.Base != base || m.Bundle != bundle || m.Role != "master" || m.OutputDirectory != "out/m" ||
		m.DiskSizeMiB != 2048 || len(m.Formats) != 1 || m.Formats[0] != "qcow2" {
		t.Errorf("debian-master = %+v", m)
	}
	o := sel[1].Options(bundle)
	if o.Name != "agent" || o.OutDir != "out/a" || o.Formats != nil || o.Role != "" {
		t.Errorf("debian-agent options = %+v", o)
	}
	if got := f.Skipped(); len(got) != 1 || got[0] != "null.other" {
		t.Errorf("skipped = %v", got)
	}
	for _, tc := range []struct {
		only []string
		want string
	}{
		{[]string{"debian-agent"}, "debian-agent"},
		{[]string{"imagebuilder.debian-m*"}, "debian-master"},
		{[]string{"*agent"}, "debian-agent"},
	} {
		got := f.Selected(tc.only)
		if len(got) != 1 || got[0].Name != tc.want {
			t.Errorf("Selected(%v) = %v, want %s", tc.only, got, tc.want)
		}
	}
	if got := f.Selected([]string{"rhel*"}); len(got) != 0 {
		t.Errorf("Selected(rhel*) = %v", got)
	}
}

// diagAt asserts one error diagnostic mentions want at line.
func diagAt(t *testing.T, diags hcl.Diagnostics, line int, want string) {
	t.Helper()
	for _, d := range diags {
		s := FormatDiag(d)
		if strings.Contains(s, want) && (line == 0 || d.Subject != nil && d.Subject.Start.Line == line) {
			if line > 0 && !strings.HasPrefix(s, "images.hcl:") {
				t.Errorf("diagnostic %q does not start with file:line", s)
			}
			return
		}
	}
	t.Errorf("no diagnostic with %q at line %d in:\n%s", want, line, DiagError{diags}.Error())
}

func TestParseBadInput(t *testing.T) {
	base, bundle := files(t)
	vars := map[string]string{"base": base, "bundle": bundle}
	src := func(body string) []byte {
		return []byte(`variable "base" {}
variable "bundle" {}
source "imagebuilder" "x" {
  base = var.base
  bundle = var.bundle
  output_directory = "out"
` + body + `
}
build { sources = ["source.imagebuilder.x"] }
`)
	}
	tests := []struct {
		name string
		src  []byte
		vars map[string]string
		line int
		want string
	}{
		{"unknown field", src(`  formts = ["raw"]`), vars, 7, `An argument named "formts" is not expected here`},
		{"wrong type", src(`  formats = "raw"`), vars, 7, "formats: want a list of strings"},
		{"unset variable", src(""), map[string]string{"base": base}, 5, `variable "bundle" has no default; pass --var bundle=VALUE`},
		{"undeclared -var", src(""), map[string]string{"base": base, "bundle": bundle, "bogus": "1"}, 0, `declares no variable "bogus"`},
		{"unknown source", []byte(`build { sources = ["source.imagebuilder.nope"] }`), nil, 1, `"source.imagebuilder.nope" names no source block`},
		{"syntax", []byte("source \"imagebuilder\" \"x\" {\n  base = \n}\n"), nil, 2, "Invalid expression"},
		{"no build", []byte(`variable "a" {}`), nil, 0, "has no build"},
		{"duplicate source", []byte(`
source "imagebuilder" "x" {
  base = "a"
  bundle = "b"
  output_directory = "o"
}
source "imagebuilder" "x" {
  base = "a"
  bundle = "b"
  output_directory = "o"
}
build { sources = ["source.imagebuilder.x"] }`), nil, 7, "already declared at"},
		{"conflicting outputs", []byte(`
source "imagebuilder" "a" {
  base = "a"
  bundle = "b"
  output_directory = "o"
  image_name = "host"
}
source "imagebuilder" "b" {
  base = "a"
  bundle = "b"
  output_directory = "o"
  image_name = "host"
}
build { sources = ["source.imagebuilder.a", "source.imagebuilder.b"] }`), nil, 11, `both write o/host.raw`},
		{"missing required", []byte(`
source "imagebuilder" "a" {
  base = "a"
}
build { sources = ["source.imagebuilder.a"] }`), nil, 0, `The argument "bundle" is required`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, diags := Parse("images.hcl", tc.src, tc.vars)
			if !diags.HasErrors() {
				t.Fatal("no error")
			}
			diagAt(t, diags, tc.line, tc.want)
		})
	}
}

func TestValidateFields(t *testing.T) {
	base, bundle := files(t)
	dir := t.TempDir()
	src := `source "imagebuilder" "x" {
  base = "` + dir + `"
  bundle = "` + filepath.Join(dir, "missing.tar.zst") + `"
  role = "boss"
  formats = ["qcow2", "vhdx", "qcow2"]
  output_directory = "out"
  image_name = "a/b"
  disk_size_mib = -1
  ip_detect = "` + base + `"
}
build { sources = ["source.imagebuilder.x"] }
`
	f, diags := Parse("images.hcl", []byte(src), nil)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	diags = f.Validate(nil)
	diagAt(t, diags, 2, "base: "+dir+" is a directory")
	diagAt(t, diags, 3, "bundle: "+filepath.Join(dir, "missing.tar.zst")+": no such file or directory")
	diagAt(t, diags, 4, `role: "boss" is not a role`)
	diagAt(t, diags, 5, `formats: "vhdx" is not a format`)
	diagAt(t, diags, 5, `formats: "qcow2" is listed twice`)
	diagAt(t, diags, 7, `image_name: "a/b" must be a plain file name`)
	diagAt(t, diags, 8, "disk_size_mib: -1 is negative")
	diagAt(t, diags, 9, "ip_detect: needs genconf_config")
	if len(diags) != 8 {
		t.Errorf("want all 8 problems at once, got %d:\n%s", len(diags), DiagError{diags}.Error())
	}

	// Fixed, it validates; an empty formats list is its own error.
	s := Source{Name: "x", Base: base, Bundle: bundle, OutputDirectory: "out", Formats: []string{}}
	if err := s.Validate(); err == nil || !strings.Contains(err.Error(), "formats: empty") {
		t.Errorf("empty formats: %v", err)
	}
	s.Formats = nil
	if err := s.Validate(); err != nil {
		t.Errorf("valid source: %v", err)
	}
}

// TestRepoImagesHCL parses the repository's own images.hcl: four sources
// for Debian, Ubuntu and RHEL, all in the build.
func TestRepoImagesHCL(t *testing.T) {
	src, err := os.ReadFile("../../images.hcl")
	if err != nil {
		t.Fatal(err)
	}
	f, diags := Parse("images.hcl", src, map[string]string{"out": "/o"})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	want := map[string]string{"debian-master": "master", "debian-agent": "", "ubuntu-agent-public": "agent_public", "rhel-agent": "agent"}
	sel := f.Selected(nil)
	if len(sel) != len(want) {
		t.Fatalf("sources %v", sel)
	}
	for _, s := range sel {
		role, ok := want[s.Name]
		if !ok || s.Role != role || s.OutputDirectory != "/o/"+s.Name || s.GenconfConfig != "examples/config.yaml" {
			t.Errorf("source %+v", s)
		}
	}
}

// FuzzParse: any input yields diagnostics or a file, never a panic.
func FuzzParse(f *testing.F) {
	f.Add([]byte(good))
	f.Add([]byte(`source "imagebuilder" "x" { formats = [1, 2] disk_size_mib = 1.5 }`))
	f.Add([]byte(`build { sources = "x" }`))
	f.Add([]byte(`source "imagebuilder" "x" { formats = [null] }
build { sources = [null, "source.imagebuilder.x"] }`))
	f.Add([]byte(`variable "v" {}
source "imagebuilder" "x" { formats = [var.v] }
build { sources = [var.v] }`))
	f.Fuzz(func(t *testing.T, src []byte) {
		file, diags := Parse("f.hcl", src, map[string]string{})
		if file == nil && !diags.HasErrors() {
			t.Fatal("no file and no error")
		}
		if file != nil && !diags.HasErrors() {
			file.Validate(nil)
			file.Selected([]string{"*"})
		}
	})
}

// TestValidateOnlySelected: --only debian-* does not trip over a missing
// RHEL base.
func TestValidateOnlySelected(t *testing.T) {
	base, bundle := files(t)
	src := `source "imagebuilder" "debian" {
  base = "` + base + `"
  bundle = "` + bundle + `"
  output_directory = "out/debian"
}
source "imagebuilder" "rhel" {
  base = "/nonexistent/rhel.tar"
  bundle = "` + bundle + `"
  output_directory = "out/rhel"
}
build { sources = ["source.imagebuilder.debian", "source.imagebuilder.rhel"] }
`
	f, diags := Parse("images.hcl", []byte(src), nil)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if d := f.Validate([]string{"debian*"}); d.HasErrors() {
		t.Errorf("validating debian only: %v", d)
	}
	d := f.Validate(nil)
	diagAt(t, d, 7, "base: /nonexistent/rhel.tar: no such file or directory")
}
