package distros

import (
	"fmt"
	"slices"
	"strings"

	"imagebuilder/overlay"
)

// Network is how a family configures DHCP on every Ethernet interface.
type Network int

const (
	// Networkd writes a systemd-networkd .network file and enables networkd.
	Networkd Network = iota + 1
	// Netplan writes a netplan YAML (rendered by networkd); without netplan
	// on the base it falls back to Networkd.
	Netplan
	// NetworkManager writes a keyfile connection and enables NetworkManager.
	NetworkManager
)

func (n Network) String() string {
	switch n {
	case Networkd:
		return "systemd-networkd"
	case Netplan:
		return "netplan"
	case NetworkManager:
		return "NetworkManager"
	}
	return fmt.Sprintf("network(%d)", int(n))
}

// Family is a Profile described by data: which releases it takes and what
// its fixups are. Every built-in profile is a Family.
type Family struct {
	// FamilyName is the profile name.
	FamilyName string
	// IDs are os-release IDs of the family ("rhel", "rocky").
	IDs []string
	// Likes are ID_LIKE words that also select the family for an unknown ID
	// (a rebuild of RHEL says ID_LIKE="rhel ...").
	Likes []string
	// Versions are the supported VERSION_IDs; with MajorOnly, the part
	// before the first dot is compared ("9.4" → "9").
	Versions  []string
	MajorOnly bool
	// Network is the family's network stack.
	Network Network
	// SELinux: when the base's /etc/selinux/config is enforcing or
	// permissive, the first boot relabels the file system.
	SELinux bool
	// InitrdName is where the family keeps a kernel version's initrd in /boot
	// (a Printf pattern of the version), used when the kernel ships only in
	// /usr/lib/modules/<version>/ (bootc-style images).
	InitrdName string
	// PackageHint is the command that installs packages, for messages.
	PackageHint string
	// SSHKeygenDropIn: the family's ssh.service does not make missing host
	// keys itself, so a drop-in runs ssh-keygen -A before sshd.
	SSHKeygenDropIn bool
}

var _ Profile = (*Family)(nil)

// Debian is Debian 12 (bookworm): systemd-networkd.
func Debian() *Family {
	return &Family{
		FamilyName: "debian", IDs: []string{"debian"}, Versions: []string{"12"},
		Network: Networkd, InitrdName: "boot/initrd.img-%s",
		PackageHint: "apt-get install", SSHKeygenDropIn: true,
	}
}

// Ubuntu is Ubuntu 22.04 and 24.04: netplan rendered by systemd-networkd.
func Ubuntu() *Family {
	return &Family{
		FamilyName: "ubuntu", IDs: []string{"ubuntu"}, Versions: []string{"22.04", "24.04"},
		Network: Netplan, InitrdName: "boot/initrd.img-%s",
		PackageHint: "apt-get install", SSHKeygenDropIn: true,
	}
}

// RHEL is Red Hat Enterprise Linux 8 and 9 and its rebuilds (Rocky, Alma,
// CentOS Stream): NetworkManager, SELinux.
func RHEL() *Family {
	return &Family{
		FamilyName: "rhel", IDs: []string{"rhel", "rocky", "almalinux", "centos"}, Likes: []string{"rhel"},
		Versions: []string{"8", "9"}, MajorOnly: true,
		Network: NetworkManager, SELinux: true, InitrdName: "boot/initramfs-%s.img",
		PackageHint: "dnf install",
	}
}

// Name implements Profile.
func (f *Family) Name() string { return f.FamilyName }

// Describe names the family and its releases for messages.
func (f *Family) Describe() string {
	return fmt.Sprintf("%s (ID %s; VERSION_ID %s)", f.FamilyName, strings.Join(f.IDs, "/"), strings.Join(f.Versions, ", "))
}

// Supports implements Profile.
func (f *Family) Supports(o OSRelease) (bool, string) {
	member := slices.Contains(f.IDs, o["ID"])
	if !member {
		for _, l := range o.Likes() {
			if slices.Contains(f.Likes, l) {
				member = true
			}
		}
	}
	if !member {
		return false, ""
	}
	v := o["VERSION_ID"]
	if f.MajorOnly {
		v = o.Major()
	}
	if slices.Contains(f.Versions, v) {
		return true, ""
	}
	return false, fmt.Sprintf("%s version %q is not supported (supported: %s)", o["ID"], o["VERSION_ID"], strings.Join(f.Versions, ", "))
}

// Fixup implements Profile: prerequisites, network, cloud-init, SELinux,
// kernel location, then hygiene.
func (f *Family) Fixup(t *overlay.Tree, o OSRelease) error {
	pre, err := CheckPrerequisites(t, f.PackageHint)
	if err != nil {
		return fmt.Errorf("%s base %q: %w", f.FamilyName, o.Pretty(), err)
	}
	steps := []struct {
		name string
		fn   func() error
	}{
		{"network", func() error { return f.network(t) }},
		{"cloud-init", func() error { return CloudInit(t) }},
		{"selinux", func() error {
			if !f.SELinux {
				return nil
			}
			_, err := SELinuxRelabel(t)
			return err
		}},
		{"kernel", func() error { _, err := ExposeKernels(t, f.InitrdName); return err }},
		{"hygiene", func() error {
			return Hygiene(t, HygieneOptions{Systemd: pre.Systemd, SSHKeygenDropIn: f.SSHKeygenDropIn})
		}},
	}
	for _, s := range steps {
		if err := s.fn(); err != nil {
			return fmt.Errorf("%s fixup: %s: %w", f.FamilyName, s.name, err)
		}
	}
	return nil
}

func (f *Family) network(t *overlay.Tree) error {
	switch f.Network {
	case Networkd:
		return ConfigureNetworkd(t)
	case Netplan:
		return ConfigureNetplan(t)
	case NetworkManager:
		return ConfigureNetworkManager(t, f.PackageHint)
	}
	return fmt.Errorf("unknown network stack %v", f.Network)
}
