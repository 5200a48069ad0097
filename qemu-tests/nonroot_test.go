package qemutests

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"imagebuilder/imagebuilder/build"
)

// TestNonRootBuildIsIdentical builds the image as an unprivileged user (uid
// 65534, through setpriv) and as root, and compares the bytes: owners, modes
// and device nodes in the image come from the inputs, never from who built it.
func TestNonRootBuildIsIdentical(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run one build as root and one as uid 65534; as a non-root user every other test here is already a non-root build")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Fatal("setpriv not found: apt-get install util-linux")
	}
	cb := clusterBundle(t, "")
	asRoot := buildImage(t, cb, "master", "raw")

	// Inputs and output where uid 65534 can read and write.
	dir, err := os.MkdirTemp("", "imagebuilder-nonroot-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	bin := filepath.Join(dir, "imagebuilder")
	if out, err := exec.Command("go", "build", "-o", bin, "../imagebuilder/cmd/imagebuilder").CombinedOutput(); err != nil {
		t.Fatalf("building the CLI: %v: %s", err, out)
	}
	base := filepath.Join(dir, "base.tar")
	if err := os.Link(baseTar(t), base); err != nil {
		if out, err := exec.Command("cp", baseTar(t), base).CombinedOutput(); err != nil {
			t.Fatalf("copying base: %v: %s", err, out)
		}
	}
	bundle := filepath.Join(dir, "cb.tar.zst")
	if out, err := exec.Command("cp", cb, bundle).CombinedOutput(); err != nil {
		t.Fatalf("copying bundle: %v: %s", err, out)
	}
	os.Chmod(dir, 0o777)
	os.Chmod(base, 0o644)
	os.Chmod(bundle, 0o644)
	out := filepath.Join(dir, "out")
	cmd := exec.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--",
		bin, "--json", "build", "--base", base, "--bundle", bundle, "--role", "master", "--format", "raw", "--out", out, "--name", "host")
	cmd.Env = []string{"HOME=" + dir, "PATH=" + os.Getenv("PATH")}
	stdout, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("non-root build: %v\n%s", err, stderr)
	}
	var res build.Result
	if err := json.Unmarshal(stdout, &res); err != nil {
		t.Fatalf("decoding --json output: %v\n%s", err, stdout)
	}
	if len(res.Artifacts) != 1 || res.Artifacts[0].SHA256 != asRoot.Artifacts[0].SHA256 {
		t.Errorf("non-root raw %+v differs from root raw %+v", res.Artifacts, asRoot.Artifacts)
	}
}
