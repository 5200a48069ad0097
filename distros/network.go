package distros

import (
	"fmt"
	"path"
	"strings"

	"imagebuilder/overlay"
)

// NetworkdFile is the systemd-networkd configuration imagebuilder writes.
const NetworkdFile = "etc/systemd/network/80-imagebuilder-dhcp.network"

// networkdDHCP configures every Ethernet NIC with DHCP under systemd-networkd.
const networkdDHCP = `# Written by imagebuilder: DHCP on every Ethernet interface.
[Match]
Type=ether

[Network]
DHCP=yes
`

// ConfigureNetworkd writes a DHCP .network file and enables networkd, its
// socket and wait-online (so network-online.target means an address).
func ConfigureNetworkd(t *overlay.Tree) error {
	links := [][2]string{
		{"systemd-networkd.service", "multi-user.target"},
		{"systemd-networkd.socket", "sockets.target"},
		{"systemd-networkd-wait-online.service", "network-online.target"},
	}
	for _, l := range links {
		if err := enableUnit(t, l[0], l[1]); err != nil {
			return fmt.Errorf("systemd-networkd: %w", err)
		}
	}
	if err := t.WriteFile(NetworkdFile, []byte(networkdDHCP), 0o644, 0, 0); err != nil {
		return fmt.Errorf("systemd-networkd: %w", err)
	}
	return nil
}

// NetplanFile is the netplan configuration imagebuilder writes.
const NetplanFile = "etc/netplan/90-imagebuilder-dhcp.yaml"

// netplanDHCP: DHCP on every Ethernet interface whatever its name, rendered
// by networkd (Ubuntu server's renderer).
const netplanDHCP = `# Written by imagebuilder: DHCP on every Ethernet interface.
network:
  version: 2
  renderer: networkd
  ethernets:
    imagebuilder-en:
      match:
        name: "en*"
      dhcp4: true
      dhcp6: true
    imagebuilder-eth:
      match:
        name: "eth*"
      dhcp4: true
      dhcp6: true
`

// ConfigureNetplan writes a netplan DHCP configuration (mode 0600: netplan
// warns about readable files) and enables networkd, which renders it. The
// build instance's cloud-init netplan file (50-cloud-init.yaml, which
// matches the build machine's MAC address) is removed. A base without
// netplan gets plain systemd-networkd.
func ConfigureNetplan(t *overlay.Tree) error {
	if findTool(t, "netplan") == "" {
		return ConfigureNetworkd(t)
	}
	if err := t.Remove("etc/netplan/50-cloud-init.yaml"); err != nil {
		return err
	}
	if err := t.WriteFile(NetplanFile, []byte(netplanDHCP), 0o600, 0, 0); err != nil {
		return fmt.Errorf("netplan: %w", err)
	}
	for _, l := range [][2]string{
		{"systemd-networkd.service", "multi-user.target"},
		{"systemd-networkd.socket", "sockets.target"},
	} {
		if err := enableUnit(t, l[0], l[1]); err != nil {
			return fmt.Errorf("netplan: %w", err)
		}
	}
	return nil
}

// NetworkManagerFile is the keyfile connection imagebuilder writes.
const NetworkManagerFile = "etc/NetworkManager/system-connections/imagebuilder-dhcp.nmconnection"

// nmDHCP is a keyfile connection without an interface name: NetworkManager
// activates it on any Ethernet device. The keyfile plugin is always on, on
// RHEL 8 as well as 9.
const nmDHCP = `# Written by imagebuilder: DHCP on every Ethernet interface.
[connection]
id=imagebuilder-dhcp
type=ethernet
autoconnect=true
autoconnect-priority=-100

[ethernet]

[ipv4]
method=auto

[ipv6]
method=auto
addr-gen-mode=eui64
`

// ConfigureNetworkManager writes a keyfile DHCP connection (root-only 0600,
// as NetworkManager requires) and enables NetworkManager and its wait-online.
// Connections the build left that are bound to a MAC address or interface
// of the build machine stay; ours matches any Ethernet device.
func ConfigureNetworkManager(t *overlay.Tree, hint string) error {
	if findTool(t, "NetworkManager") == "" {
		return fmt.Errorf("NetworkManager: the base has no /usr/sbin/NetworkManager (%s NetworkManager)", hint)
	}
	if err := t.WriteFile(NetworkManagerFile, []byte(nmDHCP), 0o600, 0, 0); err != nil {
		return fmt.Errorf("NetworkManager: %w", err)
	}
	if err := enableUnit(t, "NetworkManager.service", "multi-user.target"); err != nil {
		return fmt.Errorf("NetworkManager: %w", err)
	}
	if findUnit(t, "NetworkManager-wait-online.service") != "" {
		if err := enableUnit(t, "NetworkManager-wait-online.service", "network-online.target"); err != nil {
			return fmt.Errorf("NetworkManager: %w", err)
		}
	}
	return nil
}

// CloudInitFile turns off cloud-init's network configuration.
const CloudInitFile = "etc/cloud/cloud.cfg.d/99-imagebuilder-network.cfg"

// CloudInit keeps cloud-init (users rely on it for SSH keys and user data
// in clouds) but turns off its network configuration, so the DHCP config
// above stays in charge on every host, and drops its per-instance state
// from the build so it runs afresh on each host. Bases without cloud-init
// are left alone.
func CloudInit(t *overlay.Tree) error {
	if _, ok := t.Entries["etc/cloud/cloud.cfg"]; !ok && findTool(t, "cloud-init") == "" {
		return nil
	}
	cfg := "# Written by imagebuilder: the image's own DHCP configuration is used.\nnetwork: {config: disabled}\n"
	if err := t.WriteFile(CloudInitFile, []byte(cfg), 0o644, 0, 0); err != nil {
		return err
	}
	var drop []string
	for p := range t.Entries {
		if path.Dir(p) == "var/lib/cloud" {
			drop = append(drop, p)
		}
	}
	return removeAll(t, drop)
}

func removeAll(t *overlay.Tree, paths []string) error {
	for _, p := range paths {
		if _, ok := t.Entries[p]; !ok {
			continue // under a directory removed before
		}
		if err := t.Remove(p); err != nil {
			return fmt.Errorf("removing %s: %w", "/"+strings.TrimPrefix(p, "/"), err)
		}
	}
	return nil
}
