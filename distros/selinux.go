package distros

import (
	"fmt"

	"imagebuilder/overlay"
)

// SELinuxMode is the SELINUX= setting of /etc/selinux/config ("enforcing",
// "permissive", "disabled"), or "" when the base has no such file.
func SELinuxMode(t *overlay.Tree) (string, error) {
	if _, ok := t.Entries["etc/selinux/config"]; !ok {
		return "", nil
	}
	data, err := t.ReadFile("etc/selinux/config")
	if err != nil {
		return "", fmt.Errorf("reading /etc/selinux/config: %w", err)
	}
	mode := ParseOSRelease(data)["SELINUX"] // same KEY=value syntax
	switch mode {
	case "enforcing", "permissive", "disabled":
		return mode, nil
	}
	return "", fmt.Errorf("/etc/selinux/config: SELINUX=%q is not enforcing, permissive or disabled", mode)
}

// SELinuxRelabel asks for a full relabel on first boot (/.autorelabel) when
// SELinux is enforcing or permissive, and reports whether it did.
//
// Why a relabel rather than labels written at build time: the offline path
// assembles the tree from streams (OCI layers rarely carry security.selinux
// xattrs) and the bundle's files are new to the policy, so labelling only
// the prefix would leave the rest as the layers left it. selinux-autorelabel
// labels everything from the base's own policy and reboots once; it costs
// one extra boot and needs no policy tools on the build machine.
func SELinuxRelabel(t *overlay.Tree) (bool, error) {
	mode, err := SELinuxMode(t)
	if err != nil || (mode != "enforcing" && mode != "permissive") {
		return false, err
	}
	if err := t.WriteFile(".autorelabel", nil, 0o644, 0, 0); err != nil {
		return false, fmt.Errorf("writing /.autorelabel: %w", err)
	}
	return true, nil
}
