package qemutests

import (
	"compress/gzip"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"imagebuilder/distros"
	"imagebuilder/genconf"
	"imagebuilder/genconf/installsh/hosttree"
	"imagebuilder/imagebuilder/disk"
	"imagebuilder/overlay"
)

// The bash path on real Debian 12. The engine always installs a bundle into
// the images it builds, so these tests make the plain base themselves with
// the engine's own steps minus the bundle (stage the base, distro fixups,
// fstab, disk.WriteRaw) and put install.sh and two gzip cluster bundles
// (the minimal base has gzip but no zstd) into /root/installsh/ beside a
// oneshot unit that drives install.sh at boot, printing every result on the
// serial console. One boot covers install, the firstboot join (the same
// agent and units as images), a re-run, an upgrade, a rollback and an
// uninstall.

// installshBundles generates two cluster bundles of the reference packages
// with examples/config.yaml, gzip-compressed: a, and b with another join
// timeout (so another config hash).
func installshBundles(t *testing.T) (a, b *genconf.Output) {
	t.Helper()
	base, err := baseBundle()
	if err != nil {
		t.Fatalf("building the bundle: %v", err)
	}
	gen := func(edit func(string) string) *genconf.Output {
		dir := t.TempDir()
		cfg, err := os.ReadFile(filepath.Join(repoRoot, "examples", "config.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		ipd, err := os.ReadFile(filepath.Join(repoRoot, "examples", "ip-detect"))
		if err != nil {
			t.Fatal(err)
		}
		text := strings.Replace(string(cfg), "bundle_compression: zstd", "bundle_compression: gzip", 1)
		if !strings.Contains(text, "bundle_compression: gzip") {
			t.Fatal("examples/config.yaml no longer sets bundle_compression: zstd")
		}
		os.WriteFile(filepath.Join(dir, "config.yaml"), []byte(edit(text)), 0o644)
		os.WriteFile(filepath.Join(dir, "ip-detect"), ipd, 0o755)
		r, err := genconf.Load(filepath.Join(dir, "config.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		out, err := genconf.Generate(testLogger(t), r, base, filepath.Join(t.TempDir(), "serve"))
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	a = gen(func(s string) string { return s })
	b = gen(func(s string) string { return strings.Replace(s, "join_timeout: 5m", "join_timeout: 6m", 1) })
	if a.ConfigHash == b.ConfigHash {
		t.Fatal("the two configs have the same hash")
	}
	return a, b
}

// guestDriver runs in the guest as a oneshot unit; each line it prints on
// the console is asserted by the test.
const guestDriver = `#!/bin/bash
# installsh-test: drive install.sh on this host; results go to the console.
set -u
say() { echo "installsh-test: $*"; }
hash() { sed -n 's/^CONFIG_HASH=//p' /opt/cluster/etc/cluster.env 2>/dev/null | cut -c1-12; }
A=/root/installsh/a B=/root/installsh/b
say "start on $(. /etc/os-release; echo "$PRETTY_NAME"), prefix=$([ -e /opt/cluster ] && echo present || echo absent)"
"$A/install.sh" --role master; rc=$?
say "install rc=$rc config=$(hash) role=$(cat /etc/cluster/role 2>/dev/null) link=$(readlink /etc/systemd/system/cluster-firstboot.service)"
for i in $(seq 600); do [ -e /var/lib/cluster/joined ] && break; sleep 1; done
say "joined=$([ -e /var/lib/cluster/joined ] && echo yes || echo no) after ${i}s"
"$A/install.sh"; say "rerun rc=$? config=$(hash)"
"$B/install.sh" --upgrade; say "upgrade rc=$? config=$(hash) target=$(systemctl is-active cluster.target)"
"$B/install.sh" --rollback; say "rollback rc=$? config=$(hash)"
"$B/install.sh" --uninstall; rc=$?
say "uninstall rc=$rc prefix=$([ -e /opt/cluster ] && echo present || echo absent) links=$(find /etc/systemd/system -lname '/opt/cluster/*' | wc -l) role=$([ -e /etc/cluster/role ] && echo present || echo absent)"
say "DONE"
`

const guestUnit = `[Unit]
Description=install.sh test driver
After=local-fs.target

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/installsh-test
TimeoutStartSec=20min
StandardOutput=journal+console
StandardError=journal+console

[Install]
WantedBy=multi-user.target
`

// plainBaseDisk writes a raw disk of the Debian base without any bundle,
// carrying the given extra files (tree path -> file on the host, mode).
func plainBaseDisk(t *testing.T, extra map[string]string, driver string) string {
	t.Helper()
	stage := t.TempDir()
	tree := overlay.NewTree(stage)
	f, err := os.Open(baseTar(t))
	if err != nil {
		t.Fatal(err)
	}
	err = tree.Apply(f, "", overlay.ApplyOptions{})
	f.Close()
	if err != nil {
		t.Fatalf("staging the base: %v", err)
	}
	p, osr, err := distros.Detect(tree)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Fixup(tree, osr); err != nil {
		t.Fatal(err)
	}
	for dst, src := range extra {
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		mode := uint32(0o644)
		if strings.HasSuffix(dst, ".sh") {
			mode = 0o755
		}
		if err := tree.WriteFile(dst, data, mode, 0, 0); err != nil {
			t.Fatal(err)
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(tree.WriteFile("usr/local/sbin/installsh-test", []byte(driver), 0o755, 0, 0))
	must(tree.WriteFile("etc/systemd/system/installsh-test.service", []byte(guestUnit), 0o644, 0, 0))
	must(tree.MkdirAll("etc/systemd/system/multi-user.target.wants", 0o755, 0, 0))
	must(tree.Symlink("/etc/systemd/system/installsh-test.service", "etc/systemd/system/multi-user.target.wants/installsh-test.service"))
	seed := "installsh-test\n" + driver
	u := disk.PlanUUIDs(seed)
	must(tree.MkdirAll("boot/efi", 0o755, 0, 0))
	must(tree.WriteFile("etc/fstab", []byte("# Written by the install.sh test.\n"+u.Fstab("/boot/efi")), 0o644, 0, 0))
	raw := filepath.Join(t.TempDir(), "plain-debian.raw")
	if _, err := disk.WriteRaw(context.Background(), testLogger(t), tree, raw, disk.Options{Seed: seed, SizeBytes: 2 << 30}); err != nil {
		t.Fatalf("writing the disk: %v", err)
	}
	return raw
}

// TestInstallShOnPlainDebianGuest boots the plain Debian 12 base (no bundle
// in the image) and lets install.sh do everything on the live host: the
// install starts cluster.target and the same firstboot agent joins; then a
// re-run, an upgrade to a second bundle, a rollback and an uninstall, each
// asserted from the serial console.
func TestInstallShOnPlainDebianGuest(t *testing.T) {
	t.Parallel()
	a, b := installshBundles(t)
	extra := map[string]string{
		"root/installsh/a/install.sh":                 a.InstallSh,
		"root/installsh/a/" + filepath.Base(a.Bundle): a.Bundle,
		"root/installsh/b/install.sh":                 b.InstallSh,
		"root/installsh/b/" + filepath.Base(b.Bundle): b.Bundle,
	}
	raw := plainBaseDisk(t, extra, guestDriver)
	start := time.Now()
	vm := bootVM(t, raw, "installsh", nil)
	ctx := context.Background()
	h := func(o *genconf.Output) string { return regexp.QuoteMeta(o.ConfigHash[:12]) }
	steps := []struct {
		name string
		re   string
	}{
		{"plain base boots without the bundle", `installsh-test: start on Debian GNU/Linux 12 \(bookworm\), prefix=absent`},
		{"install", `installsh-test: install rc=0 config=` + h(a) + ` role=master link=/opt/cluster/systemd/cluster-firstboot.service`},
		{"joined marker", `installsh-test: joined=yes`},
		{"re-run", `installsh-test: rerun rc=0 config=` + h(a)},
		{"upgrade", `installsh-test: upgrade rc=0 config=` + h(b) + ` target=active`},
		{"rollback", `installsh-test: rollback rc=0 config=` + h(a)},
		{"uninstall", `installsh-test: uninstall rc=0 prefix=absent links=0 role=absent`},
		{"done", `installsh-test: DONE`},
	}
	for _, s := range steps {
		line, err := vm.Expect(ctx, regexp.MustCompile(s.re), bootTimeout)
		if err != nil {
			console, _ := os.ReadFile(vm.ConsoleLog())
			t.Fatalf("%s: %v\nconsole (installsh-test lines):\n%s", s.name, err, grepLines(console, "installsh"))
		}
		t.Logf("%5.1fs %s: %s", time.Since(start).Seconds(), s.name, strings.TrimSpace(line))
	}
	// The agent's own line may come just before or after the driver's
	// joined=yes, so it is looked for from the start of the console.
	joined := regexp.MustCompile(`cluster-firstboot: joined cluster demo as master with IP 10\.0\.2\.15`)
	if _, _, err := vm.ExpectFrom(ctx, 0, joined, 10*time.Second); err != nil {
		t.Errorf("the firstboot agent started by install.sh did not say it joined: %v", err)
	}
	vm.Kill()
}

func grepLines(b []byte, sub string) string {
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestInstallShInDebianRootMatchesImage runs install.sh with the Debian
// base's own bash, tar, gzip and coreutils, inside bubblewrap over an
// extracted base (--root /, so no systemctl), with the real reference
// bundle, and compares the result with what overlay.InstallBundle gives an
// image for the same bundle.
func TestInstallShInDebianRootMatchesImage(t *testing.T) {
	t.Parallel()
	bwrap, err := exec.LookPath("bwrap")
	if err != nil {
		t.Fatal("bwrap is needed: apt-get install bubblewrap")
	}
	a, b := installshBundles(t)
	root := t.TempDir()
	if out, err := exec.Command("tar", "-xf", baseTar(t), "-C", root, "--exclude=./dev/*").CombinedOutput(); err != nil {
		t.Fatalf("extracting the base: %v: %s", err, out)
	}
	for _, o := range []*genconf.Output{a, b} {
		dir := filepath.Join(root, "root/installsh", filepath.Base(filepath.Dir(o.Bundle))+"-"+o.ConfigHash[:8])
		os.MkdirAll(dir, 0o755)
		for _, f := range []string{o.InstallSh, o.Bundle} {
			data, _ := os.ReadFile(f)
			os.WriteFile(filepath.Join(dir, filepath.Base(f)), data, 0o755)
		}
	}
	inGuest := func(o *genconf.Output, args ...string) string {
		t.Helper()
		script := "/root/installsh/" + filepath.Base(filepath.Dir(o.Bundle)) + "-" + o.ConfigHash[:8] + "/install.sh"
		cmd := exec.Command(bwrap, append([]string{"--bind", root, "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",
			"--clearenv", "--setenv", "PATH", "/usr/sbin:/usr/bin:/sbin:/bin", "/bin/bash", script, "--root", "/"}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("install.sh %v in the Debian root: %v\n%s", args, err, out)
		}
		return string(out)
	}
	check := func(step string, o *genconf.Output) {
		t.Helper()
		got, err := hosttree.FromDisk(root, "/opt/cluster")
		if err != nil {
			t.Fatal(err)
		}
		want := imageTree(t, o.Bundle, "agent")
		if d := hosttree.Diff(want, got); len(d) > 0 {
			t.Fatalf("%s: install.sh in the Debian root and the image differ (first: image):\n  %s", step, strings.Join(d, "\n  "))
		}
		if _, err := hosttree.CheckPrefix(root, "/opt/cluster"); err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		t.Logf("%s: %d paths identical to the image's", step, len(got))
	}
	inGuest(a, "--role", "agent")
	check("install", a)
	if out := inGuest(a); !strings.Contains(out, "already installed") {
		t.Errorf("re-run: %s", out)
	}
	inGuest(b, "--upgrade")
	check("upgrade", b)
	inGuest(b, "--rollback")
	check("rollback", a)
	inGuest(b, "--uninstall")
	if _, err := os.Lstat(filepath.Join(root, "opt/cluster")); !os.IsNotExist(err) {
		t.Errorf("uninstall left /opt/cluster: %v", err)
	}
	if links, _ := filepath.Glob(filepath.Join(root, "etc/systemd/system/cluster*")); len(links) > 0 {
		t.Errorf("uninstall left %v", links)
	}
}

// imageTree installs a gzip bundle the way images get it.
func imageTree(t *testing.T, bundle, role string) hosttree.Snapshot {
	t.Helper()
	f, err := os.Open(bundle)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(fmt.Errorf("%s: %w", bundle, err))
	}
	tree := overlay.NewTree(t.TempDir())
	if err := tree.InstallBundle(zr, overlay.HostLayout{Prefix: "/opt/cluster", Role: role}); err != nil {
		t.Fatal(err)
	}
	s, err := hosttree.FromTree(tree, "/opt/cluster")
	if err != nil {
		t.Fatal(err)
	}
	return s
}
