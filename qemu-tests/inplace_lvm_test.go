package qemutests

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"imagebuilder/imagebuilder/build"
	"imagebuilder/imagebuilder/inplace"
	"imagebuilder/imagebuilder/inplace/lvm"
	"imagebuilder/overlay"
)

// The LVM vendor fixture: a GPT disk, partition 1 an ext4 /boot (no
// os-release), partition 2 an LVM2 PV written by lvm.WritePV (checked by
// pvck in the lvm package's tests) holding volume group rootvg with 4 MiB
// extents:
//
//	homelv   ext4, no os-release        PE 0-3
//	rootlv   XFS, RHEL-like root        extents 0-39 at PE 44, 40-79 at PE 4 (two segments, out of order)
//	altroot  ext4 with an os-release    PE 84-87 (a second candidate: rootlv wins by its name)
//	thinlv   type "thin"                (unsupported: noted, skipped)
const (
	lvmExtent   = 4 << 20
	lvmPEStart  = 1 << 20
	lvmPECount  = 90
	lvmBootMiB  = 32
	lvmPartOff  = (1 + lvmBootMiB) << 20
	lvmPartSize = lvmPEStart + lvmPECount*lvmExtent
)

func lvmLayout() lvm.Layout {
	seg := func(start, count, pe uint64) lvm.Segment {
		return lvm.Segment{StartExtent: start, ExtentCount: count, Type: "striped", Stripes: []lvm.Stripe{{PV: "pv0", PE: pe}}}
	}
	return lvm.Layout{
		VG: "rootvg", VGID: "Vg0rootvgFixture0000000000000001", PVID: "Pv0rootvgFixture0000000000000001", Device: "/dev/vda2",
		DeviceSize: lvmPartSize, ExtentSize: lvmExtent / 512, PEStart: lvmPEStart / 512, PECount: lvmPECount, Seqno: 3,
		LVs: []lvm.LVLayout{
			{Name: "homelv", ID: "Lv0homelv00000000000000000000001", Segments: []lvm.Segment{seg(0, 4, 0)}},
			{Name: "rootlv", ID: "Lv0rootlv00000000000000000000001", Segments: []lvm.Segment{seg(0, 40, 44), seg(40, 40, 4)}},
			{Name: "altroot", ID: "Lv0altroot0000000000000000000001", Segments: []lvm.Segment{seg(0, 4, 84)}},
			{Name: "thinlv", ID: "Lv0thinlv00000000000000000000001", Segments: []lvm.Segment{{StartExtent: 0, ExtentCount: 1, Type: "thin"}}},
		},
	}
}

// rhelLikeRoot is a small RHEL 9-like root: what the rhel profile's
// fixups look at (os-release, systemd version, NetworkManager, SELinux
// enforcing, cloud-init) plus vendor build leftovers the hygiene removes.
func rhelLikeRoot(t *testing.T, dir string) *overlay.Tree {
	t.Helper()
	tree := overlay.NewTree(dir)
	files := map[string]string{
		"usr/lib/os-release":                            "NAME=\"Red Hat Enterprise Linux\"\nID=\"rhel\"\nID_LIKE=\"fedora\"\nVERSION_ID=\"9.4\"\nPRETTY_NAME=\"Red Hat Enterprise Linux 9.4 (Plow)\"\n",
		"usr/lib64/systemd/libsystemd-shared-252.so":    "ELF",
		"usr/lib/systemd/systemd":                       "ELF",
		"usr/bin/tar":                                   "ELF",
		"usr/bin/gzip":                                  "ELF",
		"usr/sbin/nologin":                              "ELF",
		"usr/sbin/NetworkManager":                       "ELF",
		"usr/lib/systemd/system/NetworkManager.service": "[Unit]\n",
		"usr/lib/systemd/system/NetworkManager-wait-online.service": "[Unit]\n",
		"usr/lib/systemd/system/systemd-firstboot.service":          "[Unit]\n",
		"usr/lib/systemd/system/sshd.service":                       "[Unit]\n",
		"etc/passwd":                                                "root:x:0:0:root:/root:/bin/bash\n",
		"etc/group":                                                 "root:x:0:\n",
		"etc/selinux/config":                                        "SELINUX=enforcing\nSELINUXTYPE=targeted\n",
		"etc/cloud/cloud.cfg":                                       "datasource_list: [NoCloud]\n",
		"var/lib/cloud/instances/i-build/boot-finished":             "",
		"etc/fstab":                                                 "/dev/mapper/rootvg-rootlv / xfs defaults 0 0\n",
		"etc/machine-id":                                            "0123456789abcdef0123456789abcdef\n",
		"etc/hostname":                                              "vendor-build\n",
		"etc/resolv.conf":                                           "nameserver 192.0.2.53\n",
		"etc/ssh/ssh_host_ed25519_key":                              "vendor build key\n",
		"var/log/vendor-build.log":                                  "built\n",
	}
	for p, data := range files {
		if err := tree.MkdirAll(filepath.Dir(p), 0o755, 0, 0); err != nil {
			t.Fatal(err)
		}
		if err := tree.WriteFile(p, []byte(data), 0o644, 0, 0); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"etc/NetworkManager/system-connections", "etc/systemd/system", "tmp", "run", "var/tmp"} {
		if err := tree.MkdirAll(d, 0o755, 0, 0); err != nil {
			t.Fatal(err)
		}
	}
	for link, target := range map[string]string{"etc/os-release": "../usr/lib/os-release", "bin": "usr/bin", "sbin": "usr/sbin", "lib64": "usr/lib64"} {
		if err := tree.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
	}
	return tree
}

// makeLVMVendorImage writes the LVM fixture as raw at out and returns it.
func makeLVMVendorImage(t *testing.T, work, out string) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	// rootlv: XFS from a protofile.
	rootDir := filepath.Join(work, "rhel-root")
	must(os.Mkdir(rootDir, 0o755))
	proto := filepath.Join(work, "proto")
	must(os.WriteFile(proto, []byte(xfsProtofile(t, rhelLikeRoot(t, rootDir))), 0o644))
	rootImg := filepath.Join(work, "rootlv.xfs")
	must(os.WriteFile(rootImg, nil, 0o644))
	must(os.Truncate(rootImg, 80*lvmExtent))
	runTool(t, "", "mkfs.xfs", "-q", "-f", "-m", "uuid=2c3d4e5f-6071-4283-94a5-b6c7d8e9f0a1", "-p", proto, rootImg)
	// ext4 file systems: homelv, altroot (with an os-release), /boot.
	ext4 := func(name string, mib int, files map[string]string) string {
		dir := filepath.Join(work, name+"-tree")
		for p, data := range files {
			must(os.MkdirAll(filepath.Join(dir, filepath.Dir(p)), 0o755))
			must(os.WriteFile(filepath.Join(dir, p), []byte(data), 0o644))
		}
		must(os.MkdirAll(dir, 0o755))
		img := filepath.Join(work, name+".ext4")
		runTool(t, "", "mkfs.ext4", "-q", "-F", "-E", "root_owner=0:0", "-U", "clear", "-d", dir, img, fmt.Sprintf("%dM", mib))
		return img
	}
	home := ext4("homelv", 16, map[string]string{"user/notes": "home\n"})
	alt := ext4("altroot", 16, map[string]string{"etc/os-release": "ID=debian\nVERSION_ID=12\n"})
	boot := ext4("boot", lvmBootMiB, map[string]string{"loader/entries/vendor.conf": "title Vendor\n"})

	must(os.WriteFile(out, nil, 0o644))
	must(os.Truncate(out, lvmPartOff+lvmPartSize+1<<20))
	runTool(t, "", "sgdisk", "-U", vendorDiskGUID,
		"-n", fmt.Sprintf("1:2048:+%dM", lvmBootMiB), "-t", "1:8300", "-c", "1:boot",
		"-n", fmt.Sprintf("2:0:+%d", lvmPartSize/512-1), "-t", "2:8e00", "-c", "2:lvm", out)
	disk, err := os.OpenFile(out, os.O_RDWR, 0)
	must(err)
	defer disk.Close()
	copyAt := func(src string, from, size, to int64) {
		f, err := os.Open(src)
		must(err)
		defer f.Close()
		_, err = io.Copy(io.NewOffsetWriter(disk, to), io.NewSectionReader(f, from, size))
		must(err)
	}
	copyAt(boot, 0, lvmBootMiB<<20, 1<<20)
	must(lvm.WritePV(io.NewOffsetWriter(disk, lvmPartOff), lvmLayout()))
	pe := func(n int64) int64 { return lvmPartOff + lvmPEStart + n*lvmExtent }
	copyAt(home, 0, 4*lvmExtent, pe(0))
	copyAt(rootImg, 0, 40*lvmExtent, pe(44))
	copyAt(rootImg, 40*lvmExtent, 40*lvmExtent, pe(4))
	copyAt(alt, 0, 4*lvmExtent, pe(84))
	os.Remove(rootImg)
}

// lvRanges reads the LVM metadata of the raw disk's partition 2 and
// returns the byte ranges (offset in the disk, size) of a logical volume.
func lvRanges(t *testing.T, raw, lv string) [][2]int64 {
	t.Helper()
	f, err := os.Open(raw)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pv, err := lvm.ReadPV(io.NewSectionReader(f, lvmPartOff, lvmPartSize))
	if err != nil {
		t.Fatalf("reading the PV of %s: %v", raw, err)
	}
	vg, err := lvm.ParseVG(pv.Text)
	if err != nil {
		t.Fatal(err)
	}
	table, err := vg.Table(lv, func(string) (string, error) { return "pv", nil })
	if err != nil {
		t.Fatal(err)
	}
	var out [][2]int64
	for _, tg := range table {
		off, err := strconv.ParseInt(strings.TrimPrefix(tg.Params, "pv "), 10, 64)
		if err != nil || tg.Type != "linear" {
			t.Fatalf("target %+v", tg)
		}
		out = append(out, [2]int64{lvmPartOff + off*512, int64(tg.Length) * 512})
	}
	return out
}

// extractLV copies a logical volume's segments out of the raw disk.
func extractLV(t *testing.T, raw, lv, out string) {
	t.Helper()
	in, err := os.Open(raw)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	o, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	for _, r := range lvRanges(t, raw, lv) {
		if _, err := io.Copy(o, io.NewSectionReader(in, r[0], r[1])); err != nil {
			t.Fatal(err)
		}
	}
}

func applianceBinary(t *testing.T, dir string) string {
	t.Helper()
	appliance := filepath.Join(dir, "imagebuilder-appliance")
	cmd := exec.Command("go", "build", "-trimpath", "-o", appliance, "./imagebuilder/inplace/appliance")
	cmd.Dir, cmd.Env = repoRoot, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the appliance: %v\n%s", err, out)
	}
	return appliance
}

// TestInPlaceBuildLVM runs `build --in-place` on the LVM fixture: the
// appliance finds the PV, maps rootlv's two segments with device-mapper,
// picks it over altroot by its name, skips the thin LV, applies the
// overlay and the rhel profile's fixups into it. Checked from outside: the
// partition table, the PV label and metadata area, homelv and altroot are
// byte-identical; rootlv, extracted through the output's own LVM metadata,
// passes xfs_repair -n and holds the overlay and fixups (xfs_db). Then the
// appliance's choices are checked: ib.root picks altroot, and asking for
// the thin LV fails naming its segment type. A second build of the same
// inputs must give the same bytes (the XFS root is normalized).
func TestInPlaceBuildLVM(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	needTools(t, [2]string{"mkfs.xfs", "xfsprogs"}, [2]string{"xfs_db", "xfsprogs"}, [2]string{"xfs_repair", "xfsprogs"},
		[2]string{"mkfs.ext4", "e2fsprogs"}, [2]string{"sgdisk", "gdisk"},
		[2]string{"qemu-img", "qemu-utils"}, [2]string{"qemu-system-x86_64", "qemu-system-x86"})
	baseTarPath := baseTar(t)
	cb := clusterBundle(t, "")
	work := t.TempDir()
	appliance := applianceBinary(t, work)
	vendor := filepath.Join(work, "vendor.raw")
	start := time.Now()
	makeLVMVendorImage(t, work, vendor)
	t.Logf("LVM vendor fixture: %.1fs", time.Since(start).Seconds())
	hash := func(p string, off, size int64) string {
		t.Helper()
		s, err := build.HashRange(p, off, size)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	tableBefore := partitionTable(t, vendor)
	metaBefore := hash(vendor, lvmPartOff, lvmPEStart)
	homeBefore := lvRanges(t, vendor, "homelv")
	altBefore := lvRanges(t, vendor, "altroot")
	homeSum, altSum := hash(vendor, homeBefore[0][0], homeBefore[0][1]), hash(vendor, altBefore[0][0], altBefore[0][1])
	vendorSum := hash(vendor, 0, fileSize(t, vendor))

	inPlace := func(out string) *build.Result {
		t.Helper()
		start := time.Now()
		res, err := build.Run(ctx, testLogger(t), build.Options{
			Base: vendor, Bundle: cb, Role: "master", OutDir: out, Name: "host", Formats: []string{"raw"},
			InPlace: true, ApplianceKernel: baseTarPath, ApplianceBinary: appliance, SourceDateEpoch: 1700000000,
		})
		if err != nil {
			t.Fatalf("in-place build: %v", err)
		}
		t.Logf("build --in-place (LVM): %.1fs", time.Since(start).Seconds())
		for _, s := range res.Stages {
			t.Logf("  stage %s: %.1fs", s.Name, s.Seconds)
		}
		return res
	}
	res := inPlace(filepath.Join(work, "out"))
	// Reproducible: a second build of the same inputs gives the same bytes.
	if again := inPlace(filepath.Join(work, "out2")); again.Artifacts[0].SHA256 != res.Artifacts[0].SHA256 {
		t.Errorf("two in-place builds differ: %s and %s", res.Artifacts[0].SHA256, again.Artifacts[0].SHA256)
		extractLV(t, artifact(t, again, "raw"), "rootlv", filepath.Join(work, "rootlv.again"))
	} else {
		os.RemoveAll(filepath.Join(work, "out2"))
	}
	if res.Distro != "rhel 9.4" {
		t.Errorf("distro %q", res.Distro)
	}
	if hash(vendor, 0, fileSize(t, vendor)) != vendorSum {
		t.Errorf("the vendor image was modified")
	}
	raw := artifact(t, res, "raw")
	if got := partitionTable(t, raw); got != tableBefore {
		t.Errorf("partition table changed:\n%s\nwas:\n%s", got, tableBefore)
	}
	if hash(raw, lvmPartOff, lvmPEStart) != metaBefore {
		t.Errorf("the PV label or LVM metadata area changed")
	}
	if r := lvRanges(t, raw, "homelv"); hash(raw, r[0][0], r[0][1]) != homeSum {
		t.Errorf("homelv changed")
	}
	if r := lvRanges(t, raw, "altroot"); hash(raw, r[0][0], r[0][1]) != altSum {
		t.Errorf("altroot changed")
	}

	rootOut := filepath.Join(work, "rootlv.out")
	extractLV(t, raw, "rootlv", rootOut)
	if outp, err := exec.Command("xfs_repair", "-n", rootOut).CombinedOutput(); err != nil ||
		strings.Contains(string(outp), "ahead of log") || strings.Contains(string(outp), "would") {
		t.Errorf("xfs_repair -n on the output's rootlv: %v\n%s", err, outp)
	}
	xfsDB := func(cmds ...string) string {
		args := []string{"-r"}
		for _, c := range cmds {
			args = append(args, "-c", c)
		}
		o, _ := exec.Command("xfs_db", append(args, rootOut)...).CombinedOutput()
		return string(o)
	}
	stat := func(p string) string { return xfsDB("path "+p, "print core.mode core.size") }
	if s := stat("/etc/cluster/role"); !strings.Contains(s, "core.size = 7") {
		t.Errorf("/etc/cluster/role in rootlv: %s", s)
	}
	if s := stat(res.Prefix + "/systemd/cluster.target"); !strings.Contains(s, "core.mode = 0100644") {
		t.Errorf("%s/systemd/cluster.target in rootlv: %s", res.Prefix, s)
	}
	if s := stat("/etc/machine-id"); !strings.Contains(s, "core.size = 14") {
		t.Errorf("machine-id not reset to uninitialized: %s", s)
	}
	// The rhel profile's fixups.
	if s := stat("/etc/NetworkManager/system-connections/imagebuilder-dhcp.nmconnection"); !strings.Contains(s, "core.mode = 0100600") {
		t.Errorf("NetworkManager keyfile: %s", s)
	}
	if s := stat("/etc/systemd/system/multi-user.target.wants/NetworkManager.service"); !strings.Contains(s, "core.mode = 0120777") {
		t.Errorf("NetworkManager not enabled: %s", s)
	}
	if s := stat("/etc/cloud/cloud.cfg.d/99-imagebuilder-network.cfg"); !strings.Contains(s, "core.mode = 0100644") {
		t.Errorf("cloud-init network config: %s", s)
	}
	if s := stat("/.autorelabel"); !strings.Contains(s, "core.mode = 0100644") {
		t.Errorf("SELinux relabel: %s", s)
	}
	for _, gone := range []string{"/etc/ssh/ssh_host_ed25519_key", "/var/log/vendor-build.log", "/etc/hostname", "/var/lib/cloud/instances"} {
		if s := stat(gone); !strings.Contains(s, "could not find") && !strings.Contains(s, "No such") {
			t.Errorf("%s is still in rootlv: %s", gone, s)
		}
	}
	if s := xfsDB("path /etc/resolv.conf", "print core.size"); strings.Contains(s, "core.size = 22") {
		t.Errorf("resolv.conf keeps the vendor's resolver: %s", s)
	}

	// The appliance's choices, on children of the output.
	kernel, err := inplace.KernelFromBase(baseTarPath)
	if err != nil {
		t.Fatal(err)
	}
	console, err := inplace.Run(ctx, testLogger(t), inplace.Options{Image: overlayDisk(t, raw, 0), Format: "qcow2", Kernel: kernel, InitBinary: appliance, List: true, Root: "rootvg/altroot"})
	if err != nil || !strings.Contains(console, "IBROOT lvm rootvg/altroot ext4") || !strings.Contains(console, "IBLIST /etc/os-release file") {
		t.Errorf("ib.root=rootvg/altroot: %v\n%s", err, consoleTail(console))
	}
	_, err = inplace.Run(ctx, testLogger(t), inplace.Options{Image: overlayDisk(t, raw, 0), Format: "qcow2", Kernel: kernel, InitBinary: appliance, List: true, Root: "rootvg/thinlv"})
	if err == nil || !strings.Contains(err.Error(), `logical volume rootvg/thinlv: segment1: type "thin": unsupported segment type`) {
		t.Errorf("thin LV: %v", err)
	}
}

func consoleTail(s string) string {
	if len(s) > 2000 {
		return s[len(s)-2000:]
	}
	return s
}
