package qemutests

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"imagebuilder/imagebuilder/build"
	"imagebuilder/imagebuilder/cli"
	"imagebuilder/imagebuilder/qemu"
	"imagebuilder/imagebuilder/verify"
)

// TestFormatsFromOneBuild builds every format at once and checks each with
// an outside oracle: qemu-img check / info, e2fsck -fn on the root
// partition, sgdisk -v, tar -t, go-containerregistry's validate on the OCI
// layout, sha256sum -c on SHA256SUMS. A second build in another folder must
// give the same tar, OCI, vmdk and vhd bytes.
func TestFormatsFromOneBuild(t *testing.T) {
	t.Parallel()
	needTools(t, [2]string{"qemu-img", "qemu-utils"}, [2]string{"e2fsck", "e2fsprogs"}, [2]string{"sgdisk", "gdisk"},
		[2]string{"sha256sum", "coreutils"}, [2]string{"tar", "tar"}, [2]string{"grub-mkimage", "grub-pc-bin"})
	cb := clusterBundle(t, "")
	script := filepath.Join(filepath.Dir(cb), "install.sh")
	if _, err := os.Stat(script); errors.Is(err, os.ErrNotExist) {
		// genconf of this tree does not write install.sh yet: the export
		// only copies it, so any script exercises it.
		if err := os.WriteFile(script, []byte("#!/bin/sh\necho install\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	all := []string{"raw", "qcow2", "vmdk", "vhd", "tar", "oci", "pxe", "bash"}
	res := buildWith(t, build.Options{Bundle: cb, Role: "master", Formats: all})
	out := filepath.Dir(artifact(t, res, "raw"))
	for _, f := range all {
		if len(artifactsOf(res, f)) == 0 {
			t.Errorf("no %s artifact", f)
		}
	}

	// The manifest names the inputs and every artifact; SHA256SUMS checks.
	var m build.Result
	data, err := os.ReadFile(filepath.Join(out, "host.manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	if len(m.BaseSHA256) != 64 || len(m.BundleSHA256) != 64 || m.ConfigHash == "" || len(m.Formats) != len(all) || m.Disk == nil || len(m.Disk.Partitions) != 3 {
		t.Errorf("manifest lacks inputs, formats or disk layout:\n%s", data)
	}
	for _, a := range m.Artifacts {
		if filepath.IsAbs(a.Path) || a.Size <= 0 || len(a.SHA256) != 64 {
			t.Errorf("manifest artifact %+v: want a relative path, a size and a sha256", a)
		}
	}
	sums := runTool(t, out, "sha256sum", "-c", "SHA256SUMS")
	for _, want := range []string{"host.raw: OK", "host.vmdk: OK", "host.vhd: OK", "host.tar: OK", "host.oci/index.json: OK", "host.pxe/rootfs.cpio.gz: OK", "host.bash/install.sh: OK"} {
		if !strings.Contains(sums, want) {
			t.Errorf("sha256sum -c: no %q in\n%s", want, sums)
		}
	}

	// Disks: converted images are sound and hold the raw disk's bytes.
	raw := artifact(t, res, "raw")
	rawInfo, _ := os.Stat(raw)
	for _, f := range []string{"qcow2", "vmdk"} {
		runTool(t, out, "qemu-img", "check", artifact(t, res, f))
		runTool(t, out, "qemu-img", "compare", "-f", "raw", "-F", f, raw, artifact(t, res, f))
	}
	if info := runTool(t, out, "qemu-img", "info", artifact(t, res, "vmdk")); !strings.Contains(info, "create type: streamOptimized") {
		t.Errorf("vmdk is not streamOptimized:\n%s", info)
	}
	vhd := artifact(t, res, "vhd")
	vhdInfo, _ := os.Stat(vhd)
	if rawInfo.Size()%(1<<20) != 0 || vhdInfo.Size() != rawInfo.Size()+512 {
		t.Errorf("vhd: want a fixed VHD of the raw size (%d, a whole number of MiB) plus its 512-byte footer, got %d", rawInfo.Size(), vhdInfo.Size())
	}
	runTool(t, out, "qemu-img", "compare", "-f", "raw", "-F", "vpc", raw, vhd)
	sg := runTool(t, out, "sgdisk", "-v", raw)
	if !strings.Contains(sg, "No problems found") {
		t.Errorf("sgdisk -v:\n%s", sg)
	}
	if p := runTool(t, out, "sgdisk", "-i", "3", raw); !strings.Contains(p, "21686148-6449-6E6F-744E-656564454649") {
		t.Errorf("partition 3 is not a BIOS boot partition:\n%s", p)
	}
	root := m.Disk.Partitions[1]
	runTool(t, out, "e2fsck", "-fn", extractRange(t, raw, root.StartBytes, root.SizeBytes))

	// tar: a rootfs with the bundle at its prefix, numeric owners, fixed times.
	listing := runTool(t, out, "tar", "--numeric-owner", "-tvf", artifact(t, res, "tar"))
	for _, want := range []string{" opt/cluster/manifest.json", " etc/os-release", " etc/cluster/role", "0/0 "} {
		if !strings.Contains(listing, want) {
			t.Errorf("tar listing lacks %q", want)
		}
	}
	if regexp.MustCompile(`UUID=`).MatchString(readTarFile(t, artifact(t, res, "tar"), "etc/fstab")) {
		t.Errorf("the rootfs tar carries the disk's fstab")
	}

	// oci: a valid layout whose one layer is the rootfs tar.
	lp, err := layout.FromPath(filepath.Join(out, "host.oci"))
	if err != nil {
		t.Fatal(err)
	}
	idx, err := lp.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil || len(im.Manifests) != 1 || im.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != "host" {
		t.Fatalf("oci index: %v %+v", err, im)
	}
	img, err := idx.Image(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(img); err != nil {
		t.Errorf("oci image does not validate: %v", err)
	}
	layers, _ := img.Layers()
	if len(layers) != 1 {
		t.Fatalf("oci image has %d layers, want 1", len(layers))
	}
	diffID, _ := layers[0].DiffID()
	if diffID.Hex != artifactsOf(res, "tar")[0].SHA256 {
		t.Errorf("oci layer diff id %s is not the rootfs tar %s", diffID.Hex, artifactsOf(res, "tar")[0].SHA256)
	}

	// pxe: kernel, root cpio and a script with a usable command line.
	ipxe, err := os.ReadFile(filepath.Join(out, "host.pxe", "boot.ipxe"))
	if err != nil || !strings.Contains(string(ipxe), "kernel vmlinuz rdinit=/sbin/init console=tty0 console=ttyS0,115200") {
		t.Errorf("boot.ipxe: %v\n%s", err, ipxe)
	}

	// bash: the bundle and install.sh, byte for byte.
	for _, f := range []string{cb, script} {
		a, _ := os.ReadFile(f)
		b, err := os.ReadFile(filepath.Join(out, "host.bash", filepath.Base(f)))
		if err != nil || string(a) != string(b) {
			t.Errorf("bash export of %s differs or is missing: %v", filepath.Base(f), err)
		}
	}

	t.Run("verify", func(t *testing.T) { checkVerify(t, res, m) })

	// A second build elsewhere: identical bytes, also for the formats whose
	// ids qemu-img draws at random (vmdk's CID, vhd's unique id).
	again := buildWith(t, build.Options{Bundle: cb, Role: "master", Formats: []string{"oci", "tar", "vmdk", "vhd"}})
	for _, f := range []string{"tar", "oci", "vmdk", "vhd"} {
		if a, b := artifactsOf(res, f)[0], artifactsOf(again, f)[0]; a.SHA256 != b.SHA256 || a.Digest != b.Digest || a.Size != b.Size {
			t.Errorf("%s differs between two builds: %+v vs %+v", f, a, b)
		}
	}
}

func readTarFile(t *testing.T, archive, name string) string {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return ""
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Name == name {
			b, _ := io.ReadAll(tr)
			return string(b)
		}
	}
}

// TestHybridDiskBootsBIOSAndUEFI boots one image under SeaBIOS (GRUB from
// the MBR and the BIOS boot partition) and under OVMF (systemd-boot), each
// on a disk 2 GiB larger than the image: both must join, and both must
// grow the root filesystem to fill the disk on first boot.
func TestHybridDiskBootsBIOSAndUEFI(t *testing.T) {
	t.Parallel()
	res := buildWith(t, build.Options{Bundle: clusterBundle(t, ""), Role: "master", Formats: []string{"qcow2"}})
	img := artifact(t, res, "qcow2")
	rootBytes := res.Disk.Partitions[1].SizeBytes
	const growMiB = 2048
	resizedRE := regexp.MustCompile(`EXT4-fs \(vda2\): resized filesystem to (\d+)`)
	efiRE := regexp.MustCompile(`efi: EFI v\d`)
	for _, fw := range []struct {
		name string
		fw   qemu.Firmware
		efi  bool
	}{{"seabios", qemu.SeaBIOS, false}, {"ovmf", qemu.DefaultFirmware, true}} {
		t.Run(fw.name, func(t *testing.T) {
			t.Parallel()
			vm := bootWithFirmware(t, overlayDisk(t, img, growMiB), "boot", fw.fw, 1024)
			ctx := context.Background()
			start := time.Now()
			line, err := vm.Expect(ctx, resizedRE, bootTimeout)
			if err != nil {
				t.Fatalf("root filesystem not grown: %v", err)
			}
			blocks, _ := strconv.ParseInt(resizedRE.FindStringSubmatch(line)[1], 10, 64)
			if grown := blocks*4096 - rootBytes; grown < (growMiB-16)<<20 {
				t.Errorf("root grew by %d MiB, want about %d MiB (%s)", grown>>20, growMiB, line)
			}
			if _, err := vm.Expect(ctx, joinedRE, bootTimeout); err != nil {
				t.Fatalf("%v", err)
			}
			t.Logf("%s: boot to joined in %.1fs, root grew to %d MiB", fw.name, time.Since(start).Seconds(), blocks*4096>>20)
			vm.Kill()
			console, _ := os.ReadFile(vm.ConsoleLog())
			if efiRE.Match(console) != fw.efi {
				t.Errorf("%s: kernel saw UEFI = %v, want %v", fw.name, !fw.efi, fw.efi)
			}
		})
	}
}

// checkVerify runs `imagebuilder verify` on untouched artifacts (exit 0, no
// drift even with --deep) and on tampered copies of the raw disk and the
// tar (exit 1, naming the partition and the payload file that changed).
func checkVerify(t *testing.T, res *build.Result, m build.Result) {
	out := filepath.Dir(artifact(t, res, "raw"))
	verifyCLI := func(args ...string) (int, []verify.Report) {
		var stdout, stderr bytes.Buffer
		code := cli.Main(nil, &stdout, &stderr, append([]string{"verify", "--json"}, args...))
		var reports []verify.Report
		if err := json.Unmarshal(stdout.Bytes(), &reports); err != nil {
			t.Fatalf("verify %v: exit %d, output not JSON: %v\n%s\n%s", args, code, err, stdout.String(), stderr.String())
		}
		return code, reports
	}
	for _, img := range []string{artifact(t, res, "qcow2"), artifact(t, res, "raw"), artifact(t, res, "tar"), filepath.Join(out, "host.pxe")} {
		code, reports := verifyCLI("--deep", img)
		if code != 0 || len(reports) == 0 {
			t.Errorf("verify --deep %s: exit %d, want 0: %+v", img, code, reports)
		}
		for _, r := range reports {
			for _, c := range r.Checks {
				if !c.OK {
					t.Errorf("verify %s: %s drifted on an untouched image: %s", img, c.Name, c.Detail)
				}
			}
		}
	}

	// Tamper with one payload file inside the raw disk's root filesystem.
	dir := t.TempDir()
	tampered := filepath.Join(dir, "host.raw")
	runTool(t, "", "cp", "--sparse=always", artifact(t, res, "raw"), tampered)
	manifest, _ := os.ReadFile(filepath.Join(out, "host.manifest.json"))
	if err := os.WriteFile(filepath.Join(dir, "host.manifest.json"), manifest, 0o644); err != nil {
		t.Fatal(err)
	}
	env := filepath.Join(dir, "cluster.env")
	if err := os.WriteFile(env, []byte("CLUSTER_NAME=evil\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmds := filepath.Join(dir, "cmds")
	os.WriteFile(cmds, []byte("rm /opt/cluster/etc/cluster.env\nwrite "+env+" /opt/cluster/etc/cluster.env\n"), 0o644)
	runTool(t, "", "debugfs", "-w", "-f", cmds, fmt.Sprintf("%s?offset=%d", tampered, m.Disk.Partitions[1].StartBytes))
	code, reports := verifyCLI(tampered)
	if code != 1 || len(reports) != 1 || !reports[0].Drift {
		t.Fatalf("verify of a tampered disk: exit %d, want 1: %+v", code, reports)
	}
	text := fmt.Sprint(reports[0].Checks)
	for _, want := range []string{"partition 2 (root) false content differs", "etc/cluster.env: content changed"} {
		if !strings.Contains(text, want) {
			t.Errorf("verify of a tampered disk does not say %q: %s", want, text)
		}
	}
	if strings.Contains(text, "partition 1 (ESP) false") || strings.Contains(text, "partition table false") {
		t.Errorf("verify blames untouched parts: %s", text)
	}
}

// TestPXEBootsFromRAM boots the pxe output the way its boot.ipxe says —
// the kernel with the script's command line and the whole root as the
// initramfs, no root disk — and asserts the host joins.
func TestPXEBootsFromRAM(t *testing.T) {
	t.Parallel()
	res := buildWith(t, build.Options{Bundle: clusterBundle(t, ""), Role: "master", Formats: []string{"pxe"}})
	dir := filepath.Join(filepath.Dir(artifactsOf(res, "pxe")[0].Path))
	script, err := os.ReadFile(filepath.Join(dir, "boot.ipxe"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^kernel (\S+) (.*)$`).FindStringSubmatch(string(script))
	if m == nil {
		t.Fatalf("boot.ipxe has no kernel line:\n%s", script)
	}
	// A blank disk: the host must not need it.
	blank := filepath.Join(t.TempDir(), "blank.qcow2")
	runTool(t, "", "qemu-img", "create", "-q", "-f", "qcow2", blank, "1G")
	vm := bootWithFirmware(t, blank, "pxe", qemu.SeaBIOS, 2048,
		"-kernel", filepath.Join(dir, m[1]), "-initrd", filepath.Join(dir, "rootfs.cpio.gz"), "-append", m[2])
	start := time.Now()
	if _, err := vm.Expect(context.Background(), joinedRE, bootTimeout); err != nil {
		t.Fatalf("%v", err)
	}
	t.Logf("pxe: boot to joined in %.1fs", time.Since(start).Seconds())
}
