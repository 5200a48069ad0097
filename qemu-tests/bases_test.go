package qemutests

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"imagebuilder/imagebuilder/base"
	"imagebuilder/imagebuilder/build"
	"imagebuilder/imagebuilder/disk"
	"imagebuilder/imagebuilder/inplace"
	"imagebuilder/overlay"
)

// TestBasesEveryKind converts the real Debian 12 base into every kind of
// --base (directory, OCI layout, docker archive, an in-process registry on
// 127.0.0.1, a raw disk image written by this project's disk writer, and its
// qcow2), builds a host image from each, and asserts that every image's
// root file system holds exactly the files of the image built from the
// tarball (same paths, types, modes, owners, xattrs, link targets and
// contents). Two of them — the registry image (layers flattened from a
// registry) and the qcow2 disk (ext4 read back from a disk) — are booted
// until firstboot has joined; the others are proven by the tree equality,
// because a boot costs a minute of this machine's two cores and an equal
// tree boots the same.
func TestBasesEveryKind(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	baseTarPath := baseTar(t)
	cb := clusterBundle(t, "")
	work := t.TempDir()

	timed := func(what string, fn func() error) {
		t.Helper()
		start := time.Now()
		if err := fn(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		t.Logf("%s: %.1fs", what, time.Since(start).Seconds())
	}

	refs := map[base.Kind]string{base.KindTar: baseTarPath}
	dir := filepath.Join(work, "dir")
	timed("base as a directory (tar -x)", func() error {
		if err := os.Mkdir(dir, 0o755); err != nil {
			return err
		}
		out, err := exec.Command("tar", "--xattrs", "--xattrs-include=*", "--numeric-owner", "--same-owner", "-xpf", baseTarPath, "-C", dir).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		refs[base.KindDir] = "dir:" + dir
		return nil
	})
	var img v1.Image
	timed("base as an OCI layout", func() error {
		layer, err := tarball.LayerFromFile(baseTarPath, tarball.WithCompressionLevel(gzip.BestSpeed))
		if err != nil {
			return err
		}
		i, err := mutate.AppendLayers(empty.Image, layer)
		if err != nil {
			return err
		}
		cf, err := i.ConfigFile()
		if err != nil {
			return err
		}
		cf = cf.DeepCopy()
		cf.OS, cf.Architecture = "linux", "amd64"
		if i, err = mutate.ConfigFile(i, cf); err != nil {
			return err
		}
		lp, err := layout.Write(filepath.Join(work, "layout"), empty.Index)
		if err != nil {
			return err
		}
		if err := lp.AppendImage(i, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "bookworm"})); err != nil {
			return err
		}
		// Later conversions read the compressed layer from the layout.
		digest, err := i.Digest()
		if err != nil {
			return err
		}
		if img, err = lp.Image(digest); err != nil {
			return err
		}
		refs[base.KindOCILayout] = "oci:" + filepath.Join(work, "layout") + ":bookworm"
		return nil
	})
	timed("base as a docker archive", func() error {
		tag, err := name.NewTag("imagebuilder/debian:bookworm")
		if err != nil {
			return err
		}
		p := filepath.Join(work, "docker-save.tar")
		refs[base.KindDockerArchive] = "docker-archive:" + p
		return tarball.WriteToFile(p, tag, img)
	})
	timed("base pushed to an in-process registry", func() error {
		srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
		t.Cleanup(srv.Close)
		host := strings.TrimPrefix(srv.URL, "http://")
		ref, err := name.ParseReference(host + "/debian:bookworm")
		if err != nil {
			return err
		}
		refs[base.KindRegistry] = "docker://" + host + "/debian:bookworm"
		return remote.Write(ref, img, remote.WithContext(ctx))
	})
	timed("base as a raw disk (this project's disk writer) and qcow2", func() error {
		stage := filepath.Join(work, "stage")
		if err := os.Mkdir(stage, 0o755); err != nil {
			return err
		}
		tree := overlay.NewTree(stage)
		b, err := base.Open(ctx, baseTarPath, testLogger(t))
		if err != nil {
			return err
		}
		if err := b.Apply(ctx, tree); err != nil {
			return err
		}
		raw := filepath.Join(work, "base-disk.raw")
		if _, err := disk.WriteRaw(ctx, testLogger(t), tree, raw, disk.Options{Seed: "bases-test"}); err != nil {
			return err
		}
		os.RemoveAll(stage)
		qcow := filepath.Join(work, "base-disk.qcow2")
		if out, err := exec.Command("qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", raw, qcow).CombinedOutput(); err != nil {
			return fmt.Errorf("qemu-img convert: %v: %s", err, out)
		}
		refs[base.KindRaw], refs[base.KindQcow2] = "raw:"+raw, qcow
		return nil
	})

	// Build one image per kind; the tarball's image is the reference.
	kinds := []base.Kind{base.KindTar, base.KindDir, base.KindOCILayout, base.KindDockerArchive, base.KindRegistry, base.KindRaw, base.KindQcow2}
	images := map[base.Kind]string{}
	sums := map[base.Kind]string{}
	var want []string
	for _, k := range kinds {
		var res *build.Result
		timed("build from "+string(k), func() error {
			var err error
			res, err = build.Run(ctx, testLogger(t), build.Options{
				Base: refs[k], Bundle: cb, Role: "master", OutDir: filepath.Join(work, "out-"+string(k)), Name: "host", Formats: []string{"raw"},
				KernelCmdline: bootCmdline,
			})
			return err
		})
		if res.BaseKind != string(k) || res.Distro != "debian 12" {
			t.Errorf("%s: base kind %q, distro %q", k, res.BaseKind, res.Distro)
		}
		images[k] = artifact(t, res, "raw")
		sums[k] = res.Artifacts[0].SHA256
		got := rootManifest(t, images[k])
		if want == nil {
			want = got
			if len(want) < 5000 {
				t.Fatalf("the tarball image's root has only %d entries", len(want))
			}
			continue
		}
		if diff := manifestDiff(got, want); diff != "" {
			t.Errorf("image from %s (%s) differs from the tarball's (-tar +%s):\n%s", k, refs[k], k, diff)
		}
	}
	// The three OCI kinds carry the same image, so the same digest: their
	// disk images are bit-identical.
	if sums[base.KindOCILayout] != sums[base.KindDockerArchive] || sums[base.KindOCILayout] != sums[base.KindRegistry] {
		t.Errorf("the same image from a layout, an archive and a registry gave different disks: %s %s %s",
			sums[base.KindOCILayout], sums[base.KindDockerArchive], sums[base.KindRegistry])
	}
	if t.Failed() {
		return
	}

	for _, k := range []base.Kind{base.KindRegistry, base.KindQcow2} {
		t.Run("boot-"+string(k), func(t *testing.T) {
			t.Parallel()
			overlayDisk := filepath.Join(t.TempDir(), "host-disk.qcow2")
			if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", images[k], overlayDisk).CombinedOutput(); err != nil {
				t.Fatalf("qemu-img create: %v: %s", err, out)
			}
			start := time.Now()
			vm := bootVM(t, overlayDisk, string(k), nil)
			if _, err := vm.Expect(ctx, joinedRE, bootTimeout); err != nil {
				t.Fatalf("boot of the image built from the %s base: %v", k, err)
			}
			t.Logf("image from the %s base: boot to joined in %.1fs", k, time.Since(start).Seconds())
			// machine-id is "uninitialized", so this was a systemd first
			// boot: systemd-firstboot is masked and must not have prompted.
			if line, _, err := vm.ExpectFrom(ctx, 0, firstbootPromptRE, 2*time.Second); err == nil {
				t.Errorf("systemd-firstboot prompted on the console: %q", line)
			}
		})
	}
}

// firstbootPromptRE matches systemd-firstboot's console prompts.
var firstbootPromptRE = regexp.MustCompile(`Please configure your system|Please enter system locale|Please enter timezone`)

// bootCmdline adds no_timer_check: under TCG on a loaded machine the
// kernel's IO-APIC timer check can fail and panic ("IO-APIC + timer doesn't
// work"), which says nothing about the image.
const bootCmdline = disk.DefaultKernelCmdline + " no_timer_check"

// rootManifest reads the root file system of a built raw image (its ext4
// root, through imagebuilder/base) as a manifest. /etc/fstab is left out:
// it names the image's partition UUIDs, which derive from the base's digest
// and so differ, by design, between kinds of base.
func rootManifest(t *testing.T, raw string) []string {
	t.Helper()
	b, err := base.Open(context.Background(), "raw:"+raw, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	r, err := b.Tar(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	m, err := base.Manifest(r)
	if err != nil {
		t.Fatalf("reading the root of %s: %v", raw, err)
	}
	out := m[:0]
	fstab := false
	for _, l := range m {
		if strings.HasPrefix(l, "/etc/fstab ") {
			fstab = true
			continue
		}
		out = append(out, l)
	}
	if !fstab {
		t.Errorf("%s: the root has no /etc/fstab", raw)
	}
	return out
}

func manifestDiff(got, want []string) string {
	g, w := map[string]bool{}, map[string]bool{}
	for _, l := range got {
		g[l] = true
	}
	for _, l := range want {
		w[l] = true
	}
	var diff []string
	for _, l := range want {
		if !g[l] {
			diff = append(diff, "- "+l)
		}
	}
	for _, l := range got {
		if !w[l] {
			diff = append(diff, "+ "+l)
		}
	}
	if len(diff) > 30 {
		diff = append(diff[:30], fmt.Sprintf("... and %d more", len(diff)-30))
	}
	return strings.Join(diff, "\n")
}

// TestInPlaceXFS applies an overlay to a vendor-style disk image — GPT with
// an XFS root made by mkfs.xfs, SELinux enforcing, /lib a symlink to
// usr/lib — through the in-place appliance, then lists the root with the
// appliance again and checks: the overlay's files with their owners and
// modes, paths followed through the vendor's own symlink, /.autorelabel,
// the vendor's symlink, partition table and XFS file system kept. A hostile
// overlay is refused naming the entry.
func TestInPlaceXFS(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tool := range []string{"mkfs.xfs", "sgdisk", "qemu-img", "qemu-system-x86_64"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed: apt-get install xfsprogs gdisk qemu-utils qemu-system-x86", tool)
		}
	}
	work := t.TempDir()
	sh := func(name string, args ...string) string {
		t.Helper()
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	appliance := filepath.Join(work, "appliance")
	build := exec.Command("go", "build", "-trimpath", "-o", appliance, "./imagebuilder/inplace/appliance")
	build.Dir, build.Env = repoRoot, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the appliance: %v\n%s", err, out)
	}
	kernel, err := inplace.KernelFromBase(baseTar(t))
	if err != nil {
		t.Fatal(err)
	}

	// The vendor image.
	for name, body := range map[string]string{
		"osr": "NAME=\"Rocky Linux\"\nID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\nVERSION_ID=\"9.4\"\n",
		"sel": "SELINUX=enforcing\nSELINUXTYPE=targeted\n",
	} {
		if err := os.WriteFile(filepath.Join(work, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	proto := fmt.Sprintf(`/dev/null
0 0
d--755 0 0
etc d--755 0 0
os-release ---644 0 0 %[1]s/osr
selinux d--755 0 0
config ---644 0 0 %[1]s/sel
$
$
usr d--755 0 0
lib d--755 0 0
systemd d--755 0 0
system d--755 0 0
$
$
$
$
lib l--777 0 0 usr/lib
$
`, work)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(work, "proto"), []byte(proto), 0o644))
	fsImg, raw, vendor := filepath.Join(work, "root.xfs"), filepath.Join(work, "vendor.raw"), filepath.Join(work, "vendor.qcow2")
	must(os.WriteFile(fsImg, nil, 0o644))
	must(os.Truncate(fsImg, 300<<20))
	sh("mkfs.xfs", "-q", "-f", "-p", filepath.Join(work, "proto"), fsImg)
	must(os.WriteFile(raw, nil, 0o644))
	must(os.Truncate(raw, 302<<20))
	sh("sgdisk", "-n", "1:2048:0", "-t", "1:8300", raw)
	sh("dd", "if="+fsImg, "of="+raw, "bs=1M", "seek=1", "conv=notrunc,sparse", "status=none")
	sh("qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", raw, vendor)
	table := sh("sgdisk", "-p", raw)

	// The overlay.
	overlayTar := filepath.Join(work, "overlay.tar")
	writeTar := func(p string, entries []tarEntry) {
		f, err := os.Create(p)
		must(err)
		tw := tar.NewWriter(f)
		for _, e := range entries {
			h := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: e.mode, Uid: e.uid, Gid: e.uid, Size: int64(len(e.body))}
			must(tw.WriteHeader(h))
			_, err := tw.Write([]byte(e.body))
			must(err)
		}
		must(tw.Close())
		must(f.Close())
	}
	writeTar(overlayTar, []tarEntry{
		{name: "opt/cluster/bin/", typ: tar.TypeDir, mode: 0o755},
		{name: "opt/cluster/bin/hello", typ: tar.TypeReg, mode: 0o755, body: "#!/bin/sh\necho hello\n"},
		{name: "lib/systemd/system/cluster.target", typ: tar.TypeReg, mode: 0o644, body: "[Unit]\nDescription=cluster\n"},
		{name: "etc/systemd/system/multi-user.target.wants/cluster.target", typ: tar.TypeSymlink, mode: 0o777, link: "/usr/lib/systemd/system/cluster.target"},
		{name: "etc/cluster/role", typ: tar.TypeReg, mode: 0o644, body: "master\n"},
		{name: "var/lib/cluster/data", typ: tar.TypeReg, mode: 0o600, uid: 1000, body: "secret"},
		{name: "opt/cluster/bin/hello-again", typ: tar.TypeLink, link: "opt/cluster/bin/hello"},
	})

	start := time.Now()
	console, err := inplace.Run(ctx, testLogger(t), inplace.Options{Image: vendor, Format: "qcow2", Overlay: overlayTar, Kernel: kernel, InitBinary: appliance})
	if err != nil {
		t.Fatalf("in-place apply: %v", err)
	}
	t.Logf("in-place apply: %.1fs", time.Since(start).Seconds())
	if !strings.Contains(console, "SELinux is enforcing: /.autorelabel written") {
		t.Errorf("no relabel requested:\n%s", console)
	}

	console, err = inplace.Run(ctx, testLogger(t), inplace.Options{Image: vendor, Format: "qcow2", Kernel: kernel, InitBinary: appliance, List: true})
	if err != nil {
		t.Fatalf("in-place list: %v", err)
	}
	var listing []string
	for _, l := range strings.Split(console, "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(l), "IBLIST "); ok {
			listing = append(listing, rest)
		}
	}
	text := strings.Join(listing, "\n")
	for _, want := range []string{
		"/opt/cluster/bin/hello file 0755 0:0 size=21 links=2",
		"/opt/cluster/bin/hello-again file 0755 0:0 size=21 links=2",
		"/usr/lib/systemd/system/cluster.target file 0644 0:0 size=27 links=1",
		"/etc/systemd/system/multi-user.target.wants/cluster.target symlink 0777 0:0 -> /usr/lib/systemd/system/cluster.target",
		"/etc/cluster/role file 0644 0:0 size=7 links=1",
		"/var/lib/cluster/data file 0600 1000:1000 size=6 links=1",
		"/.autorelabel file 0644 0:0 size=0",
		"/lib symlink 0777 0:0 -> usr/lib",
		"/etc/os-release file 0644 0:0 size=76",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the image's root lacks %q:\n%s", want, text)
		}
	}

	// The vendor's layout is kept: same partition table, still XFS.
	sh("qemu-img", "convert", "-q", "-f", "qcow2", "-O", "raw", vendor, raw)
	if after := sh("sgdisk", "-p", raw); after != table {
		t.Errorf("partition table changed:\n%s\nwas:\n%s", after, table)
	}
	f, err := os.Open(raw)
	must(err)
	magic := make([]byte, 4)
	_, err = f.ReadAt(magic, 1<<20)
	f.Close()
	must(err)
	if string(magic) != "XFSB" {
		t.Errorf("the root partition is no longer XFS: %q", magic)
	}

	// A hostile overlay is refused, naming the entry.
	hostile := filepath.Join(work, "hostile.tar")
	writeTar(hostile, []tarEntry{{name: "etc/../../escape", typ: tar.TypeReg, mode: 0o644, body: "x"}})
	_, err = inplace.Run(ctx, testLogger(t), inplace.Options{Image: vendor, Format: "qcow2", Overlay: hostile, Kernel: kernel, InitBinary: appliance})
	if err == nil || !strings.Contains(err.Error(), `appliance: tar entry "etc/../../escape": ".." component refused`) {
		t.Fatalf("hostile overlay: %v", err)
	}
}

type tarEntry struct {
	name, body, link string
	typ              byte
	mode             int64
	uid              int
}
