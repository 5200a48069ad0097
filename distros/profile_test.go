package distros

import (
	"strings"
	"testing"

	"imagebuilder/overlay"
)

func TestDetect(t *testing.T) {
	cases := []struct {
		name, osr, want, err string
	}{
		{"debian 12", "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n", "debian", ""},
		{"ubuntu 22.04", "ID=ubuntu\nID_LIKE=debian\nVERSION_ID=\"22.04\"\n", "ubuntu", ""},
		{"ubuntu 24.04", "ID=ubuntu\nID_LIKE=debian\nVERSION_ID=\"24.04\"\n", "ubuntu", ""},
		{"rhel 8", "ID=\"rhel\"\nID_LIKE=\"fedora\"\nVERSION_ID=\"8.9\"\n", "rhel", ""},
		{"rhel 9", "ID=\"rhel\"\nID_LIKE=\"fedora\"\nVERSION_ID=\"9.4\"\n", "rhel", ""},
		{"rocky 9", "ID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\nVERSION_ID=\"9.3\"\n", "rhel", ""},
		{"alma 8", "ID=\"almalinux\"\nID_LIKE=\"rhel centos fedora\"\nVERSION_ID=\"8.10\"\n", "rhel", ""},
		{"centos stream 8", "ID=\"centos\"\nID_LIKE=\"rhel fedora\"\nVERSION_ID=\"8\"\n", "rhel", ""},
		{"centos stream 9", "ID=\"centos\"\nID_LIKE=\"rhel fedora\"\nVERSION_ID=\"9\"\n", "rhel", ""},
		{"rhel rebuild by ID_LIKE", "ID=\"eurolinux\"\nID_LIKE=\"rhel fedora centos\"\nVERSION_ID=\"9.2\"\n", "rhel", ""},
		{"debian 11", "ID=debian\nVERSION_ID=\"11\"\n", "", `debian: debian version "11" is not supported (supported: 12)`},
		{"ubuntu 20.04", "ID=ubuntu\nID_LIKE=debian\nVERSION_ID=\"20.04\"\n", "", `ubuntu: ubuntu version "20.04" is not supported (supported: 22.04, 24.04)`},
		{"centos 7", "ID=\"centos\"\nID_LIKE=\"rhel fedora\"\nVERSION_ID=\"7\"\n", "", `rhel: centos version "7" is not supported (supported: 8, 9)`},
		{"alpine", "PRETTY_NAME=\"Alpine Linux v3.19\"\nID=alpine\nVERSION_ID=3.19.0\n", "", `unsupported base distribution "Alpine Linux v3.19" (ID="alpine" ID_LIKE="" VERSION_ID="3.19.0"); supported families: debian (ID debian; VERSION_ID 12); ubuntu (ID ubuntu; VERSION_ID 22.04, 24.04); rhel (ID rhel/rocky/almalinux/centos; VERSION_ID 8, 9)`},
		{"fedora", "ID=fedora\nVERSION_ID=40\n", "", `unsupported base distribution "fedora 40" (ID="fedora"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tr := fixture{"usr/lib/os-release": c.osr, "etc/os-release": "-> ../usr/lib/os-release"}.build(t)
			p, o, err := Detect(tr)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err = %v, want %q", err, c.err)
				}
				return
			}
			if err != nil || p.Name() != c.want {
				t.Fatalf("got %v %v, want %s", p, err, c.want)
			}
			if o["ID"] == "" {
				t.Errorf("os-release not returned: %v", o)
			}
		})
	}
	if _, _, err := Detect(overlay.NewTree(t.TempDir())); err == nil || !strings.Contains(err.Error(), "no /etc/os-release") {
		t.Errorf("empty tree: %v", err)
	}
}

// fixup detects the fixture's family, runs its fixups and returns the tree.
func fixup(t *testing.T, f fixture, want string) *overlay.Tree {
	t.Helper()
	tr := f.build(t)
	p, o, err := Detect(tr)
	if err != nil {
		t.Fatal(err)
	}
	if p.Name() != want {
		t.Fatalf("profile %s, want %s", p.Name(), want)
	}
	if err := p.Fixup(tr, o); err != nil {
		t.Fatalf("fixup: %v", err)
	}
	return tr
}

func wantLink(t *testing.T, tr *overlay.Tree, p, target string) {
	t.Helper()
	e, ok := tr.Lookup(p)
	if !ok || e.Kind != overlay.KindSymlink || e.Link != target {
		t.Errorf("%s: %+v, want symlink to %s", p, e, target)
	}
}

func wantFile(t *testing.T, tr *overlay.Tree, p string, mode uint32, contains string) {
	t.Helper()
	e, ok := tr.Lookup(p)
	if !ok || e.Kind != overlay.KindFile {
		t.Errorf("%s: %+v, want a file", p, e)
		return
	}
	if e.Mode != mode || e.UID != 0 || e.GID != 0 {
		t.Errorf("%s: mode %o owner %d:%d, want %o root", p, e.Mode, e.UID, e.GID, mode)
	}
	data, err := tr.ReadFile(p)
	if err != nil || !strings.Contains(string(data), contains) {
		t.Errorf("%s = %q (%v), want it to contain %q", p, data, err, contains)
	}
}

func wantGone(t *testing.T, tr *overlay.Tree, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if _, ok := tr.Lookup(p); ok {
			t.Errorf("%s kept", p)
		}
	}
}

func wantKept(t *testing.T, tr *overlay.Tree, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if _, ok := tr.Lookup(p); !ok {
			t.Errorf("%s removed", p)
		}
	}
}

// wantHygiene checks what every family gets.
func wantHygiene(t *testing.T, tr *overlay.Tree) {
	t.Helper()
	wantFile(t, tr, "etc/machine-id", 0o444, "uninitialized\n")
	wantLink(t, tr, "etc/systemd/system/systemd-firstboot.service", "/dev/null")
	wantGone(t, tr, "etc/ssh/ssh_host_rsa_key", "etc/ssh/ssh_host_rsa_key.pub", "etc/hostname",
		"var/tmp/build-scratch", "root/.bash_history")
	wantKept(t, tr, "etc/ssh/sshd_config", "var/log", "var/log/journal", "tmp", "var/tmp")
}

func TestDebianFixup(t *testing.T) {
	tr := fixup(t, debianFixture(), "debian")
	wantLink(t, tr, "etc/systemd/system/multi-user.target.wants/systemd-networkd.service", "/usr/lib/systemd/system/systemd-networkd.service")
	wantLink(t, tr, "etc/systemd/system/sockets.target.wants/systemd-networkd.socket", "/usr/lib/systemd/system/systemd-networkd.socket")
	wantLink(t, tr, "etc/systemd/system/network-online.target.wants/systemd-networkd-wait-online.service", "/usr/lib/systemd/system/systemd-networkd-wait-online.service")
	wantFile(t, tr, NetworkdFile, 0o644, "DHCP=yes")
	wantHygiene(t, tr)
	wantFile(t, tr, "etc/resolv.conf", 0o644, "filled by the host")
	if data, _ := tr.ReadFile("etc/resolv.conf"); strings.Contains(string(data), "192.0.2.53") {
		t.Errorf("build machine resolver kept: %q", data)
	}
	wantFile(t, tr, "etc/systemd/system/ssh.service.d/imagebuilder-host-keys.conf", 0o644, "ExecStartPre=/usr/bin/ssh-keygen -A")
	wantGone(t, tr, "var/lib/apt/lists/deb.example_Packages", "var/cache/apt/pkgcache.bin",
		"var/cache/apt/archives/old_1.0_amd64.deb", "var/log/dpkg.log", "var/log/apt/history.log")
	wantKept(t, tr, "var/lib/apt/lists/lock", "var/lib/apt/lists/partial", "var/cache/apt/archives/partial", "var/log/apt")
	// A kernel already in /boot is not touched.
	if e, _ := tr.Lookup("boot/vmlinuz-6.1.0-13-cloud-amd64"); e.Kind != overlay.KindFile {
		t.Errorf("kernel changed: %+v", e)
	}
	wantGone(t, tr, ".autorelabel", NetplanFile, NetworkManagerFile, CloudInitFile)
}

func TestUbuntuFixup(t *testing.T) {
	for _, v := range []string{"22.04", "24.04"} {
		t.Run(v, func(t *testing.T) {
			tr := fixup(t, ubuntuFixture(v), "ubuntu")
			wantFile(t, tr, NetplanFile, 0o600, "renderer: networkd")
			data, _ := tr.ReadFile(NetplanFile)
			for _, want := range []string{`name: "en*"`, `name: "eth*"`, "dhcp4: true"} {
				if !strings.Contains(string(data), want) {
					t.Errorf("netplan yaml lacks %q:\n%s", want, data)
				}
			}
			wantGone(t, tr, "etc/netplan/50-cloud-init.yaml", NetworkdFile)
			wantLink(t, tr, "etc/systemd/system/multi-user.target.wants/systemd-networkd.service", "/usr/lib/systemd/system/systemd-networkd.service")
			wantFile(t, tr, CloudInitFile, 0o644, "network: {config: disabled}")
			wantGone(t, tr, "var/lib/cloud/instances", "var/lib/cloud/instance", ".dockerenv", "usr/sbin/policy-rc.d")
			wantKept(t, tr, "etc/cloud/cloud.cfg", "var/lib/cloud")
			wantHygiene(t, tr)
			// systemd-resolved's stub link is kept: it is managed at boot.
			wantLink(t, tr, "etc/resolv.conf", "../run/systemd/resolve/stub-resolv.conf")
			wantFile(t, tr, "etc/systemd/system/ssh.service.d/imagebuilder-host-keys.conf", 0o644, "ssh-keygen -A")
			wantGone(t, tr, ".autorelabel", NetworkManagerFile)
		})
	}
}

func TestUbuntuWithoutNetplanUsesNetworkd(t *testing.T) {
	f := ubuntuFixture("22.04")
	delete(f, "usr/sbin/netplan")
	tr := fixup(t, f, "ubuntu")
	wantFile(t, tr, NetworkdFile, 0o644, "DHCP=yes")
	wantGone(t, tr, NetplanFile)
}

func TestRHELFixup(t *testing.T) {
	osr := "NAME=\"Rocky Linux\"\nID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\nVERSION_ID=\"9.4\"\nPRETTY_NAME=\"Rocky Linux 9.4 (Blue Onyx)\"\n"
	tr := fixup(t, rhelFixture(osr, 252, "enforcing"), "rhel")
	wantFile(t, tr, NetworkManagerFile, 0o600, "method=auto")
	data, _ := tr.ReadFile(NetworkManagerFile)
	if strings.Contains(string(data), "interface-name") {
		t.Errorf("keyfile is bound to an interface:\n%s", data)
	}
	wantLink(t, tr, "etc/systemd/system/multi-user.target.wants/NetworkManager.service", "/usr/lib/systemd/system/NetworkManager.service")
	wantLink(t, tr, "etc/systemd/system/network-online.target.wants/NetworkManager-wait-online.service", "/usr/lib/systemd/system/NetworkManager-wait-online.service")
	wantFile(t, tr, ".autorelabel", 0o644, "")
	// The bootc-style kernel is linked into /boot under RHEL's names.
	for p, target := range map[string]string{
		"boot/vmlinuz-5.14.0-427.el9.x86_64":       "usr/lib/modules/5.14.0-427.el9.x86_64/vmlinuz",
		"boot/initramfs-5.14.0-427.el9.x86_64.img": "usr/lib/modules/5.14.0-427.el9.x86_64/initramfs.img",
	} {
		e, ok := tr.Lookup(p)
		if !ok || e.Kind != overlay.KindHardlink || e.Link != target {
			t.Errorf("%s: %+v, want a hardlink to %s", p, e, target)
		}
	}
	wantGone(t, tr, "var/cache/dnf/baseos-1234", "var/cache/dnf/expired_repos.json", "var/log/dnf.log", NetworkdFile, NetplanFile)
	wantKept(t, tr, "var/cache/dnf")
	wantHygiene(t, tr)
	// RHEL's sshd makes its own keys (sshd-keygen@.service): no drop-in.
	wantGone(t, tr, "etc/systemd/system/ssh.service.d")
}

func TestRHEL8OldSystemdAndSELinuxDisabled(t *testing.T) {
	osr := "ID=\"rhel\"\nID_LIKE=\"fedora\"\nVERSION_ID=\"8.9\"\n"
	tr := fixup(t, rhelFixture(osr, 239, "disabled"), "rhel")
	// systemd 239 does not know "uninitialized": empty machine-id, and no
	// first boot to guard against.
	wantFile(t, tr, "etc/machine-id", 0o444, "")
	if data, _ := tr.ReadFile("etc/machine-id"); len(data) != 0 {
		t.Errorf("machine-id = %q, want empty", data)
	}
	wantGone(t, tr, ".autorelabel", "etc/systemd/system/systemd-firstboot.service")
}

func TestFixupErrors(t *testing.T) {
	rocky := "ID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\nVERSION_ID=\"9.4\"\nPRETTY_NAME=\"Rocky Linux 9.4\"\n"
	cases := []struct {
		name string
		f    fixture
		drop []string
		want string
	}{
		{"no NetworkManager", rhelFixture(rocky, 252, "enforcing"), []string{"usr/sbin/NetworkManager"},
			`rhel fixup: network: NetworkManager: the base has no /usr/sbin/NetworkManager (dnf install NetworkManager)`},
		{"no tar, no gzip", debianFixture(), []string{"usr/bin/tar", "usr/bin/gzip"},
			`debian base "Debian GNU/Linux 12 (bookworm)": the base lacks tar, zstd or gzip (apt-get install the packages into the base)`},
		{"no user database", debianFixture(), []string{"etc/group", "usr/sbin/nologin"},
			`the base lacks /etc/group, a nologin shell (/usr/sbin/nologin) (apt-get install the packages into the base)`},
		{"no systemd", rhelFixture(rocky, 252, "enforcing"), []string{"usr/lib/systemd/systemd"},
			`rhel base "Rocky Linux 9.4": the base lacks systemd (no /usr/lib/systemd/systemd)`},
		{"old systemd", rhelFixture(rocky, 219, "enforcing"), nil,
			`the base lacks systemd >= 239 (found 219 in /usr/lib64/systemd/libsystemd-shared-219.so)`},
		{"bad selinux config", rhelFixture(rocky, 252, "sometimes"), nil,
			`rhel fixup: selinux: /etc/selinux/config: SELINUX="sometimes" is not enforcing, permissive or disabled`},
		{"no networkd", debianFixture(), []string{"usr/lib/systemd/system/systemd-networkd.socket"},
			`debian fixup: network: systemd-networkd: the base has no systemd-networkd.socket`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, d := range c.drop {
				delete(c.f, d)
			}
			tr := c.f.build(t)
			p, o, err := Detect(tr)
			if err != nil {
				t.Fatal(err)
			}
			err = p.Fixup(tr, o)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v\nwant %q", err, c.want)
			}
		})
	}
}

func TestSystemdVersion(t *testing.T) {
	tr := debianFixture().build(t)
	if v, from := SystemdVersion(tr); v != 252 || !strings.Contains(from, "dpkg/status (systemd 252.39-1~deb12u1)") {
		t.Errorf("debian: %d from %s", v, from)
	}
	tr = rhelFixture("ID=rhel\nVERSION_ID=9.4\n", 252, "enforcing").build(t)
	if v, from := SystemdVersion(tr); v != 252 || from != "/usr/lib64/systemd/libsystemd-shared-252.so" {
		t.Errorf("rhel: %d from %s", v, from)
	}
}

// TestExposeKernelInitrdOnly: a kernel already in /boot whose initrd ships
// only in /usr/lib/modules gets the initrd linked.
func TestExposeKernelInitrdOnly(t *testing.T) {
	tr := fixture{
		"boot/vmlinuz-6.8.0-31-generic":                "kernel",
		"usr/lib/modules/6.8.0-31-generic/vmlinuz":     "kernel",
		"usr/lib/modules/6.8.0-31-generic/initrd.img":  "initrd",
		"usr/lib/modules/6.8.0-31-generic/modules.dep": "",
		"usr/lib/modules/5.15.0-1-generic/modules.dep": "",
	}.build(t)
	ks, err := ExposeKernels(tr, Ubuntu().InitrdName)
	if err != nil {
		t.Fatal(err)
	}
	if len(ks) != 1 || ks[0].Initrd != "boot/initrd.img-6.8.0-31-generic" {
		t.Fatalf("exposed %+v", ks)
	}
	if e, _ := tr.Lookup("boot/vmlinuz-6.8.0-31-generic"); e.Kind != overlay.KindFile {
		t.Errorf("the kernel in /boot was replaced: %+v", e)
	}
	if e, ok := tr.Lookup("boot/initrd.img-6.8.0-31-generic"); !ok || e.Kind != overlay.KindHardlink {
		t.Errorf("initrd: %+v", e)
	}
}
