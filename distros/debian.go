package distros

import (
	"fmt"
	"strings"

	"imagebuilder/overlay"
)

// Debian is the Debian family profile (Debian 12 "bookworm").
type Debian struct{}

func (Debian) Name() string { return "debian" }

func (Debian) Supports(o OSRelease) (bool, string) {
	if o["ID"] != "debian" {
		return false, ""
	}
	switch o["VERSION_ID"] {
	case "12":
		return true, ""
	}
	return false, fmt.Sprintf("version %q is not supported (12 is)", o["VERSION_ID"])
}

// networkdDHCP configures every Ethernet NIC with DHCP under systemd-networkd,
// the network stack of a minimal Debian.
const networkdDHCP = `# Written by imagebuilder: DHCP on every Ethernet interface.
[Match]
Type=ether

[Network]
DHCP=yes
`

func (Debian) Fixup(t *overlay.Tree, o OSRelease) error {
	if _, err := t.Resolve("lib/systemd/system/systemd-networkd.service"); err != nil {
		return err
	}
	unit := func(name string) (string, error) {
		p, err := t.Resolve("lib/systemd/system/" + name)
		if err != nil {
			return "", err
		}
		if e, ok := t.Entries[p]; !ok || e.Kind != overlay.KindFile {
			return "", fmt.Errorf("debian fixup: base %q lacks /lib/systemd/system/%s (is systemd installed?)", o.Pretty(), name)
		}
		return "/lib/systemd/system/" + name, nil
	}
	links := [][2]string{
		{"multi-user.target.wants/systemd-networkd.service", "systemd-networkd.service"},
		{"sockets.target.wants/systemd-networkd.socket", "systemd-networkd.socket"},
		{"network-online.target.wants/systemd-networkd-wait-online.service", "systemd-networkd-wait-online.service"},
	}
	for _, l := range links {
		target, err := unit(l[1])
		if err != nil {
			return err
		}
		p := "etc/systemd/system/" + l[0]
		if err := t.MkdirAll(p[:strings.LastIndex(p, "/")], 0o755, 0, 0); err != nil {
			return err
		}
		if err := t.Symlink(target, p); err != nil {
			return fmt.Errorf("debian fixup: enabling %s: %w", l[1], err)
		}
	}
	if err := t.WriteFile("etc/systemd/network/80-imagebuilder-dhcp.network", []byte(networkdDHCP), 0o644, 0, 0); err != nil {
		return fmt.Errorf("debian fixup: network config: %w", err)
	}
	return Hygiene(t)
}
