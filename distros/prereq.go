package distros

import (
	"bufio"
	"bytes"
	"fmt"
	"path"
	"regexp"
	"strconv"
	"strings"

	"imagebuilder/overlay"
)

// MinSystemd is the oldest systemd the host layout works with (RHEL 8 ships
// 239). Role credentials (SMBIOS type 11) need 252; older hosts take the
// role baked in or from the kernel command line.
const MinSystemd = 239

// Prerequisites is what CheckPrerequisites found on the base.
type Prerequisites struct {
	// Systemd is systemd's major version; SystemdFrom says where it was read.
	Systemd     int
	SystemdFrom string
	// Tar and Decompressors are the tools found (tree paths).
	Tar           string
	Decompressors []string
	// NoLogin is the shell for system users (tree path): packages' system
	// users are created with it.
	NoLogin string
}

// CheckPrerequisites makes sure the base can run a cluster host: systemd
// (version from the package database or the shared library's file name), tar,
// and zstd or gzip. Everything missing is reported at once, with hint (the
// family's install command) in the message.
func CheckPrerequisites(t *overlay.Tree, hint string) (*Prerequisites, error) {
	var missing []string
	pre := &Prerequisites{}
	if !isRegular(t, "usr/lib/systemd/systemd") && !isRegular(t, "lib/systemd/systemd") {
		missing = append(missing, "systemd (no /usr/lib/systemd/systemd)")
	} else {
		pre.Systemd, pre.SystemdFrom = SystemdVersion(t)
		switch {
		case pre.Systemd == 0:
			missing = append(missing, "a readable systemd version (no systemd entry in /var/lib/dpkg/status and no libsystemd-shared-<version>.so)")
		case pre.Systemd < MinSystemd:
			missing = append(missing, fmt.Sprintf("systemd >= %d (found %d in %s)", MinSystemd, pre.Systemd, pre.SystemdFrom))
		}
	}
	pre.Tar = findTool(t, "tar")
	if pre.Tar == "" {
		missing = append(missing, "tar")
	}
	for _, c := range []string{"zstd", "gzip"} {
		if p := findTool(t, c); p != "" {
			pre.Decompressors = append(pre.Decompressors, p)
		}
	}
	if len(pre.Decompressors) == 0 {
		missing = append(missing, "zstd or gzip")
	}
	// System users and groups: the user database and a no-login shell.
	for _, db := range []string{"etc/passwd", "etc/group"} {
		if !isRegular(t, db) {
			missing = append(missing, "/"+db)
		}
	}
	if pre.NoLogin = findTool(t, "nologin"); pre.NoLogin == "" {
		missing = append(missing, "a nologin shell (/usr/sbin/nologin)")
	}
	if len(missing) > 0 {
		return pre, fmt.Errorf("the base lacks %s (%s the packages into the base)", strings.Join(missing, ", "), hint)
	}
	return pre, nil
}

var sharedLibRE = regexp.MustCompile(`^(?:usr/)?lib(?:64)?/(?:x86_64-linux-gnu/)?systemd/libsystemd-shared-(\d+)[.-]`)

// SystemdVersion returns systemd's major version and where it was read: the
// dpkg database on Debian and Ubuntu, else the version in the name of
// libsystemd-shared-<version>.so (every family ships it; RHEL's rpm database
// is a binary format). 0 means not found.
func SystemdVersion(t *overlay.Tree) (int, string) {
	if data, err := t.ReadFile("var/lib/dpkg/status"); err == nil {
		if v := dpkgVersion(data, "systemd"); v != "" {
			if n := leadingInt(v); n > 0 {
				return n, "/var/lib/dpkg/status (systemd " + v + ")"
			}
		}
	}
	best, from := 0, ""
	for p := range t.Entries {
		m := sharedLibRE.FindStringSubmatch(p)
		if m == nil {
			continue
		}
		if n, _ := strconv.Atoi(m[1]); n > best {
			best, from = n, "/"+p
		}
	}
	return best, from
}

// dpkgVersion returns the Version of an installed package in a dpkg status file.
func dpkgVersion(status []byte, pkg string) string {
	sc := bufio.NewScanner(bytes.NewReader(status))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var name, version, state string
	flush := func() string {
		if name == pkg && strings.HasSuffix(state, " installed") {
			return version
		}
		name, version, state = "", "", ""
		return ""
	}
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			if v := flush(); v != "" {
				return v
			}
			continue
		}
		if v, ok := strings.CutPrefix(line, "Package: "); ok {
			name = v
		} else if v, ok := strings.CutPrefix(line, "Version: "); ok {
			version = v
		} else if v, ok := strings.CutPrefix(line, "Status: "); ok {
			state = v
		}
	}
	return flush()
}

func leadingInt(s string) int {
	if _, rest, ok := strings.Cut(s, ":"); ok { // epoch
		s = rest
	}
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	n, _ := strconv.Atoi(s[:i])
	return n
}

// findTool returns the tree path of an executable named name in the usual
// bin directories (following merged-/usr symlinks), or "".
func findTool(t *overlay.Tree, name string) string {
	for _, dir := range []string{"usr/bin", "bin", "usr/sbin", "sbin"} {
		p := path.Join(dir, name)
		if isRegular(t, p) {
			return p
		}
	}
	return ""
}

// isRegular reports whether p (symlinks followed inside the tree) is a
// regular file or a hardlink to one.
func isRegular(t *overlay.Tree, p string) bool {
	r, err := t.Resolve(p)
	if err != nil {
		return false
	}
	e, ok := t.Entries[r]
	return ok && (e.Kind == overlay.KindFile || e.Kind == overlay.KindHardlink)
}
