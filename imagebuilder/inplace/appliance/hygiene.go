package main

import (
	"errors"
	"fmt"
	"os"
	"path"
	"regexp"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// The hygiene step (ib.hygiene=1) is the part of the distro fixups that
// needs to see the image's root, which the build machine cannot read (XFS):
// the same rules as distros.Hygiene, applied inside the appliance. What can
// be expressed as added files (masking systemd-firstboot, the ssh host-key
// drop-in) is in the overlay the build machine makes instead.

// leftovers are build-machine files no host should inherit (as in
// distros/hygiene.go).
var leftovers = []string{
	"etc/hostname", "var/lib/dbus/machine-id", "var/lib/systemd/random-seed",
	"var/lib/systemd/credential.secret", ".dockerenv", "usr/sbin/policy-rc.d",
	"root/.bash_history", "root/.wget-hsts", "root/.lesshst",
}

// emptied are folders whose plain files go (apt's lock stays).
var emptied = []string{
	"tmp", "var/tmp", "var/lib/apt/lists", "var/cache/apt", "var/cache/dnf", "var/cache/yum",
}

var sharedLibRE = regexp.MustCompile(`^libsystemd-shared-(\d+)`)

// systemdVersion is the major version in the name of libsystemd-shared
// (every family ships it), 0 when not found.
func systemdVersion(rootfd int) int {
	best := 0
	for _, dir := range []string{"usr/lib/systemd", "usr/lib64/systemd", "usr/lib/x86_64-linux-gnu/systemd"} {
		names, err := readDirIn(rootfd, dir)
		if err != nil {
			continue
		}
		for _, n := range names {
			if m := sharedLibRE.FindStringSubmatch(n); m != nil {
				if v, _ := strconv.Atoi(m[1]); v > best {
					best = v
				}
			}
		}
	}
	return best
}

// hygiene resets the machine identity and drops host keys, logs, caches
// and leftovers in the image's root.
func hygiene(rootfd int) error {
	osr, err := readIn(rootfd, "etc/os-release")
	if err != nil {
		osr, err = readIn(rootfd, "usr/lib/os-release")
	}
	if err != nil {
		return fmt.Errorf("the root has no os-release: %w", err)
	}
	for _, l := range strings.Split(strings.TrimSpace(string(osr)), "\n") {
		fmt.Printf("IBOSRELEASE %s\n", l)
	}
	v := systemdVersion(rootfd)
	fmt.Printf("IBSYSTEMD %d\n", v)
	// systemd >= 247 knows "uninitialized" (a first boot); older takes an
	// empty file.
	id := "uninitialized\n"
	if v != 0 && v < 247 {
		id = ""
	}
	if err := writeIn(rootfd, "etc/machine-id", []byte(id), 0o444); err != nil {
		return fmt.Errorf("machine-id: %w", err)
	}
	var drop []string
	if names, err := readDirIn(rootfd, "etc/ssh"); err == nil {
		for _, n := range names {
			if strings.HasPrefix(n, "ssh_host_") {
				drop = append(drop, "etc/ssh/"+n)
			}
		}
	}
	for _, d := range emptied {
		if names, err := readDirIn(rootfd, d); err == nil {
			for _, n := range names {
				if n != "lock" {
					drop = append(drop, d+"/"+n)
				}
			}
		}
	}
	logs, err := filesUnder(rootfd, "var/log")
	if err != nil {
		return fmt.Errorf("var/log: %w", err)
	}
	drop = append(drop, logs...)
	drop = append(drop, leftovers...)
	n := 0
	for _, p := range drop {
		removed, err := removeFileIn(rootfd, p)
		if err != nil {
			return fmt.Errorf("removing /%s: %w", p, err)
		}
		if removed {
			n++
		}
	}
	// A regular resolv.conf holds the vendor build's resolvers; a symlink
	// (systemd-resolved's stub) stays.
	var st unix.Stat_t
	if err := statIn(rootfd, "etc/resolv.conf", &st); err == nil && st.Mode&unix.S_IFMT == unix.S_IFREG {
		if err := writeIn(rootfd, "etc/resolv.conf", []byte("# Written by imagebuilder: filled by the host's network configuration at boot.\n"), 0o644); err != nil {
			return fmt.Errorf("resolv.conf: %w", err)
		}
	}
	fmt.Printf("appliance: hygiene: machine-id reset, %d files removed\n", n)
	return nil
}

// readDirIn lists a directory of the root (not following a final symlink
// out of it: every component resolves inside the root).
func readDirIn(rootfd int, rel string) ([]string, error) {
	fd, err := unix.Openat2(rootfd, rel, &unix.OpenHow{Flags: unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC, Resolve: how.Resolve})
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), rel)
	defer f.Close()
	return f.Readdirnames(-1)
}

func statIn(rootfd int, rel string, st *unix.Stat_t) error {
	pfd, err := unix.Openat2(rootfd, path.Dir(rel), &how)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	return unix.Fstatat(pfd, path.Base(rel), st, unix.AT_SYMLINK_NOFOLLOW)
}

// filesUnder lists the non-directories below dir, recursively, without
// following symlinks.
func filesUnder(rootfd int, dir string) ([]string, error) {
	names, err := readDirIn(rootfd, dir)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range names {
		p := dir + "/" + n
		var st unix.Stat_t
		if err := statIn(rootfd, p, &st); err != nil {
			return nil, err
		}
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			sub, err := filesUnder(rootfd, p)
			if err != nil {
				return nil, err
			}
			out = append(out, sub...)
			continue
		}
		out = append(out, p)
	}
	return out, nil
}

// removeFileIn removes a non-directory of the root; a missing file or a
// directory is left alone.
func removeFileIn(rootfd int, rel string) (bool, error) {
	pfd, err := unix.Openat2(rootfd, path.Dir(rel), &how)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer unix.Close(pfd)
	err = unix.Unlinkat(pfd, path.Base(rel), 0)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.EISDIR), errors.Is(err, unix.EPERM):
		return false, nil
	}
	return false, err
}

// writeIn replaces a file of the root (a symlink in its place is replaced,
// never followed).
func writeIn(rootfd int, rel string, data []byte, mode uint32) error {
	pfd, err := openDir(rootfd, path.Dir(rel))
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	if err := unlinkNonDir(pfd, path.Base(rel)); err != nil {
		return err
	}
	fd, err := unix.Openat(pfd, path.Base(rel), unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(fd), rel)
	_, err = f.Write(data)
	if err == nil {
		err = unix.Fchmod(fd, mode)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
