package qemutests

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"imagebuilder/distros"
	"imagebuilder/imagebuilder/disk"
	"imagebuilder/imagebuilder/images"
	"imagebuilder/overlay"
)

// Packer tests: the real Packer (v1.15.0, built once by
// packer-plugin/tools/get-packer.sh into the cache) with our plugin
// installed by `packer plugins install --path` into a private
// PACKER_PLUGIN_PATH, run on the repository's images.hcl.

const pluginSource = "github.com/imagebuilder/imagebuilder"

// packerBin builds Packer once (cached across runs by get-packer.sh).
var packerBin = sync.OnceValues(func() (string, error) {
	out, err := exec.Command(filepath.Join(repoRoot, "packer-plugin/tools/get-packer.sh"), "packer").Output()
	if err != nil {
		return "", fmt.Errorf("packer-plugin/tools/get-packer.sh packer: %w (needs Go and the module proxy)", err)
	}
	return strings.TrimSpace(string(out)), nil
})

type packerTool struct {
	bin string
	env []string
}

func (p *packerTool) run(dir string, args ...string) (string, error) {
	cmd := exec.Command(p.bin, args...)
	cmd.Dir, cmd.Env = dir, p.env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// packerTools returns Packer with a private HOME and PACKER_PLUGIN_PATH
// (under the test's temp dir) into which the plugin, built from
// packer-plugin/, is installed with `packer plugins install --path`.
func packerTools(t *testing.T) *packerTool {
	t.Helper()
	bin, err := packerBin()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p := &packerTool{bin: bin, env: append(os.Environ(),
		"HOME="+filepath.Join(dir, "home"),
		"PACKER_PLUGIN_PATH="+filepath.Join(dir, "plugins"),
		"PACKER_CACHE_DIR="+filepath.Join(dir, "cache"),
		"PACKER_CHECKPOINT_DISABLE=1",
		"PACKER_NO_COLOR=1",
	)}
	plugin := filepath.Join(dir, "packer-plugin-imagebuilder")
	build := exec.Command("go", "build", "-o", plugin, ".")
	build.Dir = filepath.Join(repoRoot, "packer-plugin")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the plugin: %v: %s", err, out)
	}
	if out, err := p.run(dir, "plugins", "install", "--path", plugin, pluginSource); err != nil {
		t.Fatalf("packer plugins install: %v: %s", err, out)
	}
	return p
}

// imagesVars are the -var values for images.hcl in the tests: the Debian
// base for every distro (Prepare checks files exist) and the reference
// bundle.
func imagesVars(t *testing.T, out string) map[string]string {
	t.Helper()
	bundle, err := baseBundle()
	if err != nil {
		t.Fatalf("building the bundle: %v", err)
	}
	base, _ := filepath.Abs(baseTar(t))
	return map[string]string{"debian_base": base, "ubuntu_base": base, "rhel_base": base, "bundle": bundle, "out": out}
}

func varArgs(vars map[string]string) []string {
	var args []string
	for k, v := range vars {
		args = append(args, "-var", k+"="+v)
	}
	return args
}

var sha256Line = regexp.MustCompile(`qcow2 (\S+/debian-master\.qcow2) sha256:([0-9a-f]{64})`)

// TestPackerBuildBootsAndJoins: `packer validate` and `packer build
// -only=imagebuilder.debian-master` on images.hcl; the artifact lists the
// image with its checksum; `imagebuilder build images.hcl` (no Packer) gives
// the same bytes; the image boots and joins.
func TestPackerBuildBootsAndJoins(t *testing.T) {
	t.Parallel()
	p := packerTools(t)
	out := t.TempDir()
	vars := imagesVars(t, out)

	if got, err := p.run(repoRoot, append(append([]string{"validate"}, varArgs(vars)...), "images.pkr.hcl")...); err != nil || !strings.Contains(got, "The configuration is valid.") {
		t.Fatalf("packer validate: %v\n%s", err, got)
	}
	got, err := p.run(repoRoot, append(append([]string{"build", "-only=imagebuilder.debian-master"}, varArgs(vars)...), "images.pkr.hcl")...)
	if err != nil {
		t.Fatalf("packer build: %v\n%s", err, got)
	}
	m := sha256Line.FindStringSubmatch(got)
	if m == nil {
		t.Fatalf("packer's artifact does not list the qcow2 with its sha256:\n%s", got)
	}
	img, sum := m[1], m[2]
	if want := filepath.Join(out, "debian-master", "debian-master.qcow2"); img != want {
		t.Errorf("image at %s, want %s", img, want)
	}
	if !strings.Contains(got, "cluster-bundle ") || !strings.Contains(got, "manifest ") {
		t.Errorf("artifact lacks the cluster bundle or the manifest:\n%s", got)
	}
	if ents, _ := os.ReadDir(out); len(ents) != 1 {
		t.Errorf("-only built more than debian-master: %v", ents)
	}

	// The same file without Packer: same bytes.
	vars2 := imagesVars(t, t.TempDir())
	vars2["cluster_config"], _ = filepath.Abs(filepath.Join(repoRoot, "examples/config.yaml"))
	f, err := images.Load(filepath.Join(repoRoot, "images.hcl"), vars2, []string{"debian-master"})
	if err != nil {
		t.Fatal(err)
	}
	sel := f.Selected([]string{"debian-master"})
	if len(sel) != 1 {
		t.Fatalf("selected %v", sel)
	}
	built, err := images.Build(context.Background(), testLogger(t), *sel[0])
	if err != nil {
		t.Fatal(err)
	}
	if a := built.Result.Artifacts; len(a) != 1 || a[0].SHA256 != sum {
		t.Errorf("imagebuilder build images.hcl gave %+v; packer gave sha256 %s", a, sum)
	}

	disk := filepath.Join(t.TempDir(), "host-disk.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", img, disk).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img create: %v: %s", err, out)
	}
	vm := bootVM(t, disk, "packer", nil)
	if _, err := vm.Expect(context.Background(), joinedRE, bootTimeout); err != nil {
		t.Fatalf("boot: %v", err)
	}
}

// TestPackerBadInput: Packer shows our errors, each naming its field.
func TestPackerBadInput(t *testing.T) {
	t.Parallel()
	p := packerTools(t)
	dir := t.TempDir()
	base, _ := filepath.Abs(baseTar(t))
	bundle := filepath.Join(dir, "bundle.tar.zst")
	os.WriteFile(bundle, []byte("x"), 0o644)
	write := func(body string) string {
		d := t.TempDir()
		if err := os.WriteFile(filepath.Join(d, "t.pkr.hcl"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return d
	}
	header := `packer {
  required_plugins {
    imagebuilder = { source = "` + pluginSource + `", version = ">= 0.1.0" }
  }
}
`
	tests := []struct {
		name, body string
		want       []string
	}{
		{"misspelled field", header + `source "imagebuilder" "a" {
  base = "` + base + `"
  bundle = "` + bundle + `"
  formts = ["qcow2"]
}
build { sources = ["source.imagebuilder.a"] }`, []string{`An argument named "formts" is not expected here`, "t.pkr.hcl line 9"}},
		{"every field wrong", header + `source "imagebuilder" "a" {
  base = "` + filepath.Join(dir, "no-base.tar") + `"
  bundle = "` + filepath.Join(dir, "no-bundle.tar.zst") + `"
  role = "boss"
  formats = ["qcow2", "vhdx", "qcow2"]
}
source "imagebuilder" "b" {
  base = "` + base + `"
  bundle = "` + bundle + `"
  output_directory = "` + dir + `/b"
}
build { sources = ["source.imagebuilder.a", "source.imagebuilder.b"] }`, []string{
			"base: " + filepath.Join(dir, "no-base.tar") + ": no such file or directory",
			"bundle: " + filepath.Join(dir, "no-bundle.tar.zst") + ": no such file or directory",
			`role: "boss" is not a role`,
			`formats: "vhdx" is not a format`,
			`formats: "qcow2" is listed twice`,
		}},
		{"provisioner", header + `source "null" "n" {
  communicator = "none"
}
build {
  sources = ["source.null.n"]
  provisioner "imagebuilder-bundle" {
    bundle = "` + filepath.Join(dir, "nope.tar.zst") + `"
    role   = "captain"
  }
}`, []string{"bundle: " + filepath.Join(dir, "nope.tar.zst") + ": no such file or directory", `role: "captain" is not a role`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := p.run(write(tc.body), "validate", ".")
			if err == nil {
				t.Fatalf("packer validate accepted it:\n%s", got)
			}
			// Packer wraps long lines; compare with whitespace collapsed.
			flat := strings.Join(strings.Fields(got), " ")
			for _, w := range tc.want {
				if !strings.Contains(flat, w) {
					t.Errorf("packer's output lacks %q:\n%s", w, got)
				}
			}
		})
	}
}

// sshMachineDisk writes a bootable disk of the Debian base with
// openssh-server (packer-plugin/tools/mkbase-ssh.sh, cached) and no cluster
// bundle, with pub as root's authorized key: the machine Packer provisions.
// Its distro fixups are those of the image pipeline; the ssh host keys that
// hygiene removes are generated at boot.
func sshMachineDisk(t *testing.T, pub []byte) string {
	t.Helper()
	out, err := exec.Command(filepath.Join(repoRoot, "packer-plugin/tools/mkbase-ssh.sh")).Output()
	if err != nil {
		t.Fatalf("packer-plugin/tools/mkbase-ssh.sh (needs mmdebstrap and the Debian apt sources): %v", err)
	}
	base := strings.TrimSpace(string(out))
	root := t.TempDir()
	tree := overlay.NewTree(root)
	f, err := os.Open(base)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := tree.Apply(f, "", overlay.ApplyOptions{}); err != nil {
		t.Fatalf("staging %s: %v", base, err)
	}
	p, osr, err := distros.Detect(tree)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Fixup(tree, osr); err != nil {
		t.Fatal(err)
	}
	seed := "packer-provisioner-test"
	uuids := disk.PlanUUIDs(seed)
	for _, w := range []struct {
		path string
		data string
		mode uint32
	}{
		{"etc/fstab", uuids.Fstab("/boot/efi"), 0o644},
		{"root/.ssh/authorized_keys", string(pub), 0o600},
		{"etc/systemd/system/ssh.service.d/10-hostkeys.conf", "[Service]\nExecStartPre=\nExecStartPre=/usr/bin/ssh-keygen -A\nExecStartPre=/usr/sbin/sshd -t\n", 0o644},
	} {
		dir := w.path[:strings.LastIndex(w.path, "/")]
		mode := uint32(0o755)
		if dir == "root/.ssh" {
			mode = 0o700
		}
		if err := tree.MkdirAll(dir, mode, 0, 0); err != nil {
			t.Fatal(err)
		}
		if err := tree.WriteFile(w.path, []byte(w.data), w.mode, 0, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := tree.MkdirAll("boot/efi", 0o755, 0, 0); err != nil {
		t.Fatal(err)
	}
	raw := filepath.Join(t.TempDir(), "machine.raw")
	if _, err := disk.WriteRaw(context.Background(), testLogger(t), tree, raw, disk.Options{Seed: seed, KernelCmdline: disk.DefaultKernelCmdline + " no_timer_check",
		// room for the bundle the provisioner installs (etcd makes it ~85 MiB unpacked)
		SizeBytes: 1536 << 20}); err != nil {
		t.Fatalf("writing the machine's disk: %v", err)
	}
	return raw
}

// TestPackerQemuBuilderProvisions proves the provisioner with Packer's own
// qemu builder (packer-plugin-qemu v1.0.9 from tools/get-packer.sh): it
// boots a copy of the Debian + openssh-server disk under TCG with UEFI and
// restricted user networking, our provisioner installs the cluster bundle
// over SSH, the builder shuts the VM down and writes its qcow2, and that
// image boots and joins.
func TestPackerQemuBuilderProvisions(t *testing.T) {
	t.Parallel()
	p := packerTools(t)
	out, err := exec.Command(filepath.Join(repoRoot, "packer-plugin/tools/get-packer.sh"), "qemu").Output()
	if err != nil {
		t.Fatalf("packer-plugin/tools/get-packer.sh qemu: %v", err)
	}
	if got, err := p.run(t.TempDir(), "plugins", "install", "--path", strings.TrimSpace(string(out)), "github.com/hashicorp/qemu"); err != nil {
		t.Fatalf("installing packer-plugin-qemu: %v\n%s", err, got)
	}
	dir := t.TempDir()
	key := filepath.Join(dir, "id_ed25519")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen (apt-get install openssh-client): %v: %s", err, out)
	}
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	cb := clusterBundle(t, "")
	machine := filepath.Join(dir, "machine.qcow2")
	if err := disk.ConvertQcow2(context.Background(), sshMachineDisk(t, pub), machine); err != nil {
		t.Fatal(err)
	}
	outDir := filepath.Join(t.TempDir(), "out")
	tmpl := `packer {
  required_plugins {
    imagebuilder = { source = "` + pluginSource + `", version = ">= 0.1.0" }
    qemu         = { source = "github.com/hashicorp/qemu", version = ">= 1.0.9" }
  }
}
source "qemu" "debian" {
  iso_url              = "` + machine + `"
  iso_checksum         = "none"
  disk_image           = true
  use_backing_file     = true
  skip_resize_disk     = true
  skip_compaction      = true
  format               = "qcow2"
  accelerator          = "tcg"
  machine_type         = "q35"
  memory               = 1024
  efi_boot             = true
  efi_firmware_code    = "/usr/share/OVMF/OVMF_CODE_4M.fd"
  efi_firmware_vars    = "/usr/share/OVMF/OVMF_VARS_4M.fd"
  headless             = true
  vnc_bind_address     = "127.0.0.1"
  output_directory     = "` + outDir + `"
  vm_name              = "provisioned.qcow2"
  communicator         = "ssh"
  ssh_host             = "127.0.0.1"
  ssh_username         = "root"
  ssh_private_key_file = "` + key + `"
  ssh_timeout          = "10m"
  shutdown_command     = "systemctl poweroff"
  shutdown_timeout     = "5m"
  qemuargs = [
    ["-netdev", "user,id=user.0,restrict=on,hostfwd=tcp:127.0.0.1:{{ .SSHHostPort }}-:22"],
  ]
}
build {
  sources = ["source.qemu.debian"]
  provisioner "imagebuilder-bundle" {
    bundle = "` + cb + `"
    role   = "master"
  }
}
`
	tdir := t.TempDir()
	if err := os.WriteFile(filepath.Join(tdir, "qemu.pkr.hcl"), []byte(tmpl), 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	got, err := p.run(tdir, "build", ".")
	if err != nil {
		t.Fatalf("packer build: %v\n%s", err, got)
	}
	// genconf writes install.sh beside the bundle, so the provisioner runs it.
	if !strings.Contains(got, "Installing "+cb+" with ") || !strings.Contains(got, "install.sh: installed cluster 'demo' bundle") {
		t.Fatalf("provisioner output:\n%s", got)
	}
	t.Logf("packer's qemu builder + our provisioner: %s", time.Since(start).Round(time.Second))
	img := filepath.Join(outDir, "provisioned.qcow2")
	// The image is a child of the machine disk (use_backing_file); boot a
	// child of it in turn.
	hostDisk := filepath.Join(t.TempDir(), "host-disk.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", img, hostDisk).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img create: %v: %s", err, out)
	}
	vm := bootVM(t, hostDisk, "qemu-builder", nil)
	if _, err := vm.Expect(context.Background(), joinedRE, bootTimeout); err != nil {
		t.Fatalf("boot of packer's image: %v", err)
	}
}
