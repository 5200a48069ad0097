package qemutests

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cavaliergopher/cpio"

	"imagebuilder/distros"
	"imagebuilder/imagebuilder/base"
	"imagebuilder/imagebuilder/build"
	"imagebuilder/imagebuilder/inplace"
	"imagebuilder/overlay"
)

// Fixed GUIDs of the vendor fixture's GPT, checked after the build.
const (
	vendorDiskGUID = "6A1B0C2D-3E4F-4A5B-8C6D-7E8F90A1B2C3"
	vendorESPGUID  = "0E5F1A2B-3C4D-4E5F-8A6B-7C8D9E0F1A2B"
	vendorRootGUID = "4D3C2B1A-6F5E-4B7A-9C8D-0E1F2A3B4C5D"
)

// TestInPlaceBuildBootsXFS builds a bootable vendor-like image whose root is
// XFS — the Debian base on a GPT disk with an EFI system partition
// (systemd-boot, the kernel and an initrd that can mount XFS) and an XFS
// root made by mkfs.xfs from a protofile (no mounts, no loop devices) —
// then runs `build --in-place` on it and boots the result once until
// firstboot joins. It checks that the vendor image is not modified, that
// the output keeps the vendor's partition table, GUIDs, boot partition
// bytes and XFS root, that the debian profile's fixups ran in place
// (networkd DHCP — the fixture has none, so the join proves it — and the
// hygiene: machine-id, SSH host key, logs, hostname), and the manifest and
// SHA256SUMS.
func TestInPlaceBuildBootsXFS(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	needTools(t, [2]string{"mkfs.xfs", "xfsprogs"}, [2]string{"sgdisk", "gdisk"}, [2]string{"mkfs.vfat", "dosfstools"},
		[2]string{"mcopy", "mtools"}, [2]string{"qemu-img", "qemu-utils"}, [2]string{"qemu-system-x86_64", "qemu-system-x86"})
	const sdboot = "/usr/lib/systemd/boot/efi/systemd-bootx64.efi"
	if _, err := os.Stat(sdboot); err != nil {
		t.Fatalf("%s: %v (apt-get install systemd-boot-efi)", sdboot, err)
	}
	baseTarPath := baseTar(t)
	cb := clusterBundle(t, "")
	work := t.TempDir()
	timed := func(what string, fn func()) {
		t.Helper()
		start := time.Now()
		fn()
		t.Logf("%s: %.1fs", what, time.Since(start).Seconds())
	}

	appliance := filepath.Join(work, "imagebuilder-appliance")
	timed("appliance binary", func() {
		cmd := exec.Command("go", "build", "-trimpath", "-o", appliance, "./imagebuilder/inplace/appliance")
		cmd.Dir, cmd.Env = repoRoot, append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("building the appliance: %v\n%s", err, out)
		}
	})

	vendor := filepath.Join(work, "vendor.qcow2")
	var espOff, espSize int64
	timed("vendor fixture (GPT, ESP with systemd-boot, XFS root)", func() {
		espOff, espSize = makeXFSVendorImage(t, ctx, baseTarPath, work, sdboot, vendor)
	})
	vendorSum, err := build.HashRange(vendor, 0, fileSize(t, vendor))
	if err != nil {
		t.Fatal(err)
	}
	vendorRaw := filepath.Join(work, "vendor.raw")
	runTool(t, "", "qemu-img", "convert", "-q", "-f", "qcow2", "-O", "raw", vendor, vendorRaw)
	tableBefore := partitionTable(t, vendorRaw)
	espBefore, err := build.HashRange(vendorRaw, espOff, espSize)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(vendorRaw)

	out := filepath.Join(work, "out")
	var res *build.Result
	timed("build --in-place", func() {
		res, err = build.Run(ctx, testLogger(t), build.Options{
			Base: vendor, Bundle: cb, Role: "master", OutDir: out, Name: "host", Formats: []string{"raw", "qcow2"},
			InPlace: true, ApplianceKernel: baseTarPath, ApplianceBinary: appliance,
		})
		if err != nil {
			t.Fatalf("in-place build: %v", err)
		}
	})
	for _, s := range res.Stages {
		t.Logf("  stage %s: %.1fs", s.Name, s.Seconds)
	}
	if res.Distro != "debian 12" || !res.InPlace || res.BaseKind != "qcow2" || res.BaseSHA256 != vendorSum || res.Prefix == "" {
		t.Errorf("result: distro %q in_place %v base %s %s prefix %q", res.Distro, res.InPlace, res.BaseKind, res.BaseSHA256, res.Prefix)
	}
	if after, _ := build.HashRange(vendor, 0, fileSize(t, vendor)); after != vendorSum {
		t.Errorf("the vendor image was modified")
	}
	sums, err := os.ReadFile(filepath.Join(out, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(out, "host.manifest.json")); err != nil {
		t.Errorf("manifest: %v", err)
	}
	for _, a := range res.Artifacts {
		got, _ := build.HashRange(a.Path, 0, fileSize(t, a.Path))
		if got != a.SHA256 || !strings.Contains(string(sums), a.SHA256+"  host."+a.Format+"\n") {
			t.Errorf("%s: sha256 %s, manifest %s, SHA256SUMS:\n%s", a.Path, got, a.SHA256, sums)
		}
	}
	raw, qcow := artifact(t, res, "raw"), artifact(t, res, "qcow2")

	// The vendor's layout is kept.
	if tableAfter := partitionTable(t, raw); tableAfter != tableBefore {
		t.Errorf("partition table changed:\n%s\nwas:\n%s", tableAfter, tableBefore)
	}
	for n, guid := range map[string]string{"1": vendorESPGUID, "2": vendorRootGUID} {
		if info := runTool(t, "", "sgdisk", "-i", n, raw); !strings.Contains(info, "Partition unique GUID: "+guid) {
			t.Errorf("partition %s lost its GUID %s:\n%s", n, guid, info)
		}
	}
	if info := runTool(t, "", "sgdisk", "-p", raw); !strings.Contains(info, "Disk identifier (GUID): "+vendorDiskGUID) {
		t.Errorf("disk GUID changed:\n%s", info)
	}
	if espAfter, _ := build.HashRange(raw, espOff, espSize); espAfter != espBefore {
		t.Errorf("the EFI system partition (boot loader, kernel) changed")
	}
	f, err := os.Open(raw)
	if err != nil {
		t.Fatal(err)
	}
	magic := make([]byte, 4)
	_, err = f.ReadAt(magic, espOff+espSize)
	f.Close()
	if err != nil || string(magic) != "XFSB" {
		t.Errorf("the root partition is no longer XFS: %q %v", magic, err)
	}

	// What the appliance did, read back by the appliance (on a child of the
	// output, which stays untouched).
	kernel, err := inplace.KernelFromBase(baseTarPath)
	if err != nil {
		t.Fatal(err)
	}
	var listing string
	timed("appliance listing of the output", func() {
		console, err := inplace.Run(ctx, testLogger(t), inplace.Options{Image: overlayDisk(t, qcow, 0), Format: "qcow2", Kernel: kernel, InitBinary: appliance, List: true})
		if err != nil {
			t.Fatalf("listing: %v", err)
		}
		listing = console
	})
	for _, want := range []string{
		"IBLIST /etc/machine-id file 0444 0:0 size=14 ",
		"IBLIST /etc/cluster/role file 0644 0:0 size=7 ",
		"IBLIST /etc/systemd/system/multi-user.target.wants/cluster.target symlink 0777 0:0 -> /etc/systemd/system/cluster.target",
		"IBLIST /etc/systemd/system/systemd-firstboot.service symlink 0777 0:0 -> /dev/null",
		"IBLIST " + res.Prefix + "/systemd/cluster.target file",
		"IBLIST /etc/ssh dir",
		// The debian profile's network fixup, applied in place.
		"IBLIST /" + distros.NetworkdFile + " file 0644 0:0",
		"IBLIST /etc/systemd/system/multi-user.target.wants/systemd-networkd.service symlink 0777 0:0 -> /usr/lib/systemd/system/systemd-networkd.service",
	} {
		if !strings.Contains(listing, want) {
			t.Errorf("the output's root lacks %q", want)
		}
	}
	for _, gone := range []string{"/etc/ssh/ssh_host_ed25519_key ", "/var/log/vendor-build.log ", "/etc/hostname "} {
		if strings.Contains(listing, "IBLIST "+gone) {
			t.Errorf("hygiene left %s", gone)
		}
	}
	if t.Failed() {
		return
	}

	// One boot of the output, to joined.
	start := time.Now()
	vm := bootVM(t, overlayDisk(t, qcow, 0), "inplace-xfs", nil)
	if _, err := vm.Expect(ctx, joinedRE, bootTimeout); err != nil {
		t.Fatalf("boot of the in-place image: %v", err)
	}
	t.Logf("in-place XFS image: boot to joined in %.1fs", time.Since(start).Seconds())
	if _, _, err := vm.ExpectFrom(ctx, 0, regexp.MustCompile(`XFS \(vda2\): Mounting`), 2*time.Second); err != nil {
		t.Errorf("the console shows no XFS root mount")
	}
	// The normalized root (rewritten inodes and log) mounts without
	// complaint.
	if line, _, err := vm.ExpectFrom(ctx, 0, regexp.MustCompile(`XFS \(vda2\).*(ahead of current LSN|[Cc]orruption|[Mm]etadata CRC error|log recovery)`), 2*time.Second); err == nil {
		t.Errorf("the kernel complains about the normalized XFS root: %q", line)
	}
	// The vendor's machine-id was reset: systemd makes a new one.
	if _, _, err := vm.ExpectFrom(ctx, 0, regexp.MustCompile(`Initializing machine ID from`), 2*time.Second); err != nil {
		t.Errorf("systemd did not initialize a new machine ID (the vendor's was kept?)")
	}
	if line, _, err := vm.ExpectFrom(ctx, 0, firstbootPromptRE, 2*time.Second); err == nil {
		t.Errorf("systemd-firstboot prompted on the console: %q", line)
	}
}

// partitionTable is sgdisk's listing without its first line (the file name).
func partitionTable(t *testing.T, raw string) string {
	t.Helper()
	_, table, _ := strings.Cut(runTool(t, "", "sgdisk", "-p", raw), "\n")
	return table
}

func fileSize(t *testing.T, p string) int64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// makeXFSVendorImage writes a vendor-like qcow2 at out: GPT (fixed GUIDs),
// partition 1 an EFI system partition with systemd-boot, the base's kernel
// and its initrd with XFS support appended (Debian's own initrd lacks
// xfs.ko, a vendor's XFS image has it), partition 2 an XFS root holding the
// base with an fstab and build leftovers the in-place hygiene must remove,
// and no network configuration: the debian profile's fixup applied in
// place must give it one for the boot to join. Returns
// the ESP's offset and size.
func makeXFSVendorImage(t *testing.T, ctx context.Context, baseTarPath, work, sdboot, out string) (int64, int64) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	stage := filepath.Join(work, "vendor-root")
	must(os.Mkdir(stage, 0o755))
	tree := overlay.NewTree(stage)
	b, err := base.Open(ctx, baseTarPath, testLogger(t))
	must(err)
	must(b.Apply(ctx, tree))
	b.Close()
	must(tree.WriteFile("etc/fstab", []byte("PARTUUID="+strings.ToLower(vendorRootGUID)+" / xfs defaults 0 1\n"), 0o644, 0, 0))
	must(tree.WriteFile("etc/machine-id", []byte("0123456789abcdef0123456789abcdef\n"), 0o444, 0, 0))
	must(tree.WriteFile("etc/hostname", []byte("vendor-build\n"), 0o644, 0, 0))
	must(tree.MkdirAll("etc/ssh", 0o755, 0, 0))
	must(tree.WriteFile("etc/ssh/ssh_host_ed25519_key", []byte("vendor build key\n"), 0o600, 0, 0))
	must(tree.WriteFile("var/log/vendor-build.log", []byte("built\n"), 0o644, 0, 0))

	// The kernel and an initrd that mounts XFS.
	var version string
	for p := range tree.Entries {
		if v, ok := strings.CutPrefix(p, "boot/vmlinuz-"); ok {
			version = v
		}
	}
	if version == "" {
		t.Fatal("the base has no /boot/vmlinuz-*")
	}
	modDir := "usr/lib/modules/" + version
	dep, err := tree.ReadFile(modDir + "/modules.dep")
	must(err)
	var xfsFiles []string
	for _, line := range strings.Split(string(dep), "\n") {
		mod, deps, ok := strings.Cut(line, ":")
		if ok && path.Base(mod) == "xfs.ko" {
			xfsFiles = append(append(xfsFiles, mod), strings.Fields(deps)...)
		}
	}
	if len(xfsFiles) == 0 {
		t.Fatalf("the base's kernel %s has no xfs.ko", version)
	}
	initrd, err := tree.ReadFile("boot/initrd.img-" + version)
	must(err)
	for len(initrd)%4 != 0 {
		initrd = append(initrd, 0)
	}
	var extra bytes.Buffer
	cw := cpio.NewWriter(&extra)
	addFile := func(name string, data []byte) {
		must(cw.WriteHeader(&cpio.Header{Name: name, Mode: cpio.TypeReg | 0o644, Size: int64(len(data)), ModTime: time.Unix(0, 0)}))
		_, err := cw.Write(data)
		must(err)
	}
	dirs := map[string]bool{}
	var names []string
	for _, f := range append(xfsFiles, "modules.dep", "modules.dep.bin") {
		names = append(names, modDir+"/"+f)
	}
	sort.Strings(names)
	for _, n := range names {
		for d := path.Dir(n); d != "." && !dirs[d]; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	var dirList []string
	for d := range dirs {
		dirList = append(dirList, d)
	}
	sort.Strings(dirList)
	for _, d := range dirList {
		must(cw.WriteHeader(&cpio.Header{Name: d, Mode: cpio.TypeDir | 0o755, ModTime: time.Unix(0, 0)}))
	}
	for _, n := range names {
		data, err := tree.ReadFile(n)
		must(err)
		addFile(n, data)
	}
	// initramfs-tools loads the modules named in /conf/modules early.
	addFile("conf/modules", []byte("xfs\n"))
	must(cw.Close())
	initrd = append(initrd, extra.Bytes()...)
	vmlinuz, err := tree.ReadFile("boot/vmlinuz-" + version)
	must(err)

	// The EFI system partition.
	const espMiB = 64
	esp := filepath.Join(work, "esp.img")
	runTool(t, "", "mkfs.vfat", "-C", "-n", "ESP", "-i", "12345678", esp, fmt.Sprint(espMiB*1024))
	files := map[string][]byte{
		"loader.conf": []byte("default vendor.conf\ntimeout 0\n"),
		"vendor.conf": []byte("title Vendor Linux\nlinux /vmlinuz\ninitrd /initrd.img\noptions root=PARTUUID=" +
			strings.ToLower(vendorRootGUID) + " rw console=ttyS0,115200 no_timer_check\n"),
		"vmlinuz":    vmlinuz,
		"initrd.img": initrd,
	}
	for n, data := range files {
		must(os.WriteFile(filepath.Join(work, n), data, 0o644))
	}
	runTool(t, "", "mmd", "-i", esp, "::/EFI", "::/EFI/BOOT", "::/loader", "::/loader/entries")
	runTool(t, "", "mcopy", "-i", esp, sdboot, "::/EFI/BOOT/BOOTX64.EFI")
	runTool(t, "", "mcopy", "-i", esp, filepath.Join(work, "loader.conf"), "::/loader/loader.conf")
	runTool(t, "", "mcopy", "-i", esp, filepath.Join(work, "vendor.conf"), "::/loader/entries/vendor.conf")
	runTool(t, "", "mcopy", "-i", esp, filepath.Join(work, "vmlinuz"), "::/vmlinuz")
	runTool(t, "", "mcopy", "-i", esp, filepath.Join(work, "initrd.img"), "::/initrd.img")

	// The XFS root from a protofile.
	proto := filepath.Join(work, "proto")
	must(os.WriteFile(proto, []byte(xfsProtofile(t, tree)), 0o644))
	const rootMiB = 2048
	rootImg := filepath.Join(work, "root.xfs")
	must(os.WriteFile(rootImg, nil, 0o644))
	must(os.Truncate(rootImg, rootMiB<<20))
	runTool(t, "", "mkfs.xfs", "-q", "-f", "-m", "uuid=1b2c3d4e-5f60-4172-8394-a5b6c7d8e9f0", "-p", proto, rootImg)
	os.RemoveAll(stage)

	// The GPT disk.
	raw := filepath.Join(work, "vendor-build.raw")
	must(os.WriteFile(raw, nil, 0o644))
	must(os.Truncate(raw, (1+espMiB+rootMiB+1)<<20))
	runTool(t, "", "sgdisk", "-U", vendorDiskGUID,
		"-n", fmt.Sprintf("1:2048:+%dM", espMiB), "-t", "1:ef00", "-u", "1:"+vendorESPGUID, "-c", "1:EFI",
		"-n", fmt.Sprintf("2:0:+%dM", rootMiB), "-t", "2:8304", "-u", "2:"+vendorRootGUID, "-c", "2:root", raw)
	runTool(t, "", "dd", "if="+esp, "of="+raw, "bs=1M", "seek=1", "conv=notrunc,sparse", "status=none")
	runTool(t, "", "dd", "if="+rootImg, "of="+raw, "bs=1M", fmt.Sprintf("seek=%d", 1+espMiB), "conv=notrunc,sparse", "status=none")
	os.Remove(rootImg)
	os.Remove(esp)
	runTool(t, "", "qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", raw, out)
	os.Remove(raw)
	return 1 << 20, espMiB << 20
}

// xfsProtofile describes the tree for mkfs.xfs -p: each directory's
// entries, then "$". Contents come from the tree's staging folder; owners,
// modes and device numbers from its entries (the sticky bit and xattrs are
// not expressible).
func xfsProtofile(t *testing.T, tree *overlay.Tree) string {
	t.Helper()
	children := map[string][]*overlay.Entry{}
	for _, e := range tree.Sorted() {
		if e.Path == "" {
			continue
		}
		children[path.Dir(e.Path)] = append(children[path.Dir(e.Path)], e)
	}
	var b strings.Builder
	b.WriteString("/dev/null\n0 0\nd--755 0 0\n")
	var walk func(dir string)
	walk = func(dir string) {
		for _, e := range children[dir] {
			name := path.Base(e.Path)
			if strings.ContainsAny(name, " \t\n") {
				t.Fatalf("protofile: %q has blanks", e.Path)
			}
			su, sg := "-", "-"
			if e.Mode&0o4000 != 0 {
				su = "u"
			}
			if e.Mode&0o2000 != 0 {
				sg = "g"
			}
			perm := fmt.Sprintf("%03o", e.Mode&0o777)
			head := func(typ string) string {
				return fmt.Sprintf("%s %s%s%s%s %d %d", name, typ, su, sg, perm, e.UID, e.GID)
			}
			switch e.Kind {
			case overlay.KindDir:
				b.WriteString(head("d") + "\n")
				walk(e.Path)
				b.WriteString("$\n")
			case overlay.KindFile:
				fmt.Fprintf(&b, "%s %s\n", head("-"), filepath.Join(tree.Root, e.Path))
			case overlay.KindHardlink:
				fmt.Fprintf(&b, "%s %s\n", head("-"), filepath.Join(tree.Root, e.Link))
			case overlay.KindSymlink:
				fmt.Fprintf(&b, "%s %s\n", head("l"), e.Link)
			case overlay.KindCharDev:
				fmt.Fprintf(&b, "%s %d %d\n", head("c"), e.DevMajor, e.DevMinor)
			case overlay.KindBlockDev:
				fmt.Fprintf(&b, "%s %d %d\n", head("b"), e.DevMajor, e.DevMinor)
			case overlay.KindFifo:
				b.WriteString(head("p") + "\n")
			}
		}
	}
	walk(".")
	b.WriteString("$\n")
	return b.String()
}
