package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// ValidRole reports whether r is one of master, agent, agent_public.
func ValidRole(r string) bool {
	switch r {
	case "master", "agent", "agent_public":
		return true
	}
	return false
}

// ResolveRole finds the host's role and says where it came from, trying in
// order: /etc/cluster/role, cluster.role= on the kernel command line, the
// systemd credential cluster.role ($CREDENTIALS_DIRECTORY, then
// /run/credentials/@system). The first source that is present decides; an
// invalid value there is an error, not a reason to look further.
func (a *Agent) ResolveRole() (role, from string, err error) {
	var tried []string

	if v, ok, err := readTrimmed(a.Paths.Host(RoleFile)); err != nil {
		return "", "", err
	} else if ok {
		return checkRole(v, RoleFile)
	}
	tried = append(tried, RoleFile+" is missing")

	cmdline, ok, err := readTrimmed(a.Paths.Host(CmdlineFile))
	if err != nil {
		return "", "", err
	}
	if v, found := CmdlineRole(cmdline); ok && found {
		return checkRole(v, "kernel command line cluster.role=")
	}
	tried = append(tried, "the kernel command line has no cluster.role=")

	var creds []string
	if dir := a.Getenv("CREDENTIALS_DIRECTORY"); dir != "" {
		creds = append(creds, filepath.Join(dir, RoleCredential))
	} else {
		tried = append(tried, "$CREDENTIALS_DIRECTORY is unset")
	}
	for _, c := range creds {
		v, ok, err := readTrimmed(c)
		if err != nil {
			return "", "", err
		}
		if ok {
			return checkRole(v, "credential "+c)
		}
		tried = append(tried, c+" is missing")
	}
	sys := filepath.Join(SystemCredentialsDir, RoleCredential)
	v, ok, err := readTrimmed(a.Paths.Host(sys))
	if err != nil {
		return "", "", err
	}
	if ok {
		return checkRole(v, "credential "+sys)
	}
	tried = append(tried, sys+" is missing")
	return "", "", fmt.Errorf("no role for this host: %s; set one of them to master, agent or agent_public", strings.Join(tried, ", "))
}

func checkRole(v, from string) (string, string, error) {
	if !ValidRole(v) {
		return "", "", fmt.Errorf("invalid role %q (from %s): want master, agent or agent_public", v, from)
	}
	return v, from, nil
}

// CmdlineRole returns the value of the last cluster.role= parameter on a
// kernel command line.
func CmdlineRole(cmdline string) (string, bool) {
	var role string
	found := false
	for _, f := range strings.Fields(cmdline) {
		if v, ok := strings.CutPrefix(f, "cluster.role="); ok {
			role, found = strings.Trim(v, `"`), true
		}
	}
	return role, found
}

// readTrimmed reads a small file with surrounding whitespace removed; a
// missing file is not an error.
func readTrimmed(path string) (string, bool, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("reading %s: %w", path, err)
	}
	return strings.TrimSpace(string(b)), true, nil
}
