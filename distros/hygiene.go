package distros

import (
	"fmt"
	"path"
	"strings"

	"imagebuilder/overlay"
)

// FirstBootMachineID is the systemd version from which /etc/machine-id may
// hold "uninitialized" (machine-id(5)): the next boot is a first boot, the
// host generates its own id and commits it.
const FirstBootMachineID = 247

// HygieneOptions tune Hygiene for a family.
type HygieneOptions struct {
	// Systemd is the base's systemd major version (0: unknown, taken as new).
	Systemd int
	// SSHKeygenDropIn adds a drop-in to ssh.service that makes missing host
	// keys before sshd starts (Debian and Ubuntu do not do it themselves).
	SSHKeygenDropIn bool
}

// sshKeygenDropIn resets ExecStartPre so the keys exist before `sshd -t`.
const sshKeygenDropIn = `# Written by imagebuilder: the image carries no SSH host keys; each host makes its own.
[Service]
ExecStartPre=
ExecStartPre=/usr/bin/ssh-keygen -A
ExecStartPre=/usr/sbin/sshd -t
`

// leftovers are build-machine and container-build files no host should
// inherit, as tree paths (a directory entry goes with its contents).
var leftovers = []string{
	"etc/hostname",
	"var/lib/dbus/machine-id",
	"var/lib/systemd/random-seed",
	"var/lib/systemd/credential.secret",
	".dockerenv",
	"usr/sbin/policy-rc.d",
	"root/.bash_history",
	"root/.wget-hsts",
	"root/.lesshst",
	"etc/dpkg/dpkg.cfg.d/excludes", // Ubuntu container "minimized" images
}

// emptied are directories whose contents are dropped (the directory stays).
var emptied = []string{
	"tmp", "var/tmp", "run",
	"var/lib/apt/lists", "var/cache/apt", "var/cache/apt/archives",
	"var/cache/dnf", "var/cache/yum", "var/lib/dnf/repos",
	"var/cache/ldconfig",
}

// Hygiene makes an image safe to boot as many hosts: a machine-id each host
// generates on its first boot, no SSH host keys, no package caches or lists,
// no logs, a reset resolv.conf and no build-machine leftovers.
//
// machine-id: with systemd >= 247 it is "uninitialized", so the first boot is
// a systemd first boot (ConditionFirstBoot units run, presets apply, the id
// is committed). systemd-firstboot is masked: on a first boot it would
// otherwise prompt on the console for locale, keymap, timezone and root
// password and hang an unattended host (locale C, UTC and a locked root are
// what an image without those files gets). Older systemd (RHEL 8's 239)
// does not know "uninitialized" and gets the empty file those releases use.
func Hygiene(t *overlay.Tree, o HygieneOptions) error {
	id := []byte("uninitialized\n")
	if o.Systemd != 0 && o.Systemd < FirstBootMachineID {
		id = nil
	}
	if err := t.WriteFile("etc/machine-id", id, 0o444, 0, 0); err != nil {
		return fmt.Errorf("hygiene: machine-id: %w", err)
	}
	if len(id) > 0 {
		if err := maskUnit(t, "systemd-firstboot.service"); err != nil {
			return fmt.Errorf("hygiene: %w", err)
		}
	}
	var drop []string
	for p, e := range t.Entries {
		dir := path.Dir(p)
		switch {
		case dir == "etc/ssh" && strings.HasPrefix(path.Base(p), "ssh_host_") && e.Kind != overlay.KindDir:
			drop = append(drop, p)
		case strings.HasPrefix(p, "var/log/") && e.Kind != overlay.KindDir:
			drop = append(drop, p)
		case inEmptied(dir) && !keep(p, e):
			drop = append(drop, p)
		}
	}
	for _, p := range leftovers {
		if _, ok := t.Entries[p]; ok {
			drop = append(drop, p)
		}
	}
	if err := removeAll(t, drop); err != nil {
		return fmt.Errorf("hygiene: %w", err)
	}
	if err := resetResolvConf(t); err != nil {
		return fmt.Errorf("hygiene: %w", err)
	}
	if o.SSHKeygenDropIn && findUnit(t, "ssh.service") != "" {
		if err := t.WriteFile("etc/systemd/system/ssh.service.d/imagebuilder-host-keys.conf", []byte(sshKeygenDropIn), 0o644, 0, 0); err != nil {
			return fmt.Errorf("hygiene: ssh host keys: %w", err)
		}
	}
	return nil
}

func inEmptied(dir string) bool {
	for _, d := range emptied {
		if dir == d {
			return true
		}
	}
	return false
}

// keep spares what a package manager needs to exist: apt's lock files and
// partial/ and archives/ directories.
func keep(p string, e *overlay.Entry) bool {
	b := path.Base(p)
	return b == "lock" || (e.Kind == overlay.KindDir && (b == "partial" || b == "archives" || b == "auxfiles"))
}

// resetResolvConf leaves a symlink (systemd-resolved's stub, managed at
// boot) as it is and replaces a regular file, which holds the build
// machine's resolvers, with an empty one the host's network stack fills.
func resetResolvConf(t *overlay.Tree) error {
	e, ok := t.Entries["etc/resolv.conf"]
	if !ok || e.Kind == overlay.KindSymlink {
		return nil
	}
	return t.WriteFile("etc/resolv.conf", []byte("# Written by imagebuilder: filled by the host's network configuration at boot.\n"), 0o644, 0, 0)
}
