package distros

import (
	"sort"
	"strings"
	"testing"

	"imagebuilder/overlay"
)

// fixture is a small root file system: path → contents; a value starting
// with "-> " makes a symlink to the rest, "/" at the end of a path a directory.
type fixture map[string]string

// merged is what every merged-/usr systemd base has.
var merged = fixture{
	"bin":                          "-> usr/bin",
	"sbin":                         "-> usr/sbin",
	"lib":                          "-> usr/lib",
	"usr/lib/systemd/systemd":      "ELF",
	"usr/bin/tar":                  "ELF",
	"usr/bin/gzip":                 "ELF",
	"usr/sbin/nologin":             "ELF",
	"etc/passwd":                   "root:x:0:0:root:/root:/bin/bash\n",
	"etc/group":                    "root:x:0:\n",
	"etc/machine-id":               "0123456789abcdef0123456789abcdef\n",
	"etc/hostname":                 "buildhost\n",
	"etc/ssh/ssh_host_rsa_key":     "secret",
	"etc/ssh/ssh_host_rsa_key.pub": "public",
	"etc/ssh/sshd_config":          "# keep\n",
	"var/log/":                     "",
	"var/log/journal/":             "",
	"var/tmp/build-scratch":        "x",
	"tmp/":                         "",
	"root/.bash_history":           "curl secret\n",
	"etc/resolv.conf":              "nameserver 192.0.2.53\n",
}

var networkdUnits = fixture{
	"usr/lib/systemd/system/systemd-networkd.service":             "[Unit]\n",
	"usr/lib/systemd/system/systemd-networkd.socket":              "[Unit]\n",
	"usr/lib/systemd/system/systemd-networkd-wait-online.service": "[Unit]\n",
	"usr/lib/systemd/system/systemd-firstboot.service":            "[Unit]\n",
}

func debianFixture() fixture {
	return join(merged, networkdUnits, fixture{
		"usr/lib/os-release":                               "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n",
		"etc/os-release":                                   "-> ../usr/lib/os-release",
		"var/lib/dpkg/status":                              "Package: tar\nStatus: install ok installed\nVersion: 1.34\n\nPackage: systemd\nStatus: install ok installed\nVersion: 252.39-1~deb12u1\n\n",
		"var/lib/apt/lists/deb.example_Packages":           "Package: x\n",
		"var/lib/apt/lists/lock":                           "",
		"var/lib/apt/lists/partial/":                       "",
		"var/cache/apt/pkgcache.bin":                       "cache",
		"var/cache/apt/archives/old_1.0_amd64.deb":         "deb",
		"var/cache/apt/archives/partial/":                  "",
		"var/log/dpkg.log":                                 "installed\n",
		"var/log/apt/history.log":                          "installed\n",
		"usr/lib/systemd/system/ssh.service":               "[Service]\nExecStartPre=/usr/sbin/sshd -t\n",
		"boot/vmlinuz-6.1.0-13-cloud-amd64":                "kernel",
		"boot/initrd.img-6.1.0-13-cloud-amd64":             "initrd",
		"usr/lib/modules/6.1.0-13-cloud-amd64/modules.dep": "",
	})
}

func ubuntuFixture(version string) fixture {
	return join(merged, networkdUnits, fixture{
		"usr/lib/os-release":  "PRETTY_NAME=\"Ubuntu " + version + " LTS\"\nID=ubuntu\nID_LIKE=debian\nVERSION_ID=\"" + version + "\"\n",
		"etc/os-release":      "-> ../usr/lib/os-release",
		"var/lib/dpkg/status": "Package: systemd\nStatus: install ok installed\nVersion: 255.4-1ubuntu8\n\n",
		"usr/lib/x86_64-linux-gnu/systemd/libsystemd-shared-255.so": "ELF",
		"usr/sbin/netplan":                              "#!/usr/bin/python3\n",
		"etc/netplan/50-cloud-init.yaml":                "network: {ethernets: {ens3: {match: {macaddress: '52:54:00:12:34:56'}}}}\n",
		"etc/cloud/cloud.cfg":                           "datasource_list: [NoCloud]\n",
		"var/lib/cloud/instances/i-build/boot-finished": "",
		"var/lib/cloud/instance":                        "-> /var/lib/cloud/instances/i-build",
		"etc/resolv.conf":                               "-> ../run/systemd/resolve/stub-resolv.conf",
		"usr/lib/systemd/system/ssh.service":            "[Service]\n",
		"boot/vmlinuz-6.8.0-31-generic":                 "kernel",
		"boot/initrd.img-6.8.0-31-generic":              "initrd",
		".dockerenv":                                    "",
		"usr/sbin/policy-rc.d":                          "exit 101\n",
	})
}

// rhelFixture is a bootc-style RHEL-family root: the kernel only in
// /usr/lib/modules, SELinux enforcing, NetworkManager.
func rhelFixture(osRelease string, systemd int, selinux string) fixture {
	lib := "usr/lib64/systemd/libsystemd-shared-" + itoa(systemd) + ".so"
	return join(merged, fixture{
		"lib64":                   "-> usr/lib64",
		"usr/lib/os-release":      osRelease,
		"etc/os-release":          "-> ../usr/lib/os-release",
		lib:                       "ELF",
		"usr/sbin/NetworkManager": "ELF",
		"usr/lib/systemd/system/NetworkManager.service":             "[Unit]\n",
		"usr/lib/systemd/system/NetworkManager-wait-online.service": "[Unit]\n",
		"usr/lib/systemd/system/systemd-firstboot.service":          "[Unit]\n",
		"usr/lib/systemd/system/sshd.service":                       "[Unit]\n",
		"etc/NetworkManager/system-connections/":                    "",
		"etc/selinux/config":                                        "# comment\nSELINUX=" + selinux + "\nSELINUXTYPE=targeted\n",
		"usr/lib/modules/5.14.0-427.el9.x86_64/vmlinuz":             "kernel",
		"usr/lib/modules/5.14.0-427.el9.x86_64/initramfs.img":       "initramfs",
		"var/cache/dnf/baseos-1234/repodata/repomd.xml":             "<repomd/>",
		"var/cache/dnf/expired_repos.json":                          "[]",
		"var/log/dnf.log":                                           "installed\n",
	})
}

func itoa(n int) string {
	s := ""
	for n > 0 {
		s = string(rune('0'+n%10)) + s
		n /= 10
	}
	return s
}

func join(fs ...fixture) fixture {
	out := fixture{}
	for _, f := range fs {
		for k, v := range f {
			out[k] = v
		}
	}
	return out
}

// build stages the fixture into a fresh tree.
func (f fixture) build(t *testing.T) *overlay.Tree {
	t.Helper()
	tr := overlay.NewTree(t.TempDir())
	keys := make([]string, 0, len(f))
	for k := range f {
		keys = append(keys, k)
	}
	sort.Strings(keys) // parents (and symlinked dirs) first
	for _, k := range keys {
		v := f[k]
		var err error
		switch {
		case strings.HasSuffix(k, "/"):
			err = tr.MkdirAll(k, 0o755, 0, 0)
		case strings.HasPrefix(v, "-> "):
			err = tr.Symlink(strings.TrimPrefix(v, "-> "), k)
		default:
			mode := uint32(0o644)
			if v == "ELF" || strings.HasPrefix(v, "#!") {
				mode = 0o755
			}
			err = tr.WriteFile(k, []byte(v), mode, 0, 0)
		}
		if err != nil {
			t.Fatalf("fixture %s: %v", k, err)
		}
	}
	return tr
}
