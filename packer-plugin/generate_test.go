package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestGeneratedSpecsUpToDate regenerates every *.hcl2spec.go with packer-sdc
// (built by tools/get-packer.sh) in a copy of this module and fails when a
// committed file differs: run `go generate ./...` in packer-plugin/.
func TestGeneratedSpecsUpToDate(t *testing.T) {
	out, err := exec.Command("tools/get-packer.sh", "sdc").Output()
	if err != nil {
		t.Fatalf("building packer-sdc with tools/get-packer.sh sdc: %v", err)
	}
	sdc := strings.TrimSpace(string(out))
	bin := t.TempDir()
	if err := os.Symlink(sdc, filepath.Join(bin, "packer-sdc")); err != nil {
		t.Fatal(err)
	}
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	mod := filepath.Join(t.TempDir(), "packer-plugin")
	if out, err := exec.Command("cp", "-a", ".", mod).CombinedOutput(); err != nil {
		t.Fatalf("copying the module: %v: %s", err, out)
	}
	specs, _ := filepath.Glob(filepath.Join(mod, "*", "*", "*.hcl2spec.go"))
	if len(specs) < 2 {
		t.Fatalf("want generated specs for the builder and the provisioner, found %v", specs)
	}
	for _, s := range specs {
		os.Remove(s)
	}
	run := func(dir string, args ...string) {
		t.Helper()
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v: %v: %s", args, err, out)
		}
	}
	run(mod, "go", "mod", "edit", "-replace", "imagebuilder="+repo)
	run(mod, "go", "generate", "./...")
	for _, s := range specs {
		rel, _ := filepath.Rel(mod, s)
		fresh, err := os.ReadFile(s)
		if err != nil {
			t.Fatalf("packer-sdc did not write %s: %v", rel, err)
		}
		committed, err := os.ReadFile(rel)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(fresh, committed) {
			t.Errorf("%s is stale: run `go generate ./...` in packer-plugin/ and commit the result", rel)
		}
	}
}
